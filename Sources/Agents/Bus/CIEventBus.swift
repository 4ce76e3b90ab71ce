import Foundation
import Orchestration

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

    private let store: AgentStore
    private var state = State.idle
    /// The session's events known so far, in sequence order.
    private var events: [CIEvent] = []
    /// The highest sequence number ingested.
    private var lastSeq: Int64 = 0
    private var waiters: [Int: Waiter] = [:]
    private var subscribers: [Int: AsyncStream<CIEvent>.Continuation] = [:]
    private var nextToken = 0
    private var adopted = false

    /// Creates a bus over a session's store.
    public init(store: AgentStore) {
        self.store = store
    }

    /// The highest sequence number the bus has seen.
    public var lastSequence: Int64 { lastSeq }

    /// Every event the bus has seen, in order.
    public var allEvents: [CIEvent] { events }

    /// Tasks waiting right now (for status and tests).
    public var waitingTasks: [String] { waiters.values.map(\.condition.task).sorted() }

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
        let fresh: [CIEvent]
        if adopted {
            fresh = try await store.events(after: lastSeq)
        } else {
            fresh = try await store.adoptAndFetchEvents(after: lastSeq)
            adopted = true
        }
        // Re-entrancy: another refresh may have ingested some of these meanwhile.
        ingest(fresh.filter { $0.seq > lastSeq })
    }

    private func ingest(_ fresh: [CIEvent]) {
        guard !fresh.isEmpty else { return }
        events.append(contentsOf: fresh)
        lastSeq = events.last?.seq ?? lastSeq
        for continuation in subscribers.values {
            for event in fresh { continuation.yield(event) }
        }
        for (token, waiter) in waiters {
            if let hit = waiter.condition.match(events.lazy.filter { $0.seq > waiter.cursor }) {
                waiters[token] = nil
                waiter.continuation.resume(returning: BusWakeup(events: hit, cursor: lastSeq))
            }
        }
    }

    // MARK: - Subscribing and waiting

    /// A stream of the events after `seq` (stored ones first, then new ones as they arrive).
    ///
    /// The stream ends when the bus stops; dropping it unsubscribes.
    public func subscribe(after seq: Int64 = 0) -> AsyncStream<CIEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: CIEvent.self)
        for event in events where event.seq > seq { continuation.yield(event) }
        guard state != .stopped else {
            continuation.finish()
            return stream
        }
        let token = nextToken
        nextToken += 1
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
    public func wait(for condition: BusWaitCondition, after cursor: Int64) async throws -> BusWakeup {
        try Task.checkCancellation()
        if let hit = condition.match(events.lazy.filter { $0.seq > cursor }) {
            return BusWakeup(events: hit, cursor: lastSeq)
        }
        guard state != .stopped else { throw CancellationError() }
        let token = nextToken
        nextToken += 1
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<BusWakeup, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiters[token] = Waiter(condition: condition, cursor: cursor, continuation: continuation)
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(token) }
        }
    }

    private func cancelWaiter(_ token: Int) {
        guard let waiter = waiters.removeValue(forKey: token) else { return }
        waiter.continuation.resume(throwing: CancellationError())
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
        for waiter in waiters.values { waiter.continuation.resume(throwing: CancellationError()) }
        waiters.removeAll()
        for continuation in subscribers.values { continuation.finish() }
        subscribers.removeAll()
    }
}
