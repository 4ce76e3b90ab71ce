import COmnibaseShims
import Foundation
import Glibc

/// Copies every child's stdout and stderr from pipes into log files (or into memory), on the
/// ``ProcessLoop`` thread; a log file is created only when its stream carries its first byte.
///
/// ## Why pipes and a pump
/// Creating a file costs about 135 µs on ext4 (inode allocation) against about 7 µs for a pipe.
/// Most steps of a large plan print nothing, so creating both log files before every spawn was
/// most of the engine's cost per step. Instead the child's fds 1 and 2 are pipe write ends, and
/// the loop creates a log file on the first byte that arrives for it.
///
/// ## Design
/// The read end (non-blocking, close-on-exec) of every pipe not yet at end-of-file is in the
/// loop's epoll set. Registering a stream is one `epoll_ctl(ADD)` on the spawning task's thread,
/// done before the spawn, so a child never runs with a pipe nobody reads. Entries are
/// level-triggered: each time a pipe is ready the loop does **one** `read` of at most
/// ``chunkSize`` bytes into its single buffer and writes the chunk out completely before reading
/// anything else, so memory does not grow with output, busy streams take turns, and a full pipe
/// simply makes its writer wait (back-pressure). When the child's exit is reported, the loop
/// first reads the child's streams to end-of-file (``ProcessLoop``). At end-of-file the loop
/// removes the entry, closes the read end and the file, and tells the attempt's ``OutputDrain``.
///
/// A stream whose log file cannot be created or written keeps being read and its output is
/// discarded, so the child never blocks on a full pipe; the error goes to the ``OutputDrain``
/// and from there to ``ProcessOutcome/logError``.
///
/// - Important: Log paths should name regular files. The loop writes with blocking calls, so a
///   slow device or a FIFO whose reader stalls holds up the output and the exits of every step.
/// - Important: A stream stays registered until every writer has closed it, which can be long
///   after its attempt returned (a background process left by a successful step). When the engine
///   exits, such a process loses its reader: what it writes afterwards is lost, and its next
///   write fails with `EPIPE` (or kills it with `SIGPIPE`).
final class OutputPump: Sendable {
    /// How output reaches the log files.
    enum Strategy: Sendable {
        /// Through pipes and the loop thread, with lazily created files.
        case pipes
        /// The child writes into log files opened before the spawn (the fallback, selectable for
        /// tests): both files always exist and are truncated at the start.
        case directFiles
    }

    /// The most one `read` takes from a pipe; also the size of the loop's only buffer.
    static let chunkSize = 64 * 1024

    /// The engine-wide pump, on the engine-wide loop.
    static let shared = OutputPump(strategy: .pipes)

    /// The loop that copies the pipes, or `nil` when output goes straight into files.
    let loop: ProcessLoop?

    /// Creates a pump (without a loop, output goes straight into files).
    init(strategy: Strategy) {
        loop = strategy == .pipes ? ProcessLoop.shared : nil
    }

    /// Creates a pipe for one output stream of a child about to be spawned and starts copying it
    /// into `path`.
    ///
    /// - Parameters:
    ///   - path: The log file, created (mode 0600) or truncated when the first byte arrives;
    ///     ignored when `capture` is given.
    ///   - capture: The memory the stream goes into instead of a file, if any.
    ///   - stream: The stream's name for error messages (`stdout`, `stderr`).
    ///   - exclusive: Create the file with `O_EXCL` (a file already there is an error, left
    ///     untouched) instead of truncating it.
    ///   - drain: The attempt's drain, told when this stream reaches end-of-file.
    /// - Returns: The write end (close-on-exec) for the child's fd, which the caller closes once
    ///   the spawn is over, whether it succeeded or not: end-of-file comes only after that; and
    ///   the stream, for the child's ``ExitEntry`` (the caller must not use it otherwise). `nil`
    ///   when the pump is not available or the pipe cannot be set up; output must then go
    ///   straight into the file.
    func attach(path: String, capture: OutputCapture? = nil, stream: String, exclusive: Bool = false,
                drain: OutputDrain) -> (writeEnd: Int32, copy: LogCopy)? {
        guard let loop else { return nil }
        var ends: [Int32] = [-1, -1]
        guard omni_output_pipe(&ends) == 0 else { return nil }
        let copy = LogCopy(source: ends[0], path: path, capture: capture, stream: stream, exclusive: exclusive,
                           drain: drain)
        drain.streamAdded()
        if loop.register(copy) {
            return (ends[1], copy)
        }
        drain.streamWithdrawn()
        close(ends[0])
        close(ends[1])
        return nil
    }
}

