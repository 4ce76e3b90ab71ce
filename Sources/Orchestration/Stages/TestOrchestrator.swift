import Orchestration

/// Runs the tests: by default the components of type `test`, canary or stable (SPEC §6).
public struct TestOrchestrator: Orchestrator {
    /// `test`.
    public let stage = Stage.test
    /// Creates the orchestrator.
    public init() {}
}
