import Orchestration

/// A stage's control point (seeds 000 and 001): one interface, `run(context) -> report`, and one
/// execution flow, ``StageRunner``, shared by the stages that run components.
///
/// | type | stage |
/// | --- | --- |
/// | ``PreCommitOrchestrator`` | `pre-commit` |
/// | ``CIOrchestrator`` | `ci` |
/// | ``TestOrchestrator`` | `test` |
/// | ``PipelineOrchestrator`` | `pipeline` |
/// | ``RegistryOrchestrator`` | `registry` |
public protocol Orchestrator: Sendable {
    /// The stage this orchestrator runs.
    var stage: Stage { get }

    /// Runs the stage.
    /// - Parameter context: the registry, environment, mode and requests.
    /// - Returns: the stage's report; its `exitCode` follows SPEC §5.
    /// - Throws: ``EngineError``: exit 1 when a gate is not met or a pre hook fails (nothing of
    ///   the stage ran), 2 for configuration errors, 3 for unknown components or runs, and the
    ///   engine's codes (74, 75, ...).
    func run(_ context: ExecutionContext) async throws(EngineError) -> StageReport
}

extension Orchestrator {
    /// Runs the stage through the shared flow (``StageRunner``).
    public func run(_ context: ExecutionContext) async throws(EngineError) -> StageReport {
        try await StageRunner(stage: stage).run(context)
    }
}

extension Stage {
    /// The orchestrator of this stage.
    public var orchestrator: any Orchestrator {
        switch self {
        case .preCommit: PreCommitOrchestrator()
        case .ci: CIOrchestrator()
        case .test: TestOrchestrator()
        case .pipeline: PipelineOrchestrator()
        case .registry: RegistryOrchestrator()
        }
    }
}
