import Foundation
import Glibc
import Testing
@testable import Agents
import Orchestration

/// The CI-event bus: durable, de-duplicated, late subscribers and waiters see earlier events,
/// and `ci emit` from another process wakes a waiter through the wake FIFO, not the fallback poll.
@Suite("CI-event bus", .tags(.process), .timeLimit(.minutes(2)))
struct CIEventBusTests {
    /// A store with a minimal running session.
    static func store(_ state: String) async throws -> AgentStore {
        let directory = try StateDirectory(path: state)
        let store = try AgentStore(stateDirectory: directory)
        let session = SessionRecord(id: "s-test-\(UUID().uuidString.prefix(6))", project: "p", projectDirectory: "/p", repository: "/r",
                                    sandbox: "/r/sandbox", integrationBranch: "integration", config: .object([]), plan: [],
                                    status: .running, enginePID: Int(getpid()), startedAt: Timestamp.rfc3339(Date()), finishedAt: nil)
        try await store.createSession(session, roles: [], tasks: [], milestones: [])
        return store
    }

    @Test func eventsAreDurableAndDeduplicatedById() async throws {
        let dir = TempDir()
        let store = try await Self.store(dir.path + "/state")
        let bus = CIEventBus(store: store)
        let first = try await bus.publish("build.done", task: "T1", data: .object(["n": 1]), id: "evt-1")
        let again = try await bus.publish("build.done", task: "T1", data: .object(["n": 2]), id: "evt-1")
        #expect(again == first, "a duplicate id returns the stored event")
        #expect(await bus.allEvents.count == 1)

        // A new bus (a restarted engine) over the same file sees it.
        let session = try #require(await store.sessionID)
        let reopened = try AgentStore(stateDirectory: StateDirectory(path: dir.path + "/state"))
        await reopened.attach(session)
        let restarted = CIEventBus(store: reopened)
        try await restarted.refresh()
        #expect(await restarted.allEvents.map(\.id) == ["evt-1"])
        #expect(await restarted.allEvents.first?.data == .object(["n": 1]))
    }

    @Test func lateSubscribersAndWaitersSeeEarlierEvents() async throws {
        let dir = TempDir()
        let bus = CIEventBus(store: try await Self.store(dir.path + "/state"))
        try await bus.publish("deploy.started")
        try await bus.publish("deploy.done", data: .object(["url": "http://x"]))

        var iterator = await bus.subscribe().makeAsyncIterator()
        #expect(await iterator.next()?.name == "deploy.started")
        #expect(await iterator.next()?.name == "deploy.done")

        let wake = try await bus.wait(for: BusWaitCondition(task: "T1", names: ["deploy.done"]), after: 0)
        #expect(wake.events.map(\.name) == ["deploy.done"])
        #expect(wake.cursor == 2)
        // Seen once: a wait after the cursor needs a new event.
        let later = Task { try await bus.wait(for: BusWaitCondition(task: "T1", names: ["deploy.done"]), after: wake.cursor) }
        try await eventually("the waiter to register") { await bus.waitingTasks == ["T1"] }
        try await bus.publish("deploy.done")
        #expect(try await later.value.events.map(\.seq) == [3])
        try await bus.publish("deploy.again")
        #expect(await iterator.next()?.name == "deploy.done")
        #expect(await iterator.next()?.name == "deploy.again", "subscribers get new events as they arrive")
    }

    @Test func cancellingAWaiterLeavesNothingBehind() async throws {
        let dir = TempDir()
        let bus = CIEventBus(store: try await Self.store(dir.path + "/state"))
        let waiter = Task { try await bus.wait(for: BusWaitCondition(task: "T9", names: ["never"]), after: 0) }
        try await eventually("the waiter to register") { await bus.waitingTasks == ["T9"] }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        try await eventually("the waiter to leave") { await bus.waitingTasks.isEmpty }
    }

