import Orchestration

/// Runs the pre-commit checks: by default the validators tagged `pre-commit`, canary or stable,
/// one at a time (SPEC §6), so `orch --stage pre-commit` can be a git pre-commit hook.
public struct PreCommitOrchestrator: Orchestrator {
    /// `pre-commit`.
    public let stage = Stage.preCommit
    /// Creates the orchestrator.
    public init() {}
}
