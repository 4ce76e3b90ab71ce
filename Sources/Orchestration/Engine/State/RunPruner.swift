import Foundation

/// Deletes finished runs from the history (`runs prune`): their database rows and their folders
/// (logs, `events.jsonl`, snapshot, starts journal) together.
///
/// Only finished runs go: never a live run (``RunStore/RunRecord/isLive``) nor an unfinished one
/// waiting for `resume`. A run goes in three steps, so that a crash anywhere leaves no
/// half-deleted run visible as a run:
/// 1. its lease is taken (an engine resuming the run holds it: the run is skipped, and `resume`
///    cannot start on it meanwhile), and a `pruning` marker is written into its folder;
/// 2. its rows (`runs`, `steps`, `attempts`, `events`) are deleted in one transaction, which
///    checks again that the run is finished;
/// 3. its folder is removed.
///
/// A crash after step 2 leaves a folder with the marker and no rows: no run, and the next prune
/// removes the folder. A crash before it leaves the whole run. Folders without the marker and
/// without rows (a run being created holds its lease and has no row yet) are never touched.
public enum RunPruner {
    /// Which finished runs go.
    public struct Criteria: Sendable {
        /// Runs finished longer ago than this many seconds.
        public var olderThan: Double?
        /// Keeps this many of the newest finished runs.
        public var keep: Int?

        /// Creates criteria; with both, a run goes when it is older and not among the kept ones.
        public init(olderThan: Double? = nil, keep: Int? = nil) {
            self.olderThan = olderThan
            self.keep = keep
        }
    }

    /// What a prune did.
    public struct Outcome: Sendable {
        /// The runs removed, newest first.
        public var pruned: [RunStore.RunRecord] = []
        /// Runs chosen but left, with why (held by an engine, no longer finished).
        public var skipped: [(runID: String, reason: String)] = []
        /// Folders of runs an earlier, interrupted prune had already deleted from the database.
        public var leftoverFolders: [String] = []
    }

    /// The finished runs `criteria` selects, newest first (nothing is deleted).
    public static func selection(_ runs: [RunStore.RunRecord], criteria: Criteria, now: Date) -> [RunStore.RunRecord] {
        let finished = runs.filter { $0.status.isFinal }
        var chosen = Array(finished.dropFirst(criteria.keep ?? 0))
        if let olderThan = criteria.olderThan {
            let cutoff = now.addingTimeInterval(-olderThan)
            chosen = chosen.filter { run in
                guard let end = Timestamp.parse(run.finishedAt ?? run.createdAt) else { return false }
                return end < cutoff
            }
        }
        return chosen
    }

    /// Prunes the state folder's history.
    /// - Throws: ``EngineError`` (exit 74) when the database or a folder cannot be changed; runs
    ///   removed before the failure stay removed.
    public static func prune(stateDirectory: StateDirectory, criteria: Criteria, now: Date = Date()) throws(EngineError) -> Outcome {
        let store = try RunStore(stateDirectory: stateDirectory)
        var outcome = Outcome()
        outcome.leftoverFolders = try removeLeftoverFolders(stateDirectory, store: store, now: now)
        let runs = try store.runs(limit: Int.max)
        for run in selection(runs, criteria: criteria, now: now) {
            let lease: RunLease
            do { lease = try RunLease(stateDirectory: stateDirectory, runID: run.runID) } catch {
                outcome.skipped.append((run.runID, "held by a live engine"))
                continue
            }
            defer { lease.release() }
            let relative = "runs/\(run.runID)/\(markerName)"
            do { try stateDirectory.writeFileAtomically(relative, []) } catch { throw EngineError(error) }
            guard try store.deleteFinishedRun(run.runID) else {
                try? FileManager.default.removeItem(atPath: stateDirectory.path + "/" + relative)
                outcome.skipped.append((run.runID, "no longer finished"))
                continue
            }
            try removeFolder(stateDirectory, run.runID)
            outcome.pruned.append(run)
        }
        return outcome
    }

    /// The marker of a run folder whose rows are being deleted.
    static let markerName = "pruning"

    /// Removes the run folders that have no row and never will; returns their run ids: those with
    /// a marker (their rows were deleted), and those that nobody holds any more and that never
    /// got an `events.jsonl` (made only once the row is in): a stage's hooks wrote them without
    /// a run (a pre hook stopped the stage, or no component ran), or an engine was killed
    /// between taking the run's lease and writing its row (a folder holding only `lease`, left
    /// for a minute first, so that a run being created is never caught between its folder and
    /// its lease).
    private static func removeLeftoverFolders(_ stateDirectory: StateDirectory, store: RunStore,
                                              now: Date) throws(EngineError) -> [String] {
        let runsFolder = stateDirectory.path + "/runs"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: runsFolder) else { return [] }
        var removed: [String] = []
        for name in names.sorted() {
            var status = stat()
            let marked = lstat(runsFolder + "/" + name + "/" + markerName, &status) == 0
            guard try store.run(name) == nil else { continue }
            if !marked {
                guard lstat(runsFolder + "/" + name + "/events.jsonl", &status) != 0,
                      lstat(runsFolder + "/" + name + "/hooks", &status) == 0
                        || isAbandonedStart(runsFolder + "/" + name, now: now),
                      let lease = try? RunLease(stateDirectory: stateDirectory, runID: name) else { continue }
                defer { lease.release() }
                // Taken: the row is still missing (a stage starts its run only after its hooks).
                guard try store.run(name) == nil else { continue }
                try removeFolder(stateDirectory, name)
            } else {
                try removeFolder(stateDirectory, name)
            }
            removed.append(name)
        }
        return removed
    }

    /// A folder holding nothing but a `lease`, last changed over a minute ago.
    private static func isAbandonedStart(_ folder: String, now: Date) -> Bool {
        var status = stat()
        guard lstat(folder, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR,
              now.timeIntervalSince1970 - Double(status.st_mtim.tv_sec) > 60,
              let entries = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return false }
        return entries.allSatisfy { $0 == "lease" }
    }

    private static func removeFolder(_ stateDirectory: StateDirectory, _ runID: String) throws(EngineError) {
        do {
            let folder = try stateDirectory.runDirectory(runID)
            var status = stat()
            // A symbolic link in place of the folder is removed itself, never followed.
            guard lstat(folder, &status) == 0 else { return }
            try FileManager.default.removeItem(atPath: folder)
        } catch {
            throw EngineError(.stateFailure, "cannot remove the folder of run \(runID): \(error.localizedDescription)")
        }
    }
}

extension RunStore {
    /// Deletes a finished run's rows (its events, outputs, attempts, steps and the run) in one
    /// transaction; false, deleting nothing, when the run is missing or not finished.
    package func deleteFinishedRun(_ runID: String) throws(EngineError) -> Bool {
        do {
            return try database.write { db -> Bool in
                guard let status = try db.query("SELECT status FROM runs WHERE run_id = ?", runID).first?.string(0),
                      RunStatus(rawValue: status)?.isFinal == true else { return false }
                for table in ["events", "step_outputs", "attempts", "steps", "runs"] {
                    try db.run("DELETE FROM \(table) WHERE run_id = ?", runID)
                }
                return true
            }
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(error)
        }
    }
}
