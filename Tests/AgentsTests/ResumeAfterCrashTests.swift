import Foundation
import Glibc
import Testing
@testable import Agents
import Orchestration

/// Issue 11, item 1: `agents run --resume` after `kill -9` re-runs the tasks the dead engine was
/// working on or that were blocked (a new iteration, `RESUMED=1`), records every iteration, and
/// blocked waits can have a deadline (`wait_timeout_sec`, state `blocked_timeout`).
@Suite("agents resume after kill -9, blocked waits with a deadline", .tags(.cli, .process), .serialized,
       .timeLimit(.minutes(5)))
struct ResumeAfterCrashTests {
    func runArguments(_ fixture: Fixture, _ extra: [String] = []) -> [String] {
        ["agents", "run", fixture.project, "--repo", fixture.repo, "--state-dir", fixture.state, "--retry-interval", "0.05",
         "--auto-merge", "--format", "json"] + extra
    }

    /// The rows of the `iterations` table of the latest session, in task and iteration order.
    func iterationRows(_ state: String) throws -> [(task: String, iteration: Int, outcome: String?, finished: Bool, pid: Int?)] {
        let db = try SQLiteDatabase(path: state + "/agents.db", mode: .readOnly)
        return try db.query("""
            SELECT task_id, iteration, outcome, finished_at IS NOT NULL, engine_pid FROM iterations
            ORDER BY task_id, iteration
            """).map { ($0.string(0) ?? "", $0.int(1), $0.string(2), $0.int(3) != 0, $0.isNull(4) ? nil : $0.int(4)) }
    }

