import Orchestration

/// A session ready to run (what ``SessionSetup`` hands the orchestrator): its plan, store,
/// workspace and settings, with the state folder locked and, when resumed, the dead engine's
/// leftovers torn down.
struct PreparedSession: Sendable {
    /// The session id.
    var id: String
    /// The project.
    var plan: ProjectPlan
    /// The session's store (`<state>/agents.db`).
    var store: AgentStore
    /// The state folder.
    var stateDirectory: StateDirectory
    /// The git workspace (repository, sandbox, integration branch), set up.
    var workspace: Workspace
    /// Wakes the bus when another process appends an event.
    var wake: WakeChannel
    /// Merge complete milestones (else prepare pull requests).
    var autoMerge: Bool
    /// The iteration budget of tasks without their own.
    var maxRetries: Int
    /// The pause between iterations.
    var retryInterval: Duration
    /// The stall threshold of tasks without their own.
    var stallAfter: Int
    /// Each task's stored state when the session (re)started.
    var taskStates: [String: TaskState]
    /// The environment every agent starts from.
    var environment: [String: String]
}
