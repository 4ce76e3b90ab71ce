import Glibc

/// An exclusive, cross-process lock on a file, taken with `flock(2)`.
///
/// `flock` locks belong to an *open file description*: two `FileLock`s on the same path exclude
/// each other whether they live in different processes or in one process (each `FileLock` opens
/// the file itself), and the kernel drops the lock when the descriptor is closed, including when
/// its process dies, so a crashed holder never leaves a stale lock behind.
///
/// Waiting polls `LOCK_EX | LOCK_NB` with short sleeps (starting at 100 µs, growing to 5 ms) up
/// to a timeout instead of blocking in the kernel, so a stuck peer is reported as
/// ``StoreError/Code/busy`` rather than hanging the caller forever. The wait blocks the calling
/// thread; keep timeouts short when calling from the cooperative pool.
///
/// The lock file is opened with `O_CLOEXEC` (children never inherit it, so a spawned step can
/// never keep the lock alive) and `O_NOFOLLOW` (a symbolic link is refused), and is created with
/// mode 0600 whatever the umask.
///
/// - Important: A `FileLock` is not a lock between threads sharing the *same* instance: its
///   holder is the open file description, not a thread. Give each owner its own instance; the
///   type is deliberately not `Sendable`.
///
/// A *fair* lock (`fair: true`, the databases' write locks) also keeps a queue file beside it,
/// `<path>-wait`. Polling alone is not fair: a holder that takes the lock again microseconds
/// after releasing it (a store writer committing back to back) is almost never caught free by
/// a waiter that looks every few milliseconds, which then gave up after its timeout. So a
/// waiter holds the queue file exclusively while it polls, one waiter at a time, and a taker
/// that finds the queue file held lets the waiter go first: it queues up behind it, for at most
/// ``queuePatience`` (a waiter stopped with Ctrl-Z keeps its place without taking the lock; it
/// is then passed). When nobody waits, taking the lock costs two more `flock` calls (a shared
/// lock of the queue file, released at once). Every instance of one path must agree on `fair`.
public final class FileLock {
    /// The lock file.
    public let path: String
    private let descriptor: Int32
    /// The queue file of a fair lock, or -1.
    private let queue: Int32
    /// Whether this instance currently holds the lock.
    public private(set) var isLocked = false

    /// Opens (creating if needed) the lock file at `path`, and for a fair lock its queue file
    /// `<path>-wait`. Does not take the lock.
    ///
    /// - Parameters:
    ///   - path: The lock file, e.g. `<state>/runs.db.lock`.
    ///   - fair: Whether waiters go first (see the type's documentation).
    /// - Throws: ``StoreError`` with `.symlinkRefused` when a file is a symbolic link, or the
    ///   mapped `errno` when it cannot be opened or created.
    public init(path: String, fair: Bool = false) throws {
        self.path = path
        let fd = try Self.open(path)
        if fair {
            do {
                queue = try Self.open(path + "-wait")
            } catch {
                close(fd)
                throw error
            }
        } else {
            queue = -1
        }
        descriptor = fd
    }

