import COmnibaseShims
import Foundation
import Glibc
import Synchronization

/// The process layer's one event-loop thread: it owns the pidfds of running children, the read
/// ends of their output pipes and the deadlines of the waits on them (timeouts, grace periods,
/// output drain windows).
///
/// ## Design
/// One thread, started on first use and alive for the life of the engine, blocks in `epoll_wait`
/// on one epoll set that holds:
/// - the **pidfd** of every running child (``ProcessMonitor``), `EPOLLONESHOT`: readable once the
///   child has exited (it is then a zombie: nothing is reaped here);
/// - the read end of every output pipe not yet at end-of-file (``OutputPump``), level-triggered;
/// - an eventfd that interrupts the sleep when a wait with an earlier deadline arrives.
///
/// Registering is one `epoll_ctl(ADD)` on the spawning task's thread: `epoll_ctl` is safe while
/// the loop sits in `epoll_wait`, and an fd that is already readable wakes it at once.
///
/// **One wake-up per step.** A child closes its pipes before its exit is reported, so when its
/// pidfd fires the rest of its output is already in the pipes: the loop reads the attempt's
/// streams to end-of-file (or until they are empty) right there, then marks the exit. The task
/// running the attempt is resumed once, finds its output complete and returns without waiting
/// again. Before this loop, a monitor thread and a pump thread each woke for every step and the
/// attempt could be resumed twice (about 1.2 more context switches per step, measured).
///
/// The loop also keeps the deadlines of ``ExitWatch`` and ``OutputDrain`` waits: it sleeps no
/// longer than the nearest one and resumes a waiter whose deadline has passed, so a timed wait is
/// one continuation, with no task and no timer of its own.
///
/// - Important: The loop writes log files with blocking calls (see ``OutputPump``): a slow device
///   delays the exit notifications of every step too.
final class ProcessLoop: Sendable {
    /// The engine-wide loop; `nil` when epoll or an eventfd cannot be had (the monitor then uses
    /// a thread per child, output goes straight into files, and waits use task timers).
    static let shared: ProcessLoop? = ProcessLoop()

    /// The epoll set served by the loop thread.
    private let epollFD: Int32
    /// The eventfd in the set that interrupts the loop's sleep (token ``Token/wake``).
    private let wakeFD: Int32
    /// The deadlines of waits in progress.
    private let deadlines = LoopDeadlines()

    /// What an epoll token names. Objects are at least 16-byte aligned, so bit 0 is free for a tag.
    private enum Token {
        /// The eventfd.
        static let wake: UInt64 = 0
        /// Set on the token of an ``ExitEntry`` (a pidfd); a stream's token is its ``LogCopy``'s
        /// address as is.
        static let exitTag: UInt64 = 1
    }

    /// The most chunks read from one stream when its child's exit is handled; a stream with more
    /// is left to the level-triggered entry, taking turns with the others.
    static let chunksPerStreamAtExit = 16

    private init?() {
        let wakeFD = omni_wake_fd()
        guard wakeFD >= 0 else { return nil }
        let epollFD = omni_epoll_create()
        guard epollFD >= 0, omni_epoll_add(epollFD, wakeFD, Token.wake) == 0 else {
            if epollFD >= 0 { close(epollFD) }
            close(wakeFD)
            return nil
        }
        self.epollFD = epollFD
        self.wakeFD = wakeFD
        let deadlines = self.deadlines
        let thread = Thread { Self.serve(epollFD: epollFD, wakeFD: wakeFD, deadlines: deadlines) }
        thread.start()
    }

    /// Hands a stream to the loop: from the moment this succeeds, only the loop thread touches
    /// `copy`'s state, and it releases the retain taken here at end-of-file.
    ///
    /// - Returns: `false` (nothing registered, nothing retained) when `epoll_ctl` fails.
    func register(_ copy: LogCopy) -> Bool {
        let retained = Unmanaged.passRetained(copy)
        if omni_epoll_add(epollFD, copy.source, UInt64(UInt(bitPattern: retained.toOpaque()))) == 0 {
            return true
        }
        retained.release()
        return false
    }

    /// Hands a child's pidfd to the loop, which marks `entry`'s exit once (after reading its
    /// streams) and then releases the retain taken here.
    ///
    /// - Returns: `false` (nothing registered, nothing retained) when `epoll_ctl` fails.
    func register(_ entry: ExitEntry, pidfd: Int32) -> Bool {
        let retained = Unmanaged.passRetained(entry)
        let token = UInt64(UInt(bitPattern: retained.toOpaque())) | Token.exitTag
        if omni_epoll_add_oneshot(epollFD, pidfd, token) == 0 {
            return true
        }
        retained.release()
        return false
    }

    /// Keeps `waiter`'s deadline: the loop calls ``LoopDeadline/expireWait(at:)`` once `deadline`
    /// has passed. Called by the waiting task after it has registered its continuation.
    func watch(_ waiter: any LoopDeadline, until deadline: ContinuousClock.Instant) {
        if deadlines.watch(waiter, until: deadline) { omni_wake(wakeFD) }
    }

