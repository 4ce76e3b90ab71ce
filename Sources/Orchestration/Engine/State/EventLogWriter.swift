import Foundation
import Synchronization

/// Appends a run's events to `runs/<id>/events.jsonl`, one JSON object per line, one `write` per
/// scheduler turn.
package final class EventLogWriter: RunObserver, LoopSafeObserver {
    private let descriptor: Mutex<Int32>
    /// The file's path.
    public let path: String

    /// Opens (creating, 0600) the run's `events.jsonl` for appending.
    /// - Throws: ``EngineError`` (state failure or symlink refusal).
    public init(stateDirectory: StateDirectory, runID: String) throws(EngineError) {
        let relative = "runs/\(runID)/events.jsonl"
        do {
            let handle = try stateDirectory.openForAppend(relative)
            // Keep our own duplicate (close-on-exec) so the FileHandle can go.
            let fd = fcntl(handle.fileDescriptor, F_DUPFD_CLOEXEC, 0)
            guard fd >= 0 else { throw EngineError(.stateFailure, "cannot open \(relative): \(String(cString: strerror(errno)))") }
            descriptor = Mutex(fd)
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(error)
        }
        path = stateDirectory.path + "/" + relative
    }

    deinit {
        descriptor.withLock { fd in if fd >= 0 { close(fd) } }
    }

    public func record(_ events: [RunEvent]) async throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(events.count * 160)
        for event in events {
            bytes += event.json.serialized().utf8
            bytes.append(UInt8(ascii: "\n"))
        }
        try descriptor.withLock { fd throws(EngineError) in
            try Self.writeAll(fd, bytes, path: path)
        }
    }

    /// Writes all of `bytes` to `fd`: at the file's offset, or at `offset` (`pwrite`) when given.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int? = nil, path: String) throws(EngineError) {
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { buffer in
                offset.map { pwrite(fd, buffer.baseAddress, buffer.count, off_t($0 + written)) }
                    ?? write(fd, buffer.baseAddress, buffer.count)
            }
            if n < 0 {
                if errno == EINTR { continue }
                let code: EngineError.Code = .stateFailure
                throw EngineError(code, "writing \(path) failed: \(String(cString: strerror(errno)))")
            }
            written += n
        }
    }
}

extension EngineError {
    /// Wraps any error: engine errors pass through, store errors keep their exit code, the rest
    /// are state failures.
    public init(_ error: any Error) {
        if let engine = error as? EngineError {
            self = engine
        } else if let store = error as? StoreError {
            let code: EngineError.Code
            switch store.exitCode {
            case 4: code = .protocolViolation
            case 5: code = .securityViolation
            default: code = .stateFailure
            }
            self = EngineError(code, store.description)
        } else {
            self = EngineError(.stateFailure, "\(error)")
        }
    }
}
