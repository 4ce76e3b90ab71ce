import Orchestration

/// A validated multi-agent project plan (`PROJECT_DIR/plan.json`, SPEC §7): roles with their
/// agent commands, tasks with dependencies, milestones and the project's CI plan.
///
/// Load one with ``ProjectPlanLoader``; everything in it has been checked (ids, references,
/// the task DAG, variables), so the orchestrator never meets a dangling reference.
public struct ProjectPlan: Sendable {
    /// `project`: the project's name.
    public var project: String
    /// The project folder's absolute path (relative paths in the plan resolve against it).
    public var directory: String
    /// `integration_branch`, if the plan names one (the CLI option overrides it).
    public var integrationBranch: String?
    /// `max_retries`: the default iteration budget of a task, if the plan sets one.
    public var maxRetries: Int?
    /// `retry_interval_sec`: the pause between iterations, if the plan sets one.
    public var retryInterval: Duration?
    /// `stall_after`: iterations in a row without a change in the worktree that end a task as
    /// `stalled`, if the plan sets it (0 turns stall detection off).
    public var stallAfter: Int?
    /// The roles, in file order.
    public var roles: [RoleSpec]
    /// The tasks, in file order.
    public var tasks: [TaskSpec]
    /// The milestones, in file order.
    public var milestones: [MilestoneSpec]
    /// The CI plan's absolute path (`ci.plan` resolved against ``directory``), if any.
    public var ciPlanPath: String?
    /// The tasks' dependency graph (task indices in file order).
    public var graph: PlanGraph
    /// The plan file's bytes, kept with the session.
    public var sourceBytes: [UInt8]

    /// The role named `name`.
    public func role(_ name: String) -> RoleSpec? { roles.first { $0.name == name } }

    /// The task with id `id`.
    public func task(_ id: String) -> TaskSpec? { graph.indexByID[id].map { tasks[$0] } }

    /// The milestone that holds task `id` (every task is in exactly one).
    public func milestone(of id: String) -> MilestoneSpec? { milestones.first { $0.tasks.contains(id) } }

    /// The git branch of a task: `agent/<role>/<task>`.
    public static func branch(role: String, task: String) -> String { "agent/\(role)/\(task)" }
}