    /// A task blocked when its engine was killed: its agent's background request for the event
    /// died with the engine. Before the fix the resumed engine only went back to waiting, for an
    /// event nobody would send (the resume hung); now it runs the agent again as iteration 2
    /// with RESUMED=1, which asks again, and every iteration has its row.
    @Test func resumedBlockedTaskRunsANewIterationThatHasItsRow() async throws {
        let fixture = try await Fixture.make()
        fixture.script("waiter.sh", """
            echo "$ITERATION ${RESUMED:-0} ${CI_EVENT:-none}" >> \(fixture.marks)/starts
            if [ -z "${CI_EVENT:-}" ]; then
                if [ "${RESUMED:-}" = 1 ]; then
                    ("$OMNIBASE_AGENTS_CLI" ci emit deploy.done >/dev/null 2>&1 </dev/null &)
                fi
                echo "$PPID" > \(fixture.marks)/engine.pid
                exit 42
            fi
            echo '<promise>DONE</promise>'
            """)
        fixture.plan(projectPlan(roles: [("qa", "waiter.sh")], tasks: [
            #"{"id": "T1", "role": "qa", "wait_for": ["deploy.done"]}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let run = Task { await runCLI(runArguments(fixture), in: fixture.dir.path) }
        try await eventually("T1 to block") { readStatus(fixture.state)?.task("T1")?.state == .blocked }
        let engine = try #require(Int32(fixture.lines("engine.pid").first ?? ""))
        #expect(kill(engine, SIGKILL) == 0)
        #expect(await run.value.status == 128 + SIGKILL)

        // Bounded: before the fix this resume waited forever.
        let resumed = await runCLI(runArguments(fixture, ["--resume"]), in: fixture.dir.path, timeout: .seconds(60))
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try resumed.json()["tasks"]?[0]?["state"] == "done")
        #expect(fixture.lines("starts") == ["1 0 none", "2 1 none", "3 0 deploy.done"],
                "the resumed iteration is a new one (number 2, RESUMED=1); its request woke iteration 3")
        let rows = try iterationRows(fixture.state)
        #expect(rows.map(\.iteration) == [1, 2, 3])
        #expect(rows.map(\.outcome) == ["blocked", "blocked", "done"])
        #expect(rows.allSatisfy { $0.finished })
        try #require(rows.count == 3)
        #expect(rows[0].pid == Int(engine))
        #expect(rows[1].pid != nil && rows[1].pid != Int(engine), "iteration 2 ran under the resumed engine")
    }

    /// The demo project, killed (`kill -9`) at a random moment 0.8-2.5 s into its run and then
    /// resumed, finishes every time with each milestone merged exactly once. Before the fix most
    /// resumes hung with qa-smoke blocked. The suite runs 3 cycles (about 5 s each);
    /// `OMNIBASE_KILL_CYCLES=10 swift test --filter demoSurvivesKill` runs more.
    /// `--resume` keeps the session's stored settings, and ignored a `--repo`, `--auto-merge`,
    /// `--sandbox` or `--integration-branch` that contradicted them without a word (it went on in
    /// the stored repository, worktrees and branch). They are
    /// refused now; the same command line with `--resume` added still continues the session.
    @Test func aResumeRefusesSettingsThatContradictTheStoredOnes() async throws {
        let fixture = try await Fixture.make()
        fixture.script("waiter.sh", """
            if [ -z "${CI_EVENT:-}" ]; then
                echo "$PPID" > \(fixture.marks)/engine.pid
                exit 42
            fi
            echo '<promise>DONE</promise>'
            """)
        fixture.plan(projectPlan(roles: [("qa", "waiter.sh")], tasks: [
            #"{"id": "T1", "role": "qa", "wait_for": ["deploy.done"]}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let plain = ["agents", "run", fixture.project, "--repo", fixture.repo, "--state-dir", fixture.state,
                     "--retry-interval", "0.05", "--format", "json"]
        let run = Task { await runCLI(plain, in: fixture.dir.path) }
        try await eventually("T1 to block") { readStatus(fixture.state)?.task("T1")?.state == .blocked }
        let engine = try #require(Int32(fixture.lines("engine.pid").first ?? ""))
        #expect(kill(engine, SIGKILL) == 0)
        _ = await run.value

        let other = fixture.dir.path + "/other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        _ = await git(["init", "-q"], in: other)
        let elsewhere = await runCLI(["agents", "run", fixture.project, "--repo", other, "--state-dir", fixture.state,
                                      "--resume"], in: fixture.dir.path)
        #expect(elsewhere.status == 2, "\(elsewhere.stderr)")
        #expect(elsewhere.stderr.contains("--resume continues it there, not in \(other) (drop --repo"), "\(elsewhere.stderr)")
        let merging = await runCLI(plain + ["--auto-merge", "--resume"], in: fixture.dir.path)
        #expect(merging.status == 2, "\(merging.stderr)")
        #expect(merging.stderr.contains("was started without --auto-merge; --resume keeps its settings"), "\(merging.stderr)")

        let sandboxed = await runCLI(plain + ["--sandbox", fixture.dir.path + "/trees", "--resume"], in: fixture.dir.path)
        #expect(sandboxed.status == 2, "\(sandboxed.stderr)")
        #expect(sandboxed.stderr.contains("keeps its worktrees in") && sandboxed.stderr.contains("(drop --sandbox)"), "\(sandboxed.stderr)")
        let branched = await runCLI(plain + ["--integration-branch", "other", "--resume"], in: fixture.dir.path)
        #expect(branched.status == 2, "\(branched.stderr)")
        #expect(branched.stderr.contains("merges into the branch integration; --resume continues it so, not into other"),
                "\(branched.stderr)")

        // The same command line with --resume continues it (the event arrives meanwhile); naming
        // the stored worktrees' folder and branch is no contradiction.
        let emitted = await runCLI(["ci", "emit", "deploy.done", "--task", "T1", "--state-dir", fixture.state], in: fixture.dir.path)
        #expect(emitted.status == 0, "\(emitted.stderr)")
        let resumed = await runCLI(plain + ["--sandbox", fixture.repo + "/sandbox", "--integration-branch", "integration", "--resume"],
                                   in: fixture.dir.path, timeout: .seconds(60))
        #expect(resumed.status == 0, "\(resumed.stderr)")
    }

    @Test func demoSurvivesKillNineAtRandomMomentsAndResume() async throws {
        let cycles = ProcessInfo.processInfo.environment["OMNIBASE_KILL_CYCLES"].flatMap(Int.init) ?? 3
        let demo = packageRoot + "/plans/demo-project"
        for cycle in 1...cycles {
            let dir = TempDir()
            let setup = await runProcess("sh", [demo + "/setup.sh", dir.path + "/repo"], in: dir.path)
            try #require(setup.status == 0, "\(setup.stderr)")
            let repo = setup.lines.last ?? ""
            let state = dir.path + "/state"
            let arguments = ["agents", "run", demo, "--repo", repo, "--auto-merge", "--state-dir", state, "--format", "json"]
            let delay = Duration.milliseconds(Int.random(in: 800...2500))
            let context = "cycle \(cycle), kill -9 after \(delay)"
            let launched = ContinuousClock.now
            let run = Task { await runCLI(arguments, in: dir.path) }
            try await eventually("the session row (\(context))") { readStatus(state)?.session.enginePID != nil }
            let engine = try #require(readStatus(state)?.session.enginePID.map { pid_t($0) })
            try await Task.sleep(until: launched.advanced(by: delay))
            #expect(kill(engine, SIGKILL) == 0, "\(context)")
            let killed = await run.value
            #expect(killed.status == 128 + SIGKILL, "\(context): the demo ended before the kill: \(killed.stderr)")

            let resumed = await runCLI(arguments + ["--resume"], in: dir.path, timeout: .seconds(60))
            try #require(resumed.status == 0, "\(context): \(resumed.stderr)")
            let status = try resumed.json()
            #expect(status["milestones"]?.arrayValue?.map { $0["state"] } == ["merged", "merged"], "\(context)")
            let merges = await git(["log", "--first-parent", "--format=%s", "integration"], in: repo).lines
            #expect(merges == [
                "Merge agent/qa/qa-smoke into integration",
                "Merge agent/frontend/web-page into integration",
                "Merge agent/backend/api-config into integration",
                "Merge agent/backend/api-greet into integration",
                "Initial commit",
            ], "\(context): each task merged once, in order")
            let commits = (status["milestones"]?.arrayValue ?? []).compactMap { $0["merge"]?["commit"]?.stringValue }
            #expect(commits.count == 2, "\(context)")
            let rows = try iterationRows(state)
            #expect(rows.allSatisfy { $0.finished && $0.outcome != nil }, "\(context): every iteration is closed")
            #expect(rows.filter { $0.task == "qa-smoke" }.last?.outcome == "done", "\(context)")
        }
    }

