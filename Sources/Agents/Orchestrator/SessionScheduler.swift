import Orchestration

/// Runs a prepared session to its end: the bus pump, the milestone tracker, progress lines for
/// bus events and the scheduling loop, in one task group.
///
/// The scheduling loop applies ``ProjectScheduler``'s decisions (the pure rules: what starts,
/// what can never start, when the project is settled): it owns a second task group with one
/// child per task being worked on, and reacts to one ``Message`` at a time from its mailbox (a
/// task ended or blocked, a spawn request, a stop, the tracker handled a settlement).
struct SessionScheduler: Sendable {
    /// What the scheduling loop reacts to.
    enum Message: Sendable {
        /// A task's agent ended its work on it.
        case finished(Int, TaskOutcome)
        /// ``Orchestrator/spawnAgent(role:task:)`` asks for a task; the answer is nil when it
        /// will start (now or once it is ready), else why not.
        case spawn(Int, CheckedContinuation<AgentSpawnError?, Never>)
        /// Stop: nothing new starts, running agents are cancelled.
        case stop
        /// The tracker handled one settlement.
        case trackerProcessed
        /// A task blocked on the bus: its role's slot is free meanwhile.
        case parked(String)
        /// A parked task was woken: resume the continuation once it has a slot again.
        case reclaim(String, CheckedContinuation<Void, Never>)
    }

    let session: PreparedSession
    let config: OrchestratorConfig
    let observers: ObserverSet
    /// Where the orchestrator signals the loop (``Message/spawn(_:_:)``, ``Message/stop``).
    let mailbox = Mailbox<Message>()

    /// Runs the session until every task finished or can never start and every settlement was
    /// handled, or until stopped; records the session's final status.
    ///
    /// - Returns: The final status (`succeeded`, `failed`, or `interrupted` when stopped).
    /// - Throws: ``OrchestratorError`` when the state folder fails.
    func run() async throws -> ProjectStatus {
        let plan = session.plan
        let store = session.store
        let bus = CIEventBus(store: store)
        let mailbox = mailbox
        let tracker = MilestoneTracker(plan: plan, store: store, workspace: session.workspace, autoMerge: session.autoMerge,
                                       stateDirectory: session.stateDirectory, session: session.id, observers: observers,
                                       processed: { mailbox.send(.trackerProcessed) })
        let roles = makeRoles(bus: bus)
        let knownSeq = (try? await store.events(after: 0).last?.seq) ?? 0
        let busEvents = await bus.subscribe(after: knownSeq)
        let observers = observers
        let wake = session.wake

        enum ServiceExit: Sendable {
            case bus
            case tracker
            case events
            case scheduled(interrupted: Bool)
        }
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
                .scheduled(interrupted: await self.schedule(roles: roles, tracker: tracker))
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
        await observers.emit(.sessionFinished(session: session.id, status: final))
        return status
    }

    /// One agent per role, sharing the session's settings; a task blocked on the bus gives its
    /// slot back through the mailbox.
    private func makeRoles(bus: CIEventBus) -> [String: RoleAgent] {
        let plan = session.plan
        let mailbox = mailbox
        var settings = AgentSettings(
            store: session.store, bus: bus, workspace: session.workspace,
            ci: plan.ciPlanPath.map { CIRunner(planPath: $0, stateDirectory: session.stateDirectory, projectDirectory: plan.directory) },
            clock: config.clock, retryInterval: session.retryInterval, maxRetries: session.maxRetries,
            stallAfter: session.stallAfter, stateDirectory: session.stateDirectory, session: session.id,
            projectDirectory: plan.directory, environment: session.environment, observers: observers,
            slots: RoleSlots(
                park: { task in mailbox.send(.parked(task)) },
                reclaim: { task in
                    await withCheckedContinuation { continuation in
                        // A closed mailbox means the session is over: nothing to wait for.
                        if !mailbox.send(.reclaim(task, continuation)) { continuation.resume() }
                    }
                }))
        for role in plan.roles where role.executor == .slurm {
            // Jobs are named after the session, so a resumed session finds what a dead engine left.
            settings.slurmRunners[role.name] = SlurmStepRunner(runID: session.id, settings: role.slurm, environment: [:])
        }
        return Dictionary(uniqueKeysWithValues: plan.roles.map { ($0.name, RoleAgent(role: $0, settings: settings)) })
    }

