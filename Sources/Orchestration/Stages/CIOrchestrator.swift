import Orchestration

/// Runs the CI stage: by default every canary or stable component, concurrently (SPEC §6);
/// usually gated on the pre-commit stage having passed on the commit.
public struct CIOrchestrator: Orchestrator {
    /// `ci`.
    public let stage = Stage.ci
    /// Creates the orchestrator.
    public init() {}
}
