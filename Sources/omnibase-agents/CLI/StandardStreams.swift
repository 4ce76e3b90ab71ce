import Glibc
import Synchronization

/// The command line's stdout and stderr: every write goes through here, so that output that
/// cannot be written is an error (exit 74) instead of a crash (`FileHandle.write` traps on
/// `EBADF`, `ENOSPC`, `EIO`) or a silent loss.
///
/// stdout writes remember their first failure; ``CLI/main(_:)`` turns it into exit 74 with one
/// sentence on stderr. stderr writes are best effort: there is nowhere left to report their
/// failure.
enum StandardStreams {
    private struct State {
        /// stdout was closed when the engine started (`>&-`).
        var stdoutClosed = false
        /// Why a stdout write failed, the first time one did.
        var failure: String?
        /// That failure was `EPIPE`: the reader went away (`runs list | head`).
        var readerGone = false
    }

    private static let state = Mutex(State())

    /// Gives each of the descriptors 0, 1 and 2 that is closed `/dev/null`, so that no file the
    /// engine opens later (the run database, a log) takes its number and receives the report;
    /// remembers that stdout was closed, so writing the report then fails as it should.
    static func occupyClosedDescriptors() {
        for fd in Int32(0)...2 where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            let opened = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY)
            if opened >= 0 && opened != fd {
                dup2(opened, fd)
                close(opened)
            }
            if fd == 1 { state.withLock { $0.stdoutClosed = true } }
        }
    }

    /// Why writing to stdout failed, if it did.
    static var stdoutFailure: String? { state.withLock { $0.failure } }

    /// The first failed stdout write found the pipe's reader gone (`EPIPE`): not an error worth
    /// a sentence, as with any tool whose reader stopped reading.
    static var stdoutReaderGone: Bool { state.withLock { $0.readerGone } }

    /// Writes `text` and `terminator` to stdout, like `print`.
    static func print(_ text: String, terminator: String = "\n") {
        write(Array((text + terminator).utf8))
    }

    /// Writes bytes to stdout; after a failure, nothing more is written.
    static func write(_ bytes: [UInt8]) {
        let proceed = state.withLock { state -> Bool in
            if state.failure != nil { return false }
            if state.stdoutClosed {
                state.failure = "stdout is closed (\(String(cString: strerror(EBADF))))"
                return false
            }
            return true
        }
        guard proceed, let error = writeAll(bytes, to: 1) else { return }
        state.withLock { state in
            guard state.failure == nil else { return }
            state.failure = String(cString: strerror(error))
            state.readerGone = error == EPIPE
        }
    }

    /// Writes to stderr, ignoring failures.
    static func printError(_ text: String) {
        _ = writeAll(Array(text.utf8), to: 2)
    }

    /// Writes every byte, retrying on `EINTR` and after short writes.
    /// - Returns: The `errno` of the write that failed, or nil.
    private static func writeAll(_ bytes: [UInt8], to fd: Int32) -> Int32? {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if written == 0 { return EIO }
            offset += written
        }
        return nil
    }
}
