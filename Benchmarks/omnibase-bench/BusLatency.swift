import Agents
import Foundation
import Orchestration
import Synchronization

/// The CI-event bus: how long from `publish` until blocked waiters wake, with many waiters.
///
/// Every waiter blocks on the same event name; the clock starts just before `publish` (which
/// commits the event to agents.db, then wakes the waiters) and stops when a waiter resumes.
func measureBusLatency(waiters: Int, scratch: String) async throws -> (first: Double, last: Double) {
    let directory = try StateDirectory(path: scratch + "/bus-\(waiters)-\(UUID().uuidString)")
    let store = try AgentStore(stateDirectory: directory)
    let session = SessionRecord(id: "s-bench-\(waiters)", project: "bench", projectDirectory: scratch, repository: scratch,
                                sandbox: scratch, integrationBranch: "integration", config: .object([]), plan: [],
                                status: .running, enginePID: Int(getpid()), startedAt: Timestamp.rfc3339(Date()), finishedAt: nil)
    try await store.createSession(session, roles: [], tasks: [], milestones: [])
    let bus = CIEventBus(store: store)
    try await bus.refresh()
    let cursor = await bus.lastSequence
    let wakeTimes = WakeLog()
    return try await withThrowingTaskGroup(of: Void.self) { group in
        for index in 0..<waiters {
            group.addTask {
                _ = try await bus.wait(for: BusWaitCondition(task: "t\(index)", names: ["go"]), after: cursor)
                let now = ContinuousClock.now
                wakeTimes.times.withLock { $0.append(now) }
            }
        }
        // Readiness: every waiter is registered before the event is published.
        while await bus.waitingTasks.count < waiters { await Task.yield() }
        let start = ContinuousClock.now
        try await bus.publish("go")
        try await group.waitForAll()
        let times = wakeTimes.times.withLock { $0 }
        let first = times.min().map { seconds($0 - start) } ?? 0
        let last = times.max().map { seconds($0 - start) } ?? 0
        return (first, last)
    }
}

/// When each waiter woke.
final class WakeLog: Sendable {
    let times = Mutex<[ContinuousClock.Instant]>([])
}
