import Foundation
import TestSupport
import Testing
@testable import Agents
import Orchestration

/// The seed's lifecycle API (start, spawnAgent, status, milestonePR, waitForCompletion, stop),
/// the injected clock, and stopping then resuming in-process.
@Suite("Orchestrator lifecycle: seed API, injected clock, stop and resume", .tags(.process), .timeLimit(.minutes(2)))
struct OrchestratorLifecycleTests {
    /// `start()` runs the session in the caller's task now (deprecated for that), so it runs in
    /// a child task here while the test acts on the orchestrator.
    @available(*, deprecated, message: "exercises the deprecated seed start()")
    @Test func spawnAgentStartsTasksWhenAutoSpawnIsOff() async throws {
        let fixture = try await Fixture.make()
        fixture.script("writer.sh", "echo \"$TASK_ID\" > \"$TASK_ID.txt\"\necho '<promise>DONE</promise>'\n")
        fixture.plan(projectPlan(roles: [("dev", "writer.sh"), ("ops", "writer.sh")], tasks: [
            #"{"id": "T1", "role": "dev"}"#,
            #"{"id": "T2", "role": "dev", "depends_on": ["T1"]}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1", "T2"]}"#]))
        var config = fixture.config()
        config.autoSpawn = false
        let orchestrator = Orchestrator(config: config)
        try await withThrowingTaskGroup(of: Void.self) { session in
            session.addTask { () async throws in #expect(try await orchestrator.start()) }
            try await eventually("the session to start") { (try? await orchestrator.status()) != nil }
            #expect(try await orchestrator.start() == false, "already started")
            #expect(await orchestrator.waitForCompletion(timeout: .milliseconds(200)) == false, "nothing was spawned yet")
            #expect(try await orchestrator.status().task("T1")?.state == .pending)

            func spawnError(_ role: String, _ task: String) async -> AgentSpawnError.Code? {
                do {
                    _ = try await orchestrator.spawnAgent(role: role, task: task)
                    return nil
                } catch {
                    return error.code
                }
            }
            #expect(await spawnError("devv", "T1") == .unknownRole)
            #expect(await spawnError("dev", "T9") == .unknownTask)
            #expect(await spawnError("ops", "T1") == .wrongRole)

            // T2 may be spawned before T1 is done: its agent starts when T1 is.
            let second = try await orchestrator.spawnAgent(role: "dev", task: "T2")
            #expect(second.branch == "agent/dev/T2")
            #expect(await orchestrator.waitForCompletion(timeout: .milliseconds(300)) == false)
            #expect(try await orchestrator.status().task("T2")?.iteration == 0)
            #expect(try await orchestrator.milestonePR("M1") == nil, "M1 is not complete yet")
            let agent = try await orchestrator.spawnAgent(role: "dev", task: "T1")
            #expect(agent.branch == "agent/dev/T1")
            #expect(agent.worktree == fixture.repo + "/sandbox/dev/T1")
            #expect(await orchestrator.waitForCompletion(timeout: .seconds(60)))
            #expect(await spawnError("dev", "T1") == .notRunning, "the session is over")
            let status = try await orchestrator.status()
            #expect(status.session.status == .succeeded)
            guard case .merged(let branch, let commit) = try await orchestrator.milestonePR("M1") else {
                Issue.record("M1 should be merged")
                return
            }
            #expect(branch == "integration")
            let tip = await git(["rev-parse", "integration"], in: fixture.repo)
            #expect(tip.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == commit)
            await orchestrator.stop()
            try await session.waitForAll()
        }
    }

    @Test func retryIntervalWaitsOnTheInjectedClock() async throws {
        let fixture = try await Fixture.make()
        fixture.script("slow.sh", """
            echo "$ITERATION" >> tries.txt
            if [ "$ITERATION" -ge 2 ]; then touch DONE; fi
            """)
        fixture.plan(projectPlan(roles: [("dev", "slow.sh")], tasks: [
            #"{"id": "T1", "role": "dev", "done_when": {"command": "test", "args": ["-f", "DONE"]}}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let clock = ManualClock()
        var config = fixture.config()
        config.retryInterval = .seconds(3600)
        config.clock = clock
        let orchestrator = Orchestrator(config: config)
        let run = Task { try await orchestrator.run() }
        try await eventually("the loop to wait on the clock") { clock.sleeperCount == 1 }
        #expect(try await orchestrator.status().task("T1")?.iteration == 1)
        #expect(try await orchestrator.status().task("T1")?.phase == .waiting)
        clock.advance(by: .seconds(3600))
        let status = try await run.value
        #expect(status.task("T1")?.state == .done)
        #expect(status.task("T1")?.iteration == 2)
    }

    @Test func stopLeavesABlockedTaskResumable() async throws {
        let fixture = try await Fixture.make()
        fixture.script("waiter.sh", """
            echo "$ITERATION" >> \(fixture.marks)/starts
            if [ -z "${CI_EVENT:-}" ]; then exit 42; fi
            echo "$CI_EVENT" > event.txt
            echo '<promise>DONE</promise>'
            """)
        fixture.plan(projectPlan(roles: [("qa", "waiter.sh")], tasks: [#"{"id": "T1", "role": "qa"}"#],
                                 milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let stopped = try await withOrchestrator(config: fixture.config()) { first in
            try await eventually("T1 to block") { try await first.status().task("T1")?.state == .blocked }
            await first.stop()
            return try await first.status()
        }
        #expect(stopped.session.status == .interrupted)
        #expect(stopped.task("T1")?.state == .blocked)
        #expect(stopped.task("T1")?.awaiting == [], "no wait_for: any event for T1 wakes it")

        // Published while no engine runs; the resumed session sees it and does not rerun iteration 1.
        _ = try CIEventEmitter.emit(stateDirectory: fixture.state, name: "review.approved", task: "T1", data: nil)
        let status = try await Orchestrator(config: fixture.config(resume: true)).run()
        #expect(status.session.id == stopped.session.id)
        #expect(status.task("T1")?.state == .done)
        #expect(fixture.lines("starts") == ["1", "2"])
        let event = await git(["show", "integration:event.txt"], in: fixture.repo)
        #expect(event.stdout == "review.approved\n")
    }
}