    /// The loop: exits (each with its streams read first), one read per ready pipe per round, and
    /// between rounds the deadlines.
    private static func serve(epollFD: Int32, wakeFD: Int32, deadlines: LoopDeadlines) -> Never {
        omni_name_thread("omnibase-loop")
        let capacity: Int32 = 64
        let tokens = UnsafeMutablePointer<UInt64>.allocate(capacity: Int(capacity))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: OutputPump.chunkSize, alignment: 16)
        // Streams that ended in this round; their registrations are released after it, so that a
        // later token of the same round never names a freed copy.
        var ended: [Unmanaged<LogCopy>] = []
        func end(_ copy: LogCopy) {
            // Remove the entry explicitly before closing: a concurrent spawn's child may hold a
            // duplicate of the read end until it executes, and an entry lives as long as its open
            // file, so closing alone could leave it to fire with a released token.
            _ = omni_epoll_delete(epollFD, copy.source)
            copy.finish()
            ended.append(Unmanaged.passUnretained(copy))
        }
        while true {
            let timeout = deadlines.expireAndPlanSleep()
            let count = SystemCallError.retryingOnInterrupt { omni_epoll_wait(epollFD, tokens, capacity, timeout) }
            deadlines.awake()
            guard count >= 0 else {
                preconditionFailure("process loop: \(SystemCallError(call: "epoll_wait", code: errno))")
            }
            for index in 0..<Int(count) {
                let token = tokens[index]
                if token == Token.wake {
                    omni_wake_consume(wakeFD)
                } else if token & Token.exitTag != 0 {
                    // Balances the `passRetained` in `register(_:pidfd:)`: EPOLLONESHOT delivers
                    // each registration exactly once, and they are never removed before firing.
                    let pointer = UnsafeRawPointer(bitPattern: UInt(token & ~Token.exitTag))!
                    let entry = Unmanaged<ExitEntry>.fromOpaque(pointer).takeRetainedValue()
                    for copy in entry.streams where !copy.isFinished {
                        var progress = LogCopy.Progress.data
                        var chunks = 0
                        while progress == .data && chunks < chunksPerStreamAtExit {
                            progress = copy.pump(through: buffer)
                            chunks += 1
                        }
                        if progress == .ended { end(copy) }
                    }
                    entry.exit.markExited()
                } else {
                    // Unretained: the registration holds the retain until the end of the round.
                    let copy = Unmanaged<LogCopy>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(token))!)
                        .takeUnretainedValue()
                    guard !copy.isFinished else { continue }
                    if copy.pump(through: buffer) == .ended { end(copy) }
                }
            }
            for copy in ended { copy.release() }
            ended.removeAll(keepingCapacity: true)
        }
    }
}

/// A child's exit as registered with the ``ProcessLoop``: the watch to mark, and the child's
/// output streams to read first. Created on the spawning thread, owned by the loop thread once
/// registered; the spawning thread keeps no reference.
final class ExitEntry {
    let exit: ExitWatch
    /// The streams of the same child (references only: their state is the loop thread's).
    let streams: [LogCopy]

    init(exit: ExitWatch, streams: [LogCopy]) {
        self.exit = exit
        self.streams = streams
    }
}

/// A wait whose deadline the ``ProcessLoop`` keeps.
protocol LoopDeadline: AnyObject, Sendable {
    /// Called by the loop thread: resumes the waiter if its deadline is not after `now`.
    ///
    /// - Returns: The deadline of a wait still in progress, or `nil` when nobody waits any more.
    func expireWait(at now: ContinuousClock.Instant) -> ContinuousClock.Instant?
}

/// The deadlines of the waits in progress, shared by the waiting tasks and the loop thread, which
/// sleeps no longer than the nearest one.
private final class LoopDeadlines: Sendable {
    private struct State {
        /// Waiters with a wait in progress (or one that just ended: dropped on the next round).
        var watched: [any LoopDeadline] = []
        /// How the loop sleeps right now.
        var sleep = Sleep.awake
    }

    private enum Sleep {
        case awake
        case until(ContinuousClock.Instant)
        case indefinitely
    }

    private let state = Mutex(State())

    /// Adds a wait; returns whether the loop must be woken because it sleeps past `deadline`.
    func watch(_ waiter: any LoopDeadline, until deadline: ContinuousClock.Instant) -> Bool {
        state.withLock { state in
            state.watched.append(waiter)
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
    /// loop may sleep, in milliseconds: until the nearest deadline, or -1 (indefinitely) when
    /// nobody waits.
    func expireAndPlanSleep() -> Int32 {
        let now = ContinuousClock.now
        return state.withLock { state in
            var nearest: ContinuousClock.Instant?
            state.watched.removeAll { waiter in
                guard let deadline = waiter.expireWait(at: now) else { return true }
                nearest = min(nearest ?? deadline, deadline)
                return false
            }
            guard let nearest else {
                state.sleep = .indefinitely
                return -1
            }
            state.sleep = .until(nearest)
            // Rounded up, so the loop does not wake just before the deadline and sleep again.
            let (seconds, attoseconds) = now.duration(to: nearest).components
            return Int32(clamping: seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
        }
    }

    /// The loop returned from its sleep.
    func awake() {
        state.withLock { $0.sleep = .awake }
    }
}
