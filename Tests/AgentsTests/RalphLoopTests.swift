import Foundation
import Testing
@testable import Agents
import Orchestration

/// The Ralph loop end to end, in-process: real git repositories, real agent processes.
@Suite("Ralph loop: iterations, budgets, stalls, completion promises", .tags(.process), .timeLimit(.minutes(3)))
struct RalphLoopTests {
    @Test func taskSucceedsOnIterationThree() async throws {
        let fixture = try await Fixture.make()
        fixture.script("agent.sh", """
            echo "iteration $ITERATION of $TASK_ID in $WORKSPACE"
            echo "$ITERATION" >> progress.txt
            if [ "$ITERATION" -ge 3 ]; then echo finished > DONE; fi
            """)
        fixture.plan(projectPlan(roles: [("dev", "agent.sh")], tasks: [
            #"{"id": "T1", "role": "dev", "title": "Three tries", "done_when": {"command": "test", "args": ["-f", "DONE"]}}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let recorder = ProgressRecorder()
        let status = try await fixture.run(observers: [recorder])

        let task = try #require(status.task("T1"))
        #expect(task.state == .done)
        #expect(task.iteration == 3)
        let verdicts = recorder.all.compactMap { event -> String? in
            if case .iterationFinished("T1", let n, let verdict, _) = event { return "\(n):\(verdict)" }
            return nil
        }
        #expect(verdicts == ["1:not_yet", "2:not_yet", "3:done"])
        #expect(status.session.status == .succeeded)
        #expect(status.milestone("M1")?.state == .merged)
        // The work was committed on the task's branch and merged.
        let files = await git(["ls-tree", "--name-only", "integration"], in: fixture.repo)
        #expect(files.lines.contains("DONE") && files.lines.contains("progress.txt"), "\(files.stdout)")
        let progress = await git(["show", "integration:progress.txt"], in: fixture.repo)
        #expect(progress.lines == ["1", "2", "3"])
    }

    @Test func taskThatNeverSucceedsFailsAfterMaxRetriesAndItsDependentsNeverStart() async throws {
        let fixture = try await Fixture.make()
        fixture.script("worker.sh", """
            echo "$ITERATION" >> attempts.txt
            echo "$TASK_ID $ITERATION" >> \(fixture.marks)/runs
            echo "still working"
            """)
        fixture.plan(projectPlan(roles: [("dev", "worker.sh")], tasks: [
            #"{"id": "T1", "role": "dev", "max_retries": 3, "done_when": {"command": "test", "args": ["-f", "NEVER"]}}"#,
            #"{"id": "T2", "role": "dev", "depends_on": ["T1"], "done_when": {"command": "true"}}"#,
            #"{"id": "T3", "role": "dev", "depends_on": ["T2"], "done_when": {"command": "true"}}"#,
            #"{"id": "T4", "role": "dev", "done_when": {"command": "true"}}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1", "T2"]}"#, #"{"id": "M2", "tasks": ["T3", "T4"]}"#]))
        let status = try await fixture.run(maxRetries: 50)

        let failed = try #require(status.task("T1"))
        #expect(failed.state == .failed)
        #expect(failed.iteration == 3, "the task's own max_retries (3) wins over --max-retries (50)")
        #expect(failed.reason?.contains("not done after 3 iterations (max_retries 3)") == true, "\(failed.reason ?? "")")
        for id in ["T2", "T3"] {
            let dependent = try #require(status.task(id))
            #expect(dependent.state == .pending)
            #expect(dependent.iteration == 0)
            #expect(dependent.reason?.hasPrefix("cannot start: its dependency") == true, "\(dependent.reason ?? "")")
        }
        #expect(status.task("T4")?.state == .done, "an independent task is not held back")
        #expect(fixture.lines("runs").filter { $0.hasPrefix("T2") || $0.hasPrefix("T3") }.isEmpty, "dependents' agents never ran")
        #expect(fixture.lines("runs").filter { $0.hasPrefix("T1") } == ["T1 1", "T1 2", "T1 3"])
        let branches = await git(["branch", "--list", "agent/*"], in: fixture.repo)
        #expect(!branches.stdout.contains("T2") && !branches.stdout.contains("T3"), "no worktree for tasks that never started")
        #expect(status.milestone("M1")?.state == .blocked)
        #expect(status.milestone("M1")?.reason?.contains("task T1 failed") == true)
        #expect(status.milestone("M2")?.state == .blocked)
        #expect(status.session.status == .failed)
    }

    @Test func agentThatChangesNothingStalls() async throws {
        let fixture = try await Fixture.make()
        fixture.script("idle.sh", "echo \"thinking about $TASK_ID...\"\n")
        fixture.plan(projectPlan(roles: [("dev", "idle.sh")], tasks: [
            #"{"id": "T1", "role": "dev", "stall_after": 2, "max_retries": 10, "done_when": {"command": "test", "args": ["-f", "X"]}}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let status = try await fixture.run()

        let task = try #require(status.task("T1"))
        #expect(task.state == .stalled)
        #expect(task.iteration == 2)
        #expect(task.reason?.contains("changed nothing in the worktree for 2 iterations in a row") == true, "\(task.reason ?? "")")
        #expect(status.milestone("M1")?.state == .blocked)
    }

    @Test func editingTheSameFileAgainIsAChangeNotAStall() async throws {
        let fixture = try await Fixture.make()
        // `git status` would show " M notes.txt" after every iteration; the content differs.
        fixture.script("editor.sh", """
            echo "note $ITERATION" >> notes.txt
            if [ "$ITERATION" -ge 4 ]; then touch DONE; fi
            """)
        fixture.plan(projectPlan(roles: [("dev", "editor.sh")], tasks: [
            #"{"id": "T1", "role": "dev", "stall_after": 1, "done_when": {"command": "test", "args": ["-f", "DONE"]}}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let status = try await fixture.run()
        #expect(status.task("T1")?.state == .done)
        #expect(status.task("T1")?.iteration == 4)
    }

    @Test func promiseInsideProseDoesNotCount() async throws {
        let fixture = try await Fixture.make()
        fixture.script("chatty.sh", """
            echo "$ITERATION" >> work.txt
            echo "I will print <promise>DONE</promise> once the task is finished."
            echo "Status: <promise>DONE</promise>"
            echo "  <promise>DONE</promise> (not yet)"
            """)
        fixture.plan(projectPlan(roles: [("dev", "chatty.sh")], tasks: [
            #"{"id": "T1", "role": "dev", "max_retries": 2}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let status = try await fixture.run()
        let task = try #require(status.task("T1"))
        #expect(task.state == .failed)
        #expect(task.iteration == 2)
        #expect(task.reason?.contains("did not print <promise>DONE</promise> on a line of its own") == true, "\(task.reason ?? "")")
    }

    @Test func promiseOnTheLastAllowedIterationCounts() async throws {
        let fixture = try await Fixture.make()
        fixture.script("late.sh", """
            echo "$ITERATION" >> work.txt
            if [ "$ITERATION" -eq 3 ]; then printf 'all good\\n<promise>DONE</promise>\\n'; else echo "not yet"; fi
            """)
        fixture.plan(projectPlan(roles: [("dev", "late.sh")], tasks: [
            #"{"id": "T1", "role": "dev", "max_retries": 3}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let status = try await fixture.run()
        #expect(status.task("T1")?.state == .done)
        #expect(status.task("T1")?.iteration == 3)
        #expect(status.session.status == .succeeded)
    }

    @Test func promiseAndCheckMustAgree() async throws {
        let fixture = try await Fixture.make()
        // Iteration 1: the check passes but no promise. Iteration 2: a promise, and the check
        // fails (the file was removed). Iteration 3: both.
        fixture.script("both.sh", """
            echo "$ITERATION" >> work.txt
            case "$ITERATION" in
            1) touch READY ;;
            2) rm -f READY; echo "<promise>SHIPPED</promise>" ;;
            *) touch READY; echo "<promise>SHIPPED</promise>" ;;
            esac
            """)
        fixture.plan(projectPlan(roles: [("dev", "both.sh")], tasks: [
            #"{"id": "T1", "role": "dev", "completion_promise": "SHIPPED", "done_when": {"command": "test", "args": ["-f", "READY"]}}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let recorder = ProgressRecorder()
        let status = try await fixture.run(observers: [recorder])
        #expect(status.task("T1")?.state == .done)
        #expect(status.task("T1")?.iteration == 3)
        let details = recorder.all.compactMap { event -> String? in
            if case .iterationFinished("T1", _, "not_yet", let detail) = event { return detail }
            return nil
        }
        #expect(details.count == 2)
        #expect(details.first?.contains("check passed but the agent did not print <promise>SHIPPED</promise>") == true, "\(details)")
        #expect(details.last?.contains("printed <promise>SHIPPED</promise> but the done_when check failed") == true, "\(details)")
    }

    @Test func failedCISendsTheTaskBackWithItsLog() async throws {
        let fixture = try await Fixture.make()
        fixture.script("fixer.sh", """
            if [ -z "${CI_LOG:-}" ]; then echo broken > state.txt; else grep -q "state is broken" "$CI_LOG" && echo fixed > state.txt; fi
            echo "<promise>DONE</promise>"
            """)
        fixture.dir.write("project/ci.json", """
            {"plan_id": "ci", "version": "1", "globals": {"working_dir": "${WORKSPACE}"},
             "steps": [{"id": "check", "command": "sh", "args": ["-c", "grep -q fixed state.txt || { echo 'state is broken'; exit 1; }"]}]}
            """)
        fixture.plan(projectPlan(roles: [("dev", "fixer.sh")], tasks: [#"{"id": "T1", "role": "dev"}"#],
                                 milestones: [#"{"id": "M1", "tasks": ["T1"]}"#], extra: #""ci": {"plan": "ci.json"}"#))
        let status = try await fixture.run()
        let task = try #require(status.task("T1"))
        #expect(task.state == .done)
        #expect(task.iteration == 2)
        #expect(task.ciStatus == "passed")
        let names = status.recentEvents.map { "\($0.name):\($0.task ?? "")" }
        #expect(names == ["ci.failed:T1", "ci.passed:T1"])
        let history = await git(["log", "--format=%s", "main..agent/dev/T1"], in: fixture.repo)
        #expect(history.lines == ["T1: T1", "T1: T1"], "one commit per completion")
        let content = await git(["show", "integration:state.txt"], in: fixture.repo)
        #expect(content.stdout == "fixed\n")
    }

    @Test func withoutAutoMergeAMilestoneBranchAndPullRequestAreReady() async throws {
        let fixture = try await Fixture.make()
        fixture.script("writer.sh", "echo \"$TASK_ID\" > \"$TASK_ID.txt\"\necho '<promise>DONE</promise>'\n")
        fixture.plan(projectPlan(roles: [("dev", "writer.sh")], tasks: [
            #"{"id": "T1", "role": "dev", "title": "First"}"#,
            #"{"id": "T2", "role": "dev", "title": "Second", "depends_on": ["T1"]}"#,
        ], milestones: [#"{"id": "M1", "title": "Both", "tasks": ["T1", "T2"]}"#]))
        let orchestrator = Orchestrator(config: fixture.config(autoMerge: false))
        let status = try await orchestrator.run()
        let milestone = try #require(status.milestone("M1"))
        #expect(milestone.state == .complete)
        #expect(milestone.merge == nil)
        let delivery = try await orchestrator.milestonePR("M1")
        guard case .pullRequest(let branch, let base, let file) = delivery else {
            Issue.record("expected a pull request, got \(String(describing: delivery))")
            return
        }
        #expect(branch == "milestone/M1")
        #expect(base == "integration")
        let description = try String(contentsOfFile: file, encoding: .utf8)
        #expect(description.contains("# M1: Both") && description.contains("**T1** First") && description.contains("**T2** Second"))
        let integration = await git(["rev-parse", "integration"], in: fixture.repo)
        let main = await git(["rev-parse", "main"], in: fixture.repo)
        #expect(integration.stdout == main.stdout, "without --auto-merge the integration branch is untouched")
        let merged = await git(["log", "--first-parent", "--format=%s", "integration..milestone/M1"], in: fixture.repo)
        #expect(merged.lines == ["Merge agent/dev/T2 into milestone/M1", "Merge agent/dev/T1 into milestone/M1"])
    }
}