    @Test func waitersCancelledAtAnyMomentWhileEventsArriveAllEndAndNoneIsLeftBehind() async throws {
        let dir = TempDir()
        let bus = CIEventBus(store: try await Self.store(dir.path + "/state"))
        try await bus.refresh()
        // 300 waiters, every third cancelled at once (mostly before it begins to wait), every
        // third a little later, while waiting; the rest woken by the event.
        let outcomes = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            var tasks: [Task<BusWakeup, any Error>] = []
            for index in 0..<300 {
                tasks.append(Task { try await bus.wait(for: BusWaitCondition(task: "T\(index)", names: ["go"]), after: 0) })
                if index % 3 == 0 { tasks[index].cancel() }
            }
            for (index, task) in tasks.enumerated() {
                group.addTask {
                    do { _ = try await task.value; return (index, true) } catch is CancellationError { return (index, false) }
                }
            }
            try await Task.sleep(for: .milliseconds(5))
            for (index, task) in tasks.enumerated() where index % 3 == 1 { task.cancel() }
            try await bus.publish("go")
            var outcomes: [Int: Bool] = [:]
            for try await (index, woken) in group { outcomes[index] = woken }
            return outcomes
        }
        #expect(outcomes.count == 300, "every waiter ended")
        // Every cancel happened before the publish: exactly the uncancelled waiters were woken.
        #expect((0..<300).filter { outcomes[$0] == true } == (0..<300).filter { $0 % 3 == 2 })
        #expect(await bus.waitingTasks.isEmpty, "no waiter left registered")
        // A wait on a stopped bus is refused at once.
        let pump = Task { try await bus.run(wake: nil) }
        try await eventually("the pump to start") { await bus.lastSequence == 1 }
        pump.cancel()
        _ = try? await pump.value
        await #expect(throws: CancellationError.self) {
            try await bus.wait(for: BusWaitCondition(task: "late", names: ["never"]), after: 1)
        }
    }

    @Test func emitFromAnotherProcessWakesAWaiterWithoutThePoll() async throws {
        let dir = TempDir()
        let state = dir.path + "/state"
        let bus = CIEventBus(store: try await Self.store(state))
        let wake = try WakeChannel(stateDirectory: StateDirectory(path: state), fallbackInterval: .seconds(60))
        defer { wake.close() }
        let pump = Task { try await bus.run(wake: wake) }
        defer { pump.cancel() }
        try await eventually("the pump to start") { await bus.lastSequence == 0 }

        for round in 1...3 {
            let waiter = Task { () -> (BusWakeup, Date) in
                let wakeup = try await bus.wait(for: BusWaitCondition(task: "T1", names: ["go.\(round)"]), after: 0)
                return (wakeup, Date())
            }
            try await eventually("the waiter to register") { await bus.waitingTasks == ["T1"] }
            let result = await runCLI(["ci", "emit", "go.\(round)", "--data", "{\"round\": \(round)}", "--state-dir", state,
                                       "--format", "json"], in: dir.path)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try result.json()["delivered"] == .bool(true))
            let (wakeup, woken) = try await waiter.value
            #expect(wakeup.events.first?.data == .object(["round": .int(round)]))
            // From the moment the other process stored the event (its own clock reading, in the row)
            // to the moment the waiter ran here. The fallback poll is 60 s, so anything well under
            // it proves the FIFO woke the bus. The "within a second" itself is a speed claim and is
            // measured where speed is measured, `omnibase-bench bus` (about half a millisecond):
            // in here the 2-thread cooperative pool is shared with every other suite running in
            // parallel, and a stored-to-woken time of just over 1 s was seen on a loaded machine.
            let stored = try #require(wakeup.events.first.flatMap { Timestamp.parse($0.timestamp) })
            let latency = woken.timeIntervalSince(stored)
            #expect(latency < 15, "round \(round): woke \(latency) s after the emitter stored the event")
        }
    }
}