    /// An iteration that was running when its engine was killed keeps its row, closed as
    /// `engine_lost`; the task goes on under the next number, and an event that woke the lost
    /// iteration is handed to the new one again.
    @Test func iterationCutShortByKillIsRecordedAndItsWakeupRedelivered() async throws {
        let fixture = try await Fixture.make()
        fixture.script("agent.sh", """
            echo "$ITERATION ${RESUMED:-0} ${CI_EVENT:-none}" >> \(fixture.marks)/starts
            if [ -z "${CI_EVENT:-}" ]; then exit 42; fi
            if [ ! -e \(fixture.marks)/fast ]; then
                echo "$PPID" > \(fixture.marks)/engine.pid
                sleep 60
            fi
            echo '<promise>DONE</promise>'
            """)
        fixture.plan(projectPlan(roles: [("dev", "agent.sh")], tasks: [
            #"{"id": "T1", "role": "dev", "wait_for": ["go"]}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let run = Task { await runCLI(runArguments(fixture), in: fixture.dir.path) }
        try await eventually("T1 to block") { readStatus(fixture.state)?.task("T1")?.state == .blocked }
        #expect(await runCLI(["ci", "emit", "go", "--state-dir", fixture.state], in: fixture.dir.path).status == 0)
        try await eventually("the woken iteration to run") { fixture.marked("engine.pid") }
        let engine = try #require(Int32(fixture.lines("engine.pid").first ?? ""))
        #expect(kill(engine, SIGKILL) == 0)
        #expect(await run.value.status == 128 + SIGKILL)
        #expect(try iterationRows(fixture.state).last.map { $0.finished } == false, "the killed engine could not end it")

        fixture.dir.write("marks/fast", "")
        let resumed = await runCLI(runArguments(fixture, ["--resume"]), in: fixture.dir.path, timeout: .seconds(60))
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(fixture.lines("starts") == ["1 0 none", "2 0 go", "3 1 go"],
                "the lost iteration's wake-up (go) is handed to iteration 3")
        let rows = try iterationRows(fixture.state)
        #expect(rows.map(\.outcome) == ["blocked", "engine_lost", "done"])
        #expect(rows.allSatisfy { $0.finished })
    }

    /// `wait_timeout_sec`: the task's own wins over its role's; when it passes the task ends
    /// `blocked_timeout` naming the events; its dependents cannot start and its milestone is
    /// blocked, as for a failed task. A role's `wait_timeout_sec` applies to tasks without one.
    @Test func waitTimeoutEndsTheTaskBlockedTimeoutNamingTheEvents() async throws {
        let fixture = try await Fixture.make()
        fixture.script("waiter.sh", """
            echo "$TASK_ID $ITERATION" >> \(fixture.marks)/starts
            exit 42
            """)
        fixture.script("ok.sh", "echo '<promise>DONE</promise>'\n")
        fixture.plan("""
            {
              "project": "test",
              "roles": {
                "qa": {"agent": {"command": "sh", "args": ["${PROJECT_DIR}/waiter.sh"]}, "max_parallel": 2, "wait_timeout_sec": 3600},
                "ops": {"agent": {"command": "sh", "args": ["${PROJECT_DIR}/waiter.sh"]}, "wait_timeout_sec": 0.5},
                "dev": {"agent": {"command": "sh", "args": ["${PROJECT_DIR}/ok.sh"]}}
              },
              "milestones": [{"id": "M1", "tasks": ["T1", "T2"]}, {"id": "M2", "tasks": ["T3"]}],
              "tasks": [
                {"id": "T1", "role": "qa", "wait_for": ["deploy.done", "db.migrated"], "wait_timeout_sec": 0.5},
                {"id": "T2", "role": "dev", "depends_on": ["T1"]},
                {"id": "T3", "role": "ops"}
              ]
            }
            """)
        let recorder = ProgressRecorder()
        let status = try await fixture.run(observers: [recorder])
        #expect(status.session.status == .failed)
        let t1 = try #require(status.task("T1"))
        #expect(t1.state == .blockedTimeout)
        #expect(t1.reason?.contains("waiting for deploy.done, db.migrated") == true, "\(t1.reason ?? "")")
        #expect(t1.reason?.contains("0.5 s (wait_timeout_sec)") == true, "the task's limit, not its role's: \(t1.reason ?? "")")
        #expect(t1.finishedAt != nil)
        let t2 = try #require(status.task("T2"))
        #expect(t2.state == .pending)
        #expect(t2.reason == "cannot start: its dependency T1 blocked_timeout")
        #expect(status.milestone("M1")?.state == .blocked)
        #expect(status.milestone("M1")?.reason?.hasPrefix("task T1 blocked_timeout: blocked for 0.5 s") == true)
        let t3 = try #require(status.task("T3"))
        #expect(t3.state == .blockedTimeout)
        #expect(t3.reason?.contains("(role ops's wait_timeout_sec) waiting for an event for task T3") == true, "\(t3.reason ?? "")")
        #expect(status.milestone("M2")?.state == .blocked)
        #expect(fixture.lines("starts").sorted() == ["T1 1", "T3 1"], "a timed-out wait does not run the agent again")
        #expect(status.json["summary"]?["blocked_timeout"] == .int(2))
        #expect(recorder.all.contains { progress in
            if case .taskFinished("T1", .blockedTimeout, _) = progress { return true }
            return false
        })
    }

    /// `agents status` names what each blocked task waits for and since when (JSON and human).
    @Test func statusShowsWhatABlockedTaskWaitsForAndSince() async throws {
        let fixture = try await Fixture.make()
        fixture.script("waiter.sh", """
            if [ -z "${CI_EVENT:-}" ]; then exit 42; fi
            echo '<promise>DONE</promise>'
            """)
        fixture.plan(projectPlan(roles: [("qa", "waiter.sh")], tasks: [
            #"{"id": "T1", "role": "qa", "wait_for": ["deploy.done"]}"#,
            #"{"id": "T2", "role": "qa"}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1", "T2"]}"#]))
        let run = Task { await runCLI(runArguments(fixture), in: fixture.dir.path) }
        try await eventually("both tasks to block") {
            let status = readStatus(fixture.state)
            return status?.task("T1")?.state == .blocked && status?.task("T2")?.state == .blocked
        }
        let json = await runCLI(["agents", "status", "--state-dir", fixture.state, "--format", "json"], in: fixture.dir.path)
        #expect(json.status == 0, "\(json.stderr)")
        let tasks = try json.json()["tasks"]?.arrayValue ?? []
        #expect(tasks.map { $0["waiting_for"] } == [["deploy.done"], []], "T2 has no wait_for: any event for T2 wakes it")
        let rows = try iterationRows(fixture.state)
        for (task, row) in zip(tasks, rows) {
            let since = try #require(task["blocked_since"]?.stringValue)
            #expect(Timestamp.parse(since) != nil, "RFC 3339: \(since)")
            let db = try SQLiteDatabase(path: fixture.state + "/agents.db", mode: .readOnly)
            let ended = try db.query("SELECT finished_at FROM iterations WHERE task_id = ? AND iteration = ?", row.task, row.iteration)
            #expect(ended.first?.string(0) == since, "blocked since the end of the iteration that exited 42")
        }
        let awaiting = try json.json()["awaiting"]?.arrayValue ?? []
        #expect(awaiting.map { $0["since"] } == tasks.map { $0["blocked_since"] })

        let human = await runCLI(["agents", "status", "--state-dir", fixture.state, "--format", "human", "--no-color"],
                                 in: fixture.dir.path)
        #expect(human.status == 0)
        let since = tasks.first?["blocked_since"]?.stringValue ?? "?"
        #expect(human.lines.contains("      waiting for deploy.done since \(since)"), "\(human.stdout)")
        #expect(human.lines.contains { $0.hasPrefix("      waiting for any event for T2 since ") }, "\(human.stdout)")

        #expect(await runCLI(["ci", "emit", "deploy.done", "--state-dir", fixture.state], in: fixture.dir.path).status == 0)
        #expect(await runCLI(["ci", "emit", "nudge", "--task", "T2", "--state-dir", fixture.state], in: fixture.dir.path).status == 0)
        let result = await run.value
        #expect(result.status == 0, "\(result.stderr)")
        let done = try result.json()["tasks"]?.arrayValue ?? []
        #expect(done.allSatisfy { $0["waiting_for"] == .null && $0["blocked_since"] == .null }, "only blocked tasks wait")
    }

    /// A bad `wait_timeout_sec` (task or role) is refused at load: exit 2, one located sentence,
    /// no session started.
    @Test(arguments: [
        (#""wait_timeout_sec": 0"#, "must be greater than 0"),
        (#""wait_timeout_sec": -5"#, "must be a finite number of seconds, not -5"),
        (#""wait_timeout_sec": "60""#, "must be a number of seconds, not string"),
        (#""wait_timeout_sec": 1e12"#, "must be at most one year"),
        (#""wait_timeout_sec": null"#, "must be a number of seconds, not null"),
    ])
    func badWaitTimeoutIsExit2WithItsLocation(field: String, message: String) async throws {
        for place in ["task", "role"] {
            let fixture = try await Fixture.make()
            fixture.script("a.sh", "exit 0\n")
            let role = place == "role" ? ", " + field : ""
            let task = place == "task" ? ", " + field : ""
            fixture.plan("""
                {
                  "project": "test",
                  "roles": {"qa": {"agent": {"command": "sh", "args": ["${PROJECT_DIR}/a.sh"]}\(role)}},
                  "milestones": [{"id": "M1", "tasks": ["T1"]}],
                  "tasks": [{"id": "T1", "role": "qa"\(task)}]
                }
                """)
            let result = await runCLI(runArguments(fixture), in: fixture.dir.path)
            #expect(result.status == 2, "\(place): \(result.stderr)")
            let path = place == "role" ? "roles.qa.wait_timeout_sec:" : "tasks[0].wait_timeout_sec:"
            let line = place == "role" ? 3 : 5
            #expect(result.stderr.contains("plan.json:\(line):"), "\(place): \(result.stderr)")
            #expect(result.stderr.contains(path) && result.stderr.contains(message), "\(place): \(result.stderr)")
            #expect(readStatus(fixture.state) == nil, "no session was started")
        }
    }
}
