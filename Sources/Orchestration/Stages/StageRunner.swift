import Foundation
import Orchestration

/// The one execution flow of every stage that runs components (the seeds' shared base class):
///
/// 1. select the components (``StageSelection``) and resolve the mode;
/// 2. consult the circuit breakers (``BreakerStore``): open circuits are skipped with their
///    reason (and so are the components that depend on them), half-open ones get one trial;
/// 3. check the gate (``StageGate``): unmet, the stage stops here with exit 1;
/// 4. a dry run stops here and shows what would run;
/// 5. run the pre hooks in order: one failing stops the stage with exit 1;
/// 6. translate the components into a plan (``StagePlanBuilder``) and run it with
///    ``RunSession``, exactly as `run` does, labelled with the stage, the git commit and the
///    breakers' decisions (replay: the stage's latest run's snapshot, run again);
/// 7. record each component's outcome in its breaker;
/// 8. run the post hooks in order (their failures are reported as warnings);
/// 9. report.
public struct StageRunner: Sendable {
    /// The stage.
    public let stage: Stage

    /// Creates the flow of a stage.
    public init(stage: Stage) {
        precondition(stage != .registry, "the registry stage runs no components")
        self.stage = stage
    }

    /// Runs the stage.
    /// - Throws: ``EngineError``, see ``Orchestrator/run(_:)``.
    public func run(_ context: ExecutionContext) async throws(EngineError) -> StageReport {
        let loaded = try context.requireRegistry()
        let registry = loaded.registry
        let defaultMode = registry.stages[stage]?.mode ?? StageDefaults.of(stage).mode
        let mode = context.mode ?? defaultMode
        let runMode = (mode == .dryRun || mode == .replay) ? defaultMode : mode
        if runMode != .async, context.maxConcurrency != nil, mode != .replay {
            throw EngineError(.usage, "--max-concurrency applies to async mode; stage \(stage) runs in \(runMode) mode here")
        }
        // A dry run changes nothing, so it does not create a state folder that is not there.
        let readOnly = mode == .dryRun && !FileManager.default.fileExists(atPath: context.stateDirectory)
        let stateDirectory: StateDirectory?
        do { stateDirectory = readOnly ? nil : try StateDirectory(path: context.stateDirectory) } catch { throw EngineError(error) }

        var replaySource: RunStore.RunRecord?
        var entries: [StageSelection.Entry] = []
        var warnings: [String] = []
        var criteria = ""
        if mode == .replay, let stateDirectory {
            replaySource = try replayRecord(context, stateDirectory: stateDirectory)
        } else {
            let selection = try StageSelection.select(stage: stage, registry: registry, request: context.selection)
            entries = selection.entries
            warnings = selection.warnings
            criteria = selection.criteria
            for bound in [("--from", context.from), ("--to", context.to)] {
                if let name = bound.1, selection.entry(named: name) == nil {
                    if registry.component(named: name) == nil { throw registry.unknownComponent(name, context: bound.0) }
                    throw EngineError(.unknownReference, "\(bound.0) names component \"\(name)\", which stage \(stage) does not select")
                }
            }
        }

        let now = context.now()
        let breakers = try stateDirectory.map { directory throws(EngineError) in try BreakerStore(stateDirectory: directory).load() } ?? [:]
        let decision = BreakerDecision(entries: entries, registry: registry, breakers: breakers, now: now)
        let revision = await GitRevision.read(in: context.workingDirectory, environment: context.environment,
                                              staged: mode != .dryRun)
        let gates = try StageGate.evaluate(stage: stage, registry: registry, stateDirectory: stateDirectory,
                                           statePath: context.stateDirectory, revision: revision,
                                           workingDirectory: context.workingDirectory)
        let preHooks = registry.preHooks.filter { $0.applies(to: stage) }
        let postHooks = registry.postHooks.filter { $0.applies(to: stage) }

        for warning in warnings { context.notices(warning) }
        if mode == .dryRun {
            let dryRun = try makeDryRun(loaded, entries: entries, decision: decision, runMode: runMode, criteria: criteria,
                                        preHooks: preHooks, postHooks: postHooks)
            return StageReport(stage: stage, mode: .dryRun, outcome: .dryRun(dryRun), skipped: decision.skipped, gates: gates,
                               warnings: warnings, gitCommit: revision?.commit, exitCode: 0)
        }
        if let unmet = gates.first(where: { !$0.met }) {
            throw EngineError(.executionFailed, "stage \(stage) refused by its gate: \(unmet.detail)")
        }
        guard let stateDirectory else { preconditionFailure("only a dry run goes without a state folder") }

        let prepared = Prepared(loaded: loaded, stateDirectory: stateDirectory, mode: mode, runMode: runMode,
                                entries: entries, replaySource: replaySource, decision: decision, revision: revision,
                                gates: gates, warnings: warnings, preHooks: preHooks, postHooks: postHooks)
        let stops = StopFanout(source: context.stopRequests)
        let result: Result<StageReport, EngineError> = await withTaskGroup(of: Void.self) { group in
            group.addTask { await stops.pump() }
            defer { group.cancelAll() }
            do throws(EngineError) {
                return .success(try await execute(prepared, context: context, stops: stops))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    // MARK: - Running

    /// What the checks before the run decided.
    private struct Prepared: Sendable {
        var loaded: LoadedRegistry
        var stateDirectory: StateDirectory
        var mode: StageMode
        /// `sync`, `async` or `profile`: how the components run.
        var runMode: StageMode
        var entries: [StageSelection.Entry]
        var replaySource: RunStore.RunRecord?
        var decision: BreakerDecision
        var revision: GitRevision?
        var gates: [StageGate.Condition]
        var warnings: [String]
        var preHooks: [Registry.Hook]
        var postHooks: [Registry.Hook]
    }

    /// Hooks, the run, breakers, report: steps 5 to 9.
    private func execute(_ prepared: Prepared, context: ExecutionContext,
                         stops: StopFanout) async throws(EngineError) -> StageReport {
        let (loaded, stateDirectory, mode, runMode) = (prepared.loaded, prepared.stateDirectory, prepared.mode, prepared.runMode)
        let (entries, decision, revision, gates) = (prepared.entries, prepared.decision, prepared.revision, prepared.gates)
        var warnings = prepared.warnings
        let runID = RunID.make()
        let hooks = HookRunner(stage: stage, runID: runID, registryDirectory: loaded.directory,
                               environment: context.environment, stateDirectory: stateDirectory, stops: stops)
        // The run's lease while its hooks write into runs/<id>/hooks before (and without) the
        // run's row: `runs prune` removes such a folder only once nobody holds it.
        var hookLease = prepared.preHooks.isEmpty ? nil : try RunLease(stateDirectory: stateDirectory, runID: runID)
        let pre = try await hooks.run(prepared.preHooks, phase: .pre, stopOnFailure: true)
        hookLease?.release()
        if let stopped = pre.first(where: { $0.status == .cancelled }) {
            let reason = stops.reason ?? .interrupt
            throw EngineError(.interrupted, "stage \(stage) interrupted by \(reason.signalName) during pre hook \"\(stopped.name)\"; "
                              + "no component ran", exitCode: reason.exitCode)
        }
        if let failed = pre.first(where: { $0.status == .failed }) {
            let output = failed.stderrPath ?? failed.stdoutPath
            throw EngineError(.executionFailed, "stage \(stage) stopped: pre hook \"\(failed.name)\" failed "
                              + "(\(failed.error ?? "failed")\(output.map { "; its output is in \($0)" } ?? "")); no component ran")
        }

        let session = try RunSession(stateDirectory: context.stateDirectory)
        var runReport: RunReport?
        var graph: PlanGraph?
        var planOrder: [String] = entries.map(\.component.name)
        if let replaySource = prepared.replaySource {
            let plan = try PlanLoader.load(replaySource.source)
            graph = plan.graph
            planOrder = plan.graph.ids
            var request = RunRequest(json: replaySource.options, stage: replaySource.stage)
            if let executor = context.executor { request.executor = executor }
            if context.keepGoing { request.keepGoing = true }
            runReport = try await watched(plan, request: request, context: context, stateDirectory: stateDirectory) { observers throws(EngineError) in
                try await session.start(plan, request: request, observers: observers, stopRequests: stops.subscribe(),
                                        runID: runID, parentRunID: replaySource.runID)
            }
        } else if !decision.runnable.isEmpty {
            let maxConcurrency = runMode == .async ? (context.maxConcurrency ?? loaded.registry.stages[stage]?.maxConcurrency) : nil
            let plan = try StagePlanBuilder.load(stage: stage, registry: loaded, entries: decision.runnable,
                                                 trials: decision.trials, maxConcurrency: maxConcurrency)
            graph = plan.graph
            var labels: [String: String] = [StageLabels.mode: runMode.rawValue, StageLabels.registry: loaded.displayPath]
            if let revision {
                labels[StageLabels.gitCommit] = revision.commit
                if let tree = revision.stagedTree { labels[StageLabels.gitTree] = tree }
            }
            if !decision.skipped.isEmpty {
                labels[StageLabels.breakerSkipped] = decision.skipped.map(\.name).joined(separator: ",")
                let critical = decision.skipped.filter(\.critical).map(\.name)
                if !critical.isEmpty { labels[StageLabels.breakerSkippedCritical] = critical.joined(separator: ",") }
            }
            if !decision.trials.isEmpty { labels[StageLabels.breakerTrials] = decision.trials.sorted().joined(separator: ",") }
            if let narrowing = Self.narrowing(context) { labels[StageLabels.narrowedBy] = narrowing }
            let request = RunRequest(maxConcurrency: runMode == .async ? nil : 1, from: context.from.map { [$0] } ?? [],
                                     to: context.to.map { [$0] } ?? [],
                                     stage: stage.rawValue, labels: labels, preservePlanOrder: runMode != .async,
                                     executor: context.executor, keepGoing: context.keepGoing)
            runReport = try await watched(plan, request: request, context: context, stateDirectory: stateDirectory) { observers throws(EngineError) in
                try await session.start(plan, request: request, observers: observers, stopRequests: stops.subscribe(), runID: runID)
            }
        }

        if let runReport {
            do {
                try recordBreakers(runReport, registry: loaded.registry, stateDirectory: stateDirectory, at: context.now())
            } catch {
                warnings.append("could not record the circuit breakers: \(error.message)")
                context.notices(warnings.last!)
            }
        }

        let interrupted = runReport?.status == .cancelled || stops.reason != nil
        var post: [HookResult] = []
        if interrupted {
            post = prepared.postHooks.map {
                HookResult(phase: .post, name: $0.name, argv: [$0.command] + $0.arguments, status: .skipped,
                           error: "stage interrupted")
            }
        } else {
            let status = runReport?.status.rawValue ?? (decision.skipped.contains(where: \.critical) ? "failed" : "succeeded")
            if runReport == nil && !prepared.postHooks.isEmpty {
                hookLease = try RunLease(stateDirectory: stateDirectory, runID: runID)
            }
            defer { hookLease?.release() }
            post = try await hooks.run(prepared.postHooks, phase: .post, stopOnFailure: false,
                                       extraEnvironment: ["OMNIBASE_STAGE_STATUS": status])
            for hook in post where hook.status == .failed {
                warnings.append("post hook \"\(hook.name)\" failed: \(hook.error ?? "failed")")
                context.notices(warnings.last!)
            }
        }

        let skippedCritical = decision.skipped.contains(where: \.critical)
        guard var report = runReport else {
            return StageReport(stage: stage, mode: mode, outcome: .nothingStarted(traceID: RunID.traceID()),
                               skipped: decision.skipped, gates: gates, hooks: pre + post, warnings: warnings,
                               gitCommit: revision?.commit, exitCode: skippedCritical ? 1 : 0)
        }
        report = merge(report, order: entries.isEmpty ? planOrder : entries.map(\.component.name), skipped: decision.skipped)
        if skippedCritical && report.status == .succeeded {
            report.status = .failed
            report.exitCode = 1
        }
        var profile: StageProfile?
        if mode == .profile, let graph { profile = StageProfile.of(report, graph: graph) }
        var stageReport = StageReport(stage: stage, mode: mode, outcome: .ran(report), skipped: decision.skipped, gates: gates,
                                      hooks: pre + post, warnings: warnings, gitCommit: revision?.commit, profile: profile,
                                      exitCode: report.exitCode)
        let snapshot = FailureSnapshot.relativePath(runID: report.runID)
        if FileManager.default.fileExists(atPath: "\(stateDirectory.path)/\(snapshot)") {
            stageReport.failureSnapshot = "\(context.stateDirectory)/\(snapshot)"
        }
        return stageReport
    }

    /// Runs `start` with the observers of the context's ``ExecutionContext/runWatcher``, and tells
    /// the watcher when the run is over (whether it ended or failed to start).
    private func watched(_ plan: LoadedPlan, request: RunRequest, context: ExecutionContext, stateDirectory: StateDirectory,
                         _ start: ([any RunObserver]) async throws(EngineError) -> RunReport) async throws(EngineError) -> RunReport {
        guard let watcher = context.runWatcher else { return try await start([]) }
        defer { watcher.runEnded() }
        return try await start(watcher.observers(for: plan, request: request, stateDirectory: stateDirectory))
    }

    /// The options that changed the stage's default selection, as given (`--filter name=lint`),
    /// or nil for a full default run. Only a full default run counts for a gate (``StageGate``);
    /// the pipeline's `--from`/`--to` chain is what a pipeline run is, not a narrowing of it.
    static func narrowing(_ context: ExecutionContext) -> String? {
        var parts: [String] = []
        if let tags = context.selection.tags { parts.append("--tags \(tags.joined(separator: ","))") }
        if let filter = context.selection.filter { parts.append("--filter \(filter.description)") }
        if let lifecycle = context.selection.lifecycle {
            parts.append("--lifecycle \(lifecycle.map(\.rawValue).joined(separator: ","))")
        }
        if let from = context.from { parts.append("--from \(from)") }
        if let to = context.to { parts.append("--to \(to)") }
        return parts.isEmpty ? nil : parts.joined(separator: " ")
    }

    /// The run's report with the breaker-skipped components inserted in plan order.
    private func merge(_ report: RunReport, order: [String], skipped: [StageReport.SkippedComponent]) -> RunReport {
        guard !skipped.isEmpty else { return report }
        var byID: [String: RunReport.StepReport] = [:]
        for step in report.steps { byID[step.id] = step }
        for component in skipped {
            byID[component.name] = RunReport.StepReport(id: component.name, status: .skipped, attempts: 0, exitCode: nil,
                                                         signal: nil, timedOut: false, startedAt: nil, finishedAt: nil,
                                                         error: component.reason)
        }
        var merged = report
        merged.steps = order.compactMap { byID[$0] }
        let listed = Set(order)
        merged.steps += report.steps.filter { !listed.contains($0.id) }
        return merged
    }

    /// Records every component's outcome in its breaker (succeeded closes, failed counts;
    /// skipped and cancelled leave it alone).
    private func recordBreakers(_ report: RunReport, registry: Registry, stateDirectory: StateDirectory,
                                at now: Date) throws(EngineError) {
        var outcomes: [(String, RunReport.StepReport, BreakerSettings)] = []
        for step in report.steps where step.status == .succeeded || step.status == .failed {
            guard let component = registry.component(named: step.id),
                  let settings = registry.breakerSettings(for: component) else { continue }
            outcomes.append((step.id, step, settings))
        }
        guard !outcomes.isEmpty else { return }
        try BreakerStore(stateDirectory: stateDirectory).update { breakers in
            for (name, step, settings) in outcomes {
                var breaker = breakers[name] ?? CircuitBreaker()
                breaker.record(succeeded: step.status == .succeeded, error: step.error, runID: report.runID, at: now,
                               settings: settings)
                breakers[name] = breaker
            }
        }
    }

    // MARK: - Replay

    /// The run to replay: `--run-id`, or the stage's latest run.
    private func replayRecord(_ context: ExecutionContext, stateDirectory: StateDirectory) throws(EngineError) -> RunStore.RunRecord {
        let store: RunStore
        do {
            store = try RunStore(stateDirectory: stateDirectory, readOnly: true)
        } catch where error.code == .unknownReference {
            throw EngineError(.unknownReference, "no run of stage \(stage) to replay in \(stateDirectory.path) (no run history yet)")
        }
        if let runID = context.replayRunID {
            guard let record = try store.run(runID) else {
                throw EngineError(.unknownReference, "no run \(runID) in \(stateDirectory.path)")
            }
            guard record.stage == stage.rawValue else {
                let what = record.stage.map { "a run of stage \($0)" } ?? "a plan run, not a stage run"
                throw EngineError(.usage, "run \(runID) is \(what); replay it with 'omnibase-agents replay \(runID)'")
            }
            try record.requireFinishedForReplay()
            return record
        }
        guard let latest = try store.runs(limit: 100_000).first(where: { $0.stage == stage.rawValue }) else {
            throw EngineError(.unknownReference, "no run of stage \(stage) to replay in \(stateDirectory.path)")
        }
        // As `replay RUN_ID`: a finished run only (SPEC section 4).
        try latest.requireFinishedForReplay()
        return latest
    }

    // MARK: - Dry run

    private func makeDryRun(_ loaded: LoadedRegistry, entries: [StageSelection.Entry], decision: BreakerDecision,
                            runMode: StageMode, criteria: String, preHooks: [Registry.Hook],
                            postHooks: [Registry.Hook]) throws(EngineError) -> StageDryRun {
        var order: [String] = []
        var resolved: [String: ProcessCommand] = [:]
        if !decision.runnable.isEmpty {
            let plan = try StagePlanBuilder.load(stage: stage, registry: loaded, entries: decision.runnable, trials: decision.trials)
            order = Self.syncOrder(plan).map { plan.graph.ids[$0] }
            for step in plan.plan.steps { resolved[step.id] = step.processCommand }
        }
        var steps: [StageDryRun.Step] = []
        let byName = Dictionary(entries.map { ($0.component.name, $0) }, uniquingKeysWith: { first, _ in first })
        let skippedReason = Dictionary(decision.skipped.map { ($0.name, $0.reason) }, uniquingKeysWith: { first, _ in first })
        for name in order + decision.skipped.map(\.name) {
            guard let entry = byName[name] else { continue }
            let component = entry.component
            let command = resolved[name]
            let trial = decision.trials.contains(name)
            steps.append(StageDryRun.Step(
                component: component, reason: entry.reason, dependsOn: entry.dependsOn,
                argv: command?.argv ?? component.argv,
                workingDirectory: command?.workingDirectory ?? loaded.directory,
                retries: component.idempotent && !trial ? component.retries : 0,
                breaker: decision.states[name] ?? "disabled", skipReason: skippedReason[name]))
        }
        return StageDryRun(runMode: runMode, registry: loaded.displayPath, criteria: criteria, steps: steps,
                           preHooks: preHooks, postHooks: postHooks)
    }

    /// The order in which the engine starts a plan's steps one at a time when all succeed (registry
    /// order where dependencies allow): the scheduler itself, driven without processes.
    static func syncOrder(_ loaded: LoadedPlan) -> [Int] {
        var machine = SchedulerStateMachine(graph: loaded.graph, policies: loaded.plan.steps.map(SchedulerStateMachine.Policy.init),
                                            maxConcurrency: 1,
                                            priorities: RunRequest.planOrderPriorities(count: loaded.graph.count))
        var actions: [SchedulerStateMachine.Action] = []
        machine.start(into: &actions)
        var order: [Int] = []
        while !actions.isEmpty {
            let batch = actions
            actions.removeAll()
            for action in batch {
                if case .start(let step, _) = action {
                    order.append(step)
                    machine.attemptFinished(step, .succeeded, into: &actions)
                }
            }
        }
        return order
    }
}

/// The circuit breakers' verdict on a selection: what runs, what is skipped and why, what is a
/// half-open trial.
struct BreakerDecision: Sendable {
    /// The components to run, in plan order.
    var runnable: [StageSelection.Entry] = []
    /// The components skipped: open circuits, and (transitively) the components depending on them.
    var skipped: [StageReport.SkippedComponent] = []
    /// Components whose breaker is half-open: one attempt.
    var trials: Set<String> = []
    /// Each selected component's breaker state name.
    var states: [String: String] = [:]

    init(entries: [StageSelection.Entry], registry: Registry, breakers: [String: CircuitBreaker], now: Date) {
        var blocked: [String: String] = [:]
        for entry in entries {
            let name = entry.component.name
            guard let settings = registry.breakerSettings(for: entry.component) else {
                states[name] = "disabled"
                continue
            }
            let breaker = breakers[name] ?? CircuitBreaker()
            let state = breaker.state(at: now, settings: settings)
            states[name] = state.name
            switch state {
            case .open: blocked[name] = breaker.skipReason(at: now, settings: settings)
            case .halfOpen: trials.insert(name)
            case .closed: break
            }
        }
        // Whatever depends on a skipped component is skipped too (to a fixed point: the
        // registry's order need not be a topological one).
        var changed = !blocked.isEmpty
        while changed {
            changed = false
            for entry in entries where blocked[entry.component.name] == nil {
                guard let dependency = entry.dependsOn.first(where: { blocked[$0] != nil }) else { continue }
                blocked[entry.component.name] = "dependency \"\(dependency)\" was not started (its circuit, or a dependency's, is open)"
                changed = true
            }
        }
        for entry in entries {
            if let reason = blocked[entry.component.name] {
                skipped.append(.init(name: entry.component.name, reason: reason, critical: entry.component.critical))
                trials.remove(entry.component.name)
            } else {
                runnable.append(entry)
            }
        }
    }
}
