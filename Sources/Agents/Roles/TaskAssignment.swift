/// What a role agent is given to work on: the task, its stored state (fresh or resumed) and
/// the branches of its dependencies.
public struct TaskAssignment: Sendable {
    /// The task.
    public var task: TaskSpec
    /// Its state in the store when it was handed over.
    public var record: TaskRecord
    /// The branches of its dependencies, in dependency order (merged into its branch first).
    public var dependencyBranches: [String]
}
