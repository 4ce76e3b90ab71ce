/// A milestone of a project plan: a set of tasks delivered together (merged into the
/// integration branch, or proposed as one pull request).
public struct MilestoneSpec: Sendable, Hashable {
    /// The milestone id (a branch name component: `milestone/<id>`).
    public var id: String
    /// `title`.
    public var title: String
    /// The ids of its tasks.
    public var tasks: [String]

    /// Creates a milestone.
    public init(id: String, title: String, tasks: [String]) {
        self.id = id
        self.title = title
        self.tasks = tasks
    }
}
