import Foundation

/// A run's `runs/<id>/starts`: one line `<attempt> <step id>` for every attempt, written before
/// the attempt starts, so that an engine killed before the attempt's start was committed still
/// leaves a trace of it.
///
/// The store commits a turn's events up to 10 ms after the turn (group commit), while the turn's
/// attempts start at once. An engine killed in between leaves steps that ran with an
/// `OMNIBASE_ATTEMPT` the database never heard of. Each turn's starts are therefore appended to
/// this file first, in one `write` without `fsync` (a process crash cannot lose what is in the
/// page cache; a power loss takes the steps' processes with it too). `resume` reads the file,
/// together with the other traces an attempt leaves (its log files, its leftover processes, see
/// ``traces(stateDirectory:runID:stepIDs:)``), records every traced attempt the database lacks as
/// `engine_lost`, and numbers the next attempts above all of them: an attempt number is never
/// used twice for a step, and no attempt's log is ever replaced.
///
/// - Important: A line says the attempt was about to start, not that it did: the engine may have
///   died between the line and the spawn.
final class AttemptJournal: Sendable {
    private let fd: Int32
    /// The file's path.
    let path: String

    /// The file, relative to the state folder.
    static func relativePath(_ runID: String) -> String { "runs/\(runID)/starts" }

    /// Opens (creating, 0600, no symlinks) a run's journal for appending.
    /// - Throws: ``EngineError`` (exit 5 for a symbolic link, 74 otherwise).
    init(stateDirectory: StateDirectory, runID: String) throws(EngineError) {
        path = stateDirectory.path + "/" + Self.relativePath(runID)
        do {
            let handle = try stateDirectory.openForAppend(Self.relativePath(runID))
            let duplicate = fcntl(handle.fileDescriptor, F_DUPFD_CLOEXEC, 0)
            guard duplicate >= 0 else { throw EngineError(.stateFailure, "cannot open \(path): \(String(cString: strerror(errno)))") }
            fd = duplicate
        } catch {
            throw EngineError(error)
        }
    }

    deinit { close(fd) }

    /// Appends the attempts that `events` start (their `step_started` events), in one write.
    /// - Throws: ``EngineError`` (exit 74) when the file cannot be written.
    func note(_ events: [RunEvent]) throws(EngineError) {
        var bytes: [UInt8] = []
        for event in events where event.kind == .stepStarted {
            guard let stepID = event.stepID, let attempt = event.attempt else { continue }
            bytes += String(attempt).utf8
            bytes.append(UInt8(ascii: " "))
            bytes += stepID.utf8
            bytes.append(UInt8(ascii: "\n"))
        }
        guard !bytes.isEmpty else { return }
        try EventLogWriter.writeAll(fd, bytes, path: path)
    }

    /// The attempt numbers, per step, that a run's state folder holds traces of: lines of the
    /// journal and log files `logs/<step>.<attempt>.out` / `.err` (a torn last line or a file of
    /// another name is ignored).
    /// - Parameter stepIDs: the run's steps; traces of other ids are ignored.
    static func traces(stateDirectory: StateDirectory, runID: String, stepIDs: Set<String>) -> [String: Set<Int>] {
        var traces: [String: Set<Int>] = [:]
        let journal = readNoFollow(stateDirectory.path + "/" + relativePath(runID))
        for line in journal.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            guard let space = line.firstIndex(of: UInt8(ascii: " ")),
                  let attempt = Int(String(decoding: line[..<space], as: UTF8.self)), attempt > 0 else { continue }
            let stepID = String(decoding: line[line.index(after: space)...], as: UTF8.self)
            if stepIDs.contains(stepID) { traces[stepID, default: []].insert(attempt) }
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: stateDirectory.logsFolder(runID: runID))) ?? [] {
            guard let log = AttemptLog(fileName: name), stepIDs.contains(log.stepID) else { continue }
            traces[log.stepID, default: []].insert(log.attempt)
        }
        return traces
    }

    /// A file's bytes, or none if it is missing, unreadable or a symbolic link.
    private static func readNoFollow(_ path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += chunk[0..<count]
        }
        return bytes
    }
}
