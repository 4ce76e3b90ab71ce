import Orchestration

/// The orchestrator's scheduling rules as a value type (no I/O): which tasks may start now,
/// which can never start, and when the project is settled.
///
/// - A task starts when every dependency is `done`, its role has a free slot (`max_parallel`)
///   and, without auto-spawn, someone asked for it.
/// - A task blocked on the bus gives its slot back while it waits (it is parked: it still has
///   its agent, and the project is not settled while it waits). Woken, it takes the next free
///   slot of its role before any new task of that role starts.
/// - A task whose dependency failed, stalled or timed out blocked (directly or transitively)
///   never starts.
/// - The project is settled when nothing runs and every task that has not finished can never
///   start.
///
/// ``SessionScheduler`` drives it through the event methods (``advance()``,
/// ``taskFinished(_:_:)``, ``reclaimRequested(_:)``, ``stopRequested()``, ...), each returning
/// the ``Action``s to carry out; the finer methods below them are the rules themselves.
struct ProjectScheduler {
    /// What the session's scheduling loop must do.
    enum Action: Equatable {
        /// Start an agent on the task.
        case start(Int)
        /// Let the woken parked task go on: it has a slot again (or the session stops).
        case grant(Int)
        /// Hand the milestone tracker a settlement: the task ended in a final state, or (state
        /// nil) can never start, for the reason given. The loop waits for
        /// ``settlementProcessed()`` of each before the session is over.
        case settle(Int, TaskState?, reason: String?)
        /// Stop: close the roles, cancel the running agents, let every woken task go on.
        case cancelAll
        /// The session is over: everything settled, or stopped with nothing running.
        case finish
    }

    enum Slot: Equatable {
        case pending
        case running
        case finished(TaskState)
    }

    let tasks: [TaskSpec]
    let dependencies: [[Int32]]
    let order: [Int]
    let capacity: [String: Int]
    let indexByID: [String: Int]
    private(set) var slots: [Slot]
    /// Tasks holding a slot, per role (parked tasks do not).
    private(set) var runningPerRole: [String: Int] = [:]
    /// Running tasks blocked on the bus, without a slot.
    private(set) var parked: Set<Int> = []
    /// Parked tasks that were woken and wait for a slot, oldest first.
    private(set) var reclaiming: [Int] = []
    var autoSpawn: Bool
    private(set) var requested: Set<Int> = []
    private(set) var stopping = false
    /// Settlements handed to the tracker and not processed yet.
    private(set) var settlementsPending = 0
    /// Whether the tasks that can never start were reported (once, when first settled).
    private(set) var reportedUnreachable = false

    /// - Parameters:
    ///   - plan: The project.
    ///   - states: The stored state of each task (fresh: all pending). Tasks that were working
    ///     or blocked count as requested, so they restart first even without auto-spawn.
    ///   - autoSpawn: Whether ready tasks start by themselves.
    init(plan: ProjectPlan, states: [String: TaskState], autoSpawn: Bool) {
        tasks = plan.tasks
        dependencies = plan.graph.dependencies
        order = plan.graph.topologicalOrder
        indexByID = plan.graph.indexByID
        var capacity: [String: Int] = [:]
        for role in plan.roles { capacity[role.name] = role.maxParallel }
        self.capacity = capacity
        self.autoSpawn = autoSpawn
        var slots: [Slot] = []
        var requested: Set<Int> = []
        for (index, task) in plan.tasks.enumerated() {
            let state = states[task.id] ?? .pending
            if state.isFinal {
                slots.append(.finished(state))
            } else {
                slots.append(.pending)
                if state == .working || state == .blocked { requested.insert(index) }
            }
        }
        self.slots = slots
        self.requested = requested
    }

    // MARK: - Events

    /// What to do now: give free slots to woken tasks, start what may start, report once what
    /// can never start, and finish when settled (or stopped with nothing running).
    mutating func advance() -> [Action] {
        if stopping { return runningCount == 0 ? [.finish] : [] }
        var actions = grantReclaimed().map(Action.grant) + takeStartable().map(Action.start)
        guard isSettled else { return actions }
        if !reportedUnreachable {
            reportedUnreachable = true
            for (index, reason) in unreachable {
                settlementsPending += 1
                actions.append(.settle(index, nil, reason: reason))
            }
        }
        if settlementsPending == 0 { actions.append(.finish) }
        return actions
    }

    /// A task's agent ended its work: a final outcome goes to the tracker.
    mutating func taskFinished(_ index: Int, _ outcome: TaskOutcome) -> [Action] {
        finished(index, outcome)
        guard let state = outcome.state else { return [] }
        settlementsPending += 1
        return [.settle(index, state, reason: outcome.reason)]
    }

    /// The tracker processed one settlement.
    mutating func settlementProcessed() {
        precondition(settlementsPending > 0, "a settlement processed that was never handed over")
        settlementsPending -= 1
    }

    /// A parked task was woken and wants its slot back: granted now, or once one frees (see
    /// ``advance()``); at once while stopping, since it is being cancelled anyway.
    mutating func reclaimRequested(_ index: Int) -> [Action] {
        if stopping || reclaim(index) { return [.grant(index)] }
        return []
    }

    /// Stop asked for: nothing starts any more, running agents are cancelled.
    mutating func stopRequested() -> [Action] {
        guard !stopping else { return [] }
        stop()
        return [.cancelAll]
    }

    // MARK: - Rules

    /// Tasks running now.
    var runningCount: Int { slots.count { $0 == .running } }

