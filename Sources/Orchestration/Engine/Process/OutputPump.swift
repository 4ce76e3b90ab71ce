import COmnibaseShims
import Foundation
import Glibc
import Synchronization

/// Copies every child's stdout and stderr from pipes into log files, on one thread for the whole
/// engine; a log file is created only when its stream carries its first byte.
///
/// ## Why pipes and a pump
/// Creating a file costs about 135 µs on ext4 (inode allocation) against about 7 µs for a pipe.
/// Most steps of a large plan print nothing, so creating both log files before every spawn was
/// most of the engine's cost per step. Instead the child's fds 1 and 2 are pipe write ends, and
/// the pump creates a log file on the first byte that arrives for it.
///
/// ## Design
/// One thread, started on first use and alive for the life of the engine, blocks in `epoll_wait`
/// on a set holding the read end (non-blocking, close-on-exec) of every pipe not yet at
/// end-of-file. Registering a stream is one `epoll_ctl(ADD)` on the spawning task's thread, done
/// before the spawn, so a child never runs with a pipe nobody reads. Entries are level-triggered:
/// each time a pipe is ready the pump does **one** `read` of at most ``chunkSize`` bytes into
/// its single buffer and writes the chunk out completely before reading anything else, so memory
/// does not grow with output, busy streams take turns, and a full pipe simply makes its writer
/// wait (back-pressure). At end-of-file the pump removes the entry, closes the read end and the
/// file, and tells the attempt's ``OutputDrain``.
///
/// This is a second thread rather than the ``ProcessMonitor``'s: writing to disk can block
/// (creating files, dirty-page throttling, a slow file system), and that must not delay the
/// exit notifications that attempts and teardowns wait on. Per child there is still no thread,
/// no timer and no polling.
///
/// A stream whose log file cannot be created or written keeps being read and its output is
/// discarded, so the child never blocks on a full pipe; the error goes to the ``OutputDrain``
/// and from there to ``ProcessOutcome/logError``.
///
/// - Important: Log paths should name regular files. The pump writes with blocking calls, so a
///   slow device or a FIFO whose reader stalls holds up the output of every step.
/// - Important: A stream stays registered until every writer has closed it, which can be long
///   after its attempt returned (a background process left by a successful step). When the engine
///   exits, such a process loses its reader: what it writes afterwards is lost, and its next
///   write fails with `EPIPE` (or kills it with `SIGPIPE`).
final class OutputPump: Sendable {
    /// How output reaches the log files.
    enum Strategy: Sendable {
        /// Through pipes and the pump thread, with lazily created files.
        case pipes
        /// The child writes into log files opened before the spawn (the fallback, selectable for
        /// tests): both files always exist and are truncated at the start.
        case directFiles
    }

    /// The most one `read` takes from a pipe; also the size of the pump's only buffer.
    static let chunkSize = 64 * 1024

    /// The engine-wide pump; its thread starts on first use.
    static let shared = OutputPump(strategy: .pipes)

    /// The epoll set served by the pump thread, or -1 when output goes straight into files.
    private let epollFD: Int32
    /// An eventfd in the epoll set (token ``wakeToken``) that interrupts the pump's sleep when a
    /// wait with an earlier deadline arrives.
    private let wakeFD: Int32
    /// The token of ``wakeFD``; a stream's token is its copy's address, never 0.
    private static let wakeToken: UInt64 = 0
    /// The deadlines of drain waits, kept by the pump thread.
    private let deadlines = DrainDeadlines()

