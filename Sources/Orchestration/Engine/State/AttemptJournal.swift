import Foundation
import Synchronization

/// A run's `runs/<id>/starts`: one line `<attempt> <step id>` for every attempt, written before
/// the attempt starts, so that an engine killed before the attempt's start was committed still
/// leaves a trace of it.
///
/// The store commits a turn's events up to 50 ms after the turn (group commit), while the turn's
/// attempts start at once. An engine killed in between leaves steps that ran with an
/// `OMNIBASE_ATTEMPT` the database never heard of. Each turn's starts are therefore in this file
/// first, without `fsync` (a process crash cannot lose what is in the page cache; a power loss
/// takes the steps' processes with it too). `resume` reads the file, together with the other
/// traces an attempt leaves (its log files, its leftover processes, see
/// ``traces(stateDirectory:runID:stepIDs:)``), records every traced attempt the database lacks as
/// `engine_lost`, and numbers the next attempts above all of them: an attempt number is never
/// used twice for a step, and no attempt's log is ever replaced.
///
/// The file is mapped (`MAP_SHARED`) and a turn's lines are copied into the mapping: in the page
/// cache as soon as the copy is done, like a `write`, without a system call per turn (one per
/// turn was the executor's most frequent one in an in-process run). Room is reserved on disk
/// 64 KiB at a time (`posix_fallocate`), so a full disk is an error here, never a `SIGBUS` at a
/// copy; the zeros after the last line are cut off when the journal closes, and skipped when a
/// journal a killed engine left is opened again (a line it left torn is ended first). Where the
/// file cannot be mapped it is written with `pwrite`.
///
/// - Important: A line says the attempt was about to start, not that it did: the engine may have
///   died between the line and the spawn.
final class AttemptJournal: Sendable {
    private struct Mapping {
        /// The mapping of the file's first ``mappedBytes`` bytes (nil: `pwrite` is used).
        var base: UnsafeMutableRawPointer?
        /// The bytes of lines: where the next line goes.
        var used: Int
        /// The file's size: lines, then zeros reserved for the next ones.
        var allocated: Int
    }

    private let fd: Int32
    private let mapping: Mutex<Mapping>
    /// The file's path.
    let path: String

    /// How much of the file is mapped (address space only); lines beyond it are written.
    let mappedBytes: Int
    /// How much room is reserved on disk at a time.
    static let reserveBytes = 1 << 16

    /// The file, relative to the state folder.
    static func relativePath(_ runID: String) -> String { "runs/\(runID)/starts" }

    /// Opens (creating, 0600, no symlinks) a run's journal for appending.
    /// - Parameter mappedBytes: how much of the file to map (1 GiB; smaller in tests of the
    ///   lines written beyond it).
    /// - Throws: ``EngineError`` (exit 5 for a symbolic link, 74 otherwise).
    init(stateDirectory: StateDirectory, runID: String, mappedBytes: Int = 1 << 30) throws(EngineError) {
        path = stateDirectory.path + "/" + Self.relativePath(runID)
        self.mappedBytes = mappedBytes
        do {
            fd = try stateDirectory.openForUpdate(Self.relativePath(runID))
        } catch {
            throw EngineError(error)
        }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw EngineError(.stateFailure, "cannot open \(path): \(message)")
        }
        let size = Int(status.st_size)
        let used = Self.endOfLines(fd, size: size)
        let raw = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        mapping = Mutex(Mapping(base: raw == MAP_FAILED ? nil : raw, used: used, allocated: size))
        // A line a killed engine left torn is ended, so that the next one stays whole. (Should
        // that fail, deinit closes the file.)
        if used > 0 && Self.byte(fd, at: used - 1) != UInt8(ascii: "\n") { try append([UInt8(ascii: "\n")]) }
    }

    deinit {
        mapping.withLock { mapping in
            if let base = mapping.base { munmap(base, mappedBytes) }
            // The zeros reserved after the last line are not part of it.
            if mapping.allocated > mapping.used { _ = ftruncate(fd, off_t(mapping.used)) }
        }
        close(fd)
    }

    /// Appends the attempts that `events` start (their `step_started` events).
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
        try append(bytes)
    }

    private func append(_ bytes: [UInt8]) throws(EngineError) {
        try mapping.withLock { mapping throws(EngineError) in
            let end = mapping.used + bytes.count
            guard let base = mapping.base, end <= mappedBytes else {
                try EventLogWriter.writeAll(fd, bytes, at: mapping.used, path: path)
                mapping.used = end
                mapping.allocated = max(mapping.allocated, end)
                return
            }
            if end > mapping.allocated {
                let reserved = (end + Self.reserveBytes - 1) / Self.reserveBytes * Self.reserveBytes
                let status = posix_fallocate(fd, off_t(mapping.allocated), off_t(reserved - mapping.allocated))
                guard status == 0 else {
                    throw EngineError(.stateFailure, "writing \(path) failed: \(String(cString: strerror(status)))")
                }
                mapping.allocated = reserved
            }
            bytes.withUnsafeBytes { (base + mapping.used).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            mapping.used = end
        }
    }

    /// The length of a journal's lines: its size without the zeros after them (reserved by an
    /// engine that did not close it).
    private static func endOfLines(_ fd: Int32, size: Int) -> Int {
        guard size > 0 else { return 0 }
        var end = size
        var chunk = [UInt8](repeating: 0, count: reserveBytes)
        while end > 0 {
            let start = max(0, end - chunk.count)
            let count = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, end - start, off_t(start)) }
            guard count == end - start else { return end }
            if let last = chunk[0..<count].lastIndex(where: { $0 != 0 }) { return start + last + 1 }
            end = start
        }
        return 0
    }

    /// The byte at `offset` (0 when it cannot be read).
    private static func byte(_ fd: Int32, at offset: Int) -> UInt8 {
        var value: UInt8 = 0
        _ = pread(fd, &value, 1, off_t(offset))
        return value
    }

    /// The attempt numbers, per step, that a run's state folder holds traces of: lines of the
    /// journal and log files `logs/<step>.<attempt>.out` / `.err` (a torn line, zeros after the
    /// lines or a file of another name are ignored).
    /// - Parameter stepIDs: the run's steps; traces of other ids are ignored.
    static func traces(stateDirectory: StateDirectory, runID: String, stepIDs: Set<String>) -> [String: Set<Int>] {
        var traces: [String: Set<Int>] = [:]
        // Up to the zeros reserved after the lines, if an engine was killed with the file open.
        let journal = readNoFollow(stateDirectory.path + "/" + relativePath(runID)).prefix { $0 != 0 }
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
