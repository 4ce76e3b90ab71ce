import Foundation

/// A validated, fully resolved plan: a DAG of steps with run-wide settings.
///
/// Plans come from JSON files (``PlanLoader``) or are built in code; either way ``PlanGraph``
/// validates them before a run.
///
/// ```swift
/// let plan = Plan(id: "release", maxConcurrency: 4, steps: [
///     .process("test", "swift", ["test"]),
///     .process("tag", "git", ["tag", "v1.2.0"], dependsOn: ["test"]),
/// ])
/// let report = try await DAGExecutor(plan: plan).run()
/// ```
public struct Plan: Sendable {
    /// `plan_id`.
    public var id: String
    /// `version`.
    public var version: String
    /// Free-form `metadata`.
    public var metadata: JSONValue?
    /// The effective variables (plan's `variables` overridden by `--var`).
    public var variables: [String: String]
    /// `globals.max_concurrency`: the most steps that run at once.
    public var maxConcurrency: Int
    /// `globals.kill_grace_sec`: SIGTERM to SIGKILL.
    public var killGrace: Duration
    /// The steps, in file order.
    public var steps: [Step]
    /// `globals.secrets`: names whose values are masked besides those the word rule finds
    /// (see ``SecretMask``).
    public var secretNames: Set<String>
    /// `globals.executor`: where steps without their own `executor` run; nil = the run's choice
    /// (`--executor`), else local.
    public var executor: ExecutorKind?
    /// `globals.slurm`: job settings for steps that run on Slurm.
    public var slurm: SlurmSettings
    /// Whether ``maxConcurrency`` is the default (the plan set none): the Slurm executor then
    /// allows more jobs in flight than this machine has cores.
    public var maxConcurrencyIsDefault: Bool
    /// `globals.retry_budget`: the most retries of a run (a session: `resume` starts it again),
    /// across all steps; nil = no cap beyond each step's `retries`.
    public var retryBudget: Int?

    /// Creates a plan.
    /// - Parameters:
    ///   - maxConcurrency: defaults to the number of CPU cores.
    public init(id: String, version: String = "1.0.0", metadata: JSONValue? = nil,
                variables: [String: String] = [:], maxConcurrency: Int? = nil,
                killGrace: Duration = .seconds(5), steps: [Step], secretNames: Set<String> = [],
                executor: ExecutorKind? = nil, slurm: SlurmSettings = SlurmSettings(), retryBudget: Int? = nil) {
        self.id = id
        self.version = version
        self.metadata = metadata
        self.variables = variables
        self.maxConcurrency = maxConcurrency ?? ProcessInfo.processInfo.activeProcessorCount
        self.killGrace = killGrace
        self.steps = steps
        self.secretNames = secretNames
        self.executor = executor
        self.slurm = slurm
        self.retryBudget = retryBudget
        maxConcurrencyIsDefault = maxConcurrency == nil
    }
}
