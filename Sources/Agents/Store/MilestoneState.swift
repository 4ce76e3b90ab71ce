/// A milestone's state (SPEC §7).
public enum MilestoneState: String, Sendable, Hashable, CaseIterable {
    /// Some of its tasks are not done.
    case pending
    /// It cannot complete or be delivered: a task failed or stalled, or merging its branches
    /// conflicted (the files are named).
    case blocked
    /// All its tasks are done and their CI passed; without `--auto-merge` its `milestone/<id>`
    /// branch and pull-request description are ready for review.
    case complete
    /// Its task branches are merged into the integration branch (`--auto-merge`).
    case merged
}