    /// The scheduling loop: carries out what ``ProjectScheduler`` decides for each message.
    /// Returns whether the session was stopped.
    private func schedule(roles: [String: RoleAgent], tracker: MilestoneTracker) async -> Bool {
        let plan = session.plan
        let store = session.store
        let mailbox = mailbox
        var rules = ProjectScheduler(plan: plan, states: session.taskStates, autoSpawn: config.autoSpawn)
        /// Woken parked tasks waiting for a slot.
        var reclaims: [Int: CheckedContinuation<Void, Never>] = [:]
        await withTaskGroup(of: Void.self) { group in
            /// Carries out actions; returns false once the session is over.
            func perform(_ actions: [ProjectScheduler.Action]) async -> Bool {
                for action in actions {
                    switch action {
                    case .start(let index):
                        guard let role = roles[plan.tasks[index].role] else { continue }
                        group.addTask { mailbox.send(.finished(index, await Self.work(on: index, of: plan, by: role, store: store))) }
                    case .grant(let index):
                        reclaims.removeValue(forKey: index)?.resume()
                    case .settle(let index, let state, let reason):
                        let id = plan.tasks[index].id
                        if state == nil, let reason {
                            _ = try? await store.updateTask(id) { $0.reason = "cannot start: \(reason)" }
                        }
                        tracker.record(.init(task: id, state: state, reason: reason))
                    case .cancelAll:
                        for role in roles.values { await role.close() }
                        group.cancelAll()
                        for continuation in reclaims.values { continuation.resume() }
                        reclaims.removeAll()
                    case .finish:
                        return false
                    }
                }
                return true
            }

            func handle(_ message: Message) async {
                switch message {
                case .finished(let index, let outcome):
                    _ = await perform(rules.taskFinished(index, outcome))
                case .trackerProcessed:
                    rules.settlementProcessed()
                case .spawn(let index, let reply):
                    do {
                        try rules.request(index)
                        reply.resume(returning: nil)
                    } catch {
                        reply.resume(returning: error)
                    }
                case .parked(let task):
                    if let index = plan.graph.indexByID[task] { rules.park(index) }
                case .reclaim(let task, let continuation):
                    guard let index = plan.graph.indexByID[task] else {
                        continuation.resume()
                        break
                    }
                    reclaims[index] = continuation
                    _ = await perform(rules.reclaimRequested(index))
                case .stop:
                    _ = await perform(rules.stopRequested())
                }
            }

            // A stop asked for before the loop ran comes first: nothing starts then.
            for message in mailbox.drain() { await handle(message) }
            while await perform(rules.advance()) {
                guard let message = await mailbox.next() else { break }
                await handle(message)
            }
            group.cancelAll()
            for continuation in reclaims.values { continuation.resume() }
        }
        // Nothing is scheduled any more: later requests are refused, queued ones answered.
        mailbox.close()
        for message in mailbox.drain() {
            switch message {
            case .spawn(_, let reply): reply.resume(returning: ProjectScheduler.notRunning)
            case .reclaim(_, let continuation): continuation.resume()
            case .finished, .stop, .trackerProcessed, .parked: break
            }
        }
        return rules.stopping
    }

    /// A role agent's work on a task, from its stored record and its dependencies' branches
    /// (in plan order).
    private static func work(on index: Int, of plan: ProjectPlan, by role: RoleAgent, store: AgentStore) async -> TaskOutcome {
        let task = plan.tasks[index]
        let dependencies = plan.graph.dependencies[index].map { Int($0) }.sorted {
            (plan.graph.topologicalOrder.firstIndex(of: $0) ?? 0) < (plan.graph.topologicalOrder.firstIndex(of: $1) ?? 0)
        }.map { ProjectPlan.branch(role: plan.tasks[$0].role, task: plan.tasks[$0].id) }
        do {
            guard let record = try await store.task(task.id) else { return .failed("task \(task.id) is missing from agents.db") }
            return await role.work(on: TaskAssignment(task: task, record: record, dependencyBranches: dependencies))
        } catch {
            return .failed("\(error)")
        }
    }
}
