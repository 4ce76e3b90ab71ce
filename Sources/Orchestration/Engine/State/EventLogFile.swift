import Foundation

/// A run's `events.jsonl`: appended after each commit, and repaired from the database when its
/// tail was lost (a crash between the commit and the append, or a torn last line).
final class EventLogFile {
    private let fd: Int32
    let path: String

    /// Opens (creating, 0600, no symlinks) the events file of a run.
    init(stateDirectory: StateDirectory, runID: String) throws {
        let handle = try stateDirectory.openForAppend("runs/\(runID)/events.jsonl")
        let duplicate = fcntl(handle.fileDescriptor, F_DUPFD_CLOEXEC, 0)
        guard duplicate >= 0 else { throw EngineError(.stateFailure, "cannot open events.jsonl: \(String(cString: strerror(errno)))") }
        fd = duplicate
        path = stateDirectory.path + "/runs/\(runID)/events.jsonl"
    }

    deinit { close(fd) }

    /// Appends events, one line each, in one write.
    func append(_ events: some Sequence<RunEvent>) throws {
        try append(batches: [events.map(EncodedEvent.init)])
    }

    /// Appends batches of encoded events (the commits just made), in order, in one write.
    func append(batches: [[EncodedEvent]]) throws {
        let count = batches.reduce(0) { $0 + $1.count }
        guard count > 0 else { return }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count * 160)
        for batch in batches {
            for event in batch { event.appendLine(to: &bytes) }
        }
        try EventLogWriter.writeAll(fd, bytes, path: path)
    }

    /// Makes the file hold exactly the database's events: a torn or unparsable tail is cut off,
    /// missing events are appended.
    func repair(from stored: [RunEvent]) throws {
        let content = Self.read(path: path)
        if content.validLength < content.fileLength {
            guard ftruncate(fd, off_t(content.validLength)) == 0 else {
                throw EngineError(.stateFailure, "cannot repair \(path): \(String(cString: strerror(errno)))")
            }
        }
        let lastSeq = content.events.last?["seq"]?.intValue ?? 0
        try append(stored.filter { $0.seq > Int64(lastSeq) })
    }

    /// The events of a file, as far as it is whole: lines up to the first torn or unparsable one.
    static func read(path: String) -> (events: [JSONValue], validLength: Int, fileLength: Int) {
        guard let data = FileManager.default.contents(atPath: path) else { return ([], 0, 0) }
        let bytes = [UInt8](data)
        var events: [JSONValue] = []
        var start = 0
        while let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
            guard let value = try? StrictJSONParser.parse(Array(bytes[start..<newline])).toValue(),
                  value["seq"]?.intValue != nil else { break }
            events.append(value)
            start = newline + 1
        }
        return (events, start, bytes.count)
    }
}
