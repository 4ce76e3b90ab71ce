/// How a task's CI run ended.
public struct CIResult: Sendable, Hashable {
    /// Whether the CI plan's run succeeded.
    public var passed: Bool
    /// The run's id in `runs.db` (`omnibase-agents runs show ID`), nil when it could not start.
    public var runID: String?
    /// A file with the run's summary and the tails of its failed steps' logs (the agent's
    /// `CI_LOG` after a failure).
    public var logPath: String
    /// One line: what failed, or that it passed.
    public var summary: String
}
