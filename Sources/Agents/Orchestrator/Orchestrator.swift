import Foundation
import Orchestration

/// The multi-agent orchestrator (seed 003): loads a project plan, runs one ``RoleAgent`` per
/// role over the task DAG, the ``CIEventBus`` and the ``MilestoneTracker``, and keeps the
/// session in `<state>/agents.db` so it can be resumed after a crash.
///
/// ```swift
/// let config = OrchestratorConfig(repositoryDirectory: repo, planDirectory: "plans/demo-project")
/// let status = try await Orchestrator(config: config).run()   // returns when the project settles
///
/// // Or act on it while it runs (seed: spawn_agent, status, wait_for_completion, stop):
/// let merged = try await withOrchestrator(config: config) { orchestrator in
///     _ = await orchestrator.waitForCompletion()
///     return try await orchestrator.milestonePR("M1")
/// }
/// ```
///
/// ## State
/// `idle` → `starting` (`SessionSetup`: plan, repository, session) → `running` → `stopping`
/// (after ``stop()`` or a signal: nothing new starts, running agents are cancelled, their
/// process groups torn down) → `finished`, or `failed` when the session could not start or the
/// state folder failed. Callers only signal (``requestStop(_:)``, ``spawnAgent(role:task:)``);
/// ``run()`` makes every transition, re-checking the state after each `await`.
///
/// ## Structure
/// This actor owns the lifecycle only. ``run()`` runs in the caller's task: `SessionSetup`
/// opens the session, then `SessionScheduler` runs it (the bus pump, the tracker and the
/// scheduling loop that applies `ProjectScheduler`'s rules) until it settles or is stopped.
public actor Orchestrator {
    /// The configuration (``start(planDirectory:)`` may replace the project folder).
    public private(set) var config: OrchestratorConfig
    private let observers: ObserverSet

    struct Running: Sendable {
        var store: AgentStore
        var plan: ProjectPlan
        var sandbox: String
        var mailbox: Mailbox<SessionScheduler.Message>
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
    private var stopReason: StopReason?
    private var stopRequestedEarly = false
    /// Opened when the session runs (true), or ended without running (false).
    private let started = Latch<Bool>()
    /// Opened when the session has ended (settled, stopped or failed).
    private let ended = Latch<Void>()

    /// Creates an orchestrator; nothing runs before ``run()``.
    /// - Parameters:
    ///   - config: How to run.
    ///   - observers: Progress observers (the CLI's printer, tests).
    public init(config: OrchestratorConfig, observers: [any OrchestratorObserver] = []) {
        self.config = config
        self.observers = ObserverSet(observers: observers)
    }

    /// Why the session was stopped (SIGINT/SIGTERM), if it was.
    public var stoppedBy: StopReason? { stopReason }

    // MARK: - Lifecycle

    /// Runs the session to its end, in the caller's task: every task finished or unable to
    /// start, every milestone delivered or blocked; or until stopped.
    ///
    /// To act on the orchestrator while it runs, call this from a child task, or use
    /// ``withOrchestrator(config:observers:isolation:_:)``.
    ///
    /// - Returns: The final status (its session status is `succeeded`, `failed` or
    ///   `interrupted`).
    /// - Throws: ``PlanParseError``, ``PlanValidationError``, ``OrchestratorError``
    ///   (repository, state folder, session lock; `wrongState` when already started).
    public func run() async throws -> ProjectStatus {
        guard case .idle = state else {
            throw OrchestratorError(.wrongState, "this orchestrator was already started; create a new one")
        }
        state = .starting
        do {
            let status = try await SessionSetup(config: config).withSession { session in
                try await self.run(session)
            }
            state = .finished(status)
            started.open(true)
            ended.open(())
            return status
        } catch {
            state = .failed("\(error)")
            started.open(false)
            ended.open(())
            throw error
        }
    }

    private func run(_ session: PreparedSession) async throws -> ProjectStatus {
        let scheduler = SessionScheduler(session: session, config: config, observers: observers)
        state = .running(Running(store: session.store, plan: session.plan, sandbox: session.workspace.sandbox,
                                 mailbox: scheduler.mailbox))
        started.open(true)
        await observers.emit(.sessionStarted(session: session.id, project: session.plan.project, resumed: config.resume))
        if stopRequestedEarly { requestStop(stopReason) }
        return try await scheduler.run()
    }

    /// Waits until ``run()`` (called elsewhere) has started the session.
    /// - Returns: true when it runs; false when it ended without running, or on cancellation.
    func waitUntilStarted() async -> Bool {
        await started.wait() ?? false
    }

    /// Runs the session in the caller's task (seed: `start`) and returns true once it has ended;
    /// false at once when this orchestrator was already started.
    ///
    /// - Important: Unlike the seed's `start`, this does not return while the session runs:
    ///   use ``withOrchestrator(config:observers:isolation:_:)`` to act on it meanwhile.
    /// - Parameter planDirectory: A project folder replacing the configuration's.
    /// - Throws: As ``run()``.
    @available(*, deprecated, message: "start() runs the whole session now; use run(), or withOrchestrator { } to act on it while it runs")
    @discardableResult
    public func start(planDirectory: String? = nil) async throws -> Bool {
        guard case .idle = state else { return false }
        if let planDirectory { config.planDirectory = planDirectory }
        _ = try await run()
        return true
    }

    /// Waits until the session ends (seed: `wait_for_completion`).
    ///
    /// - Parameter timeout: How long to wait at most; nil waits without limit.
    /// - Returns: true when the session ended (settled, stopped or failed), false on timeout,
    ///   on cancellation or when it was never started.
    public func waitForCompletion(timeout: Duration? = nil) async -> Bool {
        if case .idle = state { return false }
        let ended = ended
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { await ended.wait() != nil }
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

    /// Asks the session to stop without waiting: nothing new starts, running agents are
    /// cancelled (their process groups torn down), tasks stay resumable.
    ///
    /// - Parameter reason: The signal that asked for it, if any (decides the exit code).
    public func requestStop(_ reason: StopReason? = nil) {
        switch state {
        case .running(let running):
            stopReason = reason
            state = .stopping(running)
            running.mailbox.send(.stop)
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
        switch state {
        case .starting, .running, .stopping: _ = await waitForCompletion()
        case .idle, .finished, .failed: break
        }
    }

    // MARK: - While it runs

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
    public func spawnAgent(role: String, task: String) async throws(AgentSpawnError) -> AgentInstance {
        guard case .running(let running) = state else { throw ProjectScheduler.notRunning }
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
        let refusal = await withCheckedContinuation { (reply: CheckedContinuation<AgentSpawnError?, Never>) in
            if !running.mailbox.send(.spawn(index, reply)) { reply.resume(returning: ProjectScheduler.notRunning) }
        }
        if let refusal { throw refusal }
        return AgentInstance(role: role, task: task, branch: ProjectPlan.branch(role: role, task: task),
                             worktree: SessionSetup.worktree(sandbox: running.sandbox, role: role, task: task))
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
}
