import Orchestration

/// What an ``Orchestrator`` returns: the stage's ``RunReport`` (SPEC §4 with `stage`) and what
/// happened around it: gates, hooks, circuit breakers, warnings, timings.
///
/// Components skipped because their circuit is open (or a dependency's is) are steps of the run
/// that end `skipped` with the reason without starting (``RunRequest/notStarted``), stored as
/// reported; a critical one makes the stage fail (as a skipped critical step fails a run, SPEC
/// §2). The stored run also lists them in its label ``StageLabels/breakerSkipped``.
public struct StageReport: Sendable {
    /// A component skipped before the run because of a circuit breaker.
    public struct SkippedComponent: Sendable, Hashable {
        /// The component.
        public var name: String
        /// Why: its open circuit, or a dependency's.
        public var reason: String
        /// Whether it is critical.
        public var critical: Bool
    }

    /// What the stage did.
    public enum Outcome: Sendable {
        /// It ran: the run's report (every selected component among its steps).
        case ran(RunReport)
        /// Every selected component was skipped by circuit breakers: no run was started.
        case nothingStarted(traceID: String)
        /// A dry run.
        case dryRun(StageDryRun)
        /// The registry stage: the action's JSON and its human lines, as the registry says them:
        /// the renderer escapes and fits every line (registry text may hold control characters,
        /// a line feed in a tag among them, so the lines are kept apart until then).
        case administered(JSONValue, human: [String])
    }

    /// The stage.
    public var stage: Stage
    /// The mode it ran in.
    public var mode: StageMode
    /// What it did.
    public var outcome: Outcome
    /// Components skipped by circuit breakers, in plan order.
    public var skipped: [SkippedComponent]
    /// The gate's conditions (all met, or a dry run).
    public var gates: [StageGate.Condition]
    /// The hooks that ran (or were skipped), pre then post.
    public var hooks: [HookResult]
    /// Warnings (deprecated components, failed post hooks, ...).
    public var warnings: [String]
    /// The git commit the stage ran on.
    public var gitCommit: String?
    /// Timings (`--mode profile`).
    public var profile: StageProfile?
    /// The exit code (SPEC §5).
    public var exitCode: Int32
    /// The failure snapshot of a failed run (`runs/<id>/snapshot` in the state folder as given),
    /// which the human report points to as `runs show` does; nil when there is none.
    public var failureSnapshot: String?

    /// Creates a report.
    public init(stage: Stage, mode: StageMode, outcome: Outcome, skipped: [SkippedComponent] = [],
                gates: [StageGate.Condition] = [], hooks: [HookResult] = [], warnings: [String] = [],
                gitCommit: String? = nil, profile: StageProfile? = nil, exitCode: Int32) {
        self.stage = stage
        self.mode = mode
        self.outcome = outcome
        self.skipped = skipped
        self.gates = gates
        self.hooks = hooks
        self.warnings = warnings
        self.gitCommit = gitCommit
        self.profile = profile
        self.exitCode = exitCode
    }

    /// The run's report, if a run was started.
    public var run: RunReport? {
        if case .ran(let report) = outcome { return report }
        return nil
    }

    /// The report as JSON: for a run, SPEC §4's object (with `stage`) plus `mode`, `git_commit`,
    /// `gates`, `hooks`, `breaker_skipped`, `warnings` and, when profiling, `profile`.
    public var json: JSONValue {
        switch outcome {
        case .administered(let value, _):
            return value
        case .dryRun(let dryRun):
            var members: [JSONValue.Member] = [.init("stage", .string(stage.rawValue)), .init("mode", "dry-run")]
            members += dryRun.members
            members.append(.init("gates", .array(gates.map(\.json))))
            members.append(.init("warnings", .array(warnings.map { .string($0) })))
            return .object(members)
        case .ran(let report):
            guard case .object(var members) = report.json else { return report.json }
            if let index = members.firstIndex(where: { $0.key == "stage" }) {
                members.insert(.init("mode", .string(mode.rawValue)), at: index + 1)
            }
            members += extraMembers
            return .object(members)
        case .nothingStarted(let traceID):
            let steps = skipped.map { component -> JSONValue in
                .object([
                    "id": .string(component.name), "status": "skipped", "attempts": 0, "exit_code": nil, "signal": nil,
                    "timed_out": false, "started_at": nil, "finished_at": nil, "duration_sec": nil,
                    "error": .string(component.reason),
                ])
            }
            var members: [JSONValue.Member] = [
                .init("run_id", .null),
                .init("plan_id", .string(StagePlanBuilder.planID(stage))),
                .init("stage", .string(stage.rawValue)),
                .init("mode", .string(mode.rawValue)),
                .init("status", .string(exitCode == 0 ? "succeeded" : "failed")),
                .init("exit_code", .int(Int(exitCode))),
                .init("started_at", .null), .init("finished_at", .null), .init("duration_sec", .null),
                .init("summary", .object(["total": .int(steps.count), "succeeded": 0, "failed": 0,
                                          "skipped": .int(steps.count), "cancelled": 0])),
                .init("steps", .array(steps)),
                .init("trace_id", .string(traceID)),
            ]
            members += extraMembers
            return .object(members)
        }
    }

    private var extraMembers: [JSONValue.Member] {
        var members: [JSONValue.Member] = [
            .init("git_commit", gitCommit.map { .string($0) } ?? .null),
            .init("gates", .array(gates.map(\.json))),
            .init("hooks", .array(hooks.map(\.json))),
            .init("breaker_skipped", .array(skipped.map {
                .object(["id": .string($0.name), "critical": .bool($0.critical), "reason": .string($0.reason)])
            })),
            .init("warnings", .array(warnings.map { .string($0) })),
        ]
        if let profile { members.append(.init("profile", profile.json)) }
        return members
    }

    /// `matched`, `dependency of X` or `named`.
    static func describe(_ reason: StageSelection.Reason) -> String {
        switch reason {
        case .matched: return "matched"
        case .dependency(let dependent): return "dependency of \(dependent)"
        case .named: return "named"
        }
    }
}
