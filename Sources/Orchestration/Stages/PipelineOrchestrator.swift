import Orchestration

/// Runs named components as a chain in the order given: `--from A --to B --to C` runs A, then B,
/// then C, each only when the one before it succeeded (their registry dependencies are pulled
/// in as well).
public struct PipelineOrchestrator: Orchestrator {
    /// `pipeline`.
    public let stage = Stage.pipeline
    /// Creates the orchestrator.
    public init() {}
}
