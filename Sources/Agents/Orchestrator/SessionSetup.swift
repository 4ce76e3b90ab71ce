import Foundation
import Orchestration

/// Opens an orchestrator's session: creates and locks the state folder, opens the store, loads
/// the plan, prepares the repository and the worktrees' sandbox, and records a new session or
/// takes over the one being resumed (closing the iterations a dead engine left open and tearing
/// down the agents it left running).
///
/// ``withSession(isolation:_:)`` holds the state folder's lock and the bus's wake channel for
/// exactly as long as its body runs.
struct SessionSetup {
    /// How to run.
    let config: OrchestratorConfig

    /// Opens the session, runs `body` with it, then releases the lock and the wake channel.
    ///
    /// - Throws: ``PlanParseError``, ``PlanValidationError``, ``OrchestratorError`` (repository,
    ///   state folder, session lock, nothing to resume), or what `body` throws.
    func withSession<Result>(isolation: isolated (any Actor)? = #isolation,
                             _ body: (PreparedSession) async throws -> Result) async throws -> Result {
        // A new session's plan and repository are checked before the state folder is made: bad
        // input leaves nothing behind (an empty agents.db would take later `ci emit`s).
        if !config.resume {
            _ = try ProjectPlanLoader.load(projectDirectory: URL(fileURLWithPath: config.planDirectory).standardizedFileURL.path)
            var isFolder: ObjCBool = false
            let repository = URL(fileURLWithPath: config.repositoryDirectory).standardizedFileURL.path
            guard FileManager.default.fileExists(atPath: repository, isDirectory: &isFolder), isFolder.boolValue else {
                throw OrchestratorError(.invalidConfiguration, "the repository folder \(repository) does not exist")
            }
        }
        do { try DescriptorGate.requireRoomToRun() } catch { throw OrchestratorError(.stateFailed, error.message) }
        let stateDirectory: StateDirectory
        do {
            stateDirectory = try StateDirectory(path: config.stateDirectory)
            try stateDirectory.ensureSubdirectory("agents/tmp")
        } catch {
            throw OrchestratorError(store: error)
        }
        let lock = try SessionLock(stateDirectory: stateDirectory)
        defer { lock.release() }
        let store: AgentStore
        do { store = try AgentStore(stateDirectory: stateDirectory) } catch { throw OrchestratorError(store: error) }
        let settings = try await prepare(store: store, stateDirectory: stateDirectory)
        let wake: WakeChannel
        do { wake = try WakeChannel(stateDirectory: stateDirectory, fallbackInterval: config.busFallbackInterval) } catch {
            throw OrchestratorError(store: error)
        }
        defer { wake.close() }
        var states: [String: TaskState] = [:]
        for record in try await store.tasks() { states[record.id] = record.state }
        let session = PreparedSession(
            id: settings.session, plan: settings.plan, store: store, stateDirectory: stateDirectory,
            workspace: settings.workspace, wake: wake, autoMerge: settings.autoMerge, maxRetries: settings.maxRetries,
            retryInterval: settings.retryInterval, stallAfter: settings.stallAfter, taskStates: states,
            environment: agentEnvironment(stateDirectory: stateDirectory, session: settings.session))
        return try await body(session)
    }

