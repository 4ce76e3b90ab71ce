import Foundation
import Glibc
import Testing
@testable import Orchestration

/// Rows a run has in each per-run table of `runs.db`.
private func rowCounts(_ state: String, _ runID: String) throws -> [Int] {
    let db = try SQLiteDatabase(path: state + "/runs.db", mode: .readOnly)
    return try ["runs", "steps", "attempts", "events"].map { table in
        try db.query("SELECT count(*) FROM \(table) WHERE run_id = ?", runID).first?.int(0) ?? -1
    }
}

/// Runs a plan and returns its run id.
private func finishedRun(_ plan: String, state: String, in dir: String) async throws -> String {
    let result = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir)
    return try #require(try result.json()["run_id"]?.stringValue)
}

@Suite("History housekeeping: runs prune, runs events as one document", .serialized, .timeLimit(.minutes(2)))
struct PruneTests {
    /// --keep 1 removes the older finished runs: every row and the whole folder, and says so.
    @Test func keepRemovesOlderRunsRowsAndFoldersTogether() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let good = dir.write("good.json", planJSON([stepJSON("a", "echo out; echo err >&2")]))
        let bad = dir.write("bad.json", planJSON([stepJSON("b", "exit 1", extra: "\"retries\": 1, \"retry_delay_sec\": 0.01")]))
        let oldest = try await finishedRun(good, state: state, in: dir.path)
        let failed = try await finishedRun(bad, state: state, in: dir.path)
        let newest = try await finishedRun(good, state: state, in: dir.path)
        #expect(FileManager.default.fileExists(atPath: "\(state)/runs/\(failed)/snapshot"))
        let before = try rowCounts(state, failed)
        #expect(before[0...2] == [1, 1, 2] && before[3] >= 6, "a run, a step, two attempts, its events: \(before)")

        let pruned = await runCLI(["runs", "prune", "--keep", "1", "--format", "json", "--state-dir", state], in: dir.path)
        #expect(pruned.status == 0, "\(pruned.stderr)")
        #expect(try pruned.json()["pruned"]?.arrayValue?.map { $0["run_id"]?.stringValue ?? "" } == [failed, oldest])
        for gone in [oldest, failed] {
            #expect(try rowCounts(state, gone) == [0, 0, 0, 0], "\(gone) has rows left")
            #expect(!FileManager.default.fileExists(atPath: "\(state)/runs/\(gone)"), "\(gone) has its folder left")
            let shown = await runCLI(["runs", "show", gone, "--state-dir", state], in: dir.path)
            #expect(shown.status == 3)
        }
        #expect(try rowCounts(state, newest)[0...2] == [1, 1, 1])
        #expect(FileManager.default.fileExists(atPath: "\(state)/runs/\(newest)/events.jsonl"))
        let list = await runCLI(["runs", "list", "--format", "json", "--state-dir", state], in: dir.path)
        #expect(try list.json()["runs"]?.arrayValue?.map { $0["run_id"]?.stringValue ?? "" } == [newest])