/// One output stream on its way from a pipe into a log file, owned by the ``ProcessLoop`` thread
/// once registered (hence not `Sendable`: exactly one thread ever uses its state; the spawning
/// thread only passes a reference on to the child's ``ExitEntry``).
final class LogCopy {
    /// What one read gave.
    enum Progress { case data, empty, ended }

    /// The pipe's read end (non-blocking).
    let source: Int32
    /// The log file's path.
    let path: String
    /// Where the stream goes instead of the file, if it is captured.
    let capture: OutputCapture?
    /// `stdout`, `stderr`, or `stdout and stderr`.
    let stream: String
    /// `O_EXCL` (never replace a file) or `O_TRUNC`.
    let creation: Int32
    /// Told about errors and about end-of-file.
    let drain: OutputDrain
    /// The log file, -1 until the first byte arrives (or after a failure).
    private var file: Int32 = -1
    /// Set after a failure: the rest of the stream is read and thrown away.
    private var discarding = false
    /// Bytes written to the log file so far, for error messages.
    private var written = 0
    /// Set by ``finish()``: the read end is closed (its number may belong to another file now).
    private(set) var isFinished = false

    init(source: Int32, path: String, capture: OutputCapture?, stream: String, exclusive: Bool, drain: OutputDrain) {
        self.source = source
        self.path = path
        self.capture = capture
        self.stream = stream
        creation = exclusive ? O_EXCL : O_TRUNC
        self.drain = drain
    }

    /// Reads once from the pipe and writes what came into the log file.
    func pump(through buffer: UnsafeMutableRawBufferPointer) -> Progress {
        let count = SystemCallError.retryingOnInterrupt { read(source, buffer.baseAddress, buffer.count) }
        if count > 0 {
            store(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            return .data
        }
        if count == -1 && (errno == EAGAIN || errno == EWOULDBLOCK) {
            return .empty
        }
        // 0 is end-of-file. A pipe has no other read errors worth retrying; stop reading it.
        return .ended
    }

    /// Writes `chunk` to the log file, creating the file first if this is the stream's first byte.
    private func store(_ chunk: UnsafeRawBufferPointer) {
        if let capture {
            capture.append(chunk)
            return
        }
        if discarding { return }
        if file < 0 {
            // O_NONBLOCK only for the open: a FIFO without a reader fails with ENXIO instead of
            // blocking the pump (and with it every step's output). Writes then block as usual.
            file = SystemCallError.retryingOnInterrupt {
                open(path, O_WRONLY | O_CREAT | creation | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o600)
            }
            guard file >= 0, fcntl(file, F_SETFL, O_APPEND) == 0 else {
                // EEXIST under O_EXCL: something (a link, an earlier attempt's file) is already
                // there, and a log is never written over.
                let reason = errno == EEXIST ? "something is already there (a log is never overwritten)"
                    : SystemCallError.message(for: errno)
                fail("cannot create the \(stream) log \(path): \(reason)")
                return
            }
        }
        var offset = 0
        while offset < chunk.count {
            let count = SystemCallError.retryingOnInterrupt {
                write(file, chunk.baseAddress! + offset, chunk.count - offset)
            }
            guard count > 0 else {
                let reason = count == 0 ? "nothing was written" : SystemCallError.message(for: errno)
                fail("cannot write the \(stream) log \(path) after \(written) bytes: \(reason); the rest was discarded")
                return
            }
            offset += count
            written += count
        }
    }

    /// Records `error`, closes the file and discards the rest of the stream.
    private func fail(_ error: String) {
        drain.record(error)
        discarding = true
        if file >= 0 {
            close(file)
            file = -1
        }
    }

    /// Closes the read end and the file and reports the end-of-file; the entry is already removed.
    func finish() {
        isFinished = true
        close(source)
        if file >= 0 {
            if close(file) != 0 && errno != EINTR {
                drain.record("cannot write the \(stream) log \(path): \(SystemCallError.message(for: errno))")
            }
            file = -1
        }
        drain.streamEnded()
    }
}
