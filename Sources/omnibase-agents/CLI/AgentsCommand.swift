import Agents
import Foundation
import Orchestration

/// `agents run PROJECT_DIR` and `agents status`: multi-agent orchestration (SPEC §7).
struct AgentsCommand: CLICommand {
    static let configuration = CommandConfiguration(
        name: "agents", abstract: "Multi-agent projects: agents run PROJECT_DIR, agents status.",
        sections: [CommonOptions.section],
        epilogue: """
        Exit codes: 0 every task done and every milestone delivered, 1 a task failed, stalled or ended
        blocked_timeout, or a milestone is blocked, 2 bad plan or arguments, 3 no session, 74 state folder
        or git failed, 75 another 'agents run' works in the state folder, 130/143 interrupted (resume
        with --resume).
        """,
        subcommands: [Run.self, Status.self])

    let action: any CLICommand

    init(parsing arguments: ParsedArguments) throws(EngineError) { action = try CLI.subcommand(of: Self.self, arguments) }
    func validate() throws(EngineError) { try action.validate() }
    func run() async throws(EngineError) -> Int32 { try await action.run() }

    /// `agents status [PROJECT_DIR]`.
    struct Status: CLICommand {
        static let configuration = CommandConfiguration(
            name: "status", arguments: "[PROJECT_DIR]", abstract: "The latest session's state.",
            discussion: """
            The latest session (of PROJECT_DIR when given): roles, tasks (state, iteration, branch), what each \
            blocked task waits for and since when, milestones. Works while 'agents run' is live and after it ended.
            """,
            sections: [OptionSection("Options:", [.single("--session", "ID", "A session instead of the latest.")])])

        let project: String?
        let session: String?
        let common: CommonOptions

        init(parsing arguments: ParsedArguments) throws(EngineError) {
            guard arguments.positionals.count <= 1 else { throw usage("agents status takes at most one project folder") }
            project = arguments.positionals.first
            session = arguments.value("--session")
            common = try CommonOptions(arguments)
        }

        func run() async throws(EngineError) -> Int32 {
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

    /// `agents run PROJECT_DIR`.
    struct Run: CLICommand {
        static let configuration = CommandConfiguration(
            name: "run", arguments: "PROJECT_DIR", abstract: "Run a project's agents.",
            discussion: """
            Runs the project in PROJECT_DIR/plan.json: one agent per role, each task in its own git worktree \
            (<sandbox>/<role>/<task>, branch agent/<role>/<task>) through the retry loop until done, blocked on \
            CI events (exit 42; wait_timeout_sec bounds the wait), failed or stalled; the project's CI plan runs \
            on every completed task; complete milestones are merged into the integration branch (--auto-merge) \
            or prepared as milestone/<id> branches with a pull-request description. Progress goes to stderr, \
            the final status to stdout.
            """,
            sections: [OptionSection("Options:", [
                .single("--repo", "DIR", "The git repository (default: the current folder)."),
                .single("--sandbox", "DIR", "The worktrees' folder (default: <repo>/sandbox)."),
                .single("--integration-branch", "B", """
                    The branch milestones are merged into (default: the plan's, else "integration"; created from \
                    HEAD when missing).
                    """),
                .integer("--max-retries", "N", 1...1_000_000,
                         "Iterations per task unless the task sets max_retries (default: the plan's, else 100)."),
                .single("--retry-interval", "SEC", "Pause between iterations (default: the plan's, else 30)."),
                .flag("--auto-merge", "Merge complete milestones into the integration branch."),
                .flag("--resume", """
                    Continue the project's last session after a crash or Ctrl-C; finished tasks are not redone; \
                    tasks that were working or blocked run a new iteration (next ITERATION, RESUMED=1 in the \
                    environment).
                    """),
            ])])

        let config: OrchestratorConfig
        let common: CommonOptions

        init(parsing arguments: ParsedArguments) throws(EngineError) {
            let project = try arguments.positionals(count: 1) {
                $0.isEmpty ? "agents run needs a project folder" : "agents run takes one project folder"
            }[0]
            guard !project.isEmpty else { throw usage("agents run needs a project folder, not an empty value") }
            common = try CommonOptions(arguments)
            var config = OrchestratorConfig(planDirectory: project, stateDirectory: common.stateDirectory)
            if let repo = try arguments.folder("--repo") {
                config.repositoryDirectory = repo
                config.repositoryGiven = true
            }
            config.sandboxDirectory = try arguments.folder("--sandbox")
            config.integrationBranch = arguments.value("--integration-branch")
            if let branch = config.integrationBranch,
               !branch.split(separator: "/", omittingEmptySubsequences: false).allSatisfy({ ProjectPlanLoader.isValidID(String($0)) }) {
                throw usage("--integration-branch \"\(branch)\" is not a valid branch name")
            }
            config.maxRetries = try arguments.integer("--max-retries")
            if let text = arguments.value("--retry-interval") {
                guard let seconds = Double(text), seconds.isFinite, seconds >= 0, seconds <= 86_400 else {
                    throw usage("option --retry-interval needs a number of seconds between 0 and 86400, not \"\(text)\"")
                }
                config.retryInterval = .seconds(seconds)
            }
            config.autoMerge = arguments.flag("--auto-merge")
            config.resume = arguments.flag("--resume")
            config.cliPath = AgentsCommand.executablePath()
            self.config = config
        }

        func run() async throws(EngineError) -> Int32 {
            try await runProject(config)
        }

        private func runProject(_ config: OrchestratorConfig) async throws(EngineError) -> Int32 {
            let printer = AgentsProgressPrinter(style: TextStyle.detect(fd: 2, noColor: common.noColor))
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
    }

    /// This executable's path (given to agents as OMNIBASE_AGENTS_CLI for `ci emit`).
    static func executablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
