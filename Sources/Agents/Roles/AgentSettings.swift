import Orchestration

/// What every role agent of a session shares: the store, the bus, the workspace, the CI runner,
/// the clock and the loop's settings.
public struct AgentSettings: Sendable {
    /// The session's store.
    public var store: AgentStore
    /// The session's bus.
    public var bus: CIEventBus
    /// The git workspace.
    public var workspace: Workspace
    /// The CI runner, if the project has a CI plan.
    public var ci: CIRunner?
    /// The clock of `retry_interval` waits (tests inject a manual one).
    public var clock: any Clock<Duration>
    /// The pause between iterations.
    public var retryInterval: Duration
    /// The iteration budget of tasks without their own `max_retries`.
    public var maxRetries: Int
    /// The stall threshold of tasks without their own `stall_after` (0: off).
    public var stallAfter: Int
    /// The state folder (logs, prompts).
    public var stateDirectory: StateDirectory
    /// The session id.
    public var session: String
    /// The project folder.
    public var projectDirectory: String
    /// The environment every agent starts from (the engine's, plus `OMNIBASE_STATE_DIR` and
    /// `OMNIBASE_AGENTS_CLI`).
    public var environment: [String: String]
    /// The progress observers.
    var observers: ObserverSet
    /// The Slurm runner of each role with `executor: slurm` (one poller per role).
    var slurmRunners: [String: SlurmStepRunner] = [:]
    /// The roles' slots, which a task blocked on the bus gives back while it waits.
    var slots: RoleSlots?
}

/// How a task blocked on the bus gives its role's slot (`max_parallel`) back while it waits,
/// and takes one again when woken, before any new task of its role starts. Without it, a role
/// with `max_parallel: 1` whose first task waits for an event only its second task produces
/// would wait forever.
struct RoleSlots: Sendable {
    /// The task blocks now.
    var park: @Sendable (_ task: String) -> Void
    /// The task was woken: returns once it has a slot again.
    var reclaim: @Sendable (_ task: String) async -> Void
}
