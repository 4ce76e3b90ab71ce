import Foundation
import Testing
@testable import Agents
import Orchestration
import Synchronization

/// The scoped lifecycle (issue 12 item 5): `run()` in the caller's task, `withOrchestrator { }`
/// around a body that acts while the session runs, and stops that arrive before it runs.
@Suite("Orchestrator scoped lifecycle: withOrchestrator, early stop", .tags(.process), .timeLimit(.minutes(2)))
struct ScopedLifecycleTests {
    @Test func aSessionThatCannotStartThrowsAndTheBodyDoesNotRun() async throws {
        let fixture = try await Fixture.make()
        let ran = Mutex(false)
        let error = await #expect(throws: OrchestratorError.self) {
            try await withOrchestrator(config: fixture.config(resume: true)) { _ in ran.withLock { $0 = true } }
        }
        #expect(error?.code == .noSession)
        #expect(ran.withLock { $0 } == false)
    }

    @Test func whenTheBodyReturnsTheSessionIsStoppedResumably() async throws {
        let fixture = try await Fixture.make()
        fixture.script("waiter.sh", """
            echo "$ITERATION" >> \(fixture.marks)/starts
            if [ -z "${CI_EVENT:-}" ]; then exit 42; fi
            echo '<promise>DONE</promise>'
            """)
        fixture.plan(projectPlan(roles: [("qa", "waiter.sh")], tasks: [#"{"id": "T1", "role": "qa"}"#],
                                 milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let orchestrator = try await withOrchestrator(config: fixture.config()) { orchestrator in
            try await eventually("T1 to block") { try await orchestrator.status().task("T1")?.state == .blocked }
            return orchestrator
        }
        // Over when withOrchestrator returned: no waiting needed.
        #expect(await orchestrator.waitForCompletion(timeout: .zero))
        let status = try await orchestrator.status()
        #expect(status.session.status == .interrupted)
        #expect(status.task("T1")?.state == .blocked)
        await #expect(throws: AgentSpawnError.self) { _ = try await orchestrator.spawnAgent(role: "qa", task: "T1") }
    }

    @Test func aStopRequestedBeforeTheSessionRunsStartsNoAgent() async throws {
        let fixture = try await Fixture.make()
        fixture.script("writer.sh", "echo \"$TASK_ID\" >> \(fixture.marks)/starts\necho '<promise>DONE</promise>'\n")
        fixture.plan(projectPlan(roles: [("dev", "writer.sh")], tasks: [#"{"id": "T1", "role": "dev"}"#],
                                 milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let orchestrator = Orchestrator(config: fixture.config())
        await orchestrator.requestStop(.interrupt)
        let status = try await orchestrator.run()
        #expect(status.session.status == .interrupted)
        #expect(status.task("T1")?.state == .pending)
        #expect(status.task("T1")?.iteration == 0)
        #expect(fixture.lines("starts") == [])
        #expect(await orchestrator.stoppedBy == .interrupt)
    }

    @Test(.tags(.unit)) func latchWakesEveryWaiterOnceAndACancelledWaiterAtOnce() async {
        let latch = Latch<Int>()
        let cancelled = Task { await latch.wait() }
        cancelled.cancel()
        #expect(await cancelled.value == nil, "cancelled before the latch opened")
        await withTaskGroup(of: Int?.self) { group in
            for _ in 0..<3 { group.addTask { await latch.wait() } }
            latch.open(7)
            latch.open(8)
            for await value in group { #expect(value == 7) }
        }
        #expect(await latch.wait() == 7, "open stays open")
    }
}