    /// Creates a pump.
    ///
    /// - Important: With `.pipes` this starts a thread that never ends; create that kind once
    ///   (``shared``).
    init(strategy: Strategy) {
        // Without an eventfd or an epoll set, output goes straight into files.
        let wakeFD = strategy == .pipes ? omni_wake_fd() : -1
        let deadlines = self.deadlines
        epollFD = wakeFD < 0 ? -1 : EpollThread.start(name: "omnibase.process-output",
                                                      watching: [(wakeFD, Self.wakeToken)]) { epollFD in
            Self.serve(epollFD: epollFD, wakeFD: wakeFD, deadlines: deadlines)
        }
        if epollFD < 0 && wakeFD >= 0 { close(wakeFD) }
        self.wakeFD = epollFD < 0 ? -1 : wakeFD
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
    ///   the spawn is over, whether it succeeded or not: end-of-file comes only after that. `nil`
    ///   when the pump is not available or the pipe cannot be set up; output must then go
    ///   straight into the file.
    func attach(path: String, capture: OutputCapture? = nil, stream: String, exclusive: Bool = false,
                drain: OutputDrain) -> Int32? {
        guard epollFD >= 0 else { return nil }
        var ends: [Int32] = [-1, -1]
        guard omni_output_pipe(&ends) == 0 else { return nil }
        let copy = LogCopy(source: ends[0], path: path, capture: capture, stream: stream, exclusive: exclusive,
                           drain: drain)
        // Ownership of `copy` passes to the pump thread with the registration: from the moment
        // `epoll_ctl` succeeds, only the pump thread touches it, and it releases this retain at
        // end-of-file. If the registration fails, the pump never saw it and it is released here.
        let retained = Unmanaged.passRetained(copy)
        drain.streamAdded()
        if omni_epoll_add(epollFD, ends[0], UInt64(UInt(bitPattern: retained.toOpaque()))) == 0 {
            return ends[1]
        }
        drain.streamWithdrawn()
        retained.release()
        close(ends[0])
        close(ends[1])
        return nil
    }

    /// Keeps `drain`'s deadline: the pump wakes its waiter with `false` once `deadline` has
    /// passed, unless the last end-of-file came first. Called by the waiting task after it has
    /// registered its continuation with the drain.
    func watch(_ drain: OutputDrain, until deadline: ContinuousClock.Instant) {
        if deadlines.watch(drain, until: deadline) { omni_wake(wakeFD) }
    }

    /// The pump thread's loop: one read per ready pipe per round, each chunk written out before
    /// the next read; between rounds, the deadlines of drain waits.
    private static func serve(epollFD: Int32, wakeFD: Int32, deadlines: DrainDeadlines) -> Never {
        let capacity: Int32 = 64
        let tokens = UnsafeMutablePointer<UInt64>.allocate(capacity: Int(capacity))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        while true {
            let timeout = deadlines.expireAndPlanSleep()
            let count = SystemCallError.retryingOnInterrupt { omni_epoll_wait(epollFD, tokens, capacity, timeout) }
            deadlines.awake()
            guard count >= 0 else {
                preconditionFailure("output pump: \(SystemCallError(call: "epoll_wait", code: errno))")
            }
            for index in 0..<Int(count) {
                guard tokens[index] != wakeToken else {
                    omni_wake_consume(wakeFD)
                    continue
                }
                let pointer = UnsafeRawPointer(bitPattern: UInt(tokens[index]))!
                // Unretained: the entry holds the retain until it is removed below, and epoll
                // reports each fd at most once per call, so no later token in this batch can
                // name a copy that was just released.
                let copy = Unmanaged<LogCopy>.fromOpaque(pointer).takeUnretainedValue()
                guard copy.pump(through: buffer) == .ended else { continue }
                // Remove the entry explicitly before closing: a concurrent spawn's child may hold
                // a duplicate of the read end until it executes, and an entry lives as long as
                // its open file, so closing alone could leave it to fire with a released token.
                _ = omni_epoll_delete(epollFD, copy.source)
                copy.finish()
                Unmanaged<LogCopy>.fromOpaque(pointer).release()
            }
        }
    }
}

/// The deadlines of the drains being waited for, shared by the waiting tasks and the pump thread,
/// which sleeps no longer than the nearest one.
private final class DrainDeadlines: Sendable {
    private struct State {
        /// Drains with a wait in progress (or one that just ended: dropped on the next round).
        var watched: [OutputDrain] = []
        /// How the pump sleeps right now.
        var sleep = Sleep.awake
    }

    private enum Sleep {
        case awake
        case until(ContinuousClock.Instant)
        case indefinitely
    }

    private let state = Mutex(State())

    /// Adds a wait; returns whether the pump must be woken because it sleeps past `deadline`.
    func watch(_ drain: OutputDrain, until deadline: ContinuousClock.Instant) -> Bool {
        state.withLock { state in
            state.watched.append(drain)
            switch state.sleep {
            case .awake: return false
            case .until(let end) where end <= deadline: return false
            case .until, .indefinitely:
                state.sleep = .awake
                return true
            }
        }
    }

    /// Wakes the waits whose deadline has passed, forgets ended ones, and returns how long the
    /// pump may sleep, in milliseconds: until the nearest deadline, or -1 (indefinitely) when
    /// nobody waits.
    func expireAndPlanSleep() -> Int32 {
        let now = ContinuousClock.now
        return state.withLock { state in
            var nearest: ContinuousClock.Instant?
            state.watched.removeAll { drain in
                guard let deadline = drain.expireWait(at: now) else { return true }
                nearest = min(nearest ?? deadline, deadline)
                return false
            }
            guard let nearest else {
                state.sleep = .indefinitely
                return -1
            }
            state.sleep = .until(nearest)
            // Rounded up, so the pump does not wake just before the deadline and sleep again.
            let (seconds, attoseconds) = now.duration(to: nearest).components
            return Int32(clamping: seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
        }
    }

    /// The pump returned from its sleep.
    func awake() {
        state.withLock { $0.sleep = .awake }
    }
}

/// One output stream on its way from a pipe into a log file, owned by the pump thread once
/// registered (hence not `Sendable`: exactly one thread ever uses it at a time).
private final class LogCopy {
    /// Whether a stream has more to give.
    enum Progress { case open, ended }

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
            return .open
        }
        if count == -1 && (errno == EAGAIN || errno == EWOULDBLOCK) {
            return .open
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
