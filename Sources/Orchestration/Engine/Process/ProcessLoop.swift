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
/// **The executor of process runs.** The loop is also a ``TaskExecutor``: a run whose steps are
/// all processes started by this package's runners executes its scheduler, its attempts' tasks
/// and the engine's own recorders on this thread (``DAGExecutor`` asks for it with
/// `withTaskExecutorPreference`), as `ninja` runs everything on its one thread. A child's exit
/// then resumes its attempt's task on the thread that saw the exit, the executor records the
/// result and spawns the next step from there, and the thread goes back to `epoll_wait`: no
/// pool thread is woken and none hands work to another (independent `true` steps at -j2: 4.3
/// context switches per step before, 1.6 after; see Benchmarks/README.md). Jobs run between
/// rounds, so a round's exits and output come first; jobs queued by jobs run in the same round,
/// up to ``jobsPerRound``. Closure steps and other runners never run here: they may block or compute for long.
///
/// - Important: Whatever runs here must not block the thread for long: the loop writes log
///   files with blocking calls (see ``OutputPump``), a run's store commits when its writer is
///   idle and no other process holds the state folder's lock (``CommitGate/commitIfIdle(upTo:)``,
///   which never waits for one), and the engine's own recorders write; anything slower delays the
///   exit notifications and deadlines of every step. Nothing here may wait synchronously for
///   the loop itself (a semaphore signalled by an exit would never be).
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
    /// Jobs of tasks that prefer this loop as their executor (``TaskExecutor``), run between
    /// rounds.
    private let jobs = LoopJobs()

    /// What an epoll token names. Objects are at least 16-byte aligned, so bit 0 is free for a tag.
    private enum Token {
        /// The eventfd.
        static let wake: UInt64 = 0
        /// Set on the token of an ``ExitEntry`` (a pidfd); a stream's token is its ``LogCopy``'s
        /// address as is.
        static let exitTag: UInt64 = 1
    }

    /// The most jobs run between two looks at the descriptors (more wait for the next round), so
    /// that tasks which keep resuming each other cannot hold exits, output and deadlines back.
    static let jobsPerRound = 256

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
        startThread(named: "omnibase-loop") { [unowned self] in self.serve() }
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
    private func serve() -> Never {
        jobs.adoptCurrentThread()
        let executor = asUnownedTaskExecutor()
        var batch: [UnownedJob] = []
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
            var timeout = deadlines.expireAndPlanSleep()
            if !jobs.maySleep() { timeout = 0 }
            let count = SystemCallError.retryingOnInterrupt { omni_epoll_wait(epollFD, tokens, capacity, timeout) }
            deadlines.awake()
            jobs.awake()
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
                        while progress == .data && chunks < Self.chunksPerStreamAtExit {
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
            // The tasks that prefer this loop and were resumed meanwhile (by this round's exits
            // among others) run now, on this thread: an attempt's task reaps its child, the
            // executor records the result and starts what follows, without a hand-off. Jobs
            // queued by those jobs run in the same round (the executor resumed by a finished
            // attempt, then the next attempt's task, which spawns), up to `jobsPerRound`, so a
            // child's exit leads to the next spawn without an `epoll_wait` per hop.
            var ran = 0
            repeat {
                jobs.take(into: &batch)
                for job in batch { job.runSynchronously(on: executor) }
                ran += batch.count
                batch.removeAll(keepingCapacity: true)
            } while ran > 0 && ran < Self.jobsPerRound && jobs.hasQueued
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

extension ProcessLoop: TaskExecutor {
    /// Queues `job` for the loop thread, which runs it after the events of its current round;
    /// wakes the thread (one eventfd write) only when it sleeps in `epoll_wait`. A job enqueued
    /// by the loop thread itself (a continuation its round resumed) never wakes anything.
    func enqueue(_ job: consuming ExecutorJob) {
        if jobs.append(UnownedJob(job)) { omni_wake(wakeFD) }
    }

    /// Whether the caller runs on the loop's thread.
    var isCurrentThread: Bool { jobs.isLoopThread }
}

/// The jobs waiting for the ``ProcessLoop`` as a task executor, and whether its thread sleeps.
private final class LoopJobs: Sendable {
    private struct State {
        var queue: [UnownedJob] = []
        /// The loop is in (or about to enter) `epoll_wait` with no timeout of zero: an append
        /// must wake it.
        var sleeping = false
    }

    private let state = Mutex(State())
    /// The loop thread, set once it starts (before any job can run on it).
    private let thread = Mutex<pthread_t?>(nil)

    var isLoopThread: Bool {
        guard let loop = thread.withLock({ $0 }) else { return false }
        return pthread_equal(loop, pthread_self()) != 0
    }

    /// Called by the loop thread when it starts.
    func adoptCurrentThread() { thread.withLock { $0 = pthread_self() } }

    /// Appends a job; returns whether the loop sleeps and must be woken.
    func append(_ job: UnownedJob) -> Bool {
        state.withLock { state in
            state.queue.append(job)
            guard state.sleeping else { return false }
            state.sleeping = false
            return true
        }
    }

    /// Called by the loop before `epoll_wait`: whether it may block (no job is queued; an
    /// append from now on wakes it).
    func maySleep() -> Bool {
        state.withLock { state in
            state.sleeping = state.queue.isEmpty
            return state.sleeping
        }
    }

    /// Called by the loop after `epoll_wait`.
    func awake() { state.withLock { $0.sleeping = false } }

    /// Whether a job waits (queued since the last ``take(into:)``).
    var hasQueued: Bool { state.withLock { !$0.queue.isEmpty } }

    /// Exchanges the queue with `batch` (empty, its capacity kept from the last round): the jobs
    /// queued so far are the loop's to run, and jobs they queue wait for the next round, after
    /// the loop has looked at its descriptors again.
    func take(into batch: inout [UnownedJob]) {
        state.withLock { state in swap(&state.queue, &batch) }
    }
}
