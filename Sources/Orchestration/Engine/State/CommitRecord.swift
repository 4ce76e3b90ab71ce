import Foundation
import OmnibaseSupport
import Synchronization

/// A run's `runs/<id>/committed`: where the turns a step waits for are committed, one line per
/// event, before the step starts (``StoreRecorder``: every wait at `--synchronous normal`, a
/// chain's links at `full`).
///
/// A SQLite transaction costs a chain link ~95 us (three b-trees, three WAL frames, the WAL
/// index's locks; see Benchmarks/README.md); one `pwrite` of the turn's lines gives `NORMAL`'s
/// promise (the page cache: a killed engine loses nothing, an OS crash may), and at `FULL` one
/// `fdatasync` after it gives `FULL`'s. The lines go over room already written with zeros and
/// synced (``reserveBytes`` at a time), so that sync has no file size to commit, and an
/// interrupted write leaves zeros or a torn line, never an older line. The store writer brings
/// `runs.db` up to date in its group commits (within its 50 ms window), as it does for turns
/// nobody waits for. `resume` first applies the lines that
/// the database lacks (``replay(stateDirectory:runID:store:)``), so a result committed here is
/// never lost and never recorded twice; a reader of `runs.db` (`runs show`, `serve`) sees a run
/// whose engine was killed as of its last database commit until then.
///
/// A line is the event as `events.jsonl` has it, plus, for an event with outputs, their values
/// (`"values"`): the events keep secret outputs masked, and `resume` gives the steps that use
/// them the real ones. The file is `0600`, like `runs.db`, which holds the same values. It is
/// removed when the run's events are all in the database (``remove()``).
///
/// Lines are replayed in `seq` order from the first the database lacks, up to a gap in `seq` or
/// the end; a torn last line (an engine killed in the middle of a write: no newline) is not a
/// line, and a line that is not one of the run's events is passed over.
final class CommitRecord: Sendable {
    private struct Writer {
        var offset: Int
        /// A failed write leaves the file's end unknown: nothing is appended after it.
        var failure: EngineError?
        /// Synced: the end of the region already written with zeros and synced, which lines
        /// overwrite (so that a line's `fdatasync` has no file size to commit).
        var reserved = 0
    }

    private let fd: Int32
    private let writer: Mutex<Writer>
    /// The file's path.
    let path: String
    /// Whether each append is synced to disk before it returns (`synchronous=FULL`).
    let synced: Bool
    /// How much room a synced record writes with zeros at a time: as the attempt journal
    /// reserves its own, so a nearly full disk fails both alike.
    static let reserveBytes = AttemptJournal.reserveBytes

    /// The file, relative to the state folder.
    static func relativePath(_ runID: String) -> String { "runs/\(runID)/committed" }

