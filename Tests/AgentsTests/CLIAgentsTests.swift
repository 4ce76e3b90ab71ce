import Foundation
import Glibc
import Testing
@testable import Agents
import Orchestration

/// `agents run`, `agents status` and `ci emit` as separate processes: blocked agents, the
/// demo project, kill -9 and --resume.
@Suite("agents CLI: blocked agents, the demo, crash and resume", .tags(.cli, .process), .serialized, .timeLimit(.minutes(5)))
struct CLIAgentsTests {
    /// CPU time (user + system) of a process, in clock ticks, from `/proc/<pid>/stat`.
    static func cpuTicks(_ pid: Int32) -> Int? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        // Fields after the command: state(0) ppid(1) ... utime(11) stime(12).
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(close, offsetBy: 2)...].first != "Z"
    }

    func runArguments(_ fixture: Fixture, _ extra: [String] = []) -> [String] {
        ["agents", "run", fixture.project, "--repo", fixture.repo, "--state-dir", fixture.state, "--retry-interval", "0.05",
         "--auto-merge", "--format", "json"] + extra
    }

    /// An agent that switched branch or detached HEAD in its worktree committed its work where the
    /// task's branch never saw it: the milestone was reported merged with none of that work, which
    /// was then on no branch the session knew. The task now fails, saying where HEAD is; the
    /// milestone is not merged.
    @Test func anAgentThatLeavesItsBranchFailsItsTaskInsteadOfLosingTheWork() async throws {
        let fixture = try await Fixture.make()
        fixture.script("agent.sh", """
            case "$TASK_ID" in
              T1) git checkout -q -b rogue ;;
              T2) git checkout -q --detach ;;
            esac
            echo "$TASK_ID" > "$TASK_ID.txt"
            echo '<promise>DONE</promise>'
            """)
        fixture.plan(projectPlan(roles: [("dev", "agent.sh")],
                                 tasks: [#"{"id": "T1", "role": "dev"}"#, #"{"id": "T2", "role": "dev"}"#, #"{"id": "T3", "role": "dev"}"#],
                                 milestones: [#"{"id": "M1", "tasks": ["T1", "T2", "T3"]}"#]))
        let result = await runCLI(runArguments(fixture), in: fixture.dir.path)
        #expect(result.status == 1, "\(result.stderr)")
        let status = try result.json()
        let reasons = Dictionary(uniqueKeysWithValues: (status["tasks"]?.arrayValue ?? []).map {
            ($0["id"]?.stringValue ?? "", ($0["state"]?.stringValue ?? "", $0["reason"]?.stringValue ?? ""))
        })
        #expect(reasons["T1"]?.0 == "failed")
        #expect(reasons["T1"]?.1.hasPrefix("the agent left the task's branch agent/dev/T1 (HEAD is on branch rogue in ") == true,
                "\(reasons["T1"]?.1 ?? "")")
        #expect(reasons["T2"]?.0 == "failed")
        #expect(reasons["T2"]?.1.hasPrefix("the agent left the task's branch agent/dev/T2 (HEAD is detached at ") == true,
                "\(reasons["T2"]?.1 ?? "")")
        #expect(reasons["T3"]?.0 == "done")
        #expect(status["milestones"]?[0]?["state"]?.stringValue != "merged")
    }

    /// SPEC section 3: memory use does not grow with output size. The completion promise was
    /// looked for in the agent's whole stdout log read into memory (three copies): 60 MB of
    /// output took the engine to 180 MB; it stays near its size without output now.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/time")))
    func anAgentsLargeOutputDoesNotGrowTheEngine() async throws {
        let fixture = try await Fixture.make()
        fixture.script("loud.sh", """
            yes 0123456789012345678901234567890123456789012345678901234567890123456789 | head -c 60000000 || true
            echo
            echo '<promise>DONE</promise>'
            echo ok > done.txt
            """)
        fixture.plan(projectPlan(roles: [("dev", "loud.sh")], tasks: [#"{"id": "T1", "role": "dev"}"#],
                                 milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let result = await runProcess("/usr/bin/time", ["-f", "maxrss_kb=%M", cliPath] + runArguments(fixture),
                                      in: fixture.dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        let line = try #require(result.stderr.split(separator: "\n").last { $0.hasPrefix("maxrss_kb=") })
        let kilobytes = try #require(Int(line.dropFirst("maxrss_kb=".count)))
        #expect(kilobytes < 100_000, "the engine peaked at \(kilobytes) KB for 60 MB of agent output")
    }

    /// Bad input leaves nothing behind: `agents run` with a malformed plan or a missing
    /// repository made the state folder with an empty agents.db (which a later `ci emit` then
    /// took events into), and `agents status` made a mistyped folder.
    @Test func badInputCreatesNoStateFolder() async throws {
        let fixture = try await Fixture.make()
        let state = fixture.dir.path + "/fresh"
        fixture.plan("{")
        let malformed = await runCLI(["agents", "run", fixture.project, "--repo", fixture.repo, "--state-dir", state],
                                     in: fixture.dir.path)
        #expect(malformed.status == 2, "\(malformed.stderr)")
        fixture.script("a.sh", "echo '<promise>DONE</promise>'\n")
        fixture.plan(projectPlan(roles: [("dev", "a.sh")], tasks: [#"{"id": "T1", "role": "dev"}"#],
                                 milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let noRepo = await runCLI(["agents", "run", fixture.project, "--repo", fixture.dir.path + "/nope", "--state-dir", state],
                                  in: fixture.dir.path)
        #expect(noRepo.status == 2, "\(noRepo.stderr)")
        #expect(noRepo.stderr.contains("the repository folder \(fixture.dir.path)/nope does not exist"), "\(noRepo.stderr)")
        let status = await runCLI(["agents", "status", "--state-dir", state], in: fixture.dir.path)
        #expect(status.status == 3, "\(status.stderr)")
        #expect(!FileManager.default.fileExists(atPath: state), "bad input created the state folder")
        let emit = await runCLI(["ci", "emit", "deploy.done", "--state-dir", state], in: fixture.dir.path)
        #expect(emit.status == 2, "\(emit.stderr)")
    }

    @Test func blockedAgentUsesNoCPUAndWakesOnCIEmit() async throws {
        let fixture = try await Fixture.make()
        fixture.script("waiter.sh", """
            echo "$ITERATION $(date +%s.%N)" >> \(fixture.marks)/starts
            if [ -z "${CI_EVENT:-}" ]; then
                echo "$PPID" > \(fixture.marks)/engine.pid
                echo "need the deployment first"
                exit 42
            fi
            echo "$CI_EVENT $CI_EVENT_DATA" > woken.txt
            echo '<promise>DONE</promise>'
            """)
        fixture.plan(projectPlan(roles: [("qa", "waiter.sh")], tasks: [
            #"{"id": "T1", "role": "qa", "wait_for": ["deploy.done"]}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let run = Task { await runCLI(runArguments(fixture), in: fixture.dir.path) }

        try await eventually("T1 to block") { readStatus(fixture.state)?.task("T1")?.state == .blocked }
        let status = try #require(readStatus(fixture.state))
        #expect(status.live)
        #expect(status.task("T1")?.awaiting == ["deploy.done"])
        let engine = try #require(Int32(fixture.lines("engine.pid").first ?? ""))
        try await Task.sleep(for: .milliseconds(300))
        let before = try #require(Self.cpuTicks(engine))
        try await Task.sleep(for: .seconds(2))
        let after = try #require(Self.cpuTicks(engine))
        let ticksPerSecond = sysconf(Int32(_SC_CLK_TCK))
        // 2 seconds of waiting: at most 40 ms of CPU (polling every millisecond would cost far more).
        #expect(after - before <= max(4, ticksPerSecond / 25), "the blocked engine used \(after - before) ticks in 2 s")

        let emit = await runCLI(["ci", "emit", "deploy.done", "--data", "{\"url\": \"http://staging\"}", "--state-dir", fixture.state,
                                 "--format", "json"], in: fixture.dir.path)
        #expect(emit.status == 0, "\(emit.stderr)")
        #expect(try emit.json()["delivered"] == .bool(true))
        let storedText = try #require(try emit.json()["event"]?["ts"]?.stringValue)
        let stored = try #require(Timestamp.parse(storedText)).timeIntervalSince1970
        try await eventually("the second iteration") { fixture.lines("starts").count >= 2 }
        let restarted = try #require(Double(fixture.lines("starts")[1].split(separator: " ")[1]))
        // Stored-to-restarted, under the engine's 5 s fallback poll: the FIFO woke it. (The
        // sub-second latency is measured by `omnibase-bench bus`; a timed bound of 1 s here,
        // on a loaded 2-core machine with other suites in parallel, was seen to miss by 30 ms.)
        #expect(restarted - stored < 4.0, "the agent ran again \(restarted - stored) s after the event was stored")

        let result = await run.value
        #expect(result.status == 0, "\(result.stderr)")
        let final = try result.json()
        #expect(final["tasks"]?[0]?["state"] == "done")
        let woken = await git(["show", "integration:woken.txt"], in: fixture.repo)
        #expect(woken.stdout == "deploy.done {\"url\":\"http://staging\"}\n")
    }

    @Test func eventEmittedBeforeTheWaitIsNotMissed() async throws {
        let fixture = try await Fixture.make()
        fixture.script("waiter.sh", """
            echo "$ITERATION" >> \(fixture.marks)/starts
            if [ -z "${CI_EVENT:-}" ]; then exit 42; fi
            echo "$CI_EVENT" > woken.txt
            echo '<promise>DONE</promise>'
            """)
        fixture.plan(projectPlan(roles: [("qa", "waiter.sh")], tasks: [
            #"{"id": "T1", "role": "qa", "wait_for": ["db.migrated"]}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        // Published before any session exists (into a state folder prepared for agents, as
        // `ci emit` writes only where an agents project lives): the next session adopts it.
        _ = try AgentStore(stateDirectory: StateDirectory(path: fixture.state))
        let emit = await runCLI(["ci", "emit", "db.migrated", "--state-dir", fixture.state, "--format", "json"], in: fixture.dir.path)
        #expect(emit.status == 0, "\(emit.stderr)")
        #expect(try emit.json()["delivered"] == .bool(false))

        let started = ContinuousClock.now
        let result = await runCLI(runArguments(fixture), in: fixture.dir.path, timeout: .seconds(60))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(ContinuousClock.now - started < .seconds(20))
        #expect(fixture.lines("starts") == ["1", "2"])
        let status = try result.json()
        #expect(status["tasks"]?[0]?["iteration"] == .int(2))
        #expect(status["events"]?["recent"]?[0]?["name"] == "db.migrated")
    }

    @Test func aBlockedTaskLendsItsRoleSlotToTheTaskItWaitsFor() async throws {
        let fixture = try await Fixture.make()
        // One slot for the role. T1 waits for an event that only T2, of the same role, emits:
        // if T1 kept the slot while blocked, T2 could never start.
        fixture.script("agent.sh", """
            echo "$TASK_ID $ITERATION start" >> \(fixture.marks)/log
            if [ "$TASK_ID" = T1 ] && [ -z "${CI_EVENT:-}" ]; then exit 42; fi
            if [ "$TASK_ID" = T2 ]; then
                "$OMNIBASE_AGENTS_CLI" ci emit schema.ready --state-dir "$OMNIBASE_STATE_DIR" > /dev/null
                sleep 0.3
            fi
            echo "$TASK_ID" > "$TASK_ID.txt"
            echo "$TASK_ID $ITERATION end" >> \(fixture.marks)/log
            echo '<promise>DONE</promise>'
            """)
        fixture.plan("""
            {"project": "test",
             "roles": {"dev": {"agent": {"command": "sh", "args": ["${PROJECT_DIR}/agent.sh"]}, "max_parallel": 1}},
             "milestones": [{"id": "M1", "tasks": ["T1", "T2"]}],
             "tasks": [{"id": "T1", "role": "dev", "wait_for": ["schema.ready"]}, {"id": "T2", "role": "dev"}]}
            """)
        let result = await runCLI(runArguments(fixture), in: fixture.dir.path, timeout: .seconds(90))
        #expect(result.status == 0, "\(result.stderr)")
        let final = try result.json()
        #expect(final["tasks"]?[0]?["state"] == "done")
        #expect(final["tasks"]?[1]?["state"] == "done")
        // T1 blocked, T2 ran whole; T1, woken meanwhile, ran again only once T2 had ended: never
        // two agents of the role at once.
        #expect(fixture.lines("log") == ["T1 1 start", "T2 1 start", "T2 1 end", "T1 2 start", "T1 2 end"])
    }

    /// A task, role or milestone id that git refuses in a branch name is refused with the rule
    /// it breaks; before, `a..b`, `T.` and `x.lock` were told to use only letters, digits,
    /// `_ . -`, which they do.
    @Test(arguments: [("a..b", "contains \"..\", which git does not allow"), ("T.", "ends with \".\", which git does not allow"),
                      ("x.lock", "ends with \".lock\", which git does not allow"),
                      ("-x", "must start with a letter or digit and contain only letters, digits, _ . -")])
    func anIDThatGitRefusesNamesTheRuleItBreaks(id: String, rule: String) async throws {
        let dir = TempDir()
        for (what, plan) in [
            ("task id", projectPlan(roles: [("dev", "a.sh")], tasks: ["{\"id\": \"\(id)\", \"role\": \"dev\"}"], milestones: [])),
            ("role name", projectPlan(roles: [(id, "a.sh")], tasks: ["{\"id\": \"T1\", \"role\": \"\(id)\"}"], milestones: [])),
            ("milestone id", projectPlan(roles: [("dev", "a.sh")], tasks: ["{\"id\": \"T1\", \"role\": \"dev\"}"],
                                         milestones: ["{\"id\": \"\(id)\", \"tasks\": [\"T1\"]}"])),
        ] {
            dir.write("project/plan.json", plan)
            let result = await runCLI(["agents", "run", dir.path + "/project", "--state-dir", dir.path + "/s"], in: dir.path)
            #expect(result.status == 2, "\(what): \(result.stderr)")
            #expect(result.stderr.contains("\(what) \"\(id)\" \(rule)") && result.stderr.split(separator: "\n").count == 1,
                    "\(what): \(result.stderr)")
        }
        // `ci emit --task` says the same (it said "is not a valid task id").
        let emit = await runCLI(["ci", "emit", "build-passed", "--task", id, "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(emit.status == 2)
        #expect(emit.stderr.contains("--task \"\(id)\" \(rule)"), "ci emit: \(emit.stderr)")
    }

    @Test func agentsStatusWorksLiveAndAfterAndCIEmitValidates() async throws {
        let fixture = try await Fixture.make()
        let none = await runCLI(["agents", "status", "--state-dir", fixture.state], in: fixture.dir.path)
        #expect(none.status == 3, "no session yet: \(none.stderr)")
        let bad = await runCLI(["ci", "emit", "x", "--data", "{nope", "--state-dir", fixture.state], in: fixture.dir.path)
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("--data is not valid JSON"))
        let badPlan = await runCLI(["agents", "run", fixture.project, "--state-dir", fixture.state], in: fixture.dir.path)
        #expect(badPlan.status == 2, "no plan.json: \(badPlan.stderr)")

        fixture.script("quick.sh", "echo \"$TASK_ID\" > \"$TASK_ID.txt\"\necho '<promise>DONE</promise>'\n")
        fixture.plan(projectPlan(roles: [("dev", "quick.sh")], tasks: [#"{"id": "T1", "role": "dev"}"#],
                                 milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let run = await runCLI(runArguments(fixture), in: fixture.dir.path)
        #expect(run.status == 0, "\(run.stderr)")
        let status = await runCLI(["agents", "status", "--state-dir", fixture.state, "--format", "json"], in: fixture.dir.path)
        let json = try status.json()
        #expect(json["project"] == "test")
        #expect(json["live"] == .bool(false))
        #expect(json["status"] == "succeeded")
        #expect(json["tasks"]?[0]?["id"] == "T1")
        #expect(json["tasks"]?[0]?["branch"] == "agent/dev/T1")
        #expect(json["milestones"]?[0]?["state"] == "merged")
        #expect(json["milestones"]?[0]?["merge"]?["branch"] == "integration")
        let yaml = await runCLI(["agents", "status", "--state-dir", fixture.state, "--format", "yaml"], in: fixture.dir.path)
        #expect(yaml.stdout.contains("project: test"))
        let human = await runCLI(["agents", "status", "--state-dir", fixture.state, "--format", "human"], in: fixture.dir.path)
        #expect(human.stdout.contains("PASS T1 [dev] done"), "\(human.stdout)")
        // Running again without --resume in the same repository: the branches exist.
        let again = await runCLI(runArguments(fixture), in: fixture.dir.path)
        #expect(again.status == 2)
        #expect(again.stderr.contains("already exist"), "\(again.stderr)")
    }

    @Test func demoProjectEndToEnd() async throws {
        let dir = TempDir()
        let setup = await runProcess("sh", [packageRoot + "/plans/demo-project/setup.sh", dir.path + "/repo"], in: dir.path)
        #expect(setup.status == 0, "\(setup.stderr)")
        let repo = setup.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let started = ContinuousClock.now
        let result = await runCLI(["agents", "run", packageRoot + "/plans/demo-project", "--repo", repo, "--auto-merge",
                                   "--state-dir", dir.path + "/state", "--format", "json"], in: dir.path, timeout: .seconds(120))
        let elapsed = ContinuousClock.now - started
        #expect(result.status == 0, "\(result.stderr)")
        #expect(elapsed < .seconds(60), "the demo took \(elapsed)")
        let status = try result.json()
        let tasks = status["tasks"]?.arrayValue ?? []
        #expect(tasks.count == 4)
        #expect(tasks.allSatisfy { $0["state"] == "done" }, "\(tasks)")
        #expect(status["milestones"]?.arrayValue?.map { $0["state"] } == ["merged", "merged"])
        let iterations = Dictionary(uniqueKeysWithValues: tasks.map { ($0["id"]?.stringValue ?? "", $0["iteration"]?.intValue ?? 0) })
        #expect(iterations == ["api-greet": 2, "api-config": 2, "web-page": 3, "qa-smoke": 2])
        let events = (status["events"]?["recent"]?.arrayValue ?? []).map { "\($0["name"]?.stringValue ?? ""):\($0["task"]?.stringValue ?? "")" }
        #expect(events.contains("ci.failed:api-config") && events.contains("staging.deployed:"), "\(events)")

        // The integration branch: the two milestones' merges, in dependency order, on the base.
        let integration = await git(["log", "--first-parent", "--format=%s", "integration"], in: repo)
        #expect(integration.lines == [
            "Merge agent/qa/qa-smoke into integration",
            "Merge agent/frontend/web-page into integration",
            "Merge agent/backend/api-config into integration",
            "Merge agent/backend/api-greet into integration",
            "Initial commit",
        ])
        // Each task branch: its dependencies merged in first, then its own commit(s).
        func history(_ branch: String) async -> [String] { await git(["log", "--first-parent", "--format=%s", "main..\(branch)"], in: repo).lines }
        #expect(await history("agent/backend/api-greet") == ["api-greet: Greeting function"])
        #expect(await history("agent/backend/api-config") == ["api-config: App configuration", "api-config: App configuration"],
                "the first completion failed CI; the fix is a second commit")
        #expect(await history("agent/frontend/web-page") == [
            "web-page: Landing page", "Merge dependency agent/backend/api-greet into agent/frontend/web-page"])
        // qa-smoke branched from the integration branch when it started; M1 may already have been
        // merged there (then api-config needs no merge of its own), web-page (M2) never was.
        let qa = await history("agent/qa/qa-smoke")
        #expect(qa.first == "qa-smoke: Smoke test against staging")
        #expect(qa.dropFirst().first == "Merge dependency agent/frontend/web-page into agent/qa/qa-smoke", "\(qa)")
        for dependency in ["agent/backend/api-greet", "agent/backend/api-config", "agent/frontend/web-page"] {
            let contained = await git(["merge-base", "--is-ancestor", dependency, "agent/qa/qa-smoke"], in: repo)
            #expect(contained.status == 0, "qa-smoke starts from \(dependency)'s work")
        }
        let files = await git(["ls-tree", "-r", "--name-only", "integration"], in: repo)
        #expect(Set(files.lines).isSuperset(of: ["src/greet.sh", "src/config.sh", "web/index.html", "tests/smoke.sh"]))
        let smoke = await runProcess("sh", ["-c", "mkdir -p \"$0\" && git archive integration | tar -x -C \"$0\" && cd \"$0\" && sh tests/smoke.sh",
                                            dir.path + "/export"], in: repo)
        #expect(smoke.status == 0, "the merged app passes its smoke test: \(smoke.stdout) \(smoke.stderr)")
        let clean = await git(["status", "--porcelain"], in: repo)
        #expect(clean.stdout.isEmpty, "the sandbox and state are excluded from the user's worktree: \(clean.stdout)")
    }

    @Test func ctrlCStopsTheSessionResumablyWithExit130() async throws {
        let fixture = try await Fixture.make()
        fixture.script("waiter.sh", """
            echo "$ITERATION" >> \(fixture.marks)/starts
            if [ -z "${CI_EVENT:-}" ]; then echo "$PPID" > \(fixture.marks)/engine.pid; exit 42; fi
            echo '<promise>DONE</promise>'
            """)
        fixture.plan(projectPlan(roles: [("qa", "waiter.sh")], tasks: [
            #"{"id": "T1", "role": "qa", "wait_for": ["go"]}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let run = Task { await runCLI(runArguments(fixture), in: fixture.dir.path) }
        try await eventually("T1 to block") { readStatus(fixture.state)?.task("T1")?.state == .blocked }
        let engine = try #require(Int32(fixture.lines("engine.pid").first ?? ""))
        #expect(kill(engine, SIGINT) == 0)
        let stopped = await run.value
        #expect(stopped.status == 130, "\(stopped.stderr)")
        let status = try stopped.json()
        #expect(status["status"] == "interrupted")
        #expect(status["tasks"]?[0]?["state"] == "blocked")
        #expect(status["awaiting"]?[0]?["events"] == ["go"])

        let emit = await runCLI(["ci", "emit", "go", "--state-dir", fixture.state], in: fixture.dir.path)
        #expect(emit.status == 0)
        let resumed = await runCLI(runArguments(fixture, ["--resume"]), in: fixture.dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(fixture.lines("starts") == ["1", "2"])
    }

    /// A second `agents run` on a state folder in use exits 75 naming the live engine's pid
    /// (SPEC section 5: "the message names it"), as a plan run's lease does; before, it said only
    /// that another 'agents run' held agents.lock.
    @Test func aSecondSessionNamesTheEngineThatHoldsTheStateFolder() async throws {
        let fixture = try await Fixture.make()
        fixture.script("waiter.sh", """
            echo "$PPID" > \(fixture.marks)/engine.pid
            exit 42
            """)
        fixture.plan(projectPlan(roles: [("qa", "waiter.sh")], tasks: [#"{"id": "T1", "role": "qa", "wait_for": ["go"]}"#],
                                 milestones: [#"{"id": "M1", "tasks": ["T1"]}"#]))
        let run = Task { await runCLI(runArguments(fixture), in: fixture.dir.path) }
        try await eventually("T1 to block") { readStatus(fixture.state)?.task("T1")?.state == .blocked }
        let engine = try #require(Int32(fixture.lines("engine.pid").first ?? ""))
        let second = await runCLI(runArguments(fixture, ["--resume"]), in: fixture.dir.path)
        #expect(second.status == 75, "\(second.stderr)")
        #expect(second.stderr.contains("another 'agents run' (engine pid \(engine)) is working in"), "\(second.stderr)")
        #expect(second.stderr.split(separator: "\n").count == 1, "\(second.stderr)")
        #expect(kill(engine, SIGINT) == 0)
        #expect(await run.value.status == 130)
    }

    @Test func killNineThenResumeDoesNotRedoFinishedTasks() async throws {
        let fixture = try await Fixture.make()
        fixture.script("agent.sh", """
            echo "$TASK_ID $ITERATION $PPID" >> \(fixture.marks)/runs
            echo "$TASK_ID" > "$TASK_ID.txt"
            if [ "$TASK_ID" = T2 ] && [ ! -e \(fixture.marks)/fast ]; then
                echo "$PPID" > \(fixture.marks)/engine.pid
                sleep 60
            fi
            echo '<promise>DONE</promise>'
            """)
        fixture.plan(projectPlan(roles: [("dev", "agent.sh")], tasks: [
            #"{"id": "T1", "role": "dev"}"#,
            #"{"id": "T2", "role": "dev", "depends_on": ["T1"]}"#,
            #"{"id": "T3", "role": "dev", "depends_on": ["T2"]}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1"]}"#, #"{"id": "M2", "tasks": ["T2", "T3"]}"#]))
        let run = Task { await runCLI(runArguments(fixture), in: fixture.dir.path) }
        try await eventually("T2 to be running with T1 done") {
            fixture.marked("engine.pid") && readStatus(fixture.state)?.task("T1")?.state == .done
                && readStatus(fixture.state)?.milestone("M1")?.state == .merged
        }
        let engine = try #require(Int32(fixture.lines("engine.pid").first ?? ""))
        #expect(kill(engine, SIGKILL) == 0)
        let killed = await run.value
        #expect(killed.status == 128 + SIGKILL)

        let crashed = try #require(readStatus(fixture.state))
        #expect(!crashed.live)
        #expect(crashed.session.status == .running, "a killed engine cannot record anything")
        #expect(crashed.task("T2")?.state == .working)
        let session = crashed.session.id
        #expect(!OrphanReaper.groups(ofRun: session).isEmpty, "the killed engine's agent (sleep 60) is still running")

        fixture.dir.write("marks/fast", "")
        let resumed = await runCLI(runArguments(fixture, ["--resume"]), in: fixture.dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let status = try resumed.json()
        #expect(status["session_id"]?.stringValue == session)
        #expect(status["status"] == "succeeded")
        #expect((status["tasks"]?.arrayValue ?? []).allSatisfy { $0["state"] == "done" })
        #expect(status["milestones"]?.arrayValue?.map { $0["state"] } == ["merged", "merged"])
        let runs = fixture.lines("runs").map { $0.split(separator: " ").prefix(2).joined(separator: " ") }
        #expect(runs == ["T1 1", "T2 1", "T2 2", "T3 1"], "T1 was not redone; T2's cut-short iteration ran again as iteration 2")
        #expect(OrphanReaper.groups(ofRun: session).isEmpty, "the resumed engine tore down what the dead one left")
        let integration = await git(["log", "--first-parent", "--format=%s", "integration"], in: fixture.repo)
        #expect(integration.lines == ["Merge agent/dev/T3 into integration", "Merge agent/dev/T2 into integration",
                                      "Merge agent/dev/T1 into integration", "Initial commit"])
    }
}
