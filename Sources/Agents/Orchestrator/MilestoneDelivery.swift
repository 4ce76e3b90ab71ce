/// How a milestone was delivered (``Orchestrator/milestonePR(_:)``).
public enum MilestoneDelivery: Sendable, Hashable {
    /// Merged into the integration branch (`--auto-merge`); `commit` is the branch's tip after
    /// the milestone's merges.
    case merged(branch: String, commit: String)
    /// Ready for review: `branch` (`milestone/<id>`) against `base`, with a pull-request
    /// description in `descriptionFile`.
    case pullRequest(branch: String, base: String, descriptionFile: String)
}