    /// Creates the run's record, empty (after ``replay(stateDirectory:runID:store:)``, whatever
    /// an earlier record held is in the database).
    /// - Throws: ``EngineError`` (exit 5 for a symbolic link, 74 otherwise).
    init(stateDirectory: StateDirectory, runID: String, synced: Bool = false) throws(EngineError) {
        path = stateDirectory.path + "/" + Self.relativePath(runID)
        self.synced = synced
        do {
            fd = try stateDirectory.openForUpdate(Self.relativePath(runID))
        } catch {
            throw EngineError(error)
        }
        guard ftruncate(fd, 0) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw EngineError(.stateFailure, "cannot write \(path): \(message)")
        }
        writer = Mutex(Writer(offset: 0))
    }

    deinit { close(fd) }

    /// Commits the events `take` returns, called under the file's lock (so that what callers
    /// take in turn is written in that order): their lines are in the file (the page cache; on
    /// disk when synced) when this returns.
    /// - Returns: the last `seq` written; nil when `take` returned nothing.
    /// - Throws: ``EngineError`` (exit 74) when the file cannot be written; nothing is appended
    ///   after a failed write (the same error again).
    func append(taking take: () -> [RunEvent]) throws(EngineError) -> Int64? {
        try writer.withLock { writer throws(EngineError) -> Int64? in
            if let failure = writer.failure { throw failure }
            let events = take()
            guard let last = events.last?.seq else { return nil }
            var bytes: [UInt8] = []
            for event in events { Self.appendLine(event, to: &bytes) }
            do throws(EngineError) {
                if synced && writer.offset + bytes.count > writer.reserved {
                    // Zeros first, synced: the lines then overwrite allocated, written blocks.
                    let end = max(writer.offset + bytes.count, writer.reserved + Self.reserveBytes)
                    try EventLogWriter.writeAll(fd, [UInt8](repeating: 0, count: end - writer.reserved),
                                                at: writer.reserved, path: path)
                    try sync()
                    writer.reserved = end
                }
                try EventLogWriter.writeAll(fd, bytes, at: writer.offset, path: path)
                if synced { try sync() }
            } catch {
                writer.failure = error
                throw error
            }
            writer.offset += bytes.count
            return last
        }
    }

    private func sync() throws(EngineError) {
        while fdatasync(fd) != 0 {
            if errno == EINTR { continue }
            throw EngineError(.stateFailure, "syncing \(path) failed: \(String(cString: strerror(errno)))")
        }
    }

    /// Removes the file: every event it holds is in the database.
    func remove() {
        _ = unlink(path)
    }

    /// One event's line: `events.jsonl`'s, with the values of its outputs when it has any.
    static func appendLine(_ event: RunEvent, to bytes: inout [UInt8]) {
        EncodedEvent(event).appendLine(to: &bytes)
        let outputs = event.payload.attemptEnd?.outputs ?? []
        guard !outputs.isEmpty else { return }
        // `appendLine` ends the object with "}\n": the values go in before it.
        bytes.removeLast(2)
        bytes.append(contentsOf: #","values":"#.utf8)
        JSONValue.object(outputs.map { .init($0.name, .string($0.value)) }).write(into: &bytes)
        bytes.append(contentsOf: "}\n".utf8)
    }

    /// The event a line holds, its outputs' values restored; nil for a line that is not one.
    static func event(fromLine line: ArraySlice<UInt8>) -> RunEvent? {
        guard let value = try? StrictJSONParser.parse(Array(line)).toValue(),
              let seq = value["seq"]?.intValue, let runID = value["run_id"]?.stringValue,
              let kind = value["type"]?.stringValue.flatMap(RunEvent.Kind.init(rawValue:)),
              let timestamp = value["ts"]?.stringValue.flatMap(Timestamp.parse) else { return nil }
        var event = RunEvent(seq: Int64(seq), timestamp: timestamp, runID: runID, kind: kind,
                             stepID: value["step_id"]?.stringValue, attempt: value["attempt"]?.intValue,
                             data: value["data"])
        if let values = value["values"]?.objectValue {
            let byName = Dictionary(values.map { ($0.key, $0.value.stringValue ?? "") }, uniquingKeysWith: { $1 })
            event.payload = event.payload.withOutputValues(byName)
        }
        return event
    }

    /// Applies to `store` the events of the run's record that the database lacks, in one
    /// transaction; called under the run's lease, before anything reads the run's state.
    /// - Returns: how many events were applied (0 without a record).
    /// - Throws: ``EngineError`` when the file cannot be read or the database written.
    @discardableResult
    static func replay(stateDirectory: StateDirectory, runID: String, store: RunStore) throws(EngineError) -> Int {
        let path = stateDirectory.path + "/" + relativePath(runID)
        let fd: Int32
        do {
            guard let opened = try stateDirectory.openForReading(relativePath(runID)) else { return 0 }
            fd = opened
        } catch {
            throw EngineError(error)
        }
        guard let bytes = try read(fd, path: path), !bytes.isEmpty, let lastSeq = try store.run(runID)?.lastSeq else { return 0 }
        var events: [RunEvent] = []
        var expected = lastSeq + 1
        var start = 0
        // Only whole lines: a torn last line (no newline) was never committed.
        while let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
            defer { start = newline + 1 }
            // A line that is not one of this run's events is passed over: `seq` order decides,
            // and a missing event is a gap that ends the replay.
            guard let event = event(fromLine: bytes[start..<newline]), event.runID == runID else { continue }
            if event.seq < expected { continue }
            guard event.seq == expected else { break }
            events.append(event)
            expected += 1
        }
        if !events.isEmpty {
            try store.append(events)
            // The session may be at NORMAL while the record was a FULL session's: what it
            // committed must be on disk before the new session empties the record.
            try store.syncLog()
        }
        return events.count
    }
}

extension CommitRecord {
    /// The bytes of the open record `fd` (closed here). A record that exists but cannot be read
    /// is an error: skipping it would lose what it committed.
    private static func read(_ fd: Int32, path: String) throws(EngineError) -> [UInt8]? {
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else {
                throw EngineError(.stateFailure, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if count == 0 { return bytes }
            bytes += chunk[..<count]
        }
    }
}

extension RunEvent.Payload {
    /// The payload with its outputs' values replaced by `values` (by name).
    func withOutputValues(_ values: [String: String]) -> Self {
        func restored(_ end: AttemptEnd?) -> AttemptEnd? {
            guard var end else { return nil }
            end.outputs = end.outputs.map { output in
                var output = output
                if let value = values[output.name] { output.value = value }
                return output
            }
            return end
        }
        switch self {
        case .stepAttemptFailed(let end): return .stepAttemptFailed(restored(end) ?? end)
        case .stepSucceeded(let end): return .stepSucceeded(restored(end))
        case .stepFailed(let end): return .stepFailed(restored(end))
        case .stepCancelled(let reason, let end): return .stepCancelled(reason: reason, attempt: restored(end))
        default: return self
        }
    }
}
