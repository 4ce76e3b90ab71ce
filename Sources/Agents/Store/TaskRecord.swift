import Orchestration

/// A task's durable state in `agents.db` (`tasks` table): what `agents status` shows and what
/// `--resume` continues from.
public struct TaskRecord: Sendable, Hashable {
    /// What a working task is doing right now.
    public enum Phase: String, Sendable, Hashable {
        /// Preparing its worktree.
        case preparing
        /// Its agent command runs.
        case agent
        /// Its `done_when` check runs.
        case check
        /// Waiting `retry_interval` before the next iteration.
        case waiting
        /// Blocked on the bus.
        case blocked
        /// Committing its work.
        case committing
        /// Its CI plan runs.
        case ci
    }

    /// The task id.
    public var id: String
    /// Its role.
    public var role: String
    /// Its title.
    public var title: String
    /// Its milestone.
    public var milestone: String
    /// Its position in the plan.
    public var position: Int
    /// The state.
    public var state: TaskState
    /// What it is doing while working.
    public var phase: Phase?
    /// The number of the last iteration started (0 before the first).
    public var iteration: Int
    /// Iterations that count against the budget (every finished iteration but blocked ones).
    public var budgetUsed: Int
    /// Finished iterations in a row that changed nothing in the worktree.
    public var unchangedStreak: Int
    /// The worktree's fingerprint after the last finished iteration.
    public var fingerprint: String?
    /// Its branch, `agent/<role>/<task>`.
    public var branch: String
    /// Its worktree's path.
    public var worktree: String
    /// Whether the worktree was prepared (branch created, dependencies merged in).
    public var worktreeReady: Bool
    /// The events it waits for while blocked (`wait_for`, or any event for the task when empty).
    public var awaiting: [String]?
    /// Bus events up to this sequence number were seen by the task; a wait looks at later ones.
    public var eventCursor: Int64
    /// The last CI run's verdict: `running`, `passed` or `failed`.
    public var ciStatus: String?
    /// The last CI run's id in `runs.db`.
    public var ciRunID: String?
    /// The file with the last failed CI run's log (given to the agent as `CI_LOG`).
    public var ciLog: String?
    /// Why it failed, stalled, is blocked or pending (one sentence), if anything.
    public var reason: String?
    /// When its first iteration started.
    public var startedAt: String?
    /// When it reached a final state.
    public var finishedAt: String?
}
