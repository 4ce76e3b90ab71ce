import Foundation
import Glibc
import Orchestration
import Synchronization

/// Wakes a running `agents run` when another process has stored a bus event: a named pipe
/// (FIFO), `<state>/agents.wake`, read by one dedicated thread.
///
/// ## How it works
/// The engine creates the FIFO (mode 0600, never following a symbolic link) and opens it
/// read-write and non-blocking, so it is never at end-of-file while no writer is connected. One
/// thread (not a thread of the cooperative pool) blocks in `poll(2)` on it. `ci emit` first
/// commits its event to `agents.db`, then opens the FIFO write-only and non-blocking and writes
/// one byte: with no engine running the open fails with `ENXIO` and nothing waits for anything
/// (the next session reads the event from the database); with an engine, the thread wakes,
/// drains the pipe and yields one signal on ``signals``, on which the bus reads the new events
/// from the database. Signals coalesce (the stream keeps only the newest), so a burst of emits
/// costs one database read.
///
/// The poll has a long timeout (``fallbackInterval``, seconds): when it passes, a signal is
/// yielded too, so the bus re-reads the database at that low rate even if a wake-up were ever
/// lost (a FIFO on a file system that does not support them, a full pipe). Only the bus pump
/// sees these signals; waiters never poll.
///
/// - Important: One engine per state folder reads the FIFO (the session lock guarantees it).
public final class WakeChannel: Sendable {
    /// The FIFO's name in the state folder.
    public static let fileName = "agents.wake"

    /// Yields when the database may hold new events.
    public let signals: AsyncStream<Void>
    /// How long the thread waits without a wake-up before it yields anyway.
    public let fallbackInterval: Duration

    private let continuation: AsyncStream<Void>.Continuation
    private let descriptor: Int32
    private let closed = Atomic<Bool>(false)

    /// Creates (if needed) and opens the FIFO of a state folder and starts the reader thread.
    ///
    /// - Parameters:
    ///   - stateDirectory: The state folder.
    ///   - fallbackInterval: The low-rate re-read interval (default 5 seconds).
    /// - Throws: ``StoreError`` when the FIFO cannot be created or opened, or is not a FIFO
    ///   (`.symlinkRefused` for a symbolic link).
    public init(stateDirectory: StateDirectory, fallbackInterval: Duration = .seconds(5)) throws {
        let path = stateDirectory.path + "/" + Self.fileName
        var fd: Int32 = -1
        if mkfifo(path, 0o600) == 0 || errno == EEXIST {
            fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else {
                let number = errno
                if number == ELOOP {
                    throw StoreError(.symlinkRefused, message: "The state file '\(path)' is a symbolic link; remove it.", path: path)
                }
                throw StoreError(.cannotOpen, message: "Cannot open the wake-up pipe '\(path)'.",
                                 detail: String(cString: strerror(number)), path: path)
            }
            var info = stat()
            guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFIFO, info.st_uid == geteuid() else {
                Glibc.close(fd)
                throw StoreError(.insecurePermissions, message: "'\(path)' is not a named pipe owned by this user; remove it.", path: path)
            }
        }
        // fd < 0: the file system has no FIFOs (EPERM, ENOTSUP...): the thread then only yields
        // every fallback interval, and `ci emit` reaches the engine at that rate.
        descriptor = fd
        self.fallbackInterval = fallbackInterval
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        signals = stream
        self.continuation = continuation
        let timeout = Int32(clamping: fallbackInterval.components.seconds * 1000
            + fallbackInterval.components.attoseconds / 1_000_000_000_000_000)
        startThread(named: "omnibase-wake") { [self] in self.serve(timeoutMilliseconds: max(timeout, 10)) }
    }

    /// Whether the FIFO is in use (false: only the fallback interval wakes the bus).
    public var hasPipe: Bool { descriptor >= 0 }

    /// Stops the reader thread and ends ``signals``. Safe to call more than once.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // Wake the thread: it sees `closed`, closes the descriptor and finishes the stream.
        // (Without a pipe it notices within one fallback interval.)
        continuation.finish()
        if descriptor >= 0 {
            var byte: UInt8 = 0
            _ = write(descriptor, &byte, 1)
        }
    }

    private func serve(timeoutMilliseconds: Int32) {
        var buffer = [UInt8](repeating: 0, count: 256)
        while !closed.load(ordering: .acquiring) {
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            // A negative fd is ignored by poll(2): it then just sleeps for the timeout.
            let ready = poll(&entry, 1, timeoutMilliseconds)
            if ready < 0 && errno == EINTR { continue }
            if closed.load(ordering: .acquiring) { break }
            if ready > 0 {
                while buffer.withUnsafeMutableBytes({ read(descriptor, $0.baseAddress, $0.count) }) > 0 {}
            }
            continuation.yield(())
        }
        if descriptor >= 0 { Glibc.close(descriptor) }
        continuation.finish()
    }

    /// Wakes the engine reading the FIFO of a state folder, if one is running.
    ///
    /// - Parameter stateDirectory: The state folder's path.
    /// - Returns: Whether an engine was listening.
    @discardableResult
    public static func notify(stateDirectory: String) -> Bool {
        let path = stateDirectory + "/" + fileName
        let fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }  // ENXIO: no reader; ENOENT: never created.
        defer { Glibc.close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFIFO else { return false }
        var byte: UInt8 = 1
        let written = write(fd, &byte, 1)
        // EAGAIN: the pipe is full of unread wake-ups, which wake the engine just as well.
        return written == 1 || errno == EAGAIN
    }
}
