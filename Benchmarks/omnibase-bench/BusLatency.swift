import Agents
import Foundation
import Orchestration
import Synchronization

/// The CI-event bus: how long from `publish` until blocked waiters wake, with many waiters.
///
/// Every waiter blocks on the same event name; the clock starts just before `publish` (which
/// commits the event to agents.db, then wakes the waiters) and stops when a waiter resumes.
func measureBusLatency(waiters: Int, scratch: String) async throws -> (first: Double, last: Double) {
    let (bus, _) = try await benchBus(in: scratch + "/bus-\(waiters)-\(UUID().uuidString)", scratch: scratch)
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

/// `ci emit` from another process to a blocked waiter in this one, through agents.db and the
/// wake FIFO (the fallback poll is set to a minute, so only the FIFO can wake it in time).
/// Returns the median over `rounds` of: from the emitter's stored timestamp (its own clock
/// reading, millisecond resolution) to the waiter running, and from starting the emitter process
/// to the waiter running (which includes starting the CLI).
func measureCrossProcessWake(cli: String, rounds: Int, scratch: String) async throws -> (fromStored: Double, fromSpawn: Double) {
    let path = scratch + "/bus-cross-\(UUID().uuidString)"
    let (bus, directory) = try await benchBus(in: path, scratch: scratch)
    let wake = try WakeChannel(stateDirectory: directory, fallbackInterval: .seconds(60))
    defer { wake.close() }
    let pump = Task { try await bus.run(wake: wake) }
    defer { pump.cancel() }
    var fromStored: [Double] = []
    var fromSpawn: [Double] = []
    for round in 1...rounds {
        while await bus.lastSequence < Int64(round - 1) { await Task.yield() }
        let cursor = await bus.lastSequence
        let waiter = Task { () -> (BusWakeup, Date) in
            let wakeup = try await bus.wait(for: BusWaitCondition(task: "t", names: ["go.\(round)"]), after: cursor)
            return (wakeup, Date())
        }
        while await bus.waitingTasks.isEmpty { try await Task.sleep(for: .milliseconds(1)) }
        let spawned = Date()
        let outcome = await LocalProcess.run(ProcessSpec(command: cli, arguments: ["ci", "emit", "go.\(round)", "--state-dir", path],
                                                         stdoutPath: "/dev/null", stderrPath: "/dev/null"))
        guard outcome.succeeded else { throw EngineError(.executionFailed, "ci emit failed: \(outcome.termination)") }
        let (wakeup, woken) = try await waiter.value
        guard let stored = wakeup.events.first.flatMap({ Timestamp.parse($0.timestamp) }) else {
            throw EngineError(.executionFailed, "the woken waiter got no event")
        }
        fromStored.append(woken.timeIntervalSince(stored))
        fromSpawn.append(woken.timeIntervalSince(spawned))
    }
    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    return (median(fromStored), median(fromSpawn))
}

/// The `omnibase-agents` executable built beside this one.
func siblingCLI() -> String? {
    let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    let path = here + "/omnibase-agents"
    return FileManager.default.isExecutableFile(atPath: path) ? path : nil
}

/// A bus over a new state folder at `path` with a running session of this process.
func benchBus(in path: String, scratch: String) async throws -> (CIEventBus, StateDirectory) {
    let directory = try StateDirectory(path: path)
    let store = try AgentStore(stateDirectory: directory)
    let session = SessionRecord(id: "s-bench-\(UUID().uuidString.prefix(8))", project: "bench", projectDirectory: scratch,
                                repository: scratch, sandbox: scratch, integrationBranch: "integration", config: .object([]),
                                plan: [], status: .running, enginePID: Int(getpid()), startedAt: Timestamp.rfc3339(Date()),
                                finishedAt: nil)
    try await store.createSession(session, roles: [], tasks: [], milestones: [])
    return (CIEventBus(store: store), directory)
}
