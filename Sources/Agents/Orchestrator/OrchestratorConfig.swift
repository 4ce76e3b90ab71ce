import Foundation

/// How an ``Orchestrator`` runs a project (seed 003's `OrchestratorConfig`; SPEC §7's options).
///
/// Settings left `nil` come from the project plan, then from the defaults below. A task's own
/// `max_retries` / `stall_after` win over everything.
public struct OrchestratorConfig: Sendable {
    /// The git repository (`--repo`); default: the current folder.
    public var repositoryDirectory: String
    /// The project folder holding `plan.json`.
    public var planDirectory: String
    /// The worktrees' folder (`--sandbox`); default `<repo>/sandbox`.
    public var sandboxDirectory: String?
    /// The integration branch (`--integration-branch`); default: the plan's, else `integration`.
    public var integrationBranch: String?
    /// The iteration budget of a task (`--max-retries`); default: the plan's, else 100.
    public var maxRetries: Int?
    /// The pause between iterations (`--retry-interval`); default: the plan's, else 30 seconds.
    public var retryInterval: Duration?
    /// Iterations in a row without a change that stall a task; default: the plan's, else 3
    /// (0: off).
    public var stallAfter: Int?
    /// Start ready tasks by themselves (default); without it, tasks start through
    /// ``Orchestrator/spawnAgent(role:task:)``.
    public var autoSpawn: Bool
    /// Merge complete milestones into the integration branch (`--auto-merge`); otherwise prepare
    /// `milestone/<id>` branches and pull-request descriptions.
    public var autoMerge: Bool
    /// The state folder (`--state-dir`).
    public var stateDirectory: String
    /// Continue the project's last session (`--resume`) instead of starting a new one.
    public var resume: Bool
    /// Whether ``repositoryDirectory`` was given (`--repo`) rather than defaulted: a resume,
    /// which keeps the session's stored repository, refuses a different one.
    public var repositoryGiven = false
    /// The clock of `retry_interval` waits (tests inject a manual clock).
    public var clock: any Clock<Duration>
    /// The `omnibase-agents` executable, given to agents as `OMNIBASE_AGENTS_CLI` so they can
    /// run `"$OMNIBASE_AGENTS_CLI" ci emit ...`; nil when unknown.
    public var cliPath: String?
    /// How often the bus re-reads the store without a wake-up (a safety net; see ``WakeChannel``).
    public var busFallbackInterval: Duration

    /// Creates a configuration.
    /// - Parameters:
    ///   - repositoryDirectory: The git repository (default: the current folder).
    ///   - planDirectory: The project folder.
    ///   - stateDirectory: The state folder (default: `$OMNIBASE_STATE_DIR` or `./.state`).
    public init(repositoryDirectory: String = FileManager.default.currentDirectoryPath, planDirectory: String,
                sandboxDirectory: String? = nil, integrationBranch: String? = nil, maxRetries: Int? = nil,
                retryInterval: Duration? = nil, stallAfter: Int? = nil, autoSpawn: Bool = true, autoMerge: Bool = false,
                stateDirectory: String = ProcessInfo.processInfo.environment["OMNIBASE_STATE_DIR"] ?? ".state",
                resume: Bool = false, clock: any Clock<Duration> = ContinuousClock(), cliPath: String? = nil,
                busFallbackInterval: Duration = .seconds(5)) {
        self.repositoryDirectory = repositoryDirectory
        self.planDirectory = planDirectory
        self.sandboxDirectory = sandboxDirectory
        self.integrationBranch = integrationBranch
        self.maxRetries = maxRetries
        self.retryInterval = retryInterval
        self.stallAfter = stallAfter
        self.autoSpawn = autoSpawn
        self.autoMerge = autoMerge
        self.stateDirectory = stateDirectory
        self.resume = resume
        self.clock = clock
        self.cliPath = cliPath
        self.busFallbackInterval = busFallbackInterval
    }

    /// Defaults when neither the configuration nor the plan sets a value.
    public static let defaultMaxRetries = 100
    /// The default pause between iterations.
    public static let defaultRetryInterval: Duration = .seconds(30)
    /// The default stall threshold.
    public static let defaultStallAfter = 3
    /// The default integration branch.
    public static let defaultIntegrationBranch = "integration"
}
