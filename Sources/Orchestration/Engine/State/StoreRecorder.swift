import Foundation
import Synchronization

/// Tells the executor when recorded events are durable (committed: in `runs.db`, or in the run's
/// commit record).
public protocol CommitGate: Sendable {
    /// The highest `seq` known to be durable.
    var durableSeq: Int64 { get }
    /// Returns once every event with `seq <= seq` is durable.
    /// - Throws: ``EngineError`` if the store failed.
    func waitUntilDurable(_ seq: Int64) async throws(EngineError)
    /// Says, before the events are recorded, that a wait for `seq` follows them: their commit
    /// should not wait for more turns to gather with (a chain's next link waits for it). The
    /// caller then either finds `seq` durable, or calls ``commitIfIdle(upTo:)`` or
    /// ``waitUntilDurable(_:)``: turns recorded meanwhile are left to that call (a few do not
    /// wake a store writer by themselves; a backlog of them, a lattice's layer, is applied
    /// while it grows, and the wait commits it).
    func expectWait(for seq: Int64)
    /// Commits what is recorded on the caller's thread, and returns whether every event with
    /// `seq <= seq` is durable now. The executor calls it when it would otherwise only wait (a
    /// start with nothing else running, which then announces no wait): no thread hand-off, no
    /// wake-up of the writer. It blocks for the commit (an fsync with `synchronous=FULL`), never
    /// for another committer; `false` when the commit failed (the wait that follows reports it).
    func commitIfIdle(upTo seq: Int64) -> Bool
}

extension CommitGate {
    /// No gathering to end: nothing to do.
    public func expectWait(for seq: Int64) {}
    /// Nothing is committed on the caller's thread: the caller waits.
    public func commitIfIdle(upTo seq: Int64) -> Bool { false }
}