    /// Whether task `index` has every dependency done.
    func isReady(_ index: Int) -> Bool {
        dependencies[index].allSatisfy { slots[Int($0)] == .finished(.done) }
    }

    /// Marks the tasks that may start now as running and returns them (plan order; tasks that
    /// were interrupted mid-work first).
    mutating func takeStartable() -> [Int] {
        guard !stopping else { return [] }
        // Woken parked tasks of a role come before its new tasks.
        let waitingRoles = Set(reclaiming.map { tasks[$0].role })
        var started: [Int] = []
        let candidates = slots.indices.filter { requested.contains($0) } + slots.indices.filter { !requested.contains($0) }
        for index in candidates where slots[index] == .pending {
            guard autoSpawn || requested.contains(index), isReady(index) else { continue }
            let role = tasks[index].role
            guard !waitingRoles.contains(role), runningPerRole[role, default: 0] < capacity[role, default: 1] else { continue }
            slots[index] = .running
            runningPerRole[role, default: 0] += 1
            started.append(index)
        }
        return started
    }

    /// Records the end of a running task (an interrupted one goes back to pending).
    mutating func finished(_ index: Int, _ outcome: TaskOutcome) {
        guard slots[index] == .running else { preconditionFailure("task \(tasks[index].id) finished while \(slots[index])") }
        if parked.remove(index) != nil {
            reclaiming.removeAll { $0 == index }
        } else {
            runningPerRole[tasks[index].role, default: 1] -= 1
        }
        slots[index] = outcome.state.map(Slot.finished) ?? .pending
    }

    /// A running task blocks on the bus: its slot is free for another task of its role.
    mutating func park(_ index: Int) {
        guard slots[index] == .running, !parked.contains(index) else { return }
        parked.insert(index)
        runningPerRole[tasks[index].role, default: 1] -= 1
    }

    /// A parked task was woken and wants a slot again: true when it has one now; otherwise it
    /// waits in line and ``grantReclaimed()`` gives it one when a slot of its role frees.
    mutating func reclaim(_ index: Int) -> Bool {
        guard parked.contains(index), !reclaiming.contains(index) else { return !parked.contains(index) }
        let role = tasks[index].role
        // Behind the woken tasks of its role that already wait.
        if !reclaiming.contains(where: { tasks[$0].role == role }), takeSlot(unparking: index) { return true }
        reclaiming.append(index)
        return false
    }

    /// Gives free slots to woken parked tasks, oldest first; returns those that got one.
    mutating func grantReclaimed() -> [Int] {
        var granted: [Int] = []
        for index in reclaiming where takeSlot(unparking: index) { granted.append(index) }
        reclaiming.removeAll { granted.contains($0) }
        return granted
    }

    /// Gives a parked task a slot of its role if one is free.
    private mutating func takeSlot(unparking index: Int) -> Bool {
        let role = tasks[index].role
        guard runningPerRole[role, default: 0] < capacity[role, default: 1] else { return false }
        runningPerRole[role, default: 0] += 1
        parked.remove(index)
        return true
    }

    /// Asks for a task to start (``Orchestrator/spawnAgent(role:task:)``): it starts as soon as
    /// its dependencies are done and its role has a free slot (at once when both hold).
    /// - Throws: ``AgentSpawnError`` when it is running or finished, or can never start, or the
    ///   session stops.
    mutating func request(_ index: Int) throws(AgentSpawnError) {
        guard !stopping else { throw Self.notRunning }
        let task = tasks[index]
        switch slots[index] {
        case .running: throw AgentSpawnError(.alreadyStarted, "task \(task.id) already has an agent")
        case .finished(let state): throw AgentSpawnError(.alreadyStarted, "task \(task.id) is already \(state.rawValue)")
        case .pending: break
        }
        if let reason = unreachableReason(index) {
            throw AgentSpawnError(.notReady, "task \(task.id) can never start: \(reason)")
        }
        requested.insert(index)
    }

    /// Stops starting tasks.
    mutating func stop() { stopping = true }

    /// The answer to a spawn request once the session stops or is over.
    static let notRunning = AgentSpawnError(.notRunning, "the orchestrator is not running; start it first")

    /// Why a pending task can never start (a dependency failed, stalled or timed out blocked, directly or
    /// transitively), or nil.
    func unreachableReason(_ index: Int) -> String? {
        var reasons = [String?](repeating: nil, count: tasks.count)
        for node in order {
            for dependency in dependencies[node] {
                let dep = Int(dependency)
                switch slots[dep] {
                case .finished(let state) where state.isUnsuccessful:
                    reasons[node] = "its dependency \(tasks[dep].id) \(state.rawValue)"
                default:
                    if slots[dep] == .pending, let inherited = reasons[dep] {
                        reasons[node] = "its dependency \(tasks[dep].id) cannot start (\(inherited))"
                    }
                }
                if reasons[node] != nil { break }
            }
            if node == index { return reasons[node] }
        }
        return reasons[index]
    }

    /// Every pending task that can never start, with the reason.
    var unreachable: [(Int, String)] {
        slots.indices.compactMap { index in
            guard slots[index] == .pending, let reason = unreachableReason(index) else { return nil }
            return (index, reason)
        }
    }

    /// Nothing runs, and nothing that has not finished can ever start (with auto-spawn; without
    /// it, pending tasks wait for ``request(_:)``).
    var isSettled: Bool {
        guard runningCount == 0 else { return false }
        return slots.indices.allSatisfy { index in
            slots[index] != .pending || unreachableReason(index) != nil
        }
    }
}
