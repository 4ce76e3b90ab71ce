import Orchestration

/// The stages of `orch --stage ...` (SPEC §6, seeds 000 and 001).
public enum Stage: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Validators before a commit: by default validators tagged `pre-commit`, canary or stable, run one at a time.
    case preCommit = "pre-commit"
    /// Continuous integration: by default every canary or stable component, run concurrently.
    case ci
    /// Tests: by default components of type `test`, canary or stable.
    case test
    /// Named components as a chain, in the order given (`--from A --to B --to C`).
    case pipeline
    /// Administration of the registry file (`list`, `add`, `remove`, `inspect`, `reset`).
    case registry

    /// The stages that run components (every stage but `registry`).
    public static let executing: [Stage] = [.preCommit, .ci, .test, .pipeline]

    /// The name users type.
    public var description: String { rawValue }
}

/// How a stage runs its components (SPEC §6, the seeds' execution modes).
public enum StageMode: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// One component at a time.
    case sync
    /// Concurrently, up to the concurrency limit.
    case async
    /// Nothing starts: prints what would run, in order, with resolved commands.
    case dryRun = "dry-run"
    /// Runs one component at a time and adds timings: per component, critical path, engine overhead.
    case profile
    /// Runs the stored plan snapshot of an earlier run of the stage again, as a new run.
    case replay

    /// The name users type.
    public var description: String { rawValue }
}