    /// Opens a lock file: created 0600 whatever the umask, never through a symbolic link.
    private static func open(_ path: String) throws -> Int32 {
        let fd = path.withCString { Glibc.open($0, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        guard fd >= 0 else { throw StoreError.posix(errno, operation: "open", path: path) }
        // The umask may have removed bits, never added any; a pre-existing file is tightened too.
        var status = stat()
        if fstat(fd, &status) == 0, status.st_uid == geteuid(), status.st_mode & 0o7777 != 0o600 {
            _ = fchmod(fd, 0o600)
        }
        return fd
    }

    deinit {
        // Closing the descriptors releases the locks still held.
        close(descriptor)
        if queue >= 0 { close(queue) }
    }

    /// Takes the lock if nobody else holds it or (for a fair lock) waits for it, without
    /// waiting.
    ///
    /// - Returns: Whether the lock is now held by this instance.
    /// - Throws: ``StoreError`` for failures other than contention (e.g. `EIO`, `ENOLCK`).
    public func tryLock() throws -> Bool {
        precondition(!isLocked, "FileLock.tryLock() called while already holding \(path)")
        if queue >= 0 {
            // A waiter holds the queue file exclusively: it goes first.
            guard try Self.tryFlock(queue, LOCK_SH, path: path + "-wait") else { return false }
            flock(queue, LOCK_UN)
        }
        return try takeLock()
    }

    /// One `flock(LOCK_EX | LOCK_NB)` of the lock file.
    private func takeLock() throws -> Bool {
        guard try Self.tryFlock(descriptor, LOCK_EX, path: path) else { return false }
        isLocked = true
        return true
    }

    /// `flock(operation | LOCK_NB)`: whether it was granted.
    private static func tryFlock(_ fd: Int32, _ operation: Int32, path: String) throws -> Bool {
        while true {
            if flock(fd, operation | LOCK_NB) == 0 { return true }
            let number = errno
            switch number {
            case EINTR: continue
            case EWOULDBLOCK: return false
            default: throw StoreError.posix(number, operation: "flock", path: path)
            }
        }
    }

    /// Takes the lock, waiting up to `timeout` for another holder to release it (and for a
    /// fair lock, for the waiters before this one).
    ///
    /// - Parameter timeout: How long to wait. Zero tries once.
    /// - Throws: ``StoreError`` with `.busy` when the lock is still held by another open file
    ///   description after `timeout`, or the mapped `errno` for other failures.
    public func lock(timeout: Duration) throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        if try tryLock() { return }
        guard queue >= 0 else {
            guard try poll(until: deadline, { try takeLock() }) else { throw busy(timeout) }
            return
        }
        // In the queue: one waiter at a time polls the lock, and takers see it waiting. A
        // waiter that keeps its place without taking the lock (a process stopped with Ctrl-Z
        // while it waited) is passed after `queuePatience`: then the lock is polled directly.
        let patience = min(deadline, ContinuousClock.now.advanced(by: Self.queuePatience))
        let queued = try poll(until: patience) { try Self.tryFlock(queue, LOCK_EX, path: path + "-wait") }
        defer { if queued { flock(queue, LOCK_UN) } }
        guard try poll(until: deadline, { try takeLock() }) else { throw busy(timeout) }
    }

    /// How long a taker waits for its place in a fair lock's queue before it polls the lock
    /// itself. A waiter that is running holds its place for as long as the holder's
    /// transaction lasts (milliseconds).
    static let queuePatience: Duration = .seconds(1)

    /// Calls `attempt` with growing pauses (100 us to 5 ms) until it succeeds (`true`) or
    /// `deadline` passes (`false`).
    private func poll(until deadline: ContinuousClock.Instant, _ attempt: () throws -> Bool) throws -> Bool {
        var pause: Duration = .microseconds(100)
        while try !attempt() {
            let now = ContinuousClock.now
            guard now < deadline else { return false }
            FileLock.sleep(min(pause, now.duration(to: deadline)))
            pause = min(pause * 2, .milliseconds(5))
        }
        return true
    }

    private func busy(_ timeout: Duration) -> StoreError {
        StoreError(
            .busy,
            message: "Another process held the lock '\(path)' for longer than \(timeout); "
                + "try again when it has finished.",
            detail: "flock: still held after \(timeout)",
            path: path
        )
    }

    /// Releases the lock. Calling it while not holding the lock is a bug.
    public func unlock() {
        precondition(isLocked, "FileLock.unlock() called without holding \(path)")
        // flock(LOCK_UN) cannot fail on a valid descriptor; EINTR is the only transient error.
        while flock(descriptor, LOCK_UN) != 0 && errno == EINTR {}
        isLocked = false
    }

    /// Runs `body` while holding the lock, waiting up to `timeout` for it.
    ///
    /// - Parameters:
    ///   - timeout: How long to wait for the lock.
    ///   - body: The work to do under the lock.
    /// - Throws: ``StoreError`` with `.busy` on timeout, or whatever `body` throws.
    public func withLock<T>(timeout: Duration, _ body: () throws -> T) throws -> T {
        try lock(timeout: timeout)
        defer { unlock() }
        return try body()
    }

    private static func sleep(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}
