import Foundation
import Orchestration
import Synchronization

/// The CI-event bus: publish/subscribe over `AsyncStream`s, durable in `agents.db`.
///
/// - Every event is committed to the store before anyone sees it, so a restart loses nothing,
///   and events are de-duplicated by id (a second publish of an id returns the stored event).
/// - ``subscribe(after:)`` replays the stored events after a sequence number, then streams new
///   ones: a subscriber that comes late still sees what was published before.
/// - ``wait(for:after:)`` suspends a blocked task until its condition holds among the events
///   after its cursor, including events published before the wait began. Waiters hold a
///   continuation that the bus resumes when an event arrives; they never poll or spin.
/// - Events published by other processes (`ci emit`) reach the bus through ``run(wake:)``: the
///   pump reads the store whenever the ``WakeChannel`` signals.
///
/// ## State
/// `idle` until ``run(wake:)`` starts, `running` while the pump runs, `stopped` after: waiters
/// are then cancelled and subscriber streams finished. Every method re-checks the state after
/// each `await`, since the actor is re-entered while it waits for the store.
public actor CIEventBus {
    /// The source of events the engine publishes itself.
    public static let engineSource = "engine"

    enum State {
        case idle
        case running
        case stopped
    }

    private struct Waiter {
        var condition: BusWaitCondition
        var cursor: Int64
        var continuation: CheckedContinuation<BusWakeup, any Error>
    }

    /// What waiting tasks and the pump share, behind a lock rather than the actor: a woken task
    /// returns from ``wait(for:after:)`` without the actor, so with thousands of waiters the
    /// first one runs while the pump is still resuming the others (on the actor, each would
    /// queue behind the whole ingest and then behind every task woken before it).
    private struct Shared {
        /// The session's events known so far, in sequence order.
        var events: [CIEvent] = []
        /// The highest sequence number ingested.
        var lastSeq: Int64 = 0
        var waiters: [Int: Waiter] = [:]
        var nextToken = 0
        /// Waits cancelled before their continuation was registered.
        var cancelledEarly: Set<Int> = []
        var stopped = false
    }

    private let store: AgentStore
    private var state = State.idle
    private let shared = Mutex(Shared())
    private var subscribers: [Int: AsyncStream<CIEvent>.Continuation] = [:]
    private var nextSubscriber = 0
    private var adopted = false

    /// Creates a bus over a session's store.
    public init(store: AgentStore) {
        self.store = store
    }

    /// The highest sequence number the bus has seen.
    public var lastSequence: Int64 { shared.withLock { $0.lastSeq } }

    /// Every event the bus has seen, in order.
    public var allEvents: [CIEvent] { shared.withLock { $0.events } }

    /// Tasks waiting right now (for status and tests).
    public var waitingTasks: [String] { shared.withLock { $0.waiters.values.map(\.condition.task) }.sorted() }

    // MARK: - Publishing

    /// Publishes an event: commits it to the store, then delivers it to subscribers and waiters.
    ///
    /// - Parameters:
    ///   - name: The event name.
    ///   - task: The task it is for, if any.
    ///   - data: The payload, if any.
    ///   - id: The event id (duplicates are delivered once); a new UUID by default.
    /// - Returns: The stored event (the earlier one for a duplicate id).
    /// - Throws: ``StoreError`` when the store fails.
    @discardableResult
    public func publish(_ name: String, task: String? = nil, data: JSONValue? = nil, id: String = UUID().uuidString.lowercased(),
                        source: String = CIEventBus.engineSource) async throws -> CIEvent {
        let (event, _) = try await store.appendEvent(id: id, name: name, task: task, data: data, source: source)
        try await refresh()
        return event
    }

    /// Reads the events stored after the last one seen and delivers them (the pump calls it on
    /// every wake-up; ``publish(_:task:data:id:source:)`` after every commit).
    public func refresh() async throws {
        let after = shared.withLock { $0.lastSeq }
        let fresh: [CIEvent]
        if adopted {
            fresh = try await store.events(after: after)
        } else {
            fresh = try await store.adoptAndFetchEvents(after: after)
            adopted = true
        }
        ingest(fresh)
    }

    private func ingest(_ fresh: [CIEvent]) {
        // Re-entrancy: another refresh may have ingested some of these meanwhile.
        let (new, tokens) = shared.withLock { shared -> ([CIEvent], [Int]) in
            let new = fresh.filter { $0.seq > shared.lastSeq }
            guard !new.isEmpty else { return ([], []) }
            shared.events.append(contentsOf: new)
            shared.lastSeq = new.last?.seq ?? shared.lastSeq
            return (new, Array(shared.waiters.keys))
        }
        guard !new.isEmpty else { return }
        // Waiters are matched and woken a few hundred at a time: with thousands of them the
        // first wakes without waiting for all the others to be matched. A waiter that arrives
        // meanwhile sees the new events itself; one cancelled meanwhile is no longer there.
        var next = 0
        while next < tokens.count {
            let batch = tokens[next..<min(next + Self.wakeBatch, tokens.count)]
            next += batch.count
            let woken = shared.withLock { shared -> [(CheckedContinuation<BusWakeup, any Error>, BusWakeup)] in
                batch.compactMap { token in
                    guard let waiter = shared.waiters[token],
                          let hit = waiter.condition.match(shared.events.lazy.filter { $0.seq > waiter.cursor }) else { return nil }
                    shared.waiters[token] = nil
                    return (waiter.continuation, BusWakeup(events: hit, cursor: shared.lastSeq))
                }
            }
            for (continuation, wakeup) in woken { continuation.resume(returning: wakeup) }
        }
        for continuation in subscribers.values {
            for event in new { continuation.yield(event) }
        }
    }

    /// How many waiters one lock holds matches.
    private static let wakeBatch = 256

    // MARK: - Subscribing and waiting

    /// A stream of the events after `seq` (stored ones first, then new ones as they arrive).
    ///
    /// The stream ends when the bus stops; dropping it unsubscribes.
    public func subscribe(after seq: Int64 = 0) -> AsyncStream<CIEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: CIEvent.self)
        for event in shared.withLock({ $0.events }) where event.seq > seq { continuation.yield(event) }
        guard state != .stopped else {
            continuation.finish()
            return stream
        }
        let token = nextSubscriber
        nextSubscriber += 1
        subscribers[token] = continuation
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            Task { await self.removeSubscriber(token) }
        }
        return stream
    }

    private func removeSubscriber(_ token: Int) { subscribers[token] = nil }

    /// Suspends until `condition` holds among the events after `cursor`.
    ///
    /// Returns at once when events already seen satisfy it (an event published before the wait
    /// began is not missed). The waiting task uses no CPU: it holds a continuation that an
    /// arriving event resumes.
    ///
    /// - Parameters:
    ///   - condition: What the task waits for.
    ///   - cursor: Events up to this sequence number were already seen by the task.
    /// - Returns: The events that ended the wait and the new cursor.
    /// - Throws: `CancellationError` when the waiting task is cancelled or the bus stops.
    public nonisolated func wait(for condition: BusWaitCondition, after cursor: Int64) async throws -> BusWakeup {
        try Task.checkCancellation()
        let token: Int
        switch shared.withLock({ shared -> Admission in
            if let hit = condition.match(shared.events.lazy.filter { $0.seq > cursor }) {
                return .satisfied(BusWakeup(events: hit, cursor: shared.lastSeq))
            }
            if shared.stopped { return .stopped }
            defer { shared.nextToken += 1 }
            return .waiting(token: shared.nextToken)
        }) {
        case .waiting(let registered): token = registered
        case .satisfied(let wakeup): return wakeup
        case .stopped: throw CancellationError()
        }
        // After the handler's scope the handler no longer runs: forget an early cancellation.
        defer { shared.withLock { _ = $0.cancelledEarly.remove(token) } }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<BusWakeup, any Error>) in
                let early = shared.withLock { shared -> Result<BusWakeup, any Error>? in
                    if shared.cancelledEarly.contains(token) || shared.stopped { return .failure(CancellationError()) }
                    // An event that arrived since the check above.
                    if let hit = condition.match(shared.events.lazy.filter { $0.seq > cursor }) {
                        return .success(BusWakeup(events: hit, cursor: shared.lastSeq))
                    }
                    shared.waiters[token] = Waiter(condition: condition, cursor: cursor, continuation: continuation)
                    return nil
                }
                if let early { continuation.resume(with: early) }
            }
        } onCancel: {
            let waiter = shared.withLock { shared -> Waiter? in
                if let waiter = shared.waiters.removeValue(forKey: token) { return waiter }
                shared.cancelledEarly.insert(token)
                return nil
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// How a wait begins: already satisfied by events seen, refused (the bus stopped), or a
    /// token to wait under.
    private enum Admission {
        case satisfied(BusWakeup)
        case stopped
        case waiting(token: Int)
    }

    // MARK: - Running

    /// The pump: reads the store at start, then on every signal of `wake` (events published
    /// by other processes), until the calling task is cancelled or `wake` ends.
    ///
    /// - Parameter wake: The state folder's wake-up channel; nil reads the store only at start
    ///   and after in-process publishes.
    /// - Throws: ``StoreError`` when the store fails.
    public func run(wake: WakeChannel?) async throws {
        guard state == .idle else { return }
        state = .running
        defer { shutDown() }
        try await refresh()
        guard let wake else {
            // Nothing to pump: sleep until cancelled (no polling: one timer an hour).
            while state == .running, !Task.isCancelled {
                try? await Task.sleep(for: .seconds(3600))
            }
            return
        }
        for await _ in wake.signals {
            guard state == .running else { break }
            try await refresh()
        }
    }

    private func shutDown() {
        state = .stopped
        let waiters = shared.withLock { shared -> [Waiter] in
            shared.stopped = true
            defer { shared.waiters.removeAll() }
            return Array(shared.waiters.values)
        }
        for waiter in waiters { waiter.continuation.resume(throwing: CancellationError()) }
        for continuation in subscribers.values { continuation.finish() }
        subscribers.removeAll()
    }
}
