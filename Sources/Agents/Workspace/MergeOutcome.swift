/// How merging a milestone's task branches ended.
public enum MergeOutcome: Sendable, Hashable {
    /// Every branch merged; `commit` is the tip of the target branch.
    case merged(commit: String, mergedTasks: [String])
    /// Merging `task`'s branch conflicted in `files`; the target branch is as it was before the
    /// milestone's merges started, and every task branch is untouched.
    case conflict(task: String, branch: String, files: [String])
}
