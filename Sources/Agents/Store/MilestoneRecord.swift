import Orchestration

/// A milestone's durable state in `agents.db` (`milestones` table).
public struct MilestoneRecord: Sendable, Hashable {
    /// The milestone id.
    public var id: String
    /// Its title.
    public var title: String
    /// Its position in the plan.
    public var position: Int
    /// Its task ids.
    public var tasks: [String]
    /// The state.
    public var state: MilestoneState
    /// With `--auto-merge`, once merged: `{"branch", "commit", "merged_tasks": [...]}`.
    public var merge: JSONValue?
    /// Without `--auto-merge`, once complete: `{"branch", "base", "head", "description_file"}`.
    public var pullRequest: JSONValue?
    /// The files that conflicted when its branches were merged.
    public var conflicts: [String]
    /// Why it is blocked, if it is.
    public var reason: String?
}
