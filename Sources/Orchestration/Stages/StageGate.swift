import Orchestration

/// Checks a stage's gate (SPEC §6 `gates`) before anything of the stage runs.
///
/// `"gates": {"ci": {"require_passed": ["pre-commit"]}}` is met when the run history holds a
/// succeeded run of stage `pre-commit` on the current git commit (its `git_commit` label is
/// `HEAD`, or its `git_tree` label is `HEAD^{tree}`, see ``GitRevision``) that skipped no
/// critical component for an open circuit breaker and ran the stage's full default selection:
/// a run narrowed by `--tags`, `--filter`, `--lifecycle`, `--from` or `--to` (its
/// `narrowed_by` label) does not count.
public enum StageGate {
    /// One condition of a gate and whether it holds.
    public struct Condition: Sendable, Hashable {
        /// The stage that must have passed.
        public var requiredStage: Stage
        /// Whether it has.
        public var met: Bool
        /// The run that meets it, if any.
        public var runID: String?
        /// One sentence: what was required and what was found.
        public var detail: String

        /// The condition as JSON.
        public var json: JSONValue {
            .object([
                "require_passed": .string(requiredStage.rawValue),
                "met": .bool(met),
                "run_id": runID.map { .string($0) } ?? .null,
                "detail": .string(detail),
            ])
        }
    }

    /// Evaluates every condition of `stage`'s gate (none when it has no gate).
    /// - Throws: ``EngineError`` when the run history cannot be read.
    /// - Parameters:
    ///   - stateDirectory: the state folder, or nil when it does not exist (nothing has passed).
    ///   - statePath: its path, for messages.
    public static func evaluate(stage: Stage, registry: Registry, stateDirectory: StateDirectory?, statePath: String,
                                revision: GitRevision?, workingDirectory: String) throws(EngineError) -> [Condition] {
        guard let gate = registry.gates[stage] else { return [] }
        var runs: [RunStore.RunRecord] = []
        if let stateDirectory {
            do {
                let store = try RunStore(stateDirectory: stateDirectory, readOnly: true)
                runs = try store.runs(status: .succeeded, limit: 10_000)
            } catch where error.code == .unknownReference {
                runs = []  // No runs.db yet: nothing has passed.
            }
        }
        return gate.requirePassed.map { required in
            guard let revision else {
                return Condition(requiredStage: required, met: false, runID: nil,
                                 detail: "stage \(stage) requires stage \(required) to have passed on the current git commit, "
                                     + "but \(workingDirectory) is not a git work tree with a commit")
            }
            let short = String(revision.commit.prefix(12))
            var narrowed: (runID: String, by: String)?
            let match = runs.first { record in
                guard record.stage == required.rawValue else { return false }
                let labels = RunRequest(json: record.options, stage: record.stage).labels
                if let skipped = labels[StageLabels.breakerSkippedCritical], !skipped.isEmpty { return false }
                let sameRevision = labels[StageLabels.gitCommit] == revision.commit
                    || (labels[StageLabels.gitTree].map { $0 == revision.headTree } ?? false)
                guard sameRevision else { return false }
                if let by = labels[StageLabels.narrowedBy], !by.isEmpty {
                    if narrowed == nil { narrowed = (record.runID, by) }
                    return false
                }
                return true
            }
            if let match {
                return Condition(requiredStage: required, met: true, runID: match.runID,
                                 detail: "stage \(required) passed on commit \(short) (run \(match.runID))")
            }
            let found = narrowed.map { "only a narrowed run passed there (run \($0.runID), \($0.by)), and a gate counts "
                + "only a full run of the stage" } ?? "and no such run is recorded in \(statePath)"
            return Condition(requiredStage: required, met: false, runID: nil,
                             detail: "stage \(stage) requires stage \(required) to have passed on commit \(short), "
                                 + "\(found); run 'omnibase-agents orch --stage \(required)' first")
        }
    }
}

/// The labels a stage run carries (``RunRequest/labels``, readable from `runs.db`).
public enum StageLabels {
    /// `git rev-parse HEAD` when the stage started.
    public static let gitCommit = "git_commit"
    /// The staged tree when the working tree's tracked files matched it.
    public static let gitTree = "git_tree"
    /// The stage's mode.
    public static let mode = "mode"
    /// The registry file.
    public static let registry = "registry"
    /// Components not started because their circuit was open (comma-separated), and those
    /// of them that are critical (such a run does not count as the stage passing).
    public static let breakerSkipped = "breaker_skipped"
    /// See ``breakerSkipped``.
    public static let breakerSkippedCritical = "breaker_skipped_critical"
    /// Components run as a half-open breaker's trial (comma-separated).
    public static let breakerTrials = "breaker_trials"
    /// The selection options that narrowed the stage's default selection (`--filter name=lint`);
    /// absent for a full default run, the only kind a gate counts.
    public static let narrowedBy = "narrowed_by"
}
