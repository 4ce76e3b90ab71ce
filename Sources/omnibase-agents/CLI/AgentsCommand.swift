import Agents
import Foundation
import Orchestration

/// `agents run PROJECT_DIR` and `agents status`: multi-agent orchestration (SPEC §7).
struct AgentsCommand: CLICommand {
    static let name = "agents"
    static let abstract = "Multi-agent projects: agents run PROJECT_DIR, agents status."
    static let help = """
    Usage: omnibase-agents agents run PROJECT_DIR [--repo DIR] [--sandbox DIR] [--integration-branch B]
                                  [--max-retries N] [--retry-interval SEC] [--auto-merge] [--resume]
           omnibase-agents agents status [PROJECT_DIR] [--session ID]

    run     Runs the project in PROJECT_DIR/plan.json: one agent per role, each task in its own git
            worktree (<sandbox>/<role>/<task>, branch agent/<role>/<task>) through the retry loop
            until done, blocked on CI events (exit 42; wait_timeout_sec bounds the wait), failed or
            stalled; the project's CI plan runs on every completed task; complete milestones are
            merged into the integration branch (--auto-merge) or prepared as milestone/<id>
            branches with a pull-request description.
            Progress goes to stderr, the final status to stdout.
    status  The latest session (of PROJECT_DIR when given): roles, tasks (state, iteration, branch),
            what each blocked task waits for and since when, milestones. Works while 'agents run'
            is live and after it ended.

    Options of run:
      --repo DIR                The git repository (default: the current folder).
      --sandbox DIR             The worktrees' folder (default: <repo>/sandbox).
      --integration-branch B    The branch milestones are merged into (default: the plan's, else
                                "integration"; created from HEAD when missing).
      --max-retries N           Iterations per task unless the task sets max_retries (default: the
                                plan's, else 100).
      --retry-interval SEC      Pause between iterations (default: the plan's, else 30).
      --auto-merge              Merge complete milestones into the integration branch.
      --resume                  Continue the project's last session after a crash or Ctrl-C;
                                finished tasks are not redone; tasks that were working or blocked
                                run a new iteration (next ITERATION, RESUMED=1 in the environment).
    Options of status:
      --session ID              A session instead of the latest.
    \(CommonOptions.help)

    Exit codes: 0 every task done and every milestone delivered, 1 a task failed, stalled or ended
    blocked_timeout, or a milestone is blocked, 2 bad plan or arguments, 3 no session, 74 state folder or git failed,
    75 another 'agents run' works in the state folder, 130/143 interrupted (resume with --resume).

    """

    enum Action {
        case run(OrchestratorConfig)
        case status(project: String?, session: String?)
    }

    let action: Action
    let common: CommonOptions
    let noColor: Bool

    init(arguments: [String]) throws(EngineError) {
        let scanner = try ArgumentScanner(
            arguments,
            valueOptions: CommonOptions.valueOptions.union(["--repo", "--sandbox", "--integration-branch", "--max-retries",
                                                            "--retry-interval", "--session"]),
            flags: CommonOptions.flags.union(["--auto-merge", "--resume"]))
        var positionals = scanner.remainingPositionals
        guard !positionals.isEmpty else { throw usage("agents needs an action: run PROJECT_DIR or status") }
        let word = positionals.removeFirst()
        common = try CommonOptions(scanner)
        noColor = scanner.flag("--no-color")
        switch word {
        case "run":
            guard positionals.count == 1 else {
                throw usage(positionals.isEmpty ? "agents run needs a project folder" : "agents run takes one project folder")
            }
            guard scanner.value("--session") == nil else { throw usage("--session is an option of agents status") }
            var config = OrchestratorConfig(planDirectory: positionals[0], stateDirectory: common.stateDirectory)
            if let repo = scanner.value("--repo") { config.repositoryDirectory = repo }
            config.sandboxDirectory = scanner.value("--sandbox")
            config.integrationBranch = scanner.value("--integration-branch")
            if let branch = config.integrationBranch,
               !branch.split(separator: "/", omittingEmptySubsequences: false).allSatisfy({ ProjectPlanLoader.isValidID(String($0)) }) {
                throw usage("--integration-branch \"\(branch)\" is not a valid branch name")
            }
            config.maxRetries = try scanner.integer("--max-retries", range: 1...1_000_000)
            if let text = scanner.value("--retry-interval") {
                guard let seconds = Double(text), seconds.isFinite, seconds >= 0, seconds <= 86_400 else {
                    throw usage("option --retry-interval needs a number of seconds between 0 and 86400, not \"\(text)\"")
                }
                config.retryInterval = .seconds(seconds)
            }
            config.autoMerge = scanner.flag("--auto-merge")
            config.resume = scanner.flag("--resume")
            config.cliPath = Self.executablePath()
            action = .run(config)
        case "status":
            guard positionals.count <= 1 else { throw usage("agents status takes at most one project folder") }
            for option in ["--repo", "--sandbox", "--integration-branch", "--max-retries", "--retry-interval"]
            where scanner.value(option) != nil {
                throw usage("\(option) is an option of agents run")
            }
            if scanner.flag("--auto-merge") || scanner.flag("--resume") { throw usage("--auto-merge and --resume are options of agents run") }
            action = .status(project: positionals.first, session: scanner.value("--session"))
        default:
            let hint = Suggestion.closest(to: word, among: ["run", "status"]).map { " (did you mean '\($0)'?)" } ?? ""
            throw usage("unknown agents action '\(word)'\(hint); use run or status")
        }
    }

    func run() async throws(EngineError) -> Int32 {
        switch action {
        case .run(let config): return try await runProject(config)
        case .status(let project, let session):
            let status: ProjectStatus
            do {
                status = try ProjectStatus.load(stateDirectory: common.stateDirectory, sessionID: session, projectDirectory: project)
            } catch {
                throw AgentsErrorMapping.engineError(error)
            }
            common.emit(json: status.json) { status.humanText(style: common.style) }
            return 0
        }
    }

    private func runProject(_ config: OrchestratorConfig) async throws(EngineError) -> Int32 {
        let printer = AgentsProgressPrinter(style: TextStyle.detect(fd: 2, noColor: noColor))
        let orchestrator = Orchestrator(config: config, observers: [printer])
        let signals = SignalStopSource()
        defer { signals.finish() }
        let result: Result<ProjectStatus, any Error> = await withTaskGroup(of: Result<ProjectStatus, any Error>?.self) { group in
            group.addTask {
                for await reason in signals.requests { await orchestrator.requestStop(reason) }
                return nil
            }
            group.addTask {
                do { return .success(try await orchestrator.run()) } catch { return .failure(error) }
            }
            var outcome: Result<ProjectStatus, any Error> = .failure(CancellationError())
            while let next = await group.next() {
                if let next {
                    outcome = next
                    break
                }
            }
            signals.finish()
            group.cancelAll()
            return outcome
        }
        let status: ProjectStatus
        switch result {
        case .success(let value): status = value
        case .failure(let error): throw AgentsErrorMapping.engineError(error)
        }
        common.emit(json: status.json) { status.humanText(style: common.style) }
        switch status.session.status {
        case .succeeded: return 0
        case .interrupted: return await orchestrator.stoppedBy?.exitCode ?? 130
        default: return 1
        }
    }

    /// This executable's path (given to agents as OMNIBASE_AGENTS_CLI for `ci emit`).
    static func executablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
