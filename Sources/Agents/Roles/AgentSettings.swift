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
}
