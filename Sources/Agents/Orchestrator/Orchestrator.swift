import Foundation
import Orchestration

/// The multi-agent orchestrator (seed 003): loads a project plan, runs one ``RoleAgent`` per
/// role over the task DAG, the ``CIEventBus`` and the ``MilestoneTracker``, and keeps the
/// session in `<state>/agents.db` so it can be resumed after a crash.
///
/// ```swift
/// let orchestrator = Orchestrator(config: OrchestratorConfig(repositoryDirectory: repo, planDirectory: "plans/demo-project"))
/// let status = try await orchestrator.run()          // structured: returns when the project settles
/// ```
///
/// or, with the seed's lifecycle API: `try await start()`, then `await waitForCompletion()`,
/// `status()`, `milestonePR(_:)` and `stop()`.
///
/// ## State
/// `idle` → `starting` (plan, repository, session) → `running` → `stopping` (after ``stop()``
/// or a signal: nothing new starts, running agents are cancelled, their process groups torn
/// down) → `finished`, or `failed` when the session could not start or the state folder failed.
/// Callers only signal (``requestStop(_:)``, ``spawnAgent(role:task:)``); the run loop makes
/// every transition, re-checking the state after each `await`.
///
/// ## Structure
/// ``run()`` owns one task group: the bus pump, the tracker's loop and the scheduling loop. The
/// scheduling loop owns a second group with one child per task being worked on, and reacts to
/// one message at a time (a task ended, a spawn request, a stop, the tracker handled a
/// settlement) from its mailbox.
public actor Orchestrator {
    /// The configuration (``start(planDirectory:)`` may replace the project folder).
    public private(set) var config: OrchestratorConfig
    private let observers: ObserverSet

    enum Message: Sendable {
        case finished(Int, TaskOutcome)
        case spawned
        case stop(StopReason?)
        case trackerProcessed
        /// A task blocked on the bus: its role's slot is free meanwhile.
        case parked(String)
        /// A parked task was woken: resume the continuation once it has a slot again.
        case reclaim(String, CheckedContinuation<Void, Never>)
    }

    struct Running: Sendable {
        var store: AgentStore
        var session: String
        var plan: ProjectPlan
        var mailbox: Mailbox<Message>
    }

    enum State {
        case idle
        case starting
        case running(Running)
        case stopping(Running)
        case finished(ProjectStatus)
        case failed(String)
    }

    private var state = State.idle
    private var scheduler: ProjectScheduler?
    private var stopReason: StopReason?
    private var stopRequestedEarly = false
    private var startWaiters: [CheckedContinuation<Void, any Error>] = []
    private var completionWaiters: [Int: CheckedContinuation<Bool, Never>] = [:]
    private var nextWaiter = 0
    private var runTask: Task<ProjectStatus, any Error>?

    /// Creates an orchestrator.
    /// - Parameters:
    ///   - config: How to run.
    ///   - observers: Progress observers (the CLI's printer, tests).
    public init(config: OrchestratorConfig, observers: [any OrchestratorObserver] = []) {
        self.config = config
        self.observers = ObserverSet(observers: observers)
    }

    /// Why the session was stopped (SIGINT/SIGTERM), if it was.
    public var stoppedBy: StopReason? { stopReason }

    // MARK: - Seed API

    /// Starts the session in the background and returns once it runs (seed: `start`).
    ///
    /// - Parameter planDirectory: A project folder replacing the configuration's.
    /// - Returns: true when the session started; false when this orchestrator was already
    ///   started.
    /// - Throws: Whatever prevented the start (plan, repository, state folder errors).
    @discardableResult
    public func start(planDirectory: String? = nil) async throws -> Bool {
        guard case .idle = state else { return false }
        if let planDirectory { config.planDirectory = planDirectory }
        runTask = Task { try await self.run() }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            startWaiters.append(continuation)
        }
        return true
    }

    /// Waits until the session ends (seed: `wait_for_completion`).
    ///
    /// - Parameter timeout: How long to wait at most; nil waits without limit.
    /// - Returns: true when the session ended (settled, stopped or failed), false on timeout or
    ///   when it was never started.
    public func waitForCompletion(timeout: Duration? = nil) async -> Bool {
        switch state {
        case .idle: return false
        case .finished, .failed: return true
        default: break
        }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.completion() }
            if let timeout {
                group.addTask {
                    try? await Task.sleep(for: timeout)
                    return false
                }
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    private func completion() async -> Bool {
        switch state {
        case .finished, .failed: return true
        case .idle: return false
        default: break
        }
        let token = nextWaiter
        nextWaiter += 1
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                if Task.isCancelled {
                    continuation.resume(returning: false)
                } else {
                    completionWaiters[token] = continuation
                }
            }
        } onCancel: {
            Task { await self.cancelCompletionWaiter(token) }
        }
    }

    private func cancelCompletionWaiter(_ token: Int) {
        completionWaiters.removeValue(forKey: token)?.resume(returning: false)
    }

    /// Asks the session to stop without waiting: nothing new starts, running agents are
    /// cancelled (their process groups torn down), tasks stay resumable.
    ///
    /// - Parameter reason: The signal that asked for it, if any (decides the exit code).
    public func requestStop(_ reason: StopReason? = nil) {
        switch state {
        case .running(let running):
            stopReason = reason
            state = .stopping(running)
            running.mailbox.send(.stop(reason))
        case .idle, .starting:
            stopReason = reason
            stopRequestedEarly = true
        case .stopping, .finished, .failed:
            break
        }
    }

    /// Stops the session and waits until it has ended (seed: `stop`).
    public func stop() async {
        requestStop(nil)
        if runTask != nil || !completionWaiters.isEmpty || isActive { _ = await waitForCompletion() }
    }

    private var isActive: Bool {
        switch state {
        case .starting, .running, .stopping: true
        default: false
        }
    }

    /// Spawns the agent of a task (seed: `spawn_agent`); with auto-spawn off this is how tasks
    /// start.
    ///
    /// The agent starts at once when the task's dependencies are done and its role has a free
    /// slot, otherwise as soon as both hold (the status shows the task `pending` until then).
    ///
    /// - Parameters:
    ///   - role: The role.
    ///   - task: The task id (it must be the role's).
    /// - Returns: The agent's role, task, branch and worktree.
    /// - Throws: ``AgentSpawnError``: unknown role or task, wrong role, a dependency that failed
    ///   or stalled (`notReady`), already started or finished, orchestrator not running.
    public func spawnAgent(role: String, task: String) throws(AgentSpawnError) -> AgentInstance {
        guard case .running(let running) = state, var scheduler else {
            throw AgentSpawnError(.notRunning, "the orchestrator is not running; start it first")
        }
        let plan = running.plan
        guard let roleSpec = plan.role(role) else {
            let hint = Suggestion.closest(to: role, among: plan.roles.map(\.name)).map { " (did you mean \"\($0)\"?)" } ?? ""
            throw AgentSpawnError(.unknownRole, "unknown role \"\(role)\"\(hint)")
        }
        guard let index = plan.graph.indexByID[task] else {
            let hint = Suggestion.closest(to: task, among: plan.graph.ids).map { " (did you mean \"\($0)\"?)" } ?? ""
            throw AgentSpawnError(.unknownTask, "unknown task \"\(task)\"\(hint)")
        }
        let spec = plan.tasks[index]
        guard spec.role == roleSpec.name else {
            throw AgentSpawnError(.wrongRole, "task \(task) belongs to role \(spec.role), not \(role)")
        }
        try scheduler.request(index)
        self.scheduler = scheduler
        running.mailbox.send(.spawned)
        return AgentInstance(role: role, task: task, branch: ProjectPlan.branch(role: role, task: task),
                             worktree: Self.worktree(sandbox: currentSandbox, role: role, task: task))
    }

    /// The session's status: roles, tasks, awaited events, milestones (seed: `status`).
    /// - Throws: ``OrchestratorError`` (`wrongState`) before the session started.
    public func status() async throws -> ProjectStatus {
        switch state {
        case .running(let running), .stopping(let running):
            return try await running.store.status(live: true)
        case .finished(let status):
            return status
        case .idle, .starting:
            throw OrchestratorError(.wrongState, "the orchestrator has not started a session yet")
        case .failed(let message):
            throw OrchestratorError(.wrongState, "the session failed: \(message)")
        }
    }

    /// How a milestone was delivered: merged, or ready for review with its pull-request
    /// description (seed: `get_milestone_pr`); nil while it is not delivered.
    public func milestonePR(_ id: String) async throws -> MilestoneDelivery? {
        let status = try await status()
        guard let milestone = status.milestones.first(where: { $0.id == id }) else {
            throw OrchestratorError(.noSession, "unknown milestone \"\(id)\"")
        }
        if milestone.state == .merged, let merge = milestone.merge {
            return .merged(branch: merge["branch"]?.stringValue ?? "", commit: merge["commit"]?.stringValue ?? "")
        }
        if milestone.state == .complete, let pr = milestone.pullRequest {
            return .pullRequest(branch: pr["branch"]?.stringValue ?? "", base: pr["base"]?.stringValue ?? "",
                                descriptionFile: pr["description_file"]?.stringValue ?? "")
        }
        return nil
    }

    // MARK: - Running

    /// Runs the session to its end: every task finished or unable to start, every milestone
    /// delivered or blocked; or until stopped.
    ///
    /// - Returns: The final status (its session status is `succeeded`, `failed` or
    ///   `interrupted`).
    /// - Throws: ``PlanParseError``, ``PlanValidationError``, ``OrchestratorError``
    ///   (repository, state folder, session lock).
    public func run() async throws -> ProjectStatus {
        guard case .idle = state else {
            throw OrchestratorError(.wrongState, "this orchestrator was already started; create a new one")
        }
        state = .starting
        do {
            let status = try await runSession()
            state = .finished(status)
            finishWaiters(startError: nil)
            return status
        } catch {
            state = .failed("\(error)")
            finishWaiters(startError: error)
            throw error
        }
    }

    private func finishWaiters(startError: (any Error)?) {
        for waiter in startWaiters {
            if let startError { waiter.resume(throwing: startError) } else { waiter.resume() }
        }
        startWaiters.removeAll()
        for waiter in completionWaiters.values { waiter.resume(returning: true) }
        completionWaiters.removeAll()
    }

    private var currentSandbox = ""

    static func worktree(sandbox: String, role: String, task: String) -> String { "\(sandbox)/\(role)/\(task)" }

    private func runSession() async throws -> ProjectStatus {
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
        let prepared = try await prepareSession(store: store, stateDirectory: stateDirectory)
        let plan = prepared.plan
        currentSandbox = prepared.workspace.sandbox

        let wake: WakeChannel
        do { wake = try WakeChannel(stateDirectory: stateDirectory, fallbackInterval: config.busFallbackInterval) } catch {
            throw OrchestratorError(store: error)
        }
        defer { wake.close() }
        let bus = CIEventBus(store: store)
        let mailbox = Mailbox<Message>()
        let tracker = MilestoneTracker(plan: plan, store: store, workspace: prepared.workspace, autoMerge: prepared.autoMerge,
                                       stateDirectory: stateDirectory, session: prepared.session, observers: observers,
                                       processed: { mailbox.send(.trackerProcessed) })
        var environment = ProcessInfo.processInfo.environment
        environment["OMNIBASE_STATE_DIR"] = stateDirectory.path
        // Marks every agent process (and what it starts) as this session's, so a resumed session
        // can find and tear down what a crashed engine left running (``OrphanReaper``).
        environment["OMNIBASE_RUN_ID"] = prepared.session
        if let cli = config.cliPath { environment["OMNIBASE_AGENTS_CLI"] = cli }
        for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"] { environment[name] = nil }
        let settings = AgentSettings(
            store: store, bus: bus, workspace: prepared.workspace,
            ci: plan.ciPlanPath.map { CIRunner(planPath: $0, stateDirectory: stateDirectory, projectDirectory: plan.directory) },
            clock: config.clock, retryInterval: prepared.retryInterval, maxRetries: prepared.maxRetries,
            stallAfter: prepared.stallAfter, stateDirectory: stateDirectory, session: prepared.session,
            projectDirectory: plan.directory, environment: environment, observers: observers,
            slots: RoleSlots(
                park: { task in mailbox.send(.parked(task)) },
                reclaim: { task in
                    await withCheckedContinuation { continuation in
                        // A closed mailbox means the session is over: nothing to wait for.
                        if !mailbox.send(.reclaim(task, continuation)) { continuation.resume() }
                    }
                }))
        let roles = Dictionary(uniqueKeysWithValues: plan.roles.map { ($0.name, RoleAgent(role: $0, settings: settings)) })

        var states: [String: TaskState] = [:]
        for record in try await store.tasks() { states[record.id] = record.state }
        scheduler = ProjectScheduler(plan: plan, states: states, autoSpawn: config.autoSpawn)
        let running = Running(store: store, session: prepared.session, plan: plan, mailbox: mailbox)
        state = .running(running)
        for waiter in startWaiters { waiter.resume() }
        startWaiters.removeAll()
        await observers.emit(.sessionStarted(session: prepared.session, project: plan.project, resumed: config.resume))
        if stopRequestedEarly { requestStop(stopReason) }

        enum ServiceExit: Sendable {
            case bus
            case tracker
            case events
            case scheduled(Bool)
        }
        let knownSeq = (try? await store.events(after: 0).last?.seq) ?? 0
        let busEvents = await bus.subscribe(after: knownSeq)
        let observers = self.observers
        let interrupted = try await withThrowingTaskGroup(of: ServiceExit.self) { services in
            services.addTask {
                try await bus.run(wake: wake)
                return .bus
            }
            services.addTask {
                try await tracker.run()
                return .tracker
            }
            services.addTask {
                // Progress lines for events that arrive during the session.
                for await event in busEvents where !(event.source == CIEventBus.engineSource && event.name.hasPrefix("ci.")) {
                    await observers.emit(.busEvent(name: event.name, task: event.task, seq: event.seq))
                }
                return .events
            }
            services.addTask {
                .scheduled(await self.schedule(plan: plan, store: store, roles: roles, tracker: tracker, mailbox: mailbox))
            }
            var interrupted = false
            while let exit = try await services.next() {
                if case .scheduled(let stopped) = exit {
                    interrupted = stopped
                    break
                }
            }
            services.cancelAll()
            return interrupted
        }

        var status = try await store.status(live: true)
        let final: SessionRecord.Status = interrupted ? .interrupted : (status.succeeded ? .succeeded : .failed)
        do { try await store.setStatus(final) } catch { throw OrchestratorError(store: error) }
        status = try await store.status(live: false)
        await observers.emit(.sessionFinished(session: prepared.session, status: final))
        return status
    }

    /// The scheduling loop. Returns whether the session was stopped.
    private func schedule(plan: ProjectPlan, store: AgentStore, roles: [String: RoleAgent], tracker: MilestoneTracker,
                          mailbox: Mailbox<Message>) async -> Bool {
        var trackerPending = 0
        var reportedUnreachable = false
        var stopping = false
        /// Woken parked tasks waiting for a slot.
        var reclaims: [Int: CheckedContinuation<Void, Never>] = [:]
        await withTaskGroup(of: Void.self) { group in
            func startReady() {
                guard var scheduler = self.scheduler else { return }
                for index in scheduler.grantReclaimed() { reclaims.removeValue(forKey: index)?.resume() }
                let started = scheduler.takeStartable()
                self.scheduler = scheduler
                for index in started {
                    let task = plan.tasks[index]
                    guard let role = roles[task.role] else { continue }
                    let dependencies = plan.graph.dependencies[index].map { Int($0) }.sorted {
                        (plan.graph.topologicalOrder.firstIndex(of: $0) ?? 0) < (plan.graph.topologicalOrder.firstIndex(of: $1) ?? 0)
                    }.map { ProjectPlan.branch(role: plan.tasks[$0].role, task: plan.tasks[$0].id) }
                    group.addTask {
                        let outcome: TaskOutcome
                        do {
                            if let record = try await store.task(task.id) {
                                outcome = await role.work(on: TaskAssignment(task: task, record: record, dependencyBranches: dependencies))
                            } else {
                                outcome = .failed("task \(task.id) is missing from agents.db")
                            }
                        } catch {
                            outcome = .failed("\(error)")
                        }
                        mailbox.send(.finished(index, outcome))
                    }
                }
            }

            if case .stopping = state { stopping = true }
            if stopping {
                scheduler?.stop()
            } else {
                startReady()
            }
            while true {
                if stopping {
                    if (scheduler?.runningCount ?? 0) == 0 { break }
                } else if let scheduler, scheduler.isSettled {
                    if !reportedUnreachable {
                        reportedUnreachable = true
                        for (index, reason) in scheduler.unreachable {
                            let id = plan.tasks[index].id
                            _ = try? await store.updateTask(id) { $0.reason = "cannot start: \(reason)" }
                            trackerPending += 1
                            tracker.record(.init(task: id, state: nil, reason: reason))
                        }
                    }
                    if trackerPending == 0 { break }
                }
                guard let message = await mailbox.next() else { break }
                switch message {
                case .finished(let index, let outcome):
                    scheduler?.finished(index, outcome)
                    if let final = outcome.state {
                        trackerPending += 1
                        tracker.record(.init(task: plan.tasks[index].id, state: final, reason: outcome.reason))
                    }
                case .trackerProcessed:
                    trackerPending -= 1
                case .spawned:
                    break
                case .parked(let task):
                    if let index = plan.graph.indexByID[task] { scheduler?.park(index) }
                case .reclaim(let task, let continuation):
                    // Stopping: the task is being cancelled and needs no slot to notice.
                    guard !stopping, let index = plan.graph.indexByID[task], scheduler?.reclaim(index) == false else {
                        continuation.resume()
                        break
                    }
                    reclaims[index] = continuation
                case .stop:
                    if !stopping {
                        stopping = true
                        scheduler?.stop()
                        for role in roles.values { await role.close() }
                        group.cancelAll()
                        for continuation in reclaims.values { continuation.resume() }
                        reclaims.removeAll()
                    }
                }
                if !stopping { startReady() }
            }
            group.cancelAll()
            for continuation in reclaims.values { continuation.resume() }
        }
        return stopping
    }

    // MARK: - Session setup

    private struct PreparedSession: Sendable {
        var session: String
        var plan: ProjectPlan
        var workspace: Workspace
        var autoMerge: Bool
        var maxRetries: Int
        var retryInterval: Duration
        var stallAfter: Int
    }

    private func prepareSession(store: AgentStore, stateDirectory: StateDirectory) async throws -> PreparedSession {
        let projectDirectory = URL(fileURLWithPath: config.planDirectory).standardizedFileURL.path
        let scratch = stateDirectory.path + "/agents/tmp"
        let previous: SessionRecord?
        do { previous = try await store.session(projectDirectory: projectDirectory) } catch { throw OrchestratorError(store: error) }

        if config.resume {
            guard let previous else {
                throw OrchestratorError(.noSession, "no session of \(projectDirectory) in \(stateDirectory.path) to resume; start one without --resume")
            }
            guard previous.status != .succeeded else {
                throw OrchestratorError(.invalidConfiguration,
                    "session \(previous.id) of \(projectDirectory) already succeeded; nothing to resume (run without --resume to start a new session)")
            }
            let plan = try ProjectPlanLoader.load(bytes: previous.plan, displayPath: "\(projectDirectory)/plan.json (as stored with session \(previous.id))",
                                                  directory: previous.projectDirectory)
            await store.attach(previous.id)
            let stored = previous.config
            let autoMerge = stored["auto_merge"]?.boolValue ?? config.autoMerge
            let workspace = try await Workspace.open(repository: previous.repository, sandbox: previous.sandbox,
                                                     integrationBranch: previous.integrationBranch, scratchDirectory: scratch)
            try await workspace.setUp(autoMerge: autoMerge)
            do { try await store.setStatus(.running, enginePID: Int(getpid())) } catch { throw OrchestratorError(store: error) }
            // The session lock is ours, so the engine that ran the session is gone: tear down the
            // agents it left running (they carry OMNIBASE_RUN_ID=<session>).
            await OrphanReaper.reap(runID: previous.id, grace: .seconds(2))
            // Iterations the dead engine started and never ended stay on record, as engine_lost;
            // their tasks run again under the next iteration number.
            do { try await store.closeLostIterations() } catch { throw OrchestratorError(store: error) }
            return PreparedSession(
                session: previous.id, plan: plan, workspace: workspace, autoMerge: autoMerge,
                maxRetries: config.maxRetries ?? stored["max_retries"]?.intValue ?? OrchestratorConfig.defaultMaxRetries,
                retryInterval: config.retryInterval ?? stored["retry_interval_sec"]?.doubleValue.map { .seconds($0) }
                    ?? OrchestratorConfig.defaultRetryInterval,
                stallAfter: config.stallAfter ?? stored["stall_after"]?.intValue ?? OrchestratorConfig.defaultStallAfter)
        }

        let plan = try ProjectPlanLoader.load(projectDirectory: projectDirectory)
        if let previous, previous.status == .running || previous.status == .interrupted {
            throw OrchestratorError(.unfinishedSession,
                "session \(previous.id) of \(projectDirectory) did not finish (\(previous.status.rawValue)); continue it with --resume, or use another --state-dir")
        }
        let integration = config.integrationBranch ?? plan.integrationBranch ?? OrchestratorConfig.defaultIntegrationBranch
        let sandbox = config.sandboxDirectory.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        let repository = URL(fileURLWithPath: config.repositoryDirectory).standardizedFileURL.path
        let workspace = try await Workspace.open(repository: repository, sandbox: sandbox, integrationBranch: integration,
                                                 scratchDirectory: scratch)
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
        let now = Timestamp.rfc3339(Date())
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
            status: .running, enginePID: Int(getpid()), startedAt: now, finishedAt: nil)
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
        return PreparedSession(session: session, plan: plan, workspace: workspace, autoMerge: config.autoMerge,
                               maxRetries: maxRetries, retryInterval: retryInterval, stallAfter: stallAfter)
    }

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
