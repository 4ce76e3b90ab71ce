/// What happens in a session, as observers see it (progress lines, tests, metrics).
public enum AgentProgress: Sendable, Hashable {
    /// A session started or resumed.
    case sessionStarted(session: String, project: String, resumed: Bool)
    /// A task got its worktree and its agent starts.
    case taskStarted(task: String, role: String, branch: String, worktree: String)
    /// An iteration of a task's agent started.
    case iterationStarted(task: String, iteration: Int)
    /// An iteration ended: `verdict` is `done`, `blocked`, `not_yet`, `failed`, `stalled` or
    /// `interrupted`; `detail` says why.
    case iterationFinished(task: String, iteration: Int, verdict: String, detail: String)
    /// A task's agent exited 42: the task waits for these events (empty: any event for it).
    case taskBlocked(task: String, awaiting: [String])
    /// A blocked task woke up on these events.
    case taskWoken(task: String, events: [String])
    /// A task's CI plan started.
    case ciStarted(task: String)
    /// A task's CI plan ended.
    case ciFinished(task: String, passed: Bool, runID: String?, detail: String)
    /// A task reached a final state.
    case taskFinished(task: String, state: TaskState, reason: String?)
    /// A milestone changed state.
    case milestoneChanged(milestone: String, state: MilestoneState, detail: String)
    /// An event arrived on the bus.
    case busEvent(name: String, task: String?, seq: Int64)
    /// The session ended with this status.
    case sessionFinished(session: String, status: SessionRecord.Status)
}