    /// The environment every agent starts from: the engine's, with the state folder, the session
    /// id and the CLI's path, without git's location variables.
    private func agentEnvironment(stateDirectory: StateDirectory, session: String) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["OMNIBASE_STATE_DIR"] = stateDirectory.path
        // Marks every agent process (and what it starts) as this session's, so a resumed session
        // can find and tear down what a crashed engine left running (``OrphanReaper``).
        environment["OMNIBASE_RUN_ID"] = session
        if let cli = config.cliPath { environment["OMNIBASE_AGENTS_CLI"] = cli }
        for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"] { environment[name] = nil }
        return environment
    }

    private struct Settings {
        var session: String
        var plan: ProjectPlan
        var workspace: Workspace
        var autoMerge: Bool
        var maxRetries: Int
        var retryInterval: Duration
        var stallAfter: Int
    }

    private func prepare(store: AgentStore, stateDirectory: StateDirectory) async throws -> Settings {
        let projectDirectory = URL(fileURLWithPath: config.planDirectory).standardizedFileURL.path
        let previous: SessionRecord?
        do { previous = try await store.session(projectDirectory: projectDirectory) } catch { throw OrchestratorError(store: error) }
        if config.resume {
            guard let previous else {
                throw OrchestratorError(.noSession, "no session of \(projectDirectory) in \(stateDirectory.path) to resume; start one without --resume")
            }
            return try await resume(previous, store: store, stateDirectory: stateDirectory, projectDirectory: projectDirectory)
        }
        return try await create(after: previous, store: store, stateDirectory: stateDirectory, projectDirectory: projectDirectory)
    }

    /// Takes over the project's last session.
    private func resume(_ previous: SessionRecord, store: AgentStore, stateDirectory: StateDirectory,
                        projectDirectory: String) async throws -> Settings {
        guard previous.status != .succeeded else {
            throw OrchestratorError(.invalidConfiguration,
                "session \(previous.id) of \(projectDirectory) already succeeded; nothing to resume (run without --resume to start a new session)")
        }
        let plan = try ProjectPlanLoader.load(bytes: previous.plan, displayPath: "\(projectDirectory)/plan.json (as stored with session \(previous.id))",
                                              directory: previous.projectDirectory)
        await store.attach(previous.id)
        let stored = previous.config
        // A resume keeps the session's stored settings: one given that contradicts them is
        // refused rather than silently ignored.
        let given = URL(fileURLWithPath: config.repositoryDirectory).standardizedFileURL.path
        let givenRoot = config.repositoryGiven
            ? await Git(scratchDirectory: stateDirectory.path + "/agents/tmp").run(["rev-parse", "--show-toplevel"], in: given)
            : nil
        if let givenRoot, (givenRoot.succeeded ? givenRoot.trimmed : given) != previous.repository {
            throw OrchestratorError(.invalidConfiguration,
                "session \(previous.id) works in the repository \(previous.repository); --resume continues it there, "
                + "not in \(given) (drop --repo, or start a new session in another --state-dir)")
        }
        if let sandbox = config.sandboxDirectory.map({ URL(fileURLWithPath: $0).standardizedFileURL.path }),
           sandbox != previous.sandbox,
           URL(fileURLWithPath: sandbox).resolvingSymlinksInPath().path
               != URL(fileURLWithPath: previous.sandbox).resolvingSymlinksInPath().path {
            throw OrchestratorError(.invalidConfiguration,
                "session \(previous.id) keeps its worktrees in \(previous.sandbox); --resume continues it there, "
                + "not in \(sandbox) (drop --sandbox)")
        }
        if let branch = config.integrationBranch, branch != previous.integrationBranch {
            throw OrchestratorError(.invalidConfiguration,
                "session \(previous.id) merges into the branch \(previous.integrationBranch); --resume continues it so, "
                + "not into \(branch) (drop --integration-branch)")
        }
        if config.autoMerge && stored["auto_merge"]?.boolValue == false {
            throw OrchestratorError(.invalidConfiguration,
                "session \(previous.id) was started without --auto-merge; --resume keeps its settings (drop --auto-merge)")
        }
        let autoMerge = stored["auto_merge"]?.boolValue ?? config.autoMerge
        let workspace = try await Workspace.open(repository: previous.repository, sandbox: previous.sandbox,
                                                 integrationBranch: previous.integrationBranch,
                                                 scratchDirectory: stateDirectory.path + "/agents/tmp")
        try await workspace.setUp(autoMerge: autoMerge)
        do { try await store.setStatus(.running, enginePID: Int(getpid())) } catch { throw OrchestratorError(store: error) }
        // The session lock is ours, so the engine that ran the session is gone: tear down the
        // agents it left running: its Slurm jobs (named after the session) first, then the local
        // processes (they carry OMNIBASE_RUN_ID=<session>).
        if plan.roles.contains(where: { $0.executor == .slurm }) {
            _ = await SlurmStepRunner(runID: previous.id, settings: SlurmSettings()).reclaimLostAttempts(runID: previous.id)
        }
        await OrphanReaper.reap(runID: previous.id, grace: .seconds(2))
        // Iterations the dead engine started and never ended stay on record, as engine_lost;
        // their tasks run again under the next iteration number.
        do { try await store.closeLostIterations() } catch { throw OrchestratorError(store: error) }
        return Settings(
            session: previous.id, plan: plan, workspace: workspace, autoMerge: autoMerge,
            maxRetries: config.maxRetries ?? stored["max_retries"]?.intValue ?? OrchestratorConfig.defaultMaxRetries,
            retryInterval: config.retryInterval ?? stored["retry_interval_sec"]?.doubleValue.map { .seconds($0) }
                ?? OrchestratorConfig.defaultRetryInterval,
            stallAfter: config.stallAfter ?? stored["stall_after"]?.intValue ?? OrchestratorConfig.defaultStallAfter)
    }

    /// Records a new session of the project (refused while its last one is unfinished).
    private func create(after previous: SessionRecord?, store: AgentStore, stateDirectory: StateDirectory,
                        projectDirectory: String) async throws -> Settings {
        let plan = try ProjectPlanLoader.load(projectDirectory: projectDirectory)
        if let previous, previous.status == .running || previous.status == .interrupted {
            throw OrchestratorError(.unfinishedSession,
                "session \(previous.id) of \(projectDirectory) did not finish (\(previous.status.rawValue)); continue it with --resume, or use another --state-dir")
        }
        let integration = config.integrationBranch ?? plan.integrationBranch ?? OrchestratorConfig.defaultIntegrationBranch
        let sandbox = config.sandboxDirectory.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        let repository = URL(fileURLWithPath: config.repositoryDirectory).standardizedFileURL.path
        let workspace = try await Workspace.open(repository: repository, sandbox: sandbox, integrationBranch: integration,
                                                 scratchDirectory: stateDirectory.path + "/agents/tmp")
        let branches = plan.tasks.map { ProjectPlan.branch(role: $0.role, task: $0.id) }
        let existing = await workspace.existingBranches(branches)
        guard existing.isEmpty else {
            throw OrchestratorError(.invalidConfiguration,
                "the branch\(existing.count == 1 ? "" : "es") \(existing.joined(separator: ", ")) already exist\(existing.count == 1 ? "s" : "") in \(workspace.repository) (from an earlier session?); resume that session with --resume, or delete them (git branch -D ...) and the sandbox \(workspace.sandbox)")
        }
        try await workspace.setUp(autoMerge: config.autoMerge)
        let maxRetries = config.maxRetries ?? plan.maxRetries ?? OrchestratorConfig.defaultMaxRetries
        let retryInterval = config.retryInterval ?? plan.retryInterval ?? OrchestratorConfig.defaultRetryInterval
        let stallAfter = config.stallAfter ?? plan.stallAfter ?? OrchestratorConfig.defaultStallAfter
        let session = Self.makeSessionID()
        let settings: JSONValue = .object([
            "auto_merge": .bool(config.autoMerge),
            "auto_spawn": .bool(config.autoSpawn),
            "max_retries": .int(maxRetries),
            "retry_interval_sec": .double(Double(retryInterval.components.seconds)
                + Double(retryInterval.components.attoseconds) / 1e18),
            "stall_after": .int(stallAfter),
            "ci_plan": plan.ciPlanPath.map { .string($0) } ?? .null,
        ])
        let record = SessionRecord(
            id: session, project: plan.project, projectDirectory: projectDirectory, repository: workspace.repository,
            sandbox: workspace.sandbox, integrationBranch: integration, config: settings, plan: plan.sourceBytes,
            status: .running, enginePID: Int(getpid()), startedAt: Timestamp.rfc3339(Date()), finishedAt: nil)
        let tasks = plan.tasks.enumerated().map { index, task in
            TaskRecord(
                id: task.id, role: task.role, title: task.title, milestone: plan.milestone(of: task.id)?.id ?? "",
                position: index, state: .pending, phase: nil, iteration: 0, budgetUsed: 0, unchangedStreak: 0,
                fingerprint: nil, branch: ProjectPlan.branch(role: task.role, task: task.id),
                worktree: Self.worktree(sandbox: workspace.sandbox, role: task.role, task: task.id), worktreeReady: false,
                awaiting: nil, eventCursor: 0, ciStatus: nil, ciRunID: nil, ciLog: nil, reason: nil, startedAt: nil,
                finishedAt: nil)
        }
        let milestones = plan.milestones.enumerated().map { index, milestone in
            MilestoneRecord(id: milestone.id, title: milestone.title, position: index, tasks: milestone.tasks, state: .pending,
                            merge: nil, pullRequest: nil, conflicts: [], reason: nil)
        }
        do {
            try await store.createSession(record, roles: plan.roles, tasks: tasks, milestones: milestones)
        } catch {
            throw OrchestratorError(store: error)
        }
        return Settings(session: session, plan: plan, workspace: workspace, autoMerge: config.autoMerge,
                        maxRetries: maxRetries, retryInterval: retryInterval, stallAfter: stallAfter)
    }

    /// A task's worktree: `<sandbox>/<role>/<task>`.
    static func worktree(sandbox: String, role: String, task: String) -> String { "\(sandbox)/\(role)/\(task)" }

    /// A new session id: `s-YYYYMMDD-HHMMSS-` and 6 random hex digits.
    static func makeSessionID(date: Date = Date()) -> String {
        let stamp = Timestamp.rfc3339(date)
        let digits = stamp.prefix(19).filter { $0.isNumber }
        let day = digits.prefix(8)
        let time = digits.dropFirst(8).prefix(6)
        let random = String(UInt32.random(in: 0...0xFFFFFF), radix: 16)
        return "s-\(day)-\(time)-" + String(repeating: "0", count: 6 - random.count) + random
    }
}