        let human = await runCLI(["runs", "prune", "--keep", "0", "--format", "human", "--state-dir", state], in: dir.path)
        #expect(human.stdout.hasPrefix("removed \(newest)  succeeded  "), "\(human.stdout)")
        #expect(human.stdout.hasSuffix("Pruned 1 run.\n"))
        let again = await runCLI(["runs", "prune", "--keep", "0", "--format", "human", "--state-dir", state], in: dir.path)
        #expect(again.stdout == "Pruned 0 runs.\n")
    }

    /// --older-than looks at when a run finished; bad ages and no criterion are usage errors.
    @Test func olderThanLooksAtTheFinishTime() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = dir.write("p.json", planJSON([stepJSON("a", "true")]))
        let runID = try await finishedRun(plan, state: state, in: dir.path)
        let recent = await runCLI(["runs", "prune", "--older-than", "12h", "--format", "json", "--state-dir", state], in: dir.path)
        #expect(try recent.json()["pruned"] == [])
        // Judged an hour from now (the same selection the command makes).
        let store = try RunStore(stateDirectory: try StateDirectory(path: state), readOnly: true)
        let runs = try store.runs()
        #expect(RunPruner.selection(runs, criteria: .init(olderThan: 30 * 60), now: Date().addingTimeInterval(3600)).map(\.runID) == [runID])
        #expect(RunPruner.selection(runs, criteria: .init(olderThan: 30 * 60, keep: 1), now: Date().addingTimeInterval(3600)).isEmpty)
        let zero = await runCLI(["runs", "prune", "--older-than", "0s", "--format", "json", "--state-dir", state], in: dir.path)
        #expect(try zero.json()["pruned"]?[0]?["run_id"]?.stringValue == runID)
        for arguments in [["--older-than", "30x"], ["--older-than", "d"], ["--older-than", "-1d"], []] {
            let bad = await runCLI(["runs", "prune"] + arguments + ["--state-dir", state], in: dir.path)
            #expect(bad.status == 2, "\(arguments)")
            #expect(bad.stderr.hasPrefix("omnibase-agents: error: "), "\(bad.stderr)")
        }
    }

    /// A live run, an unfinished run whose engine died (resumable), and a finished run whose lease
    /// an engine holds are all kept; the resumed run can be pruned once it has finished.
    @Test func neverALiveAResumableOrAHeldRun() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = dir.write("p.json", planJSON([
            stepJSON("wait", "echo $PPID > \"$D/engine.pid\"; while [ ! -e \"$D/release\" ]; do sleep 0.05; done",
                     extra: "\"env\": {\"D\": \"\(dir.path)\"}"),
        ]))
        let finished = try await finishedRun(dir.write("q.json", planJSON([stepJSON("a", "true")])), state: state, in: dir.path)
        async let running = runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        let engine = try await pidFile(dir.path + "/engine.pid")
        let live = await runCLI(["runs", "list", "--format", "json", "--state-dir", state], in: dir.path)
        let liveID = try #require(try live.json()["runs"]?.arrayValue?.first { $0["live"] == true }?["run_id"]?.stringValue)

        // A finished run whose lease is held (an engine resuming it) is kept too.
        let lease = try RunLease(stateDirectory: try StateDirectory(path: state), runID: finished)
        let first = await runCLI(["runs", "prune", "--keep", "0", "--format", "json", "--state-dir", state], in: dir.path)
        lease.release()
        #expect(try first.json()["pruned"] == [])
        #expect(try first.json()["skipped"]?[0]?["run_id"]?.stringValue == finished)
        #expect(try rowCounts(state, liveID)[0] == 1)

        // Killed once its start is committed (within the writer's 50 ms window after the step
        // started): a run the database records as running.
        for _ in 0..<500 where try storedRunStatus(state, liveID) != "running" {
            try await Task.sleep(for: .milliseconds(10))
        }
        kill(engine, SIGKILL)
        _ = await running
        #expect(try storedRunStatus(state, liveID) == "running", "left unfinished by the killed engine")
        let second = await runCLI(["runs", "prune", "--keep", "0", "--format", "json", "--state-dir", state], in: dir.path)
        #expect(try second.json()["pruned"]?.arrayValue?.map { $0["run_id"]?.stringValue ?? "" } == [finished])
        #expect(try rowCounts(state, liveID)[0...2] == [1, 1, 1], "the resumable run is whole")

        _ = dir.write("release", "")
        let resumed = await runCLI(["resume", liveID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let third = await runCLI(["runs", "prune", "--keep", "0", "--format", "json", "--state-dir", state], in: dir.path)
        #expect(try third.json()["pruned"]?.arrayValue?.map { $0["run_id"]?.stringValue ?? "" } == [liveID])
    }

    /// A prune interrupted after deleting the rows leaves a marked folder and no run; the next
    /// prune removes the folder. A folder without rows and without the marker is left alone.
    @Test func anInterruptedPruneIsFinishedNextTime() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = dir.write("p.json", planJSON([stepJSON("a", "true")]))
        let runID = try await finishedRun(plan, state: state, in: dir.path)
        let directory = try StateDirectory(path: state)
        // What a prune does up to its crash: the marker, then the rows in one transaction.
        try directory.writeFileAtomically("runs/\(runID)/\(RunPruner.markerName)", [])
        #expect(try RunStore(stateDirectory: directory).deleteFinishedRun(runID))
        _ = try directory.ensureSubdirectory("runs/r-20260101-000000")
        let list = await runCLI(["runs", "list", "--format", "json", "--state-dir", state], in: dir.path)
        #expect(try list.json()["runs"] == [], "no half-deleted run is visible")
        let next = await runCLI(["runs", "prune", "--keep", "5", "--format", "json", "--state-dir", state], in: dir.path)
        #expect(try next.json()["leftover_folders"] == [.string(runID)])
        #expect(!FileManager.default.fileExists(atPath: "\(state)/runs/\(runID)"))
        #expect(FileManager.default.fileExists(atPath: "\(state)/runs/r-20260101-000000"))
    }

    /// An engine killed between taking a new run's lease and writing its row left a folder
    /// holding only `lease`, which no list showed and no prune removed. Once it is a minute old
    /// (a run being created is never caught between its folder and its lease), prune does.
    @Test func aFolderAKilledStartLeftIsRemovedOnceItIsOld() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        _ = try await finishedRun(dir.write("p.json", planJSON([stepJSON("a", "true")])), state: state, in: dir.path)
        let directory = try StateDirectory(path: state)
        for (name, age) in [("r-20260101-aaaaaa", 120), ("r-20260101-bbbbbb", 0)] {
            let lease = try RunLease(stateDirectory: directory, runID: name)
            lease.release()
            var times = [timespec(tv_sec: time(nil) - age, tv_nsec: 0), timespec(tv_sec: time(nil) - age, tv_nsec: 0)]
            #expect(utimensat(AT_FDCWD, "\(state)/runs/\(name)", &times, 0) == 0)
        }
        let pruned = await runCLI(["runs", "prune", "--keep", "5", "--format", "json", "--state-dir", state], in: dir.path)
        #expect(try pruned.json()["leftover_folders"] == [.string("r-20260101-aaaaaa")], "\(pruned.stdout)")
        #expect(!FileManager.default.fileExists(atPath: "\(state)/runs/r-20260101-aaaaaa"))
        #expect(FileManager.default.fileExists(atPath: "\(state)/runs/r-20260101-bbbbbb"), "a fresh one may be a run starting")
    }

    /// `runs events --format json` is one JSON document; `--format jsonl` one event per line.
    @Test func eventsAsOneDocumentOrAsLines() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = dir.write("p.json", planJSON([stepJSON("a", "true"), stepJSON("b", "true", deps: ["a"])]))
        let runID = try await finishedRun(plan, state: state, in: dir.path)
        let document = await runCLI(["runs", "events", runID, "--format", "json", "--state-dir", state], in: dir.path)
        let events = try #require(try document.json()["events"]?.arrayValue)
        #expect(events.map { $0["type"]?.stringValue ?? "" }
                == ["run_started", "step_started", "step_succeeded", "step_started", "step_succeeded", "run_finished"])
        let lines = await runCLI(["runs", "events", runID, "--format", "jsonl", "--state-dir", state], in: dir.path)
        let parsed = try lines.stdout.split(separator: "\n").map { try StrictJSONParser.parse(Array($0.utf8)).toValue() }
        #expect(parsed == events)
        let refused = await runCLI(["runs", "list", "--format", "jsonl", "--state-dir", state], in: dir.path)
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("--format jsonl is for 'runs events'"))
    }
}