/// Records a run's events in `runs.db`, then in `events.jsonl`, on a dedicated writer thread with
/// group commit.
///
/// `record` notes the turn's starting attempts in the run's ``AttemptJournal`` (a mapped file, so a
/// crash before the commit still leaves a trace of them), queues the turn's events and returns.
/// The writer thread takes
/// everything queued, commits it in one `BEGIN IMMEDIATE` transaction (one fsync with
/// `synchronous=FULL`), publishes the new ``durableSeq`` (resuming its waiters), then hands
/// the same events, encoded once for both, to an ``EventCopier``, whose thread appends them to
/// `events.jsonl` in one `write` (in an in-process run the writer is the busiest thread). While
/// one commit
/// is being fsynced, the next turns queue up and go in the next transaction, so 10,000 fast
/// steps do not mean 10,000 fsyncs. The executor starts a step only when its dependencies'
/// results are durable (``CommitGate``), and announces such a wait before it records the turn
/// (``expectWait(for:)``), so that turn's commit does not wait for others to gather with.
///
/// The writer is a thread of its own, not a task, because SQLite's calls block (an fsync takes
/// milliseconds) and the cooperative pool has only as many threads as cores. When the executor
/// has nothing to do but wait for a commit (a chain's next link), it commits on its own thread
/// instead (``commitIfIdle(upTo:)``), to the run's ``CommitRecord``: one write of the turns the
/// database lacks (and one `fdatasync` at `FULL`) instead of a transaction; the writer brings
/// `runs.db` up to date in its group commits as for turns nobody waits for, and `resume`
/// applies what a killed engine's record holds and the database lacks. At `NORMAL` every wait is
/// met that way (a write without a sync costs less than a hand-off to the writer); at `FULL` an
/// attempt that waits while others run leaves the sync to the writer. A layer of a lattice is
/// that case: the wait is announced at its first turn, and the rest of the layer follows before
/// anybody waits. Once ``eagerEvents`` are queued the writer applies them as they come, in a
/// transaction the wait then commits: the layer's rows are written while the executor runs it,
/// not after. A layer's turns often come with no wait announced yet, while the writer gathers
/// its window: a burst (``eagerEvents`` within ``burstNanoseconds``) then wakes it all the same
/// (30,000 nodes `-j8` on the 2-core VM: 19.1 -> 16.9 us per node; a perf timeline in 0.5 ms
/// buckets, the writer beside the executor in 599 instead of 225, alone in 280 instead of 598).
///
/// A chain link no longer waits for a transaction (3,000 links at `-j2`: `NORMAL` 2.45 -> 2.12 s,
/// engine CPU 237.5 -> 165.5 us per link; `FULL` 2.61 -> 2.36 s, 284 -> 222.5 us).
///
/// The connection and the copier live in a `Mutex` (``Shared/connection``), held by the writer
/// from taking the queued turns to handing them to the copier: commits, and the copy, stay in
/// `seq` order. ``close()`` returns once the copy is complete.
package final class StoreRecorder: RunObserver, CommitGate, LoopSafeObserver {
    private struct Waiter {
        var seq: Int64
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var queued: [[RunEvent]] = []
        /// How many events `queued` holds.
        var queuedEvents = 0
        /// When the oldest turn in `queued` was queued: the gathering window counts from then.
        var oldestQueued: DispatchTime?
        var durable: Int64 = 0
        var waiters: [Waiter] = []
        var failure: EngineError?
        /// Events recorded since `burstStart`, a window of ``burstNanoseconds`` (``isBurst(_:)``).
        var burstEvents = 0
        var burstStart = DispatchTime(uptimeNanoseconds: 0)
        /// The largest `seq` the executor said it will wait for (``expectWait(for:)``).
        var expected: Int64 = 0
        var closing = false
        /// The writer is gathering turns for `coalescing`: only a durability waiter, an
        /// announced wait or `close` wakes it early, `record` just queues.
        var gathering = false
        /// The writer has a backlog's transaction open and applies turns as they come
        /// (``gatherAndCommit``): ``record(_:)`` wakes it when it waits for them, announced
        /// wait or not (then `gathering` means waiting for turns, not gathering a window).
        var streaming = false
        /// Transactions committed (for tests and benchmarks).
        var commits = 0
        /// Commits to the ``CommitRecord`` (a write, synced at `FULL`) made on a waiter's thread.
        var recordCommits = 0
        /// CPU time the writer thread used, set when it stops (for benchmarks).
        var writerCPU: Duration?
        /// Turns were queued without waking the writer, because a wait for them was announced
        /// (the waiter commits them, or wakes the writer): the writer, finishing a commit, looks
        /// again before it sleeps, so none is left behind when the announced wait was met by
        /// that commit.
        var unsignaled = false
        /// The last `seq` committed to the run's ``CommitRecord``.
        var recorded: Int64 = 0
        /// The turns recorded since the last write to the ``CommitRecord`` that the database
        /// does not hold yet: written when something waits for them.
        var unrecorded: [[RunEvent]] = []
    }

    /// The writer's connection, and the thread that copies its commits to `events.jsonl`.
    private struct Connection {
        let store: RunStore
        let copier: EventCopier
    }

    /// What the recorder and its writer thread share.
    private final class Shared: Sendable {
        let state: Mutex<State>
        let wakeup = DispatchSemaphore(value: 0)
        let stopped = DispatchSemaphore(value: 0)
        /// The connection, held by whoever commits (nil before the writer opened it and after
        /// it closed it).
        let connection = Mutex<Connection?>(nil)
        init(durable: Int64) { state = Mutex(State(durable: durable)) }
    }

    private let shared: Shared
    private let journal: AttemptJournal
    /// Where a turn something waits for is committed (``CommitRecord``: a write, synced at
    /// `FULL`); the database follows in the writer's group commits.
    private let commitRecord: CommitRecord
    private var wakeup: DispatchSemaphore { shared.wakeup }
    private var stopped: DispatchSemaphore { shared.stopped }
    /// The events file this recorder appends to.
    public let eventsPath: String

    /// Starts the writer thread with its own connection.
    /// - Parameters:
    ///   - stateDirectory: the state folder.
    ///   - runID: the run whose `events.jsonl` is appended (its tail is repaired from the
    ///     database first).
    ///   - durableSeq: the last `seq` already in the database (resume).
    /// - Throws: ``EngineError`` when the database or the events file cannot be opened.
    public init(stateDirectory: StateDirectory, runID: String, durableSeq: Int64 = 0,
                synchronous: SQLiteDatabase.Synchronous = .full,
                coalescing: Duration = StoreRecorder.defaultCoalescing,
                eagerHold: Duration = StoreRecorder.defaultEagerHold) throws(EngineError) {
        let shared = Shared(durable: durableSeq)
        self.shared = shared
        eventsPath = stateDirectory.path + "/runs/\(runID)/events.jsonl"
        journal = try AttemptJournal(stateDirectory: stateDirectory, runID: runID)
        // A record an earlier session left was applied by `resume` before this session started.
        commitRecord = try CommitRecord(stateDirectory: stateDirectory, runID: runID, synced: synchronous == .full)
        shared.state.withLock { $0.recorded = durableSeq }
        let opened = Mutex<EngineError?>(nil)
        let ready = DispatchSemaphore(value: 0)
        startThread(named: "omnibase-writer") {
            // The connection and the file are opened and closed on this thread.
            let failure = shared.connection.withLock { connection -> EngineError? in
                do {
                    let store = try RunStore(stateDirectory: stateDirectory, synchronous: synchronous)
                    let events = try EventLogFile(stateDirectory: stateDirectory, runID: runID)
                    try events.repair(from: store.events(runID))
                    let copier = EventCopier(file: events) { error, lastSeq in
                        Self.publish(lastSeq, failure: error, shared)
                    }
                    connection = Connection(store: store, copier: copier)
                    return nil
                } catch {
                    return EngineError(error)
                }
            }
            if let failure {
                opened.withLock { $0 = failure }
                ready.signal()
                shared.stopped.signal()
                return
            }
            ready.signal()
            Self.writerLoop(shared: shared, coalescing: coalescing, eagerHold: eagerHold)
            shared.connection.withLock { connection in
                // Every commit's copy is written before the recorder counts as closed.
                connection?.copier.close()
                connection = nil
            }
            let cpu = Self.threadCPUTime()
            shared.state.withLock { $0.writerCPU = cpu }
            shared.stopped.signal()
        }
        ready.wait()
        if let error = opened.withLock({ $0 }) { throw error }
    }

    /// How long the writer gathers scheduler turns into one transaction when nobody waits for
    /// them to be durable. Nobody waiting, the window only bounds how late observers in other
    /// processes (`serve`, `runs show`) see the turns, and how much a killed engine's `resume`
    /// runs again; each commit costs its fsync and the writer's fixed work. 50 ms rather than
    /// 10: 3,000 independent `true` steps at `-j2` took 5.7% less CPU (46 us per step) and 8%
    /// less time, with about 45 commits instead of 210 (a chain or a lattice waits for its
    /// commits, so the window does not delay them).
    public static let defaultCoalescing: Duration = .milliseconds(50)

    private static func writerLoop(shared: Shared, coalescing: Duration, eagerHold: Duration) {
        let gatherMicroseconds = microseconds(coalescing)
        let holdMicroseconds = microseconds(eagerHold)
        while true {
            // Turns queued without a wake-up whose announced wait was met by the last commit
            // have nobody else to commit them.
            if !shared.state.withLock({ $0.unsignaled }) { shared.wakeup.wait() }
            // Gathers until somebody waits, the window ends, or enough is queued to apply it
            // now: then the rest of the window is gathered inside the transaction.
            let backlog = gatherMicroseconds > 0 && gather(shared, for: gatherMicroseconds)
            let closing = shared.connection.withLock { connection -> Bool in
                guard let connection else { return true }
                return gatherAndCommit(connection, shared, microseconds: gatherMicroseconds,
                                       hold: backlog ? holdMicroseconds : 0)
            }
            if closing && shared.state.withLock({ $0.queued.isEmpty }) { return }
        }
    }

    /// Takes the queued turns, as many as fit in `limit` events (at least one turn unless
    /// `atLeastOne` is false; a turn is never split). Returns them, whether the recorder is
    /// closing and whether the store failed before. Turns left queued keep their time (the next
    /// commit follows at once) and the writer is woken for them.
    private static func takeQueued(_ shared: Shared, limit: Int = maxEventsPerCommit, atLeastOne: Bool = true)
        -> (batches: [[RunEvent]], oldest: DispatchTime?, closing: Bool, failed: Bool) {
        shared.state.withLock { state in
            let oldest = state.oldestQueued
            var batches: [[RunEvent]]
            if state.queuedEvents <= limit {
                batches = state.queued
                state.queued.removeAll(keepingCapacity: true)
                state.queuedEvents = 0
                state.oldestQueued = nil
                state.unsignaled = false
            } else {
                var count = 0, taken = 0
                while taken < state.queued.count
                        && ((taken == 0 && atLeastOne) || count + state.queued[taken].count <= limit) {
                    count += state.queued[taken].count
                    taken += 1
                }
                batches = Array(state.queued[..<taken])
                state.queued.removeFirst(taken)
                state.queuedEvents -= count
                state.unsignaled = !state.queued.isEmpty
                if state.unsignaled { shared.wakeup.signal() }
            }
            return (batches, oldest, state.closing, state.failure != nil)
        }
    }

    /// The most events one transaction takes (whole turns, at least one). The state folder's
    /// lock is held while they are applied: a writer that is far behind (an in-process run of
    /// hundreds of thousands of steps) otherwise committed 100,000 steps at once and held it
    /// for seconds, and another engine's writer, which waits 5 s for it, failed. About 50-100 ms
    /// of the writer's work on the development machine.
    static let maxEventsPerCommit = 16_384

    /// The writer's transaction: what is queued is applied at once, then the queue is taken
    /// again before the commit (at most ``maxEventsPerCommit`` events in all), and the copies
    /// follow the commit. With `hold` 0 that is all: the writer gathered before it began. After a
    /// backlog (``eagerEvents`` or more queued when it woke, an in-process run) the transaction
    /// stays open for more: the turns queued meanwhile are applied as the writer comes back for
    /// them, so when somebody waits for them (a lattice's next layer) little more than the
    /// `COMMIT` is left to do. It commits when somebody waits or said they will, when the
    /// recorder closes, or `microseconds` after the oldest turn was queued, but at most `hold`
    /// (``defaultEagerHold``) after it began: the state folder's lock is held meanwhile (other
    /// writers, such as a second engine, wait for it), which is also why a turn or two do not
    /// keep it open. The caller holds the connection. Returns whether the recorder is closing.
    private static func gatherAndCommit(_ connection: borrowing Connection, _ shared: Shared, microseconds: Int,
                                        hold: Int) -> Bool {
        // After a failed commit nothing more is committed: a later, smaller batch that happened
        // to fit would leave a gap in the run's events.
        let first = takeQueued(shared)
        guard !first.batches.isEmpty && !first.failed else { return first.closing }
        var closing = first.closing
        // The lock is held from now: not for more than `hold`.
        let deadline = min((first.oldest ?? .now()) + .microseconds(microseconds), .now() + .microseconds(hold))
        var pending: [[RunEvent]]? = first.batches
        var total = first.batches.reduce(0) { $0 + $1.count }
        // Each batch encoded once, for the transaction and for its copy.
        var copies: [[EncodedEvent]] = []
        var lastSeq: Int64 = 0
        var finished = false
        var failure: EngineError?
        func encode(_ batches: [[RunEvent]]) -> [EncodedEvent] {
            let events = batches.joined().map(EncodedEvent.init)
            if let last = events.last?.event.seq { lastSeq = last }
            copies.append(events)
            return events
        }
        do {
            try connection.store.append(streaming: {
                if let batches = pending {
                    pending = nil
                    return encode(batches)
                }
                // Full: the rest waits for the next transaction (``maxEventsPerCommit``).
                while !finished && total < maxEventsPerCommit {
                    let now = DispatchTime.now()
                    let urgent = shared.state.withLock { state -> Bool in
                        // An announced wait does not end it: the turns before the wait are still
                        // coming (a lattice's layer), and the wait itself ends it.
                        let urgent = state.closing || !state.waiters.isEmpty || state.failure != nil || now >= deadline
                        state.gathering = !urgent && state.queued.isEmpty
                        state.streaming = !urgent
                        return urgent
                    }
                    // What is queued now goes in; once urgent, it is the last of this transaction.
                    finished = urgent
                    let taken = takeQueued(shared, limit: maxEventsPerCommit - total, atLeastOne: false)
                    closing = closing || taken.closing
                    total += taken.batches.reduce(0) { $0 + $1.count }
                    if !taken.batches.isEmpty { return encode(taken.batches) }
                    // A turn that does not fit is left for the next transaction: commit now.
                    if finished || shared.state.withLock({ !$0.queued.isEmpty }) { break }
                    // Woken by a waiter, an announced wait, `close`, or a turn recorded while
                    // the writer was applying the last one (``record(_:)`` wakes a writer that
                    // is not gathering).
                    _ = shared.wakeup.wait(timeout: deadline)
                    shared.state.withLock { $0.gathering = false }
                }
                return nil
            })
        } catch {
            failure = error
        }
        shared.state.withLock { state in
            state.gathering = false
            state.streaming = false
        }
        publish(lastSeq, failure: failure, shared)
        // After the commit, in commit order (the writer holds the connection).
        if failure == nil { for events in copies { connection.copier.copy(events) } }
        return closing
    }

    /// How many events queued when the writer wakes make a backlog (``gatherAndCommit``). A
    /// process run's turn has a few (the writer wakes for the first of a window); an in-process
    /// run's writer finds hundreds after each commit. 16: 1 to 4 of a process run's ~200
    /// commits (3,000 `true` steps, `-j2`, a 10 ms window), nearly all of an in-process lattice's.
    static let eagerEvents = 16

    /// How fast ``eagerEvents`` must be recorded to be a burst: a backlog the writer applies at
    /// once even while it gathers a window. An in-process lattice's layer records 16 events in
    /// about 0.1 ms (turns of one step's 2 events); a process run at `-j2` in 4 ms or more, and
    /// gathers its window as before. Counted in windows of this length (``State/burstStart``).
    static let burstNanoseconds: UInt64 = 1_000_000

    /// Whether what is queued is a burst: ``eagerEvents`` recorded within one window of
    /// ``burstNanoseconds`` (the window is restarted by ``record(_:)`` only).
    private static func isBurst(_ state: State) -> Bool {
        state.queuedEvents >= eagerEvents && state.burstEvents >= eagerEvents
    }

    /// How long a backlog's transaction may stay open for more turns. A lattice's next layer
    /// waits for it within a millisecond or two; other writers of the state folder wait for its
    /// lock.
    public static let defaultEagerHold: Duration = .milliseconds(5)

    private static func microseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds) * 1_000_000 + Int(duration.components.attoseconds / 1_000_000_000_000)
    }

    /// Records a commit (or its failure) and resumes the waiters it satisfies (all of them when
    /// the store failed).
    private static func publish(_ lastSeq: Int64, failure: EngineError?, _ shared: Shared) {
        let (ready, failureNow) = shared.state.withLock { state -> ([Waiter], EngineError?) in
            if failure == nil { state.commits += 1 }
            if let failure, state.failure == nil { state.failure = failure }
            if state.failure == nil { state.durable = max(state.durable, lastSeq) }
            let durable = state.durable
            // In the database now: the commit record need not hold them.
            if let kept = state.unrecorded.firstIndex(where: { ($0.last?.seq ?? 0) > durable }) {
                state.unrecorded.removeFirst(kept)
            } else {
                state.unrecorded.removeAll()
            }
            let failed = state.failure != nil
            let ready = state.waiters.filter { failed || $0.seq <= durable }
            state.waiters.removeAll { failed || $0.seq <= durable }
            return (ready, state.failure)
        }
        for waiter in ready {
            if let failureNow { waiter.continuation.resume(throwing: failureNow) } else { waiter.continuation.resume() }
        }
    }

    /// Waits up to `microseconds` for more turns, unless someone waits (or said it will wait)
    /// for durability or the recorder is closing: then the commit goes now. Returns `true`
    /// early, without waiting, when ``eagerEvents`` events are queued and nobody waits yet.
    private static func gather(_ shared: Shared, for microseconds: Int) -> Bool {
        // From the oldest queued turn, not from now: turns that queued up while the last commit
        // ran have waited already, and a writer that is behind commits without pausing (an
        // in-process run otherwise ended waiting for the backlog of windows it slept through).
        let deadline = (shared.state.withLock { $0.oldestQueued } ?? .now()) + .microseconds(microseconds)
        var first = true
        while true {
            let (urgent, backlog) = shared.state.withLock { state -> (Bool, Bool) in
                let waited = state.closing || !state.waiters.isEmpty || state.failure != nil
                // A backlog is applied while more comes, even when a wait for it was announced:
                // the waiter waits for the commit that ends it.
                let backlog = !waited && state.queuedEvents >= eagerEvents && (first || isBurst(state))
                let urgent = !backlog && (waited || state.expected > max(state.durable, state.recorded))
                state.gathering = !urgent && !backlog
                return (urgent, backlog)
            }
            if urgent { return false }
            if backlog { return true }
            first = false
            if shared.wakeup.wait(timeout: deadline) == .timedOut { break }
        }
        shared.state.withLock { $0.gathering = false }
        return false
    }

    public func record(_ events: [RunEvent]) async throws {
        guard !events.isEmpty else { return }
        // Before the attempts can start: the executor starts them once this returns. When the
        // journal cannot be written, the events are still committed (their starts are then
        // known to the database) and the error stops the run.
        var journalFailure: EngineError?
        do { try journal.note(events) } catch { journalFailure = error }
        let (failure, signal) = shared.state.withLock { state -> (EngineError?, Bool) in
            if let failure = state.failure { return (failure, false) }
            precondition(!state.closing, "events recorded after the recorder was closed")
            // Committed to the record when something waits for it (``commitRecorded(upTo:)``).
            state.unrecorded.append(events)
            let now = DispatchTime.now()
            if state.queued.isEmpty { state.oldestQueued = now }
            state.queued.append(events)
            state.queuedEvents += events.count
            // The writer applies turns as they come: wake it if it waits for them (busy, it
            // looks at the queue before it waits).
            if state.streaming { return (nil, state.gathering) }
            if now.uptimeNanoseconds - state.burstStart.uptimeNanoseconds > Self.burstNanoseconds {
                state.burstStart = now
                state.burstEvents = 0
            }
            state.burstEvents += events.count
            // A burst (a lattice's layer): the writer applies it while the rest comes, even
            // while it gathers a window; only the turn that makes it one wakes it.
            if state.gathering && state.burstEvents - events.count < Self.eagerEvents
                && Self.isBurst(state) { return (nil, true) }
            if state.expected > max(state.durable, state.recorded) {
                // A backlog behind an announced wait (a lattice's layer): the writer applies it
                // while the rest of the layer comes, and commits when the wait comes.
                if state.queuedEvents >= Self.eagerEvents && !state.gathering { return (nil, true) }
                // A wait for these turns was announced: the waiter commits them or wakes the
                // writer (``waitUntilDurable(_:)``); a writer committing right now looks again.
                state.unsignaled = true
                return (nil, false)
            }
            return (nil, !state.gathering)
        }
        if let failure { throw failure }
        if signal { wakeup.signal() }
        if let journalFailure { throw journalFailure }
    }

    public var durableSeq: Int64 { shared.state.withLock { max($0.durable, $0.recorded) } }

    public func expectWait(for seq: Int64) {
        // At NORMAL every wait is met by the record: none waits for the database.
        guard commitRecord.synced else { return }
        let gathering = shared.state.withLock { state -> Bool in
            state.expected = max(state.expected, seq)
            return state.gathering
        }
        if gathering { wakeup.signal() }
    }

    /// The CPU time of the calling thread.
    private static func threadCPUTime() -> Duration {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return .seconds(time.tv_sec) + .nanoseconds(time.tv_nsec)
    }

    /// The CPU time the writer thread used, once it stopped (after ``close()``; nil before).
    package var writerCPUTime: Duration? { shared.state.withLock { $0.writerCPU } }

    /// Transactions committed so far.
    public var commitCount: Int { shared.state.withLock { $0.commits } }

    /// The store's failure, once a commit failed (for tests).
    package var storeFailure: EngineError? { shared.state.withLock { $0.failure } }

    /// Commits to the run's ``CommitRecord`` so far (``commitIfIdle(upTo:)``, and at `NORMAL`
    /// ``waitUntilDurable(_:)``).
    public var recordCommitCount: Int { shared.state.withLock { $0.recordCommits } }

    public func commitIfIdle(upTo seq: Int64) -> Bool {
        // A failure to write the record is reported by the wait that follows.
        (try? commitRecorded(upTo: seq)) ?? false
    }

    public func waitUntilDurable(_ seq: Int64) async throws(EngineError) {
        if let failure = shared.state.withLock({ $0.failure }) { throw failure }
        // At FULL a record commit syncs: an attempt waiting here (a lattice's, while others run
        // on the process loop) leaves that to the writer's group commit instead.
        if !commitRecord.synced, try commitRecorded(upTo: seq) { return }
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (outcome, signal) = shared.state.withLock { state -> (Result<Void, EngineError>?, Bool) in
                    if let failure = state.failure { return (.failure(failure), false) }
                    if max(state.durable, state.recorded) >= seq { return (.success(()), false) }
                    state.waiters.append(Waiter(seq: seq, continuation: continuation))
                    return (nil, state.gathering || state.unsignaled)
                }
                if let outcome { continuation.resume(with: outcome) }
                // Someone needs these events now: end the writer's gathering, or wake it for
                // turns queued without a wake-up.
                if signal { wakeup.signal() }
            }
        } catch {
            throw EngineError(error)
        }
    }

    /// Commits every turn recorded so far that the database lacks to the run's ``CommitRecord``
    /// (one write on the caller's thread, and an `fdatasync` at `FULL`), and returns whether
    /// every event with `seq <= seq` is committed now. The database follows in the writer's
    /// group commit. After the store failed nothing is durable any more (the run stops as for a
    /// signal, and nothing may start on the strength of the record alone).
    /// - Throws: ``EngineError`` (exit 74) when the record cannot be written.
    private func commitRecorded(upTo seq: Int64) throws(EngineError) -> Bool {
        let shared = self.shared
        // The turns are taken under the record's lock, so they are written in `seq` order.
        let last = try commitRecord.append {
            shared.state.withLock { state -> [RunEvent] in
                guard state.failure == nil, max(state.durable, state.recorded) < seq else { return [] }
                defer { state.unrecorded.removeAll() }
                return Array(state.unrecorded.joined())
            }
        }
        let (met, wake) = shared.state.withLock { state -> (Bool, Bool) in
            guard state.failure == nil else { return (false, false) }
            guard let last else { return (max(state.durable, state.recorded) >= seq, false) }
            state.recorded = max(state.recorded, last)
            state.recordCommits += 1
            // Turns queued without waking the writer, for a wait this commit met.
            defer { state.unsignaled = false }
            return (max(state.durable, state.recorded) >= seq, state.unsignaled)
        }
        if wake { wakeup.signal() }
        return met
    }

    /// Commits what is queued, stops the writer thread and closes the connection.
    /// - Throws: the store's failure, if any.
    public func close() async throws(EngineError) {
        let alreadyClosing = shared.state.withLock { state in
            defer { state.closing = true }
            return state.closing
        }
        guard !alreadyClosing else { return }
        wakeup.signal()
        // The thread finishes its last commit and exits; waiting for it blocks briefly, off the
        // caller's actor on a detached task so the cooperative pool is not held.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let stopped = self.stopped
            Thread {
                stopped.wait()
                continuation.resume()
            }.start()
        }
        if let failure = shared.state.withLock({ $0.failure }) { throw failure }
        // Every event is in the database now.
        commitRecord.remove()
    }
}
