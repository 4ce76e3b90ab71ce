import Foundation
import Orchestration

/// The agent of one role: works on its role's tasks, at most `max_parallel` at once (tasks
/// blocked on the bus do not count), each in its own worktree, through the Ralph loop
/// (`RoleAgent+RalphLoop.swift`).
///
/// ## State
/// `open(active:)` holds the tasks being worked on and what each is doing (its phase), so
/// ``activeTasks`` and ``phases`` answer at once; `closed` refuses new work (the orchestrator is
/// stopping). The actor is re-entered while its tasks wait for processes, the store and the bus;
/// every transition re-reads the state after the `await` that preceded it.
///
/// The orchestrator decides *when* a task may start (dependencies done, capacity free) and
/// calls ``work(on:)``; the role agent refuses anything beyond its capacity as a second line of
/// defence.
public actor RoleAgent {
    enum State {
        case open(active: [String: TaskRecord.Phase])
        case closed
    }

    /// The role.
    public let role: RoleSpec
    let settings: AgentSettings
    private var state = State.open(active: [:])

    /// Creates the agent of a role.
    public init(role: RoleSpec, settings: AgentSettings) {
        self.role = role
        self.settings = settings
    }

    /// The tasks being worked on, sorted.
    public var activeTasks: [String] {
        switch state {
        case .open(let active): active.keys.sorted()
        case .closed: []
        }
    }

    /// What each active task is doing.
    public var phases: [String: TaskRecord.Phase] {
        switch state {
        case .open(let active): active
        case .closed: [:]
        }
    }

    /// Stops accepting work; tasks already running go on until cancelled.
    public func close() { state = .closed }

    /// Works on a task until it is done, failed, stalled or interrupted.
    ///
    /// - Parameter assignment: The task, its stored state and its dependencies' branches.
    /// - Returns: The outcome; a final one is already recorded in the store.
    public func work(on assignment: TaskAssignment) async -> TaskOutcome {
        guard admit(assignment.task.id) else {
            return .failed("role \(role.name) cannot take task \(assignment.task.id): it is closed, at capacity (max_parallel \(role.maxParallel)) or already works on it")
        }
        defer { release(assignment.task.id) }
        return await runLoop(assignment)
    }

    private func admit(_ task: String) -> Bool {
        // Tasks blocked on the bus hold no slot (``RoleSlots``).
        guard case .open(var active) = state, active[task] == nil,
              active.values.count(where: { $0 != .blocked }) < role.maxParallel else { return false }
        active[task] = .preparing
        state = .open(active: active)
        return true
    }

    private func release(_ task: String) {
        guard case .open(var active) = state else { return }
        active[task] = nil
        state = .open(active: active)
    }

    /// Records what a task does now (re-checked: the task may have been released meanwhile).
    func setPhase(_ task: String, _ phase: TaskRecord.Phase) {
        guard case .open(var active) = state, active[task] != nil else { return }
        active[task] = phase
        state = .open(active: active)
    }
}
