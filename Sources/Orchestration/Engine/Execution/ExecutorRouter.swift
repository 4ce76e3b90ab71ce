/// Sends each step to the runner of its executor (SPEC §9): the step's own `executor`, else the
/// run's; closure steps always run locally.
public struct ExecutorRouter: StepRunner, LoopSafeRunner {
    /// Runs local steps (and closure steps).
    public let local: any StepRunner
    /// The runners of the other executors the run's steps use.
    public let others: [ExecutorKind: any StepRunner]
    /// The executor of steps that do not name one.
    public let defaultKind: ExecutorKind

    /// Creates a router.
    public init(local: any StepRunner, others: [ExecutorKind: any StepRunner] = [:], defaultKind: ExecutorKind = .local) {
        self.local = local
        self.others = others.filter { $0.key != .local }
        self.defaultKind = defaultKind
    }

    /// The executor that runs `step` when the run's default is `defaultKind`.
    public static func kind(of step: Step, defaultKind: ExecutorKind) -> ExecutorKind {
        guard case .process = step.action else { return .local }
        return step.executor ?? defaultKind
    }

    public func run(_ step: Step, context: AttemptContext) async -> AttemptOutcome {
        await (others[Self.kind(of: step, defaultKind: defaultKind)] ?? local).run(step, context: context)
    }

    public var asksBeforeStarting: Bool { local.asksBeforeStarting || others.values.contains { $0.asksBeforeStarting } }

    /// Whether all of its runners never block.
    package var neverBlocksItsThread: Bool {
        ([local] + Array(others.values)).allSatisfy { ($0 as? any LoopSafeRunner)?.neverBlocksItsThread == true }
    }

    public func admit(_ step: Step, context: AttemptContext) async -> Admission {
        let runner = others[Self.kind(of: step, defaultKind: defaultKind)] ?? local
        return runner.asksBeforeStarting ? await runner.admit(step, context: context) : .run
    }

    /// The other executors first (a cluster cancels its jobs, so they end as cancelled rather
    /// than killed by the local scan), then the local runner.
    public func reclaimLostAttempts(runID: String) async -> [LostAttempt] {
        await reclaimLostAttempts(runID: runID, killGrace: .seconds(5))
    }

    /// The same, with `killGrace` between SIGTERM and SIGKILL for what each runner tears down.
    public func reclaimLostAttempts(runID: String, killGrace: Duration) async -> [LostAttempt] {
        var lost: [LostAttempt] = []
        for kind in others.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
            lost += await others[kind]?.reclaimLostAttempts(runID: runID, killGrace: killGrace) ?? []
        }
        return lost + (await local.reclaimLostAttempts(runID: runID, killGrace: killGrace))
    }
}

/// The executors a run can hand steps to, besides the local one. This is where an executor is
/// registered: a new one is its ``StepRunner`` in a file of its own, a case of ``ExecutorKind``
/// (its name in plans and on the command line) and one line in ``runner(for:plan:runID:session:)``.
package enum ExecutorRegistry {
    /// The runner of `kind` for one run of `plan`; nil for `.local` (the session's own runner).
    static func runner(for kind: ExecutorKind, plan: Plan, runID: String, session: RunSession) -> (any StepRunner)? {
        switch kind {
        case .local: return nil
        case .slurm:
            return SlurmStepRunner(runID: runID, settings: plan.slurm, polling: session.slurmPolling,
                                   keepScripts: plan.secretMask().isEmpty)
        }
    }

    /// The router of one run: the session's runner for local and closure steps, and a runner of
    /// each other executor that some step of the plan uses.
    static func router(for plan: Plan, runID: String, defaultKind: ExecutorKind, session: RunSession) -> ExecutorRouter {
        var others: [ExecutorKind: any StepRunner] = [:]
        for kind in Set(plan.steps.map { ExecutorRouter.kind(of: $0, defaultKind: defaultKind) }) {
            others[kind] = runner(for: kind, plan: plan, runID: runID, session: session)
        }
        return ExecutorRouter(local: session.runner, others: others, defaultKind: defaultKind)
    }
}
