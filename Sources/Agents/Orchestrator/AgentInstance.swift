/// An agent working on a task (what ``Orchestrator/spawnAgent(role:task:)`` returns).
public struct AgentInstance: Sendable, Hashable {
    /// The role.
    public var role: String
    /// The task.
    public var task: String
    /// The task's branch, `agent/<role>/<task>`.
    public var branch: String
    /// The task's worktree.
    public var worktree: String
}
