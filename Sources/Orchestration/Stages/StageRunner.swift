import Foundation
import Orchestration

/// The one execution flow of every stage that runs components (the seeds' shared base class):
///
/// 1. select the components (``StageSelection``) and resolve the mode (replay: the components,
///    hooks, gate and breaker settings the replayed run stored, ``StageReplay``);
/// 2. check the gate (``StageGate``): unmet, the stage stops here with exit 1;
/// 3. consult the circuit breakers (``BreakerStore``), under their lock: open circuits are not
///    started (and so are the components that depend on them), a half-open one gets one trial,
///    claimed in `breakers.json` so that concurrent invocations skip it meanwhile;
/// 4. a dry run stops at the breakers' verdict (claiming nothing) and shows what would run;
/// 5. run the pre hooks in order: one failing stops the stage with exit 1;
/// 6. translate the components into a plan (``StagePlanBuilder``) and run it with
///    ``RunSession``, exactly as `run` does, labelled with the stage, the git commit and the
///    breakers' decisions: every selected component is a step of the run, those the breakers
///    keep out end `skipped` with the reason without starting (``RunRequest/notStarted``), so
///    the stored run is the reported one;
/// 7. record each component's outcome in its breaker, and end the trial claims;
/// 8. run the post hooks in order (their failures are reported as warnings);
/// 9. report. A stop (SIGINT/SIGTERM) at any point ends the stage with 130/143.
public struct StageRunner: Sendable {
    /// The stage.
    public let stage: Stage

    /// Creates the flow of a stage.
    public init(stage: Stage) {
        precondition(stage != .registry, "the registry stage runs no components")
        self.stage = stage
    }

    /// What the stage runs: the registry, the components and how.
    private struct Configuration: Sendable {
        var loaded: LoadedRegistry
        var mode: StageMode
        /// `sync`, `async` or `profile`: how the components run.
        var runMode: StageMode
        var entries: [StageSelection.Entry]
        var warnings: [String] = []
        var criteria = ""
        /// `--from` / `--to` of the run (a replay: the replayed run's).
        var from: [String] = []
        var to: [String] = []
        var replay: StageReplay?
    }

    /// Runs the stage.
    /// - Throws: ``EngineError``, see ``Orchestrator/run(_:)``.
    public func run(_ context: ExecutionContext) async throws(EngineError) -> StageReport {
        if context.mode == .replay { try Self.refuseReplayOptions(context) }
        // A dry run changes nothing, so it does not create a state folder that is not there.
        let readOnly = context.mode == .dryRun && !FileManager.default.fileExists(atPath: context.stateDirectory)
        let stateDirectory: StateDirectory?
        do { stateDirectory = readOnly ? nil : try StateDirectory(path: context.stateDirectory) } catch { throw EngineError(error) }

        let configuration: Configuration
        if context.mode == .replay, let stateDirectory {
            let replay = try StageReplay.load(stage: stage, runID: context.replayRunID, stateDirectory: stateDirectory) {
                () throws(EngineError) in try BreakerStore(stateDirectory: stateDirectory).load()
            }
            configuration = Configuration(loaded: replay.registry, mode: .replay, runMode: replay.runMode, entries: replay.entries,
                                          from: replay.request.from, to: replay.request.to, replay: replay)
        } else {
            configuration = try select(context)
        }
        let loaded = configuration.loaded
        let registry = loaded.registry
        let mode = configuration.mode

        let runID = RunID.make()
        let now = context.now()
        let revision = await GitRevision.read(in: context.workingDirectory, environment: context.environment,
                                              staged: mode != .dryRun)
        let gates = try StageGate.evaluate(stage: stage, registry: registry, stateDirectory: stateDirectory,
                                           statePath: context.stateDirectory, revision: revision,
                                           workingDirectory: context.workingDirectory)
        let preHooks = registry.preHooks.filter { $0.applies(to: stage) }
        let postHooks = registry.postHooks.filter { $0.applies(to: stage) }

        for warning in configuration.warnings { context.notices(warning) }
        if mode == .dryRun {
            let breakers = try stateDirectory.map { directory throws(EngineError) in try BreakerStore(stateDirectory: directory).load() } ?? [:]
            let decision = BreakerDecision(entries: configuration.entries, registry: registry, breakers: breakers, now: now)
            let dryRun = try makeDryRun(loaded, entries: configuration.entries, decision: decision, runMode: configuration.runMode,
                                        criteria: configuration.criteria, preHooks: preHooks, postHooks: postHooks)
            return StageReport(stage: stage, mode: .dryRun, outcome: .dryRun(dryRun), skipped: decision.skipped, gates: gates,
                               warnings: configuration.warnings, gitCommit: revision?.commit, exitCode: 0)
        }
        if let unmet = gates.first(where: { !$0.met }) {
            throw EngineError(.executionFailed, "stage \(stage) refused by its gate: \(unmet.detail)")
        }
        guard let stateDirectory else { preconditionFailure("only a dry run goes without a state folder") }

        let considered = try Self.considered(configuration.entries, from: configuration.from, to: configuration.to)
        let decision = try claimBreakers(configuration.entries, registry: registry, considering: considered,
                                         stateDirectory: stateDirectory, runID: runID, now: now)
        let prepared = Prepared(configuration: configuration, stateDirectory: stateDirectory, runID: runID, decision: decision,
                                revision: revision, gates: gates, preHooks: preHooks, postHooks: postHooks)
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
        if case .failure = result {
            // Whatever stopped the stage, its trials are no longer under way.
            try? recordBreakers(nil, registry: registry, trials: decision.trials, runID: runID, stateDirectory: stateDirectory,
                                at: context.now())
        }
        return try result.get()
    }

    /// Options a replay does not use, refused (SPEC section 4: no option is silently dropped).
    static func refuseReplayOptions(_ context: ExecutionContext) throws(EngineError) {
        var given: [String] = []
        if context.selection.tags != nil { given.append("--tags") }
        if context.selection.filter != nil { given.append("--filter") }
        if context.selection.lifecycle != nil { given.append("--lifecycle") }
        if context.from != nil { given.append("--from") }
        if context.to != nil { given.append("--to") }
        if !context.selection.chain.isEmpty { given.append("--from/--to") }
        if context.maxConcurrency != nil { given.append("--max-concurrency") }
        guard let first = given.first else { return }
        throw EngineError(.usage, "--mode replay runs the stored run's components as that run did, so \(first) does not apply "
                          + "(run the stage without --mode replay to choose them anew)")
    }

    /// The stage's selection from today's registry (every mode but replay).
    private func select(_ context: ExecutionContext) throws(EngineError) -> Configuration {
        let loaded = try context.requireRegistry()
        let registry = loaded.registry
        let defaultMode = registry.stages[stage]?.mode ?? StageDefaults.of(stage).mode
        let mode = context.mode ?? defaultMode
        let runMode = mode == .dryRun ? defaultMode : mode
        if runMode != .async, context.maxConcurrency != nil {
            throw EngineError(.usage, "--max-concurrency applies to async mode; stage \(stage) runs in \(runMode) mode here")
        }
        let selection = try StageSelection.select(stage: stage, registry: registry, request: context.selection)
        for bound in [("--from", context.from), ("--to", context.to)] {
            if let name = bound.1, selection.entry(named: name) == nil {
                if registry.component(named: name) == nil { throw registry.unknownComponent(name, context: bound.0) }
                throw EngineError(.unknownReference, "\(bound.0) names component \"\(name)\", which stage \(stage) does not select")
            }
        }
        return Configuration(loaded: loaded, mode: mode, runMode: runMode, entries: selection.entries,
                             warnings: selection.warnings, criteria: selection.criteria,
                             from: context.from.map { [$0] } ?? [], to: context.to.map { [$0] } ?? [])
    }

    /// The components the run may start: those inside `--from`/`--to` (every one without them).
    /// The breakers judge only these: a component outside is not run, and lets its dependents run.
    private static func considered(_ entries: [StageSelection.Entry], from: [String], to: [String]) throws(EngineError) -> Set<String> {
        let names = entries.map(\.component.name)
        guard !from.isEmpty || !to.isEmpty else { return Set(names) }
        let graph: PlanGraph
        do { graph = try PlanGraph(ids: names, dependsOn: entries.map(\.dependsOn)) } catch {
            // The selection is a validated registry's: its edges always form a DAG.
            preconditionFailure("a stage's selection is not a DAG: \(error)")
        }
        guard let states = try graph.initialStates(from: from, to: to) else { return Set(names) }
        return Set(names.indices.filter { states[$0] == .pending }.map { names[$0] })
    }

    /// The breakers' verdict, decided under `breakers.json`'s lock, where the half-open circuits'
    /// trials are claimed for this run: a concurrent invocation sees the claim and skips them.
    private func claimBreakers(_ entries: [StageSelection.Entry], registry: Registry, considering: Set<String>,
                               stateDirectory: StateDirectory, runID: String, now: Date) throws(EngineError) -> BreakerDecision {
        let store = BreakerStore(stateDirectory: stateDirectory)
        let guarded = entries.contains { considering.contains($0.component.name) && registry.breakerSettings(for: $0.component) != nil }
        guard guarded else {
            return BreakerDecision(entries: entries, registry: registry, breakers: try store.load(), now: now, claimant: runID,
                                   considering: considering)
        }
        let claim = CircuitBreaker.TrialClaim(holder: .current, runID: runID, claimedAt: now)
        return try store.update { breakers in
            let decision = BreakerDecision(entries: entries, registry: registry, breakers: breakers, now: now, claimant: runID,
                                           considering: considering)
            for name in decision.trials { breakers[name, default: CircuitBreaker()].trial = claim }
            return decision
        }
    }

    // MARK: - Running

    /// What the checks before the run decided.
    private struct Prepared: Sendable {
        var configuration: Configuration
        var stateDirectory: StateDirectory
        var runID: String
        var decision: BreakerDecision
        var revision: GitRevision?
        var gates: [StageGate.Condition]
        var preHooks: [Registry.Hook]
        var postHooks: [Registry.Hook]
    }

    /// Hooks, the run, breakers, report: steps 5 to 9.
    private func execute(_ prepared: Prepared, context: ExecutionContext,
                         stops: StopFanout) async throws(EngineError) -> StageReport {
        let configuration = prepared.configuration
        let (loaded, stateDirectory, mode, runID) = (configuration.loaded, prepared.stateDirectory, configuration.mode, prepared.runID)
        let (entries, decision, revision, gates) = (configuration.entries, prepared.decision, prepared.revision, prepared.gates)
        var warnings = configuration.warnings
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
        if !decision.runnable.isEmpty {
            let plan: LoadedPlan
            if let replay = configuration.replay {
                plan = try replay.plan(stage: stage, trials: decision.trials)
            } else {
                let maxConcurrency = configuration.runMode == .async
                    ? (context.maxConcurrency ?? loaded.registry.stages[stage]?.maxConcurrency) : nil
                plan = try StagePlanBuilder.load(stage: stage, registry: loaded, entries: entries, trials: decision.trials,
                                                 maxConcurrency: maxConcurrency)
            }
            graph = plan.graph
            let request = makeRequest(configuration, decision: decision, revision: revision, context: context)
            let parent = configuration.replay?.record.runID
            runReport = try await watched(plan, request: request, context: context, stateDirectory: stateDirectory) { observers throws(EngineError) in
                try await session.start(plan, request: request, observers: observers, stopRequests: stops.subscribe(),
                                        runID: runID, parentRunID: parent)
            }
        }

        do {
            try recordBreakers(runReport, registry: loaded.registry, trials: decision.trials, runID: runID,
                               stateDirectory: stateDirectory, at: context.now())
        } catch {
            warnings.append("could not record the circuit breakers: \(error.message)")
            context.notices(warnings.last!)
        }

        let skippedCritical = decision.skipped.contains(where: \.critical)
        let status = runReport?.status.rawValue ?? (skippedCritical ? "failed" : "succeeded")
        var post: [HookResult] = []
        if runReport?.status == .cancelled || stops.reason != nil {
            post = prepared.postHooks.map {
                HookResult(phase: .post, name: $0.name, argv: [$0.command] + $0.arguments, status: .skipped,
                           error: "stage interrupted")
            }
        } else {
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
        // A stop after the components ended (during the post hooks, or just before them) is an
        // interruption all the same (SPEC section 5); the run itself keeps the status it ended with.
        if let reason = stops.reason, runReport?.status != .cancelled {
            let during = post.first(where: { $0.status == .cancelled }).map { "during post hook \"\($0.name)\"" }
                ?? "after its components ended"
            let outcome = runReport.map { "run \($0.runID) had ended \($0.status.rawValue) ('omnibase-agents runs show \($0.runID)')" }
                ?? "no component had run"
            throw EngineError(.interrupted, "stage \(stage) interrupted by \(reason.signalName) \(during); \(outcome)",
                              exitCode: reason.exitCode)
        }

        guard let report = runReport else {
            return StageReport(stage: stage, mode: mode, outcome: .nothingStarted(traceID: RunID.traceID()),
                               skipped: decision.skipped, gates: gates, hooks: pre + post, warnings: warnings,
                               gitCommit: revision?.commit, exitCode: skippedCritical ? 1 : 0)
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

    /// The run's request: concurrency, `--from`/`--to`, labels (the stage, the git commit, the
    /// breakers' decisions, the narrowing), the components not to start. A replay keeps what its
    /// run was asked and is labelled anew.
    private func makeRequest(_ configuration: Configuration, decision: BreakerDecision, revision: GitRevision?,
                             context: ExecutionContext) -> RunRequest {
        var request: RunRequest
        var labels: [String: String]
        if let replay = configuration.replay {
            request = replay.request
            if let executor = context.executor { request.executor = executor }
            if context.keepGoing { request.keepGoing = true }
            labels = replay.request.labels
            for key in [StageLabels.gitCommit, StageLabels.gitTree, StageLabels.breakerSkipped,
                        StageLabels.breakerSkippedCritical, StageLabels.breakerTrials] {
                labels[key] = nil
            }
            // The components of another time: not a full run of the stage as it is today.
            if (labels[StageLabels.narrowedBy] ?? "").isEmpty { labels[StageLabels.narrowedBy] = "--mode replay" }
        } else {
            let runMode = configuration.runMode
            request = RunRequest(maxConcurrency: runMode == .async ? nil : 1, from: configuration.from, to: configuration.to,
                                 stage: stage.rawValue, preservePlanOrder: runMode != .async,
                                 executor: context.executor, keepGoing: context.keepGoing)
            labels = [StageLabels.mode: runMode.rawValue, StageLabels.registry: configuration.loaded.displayPath]
            if let narrowing = Self.narrowing(context) { labels[StageLabels.narrowedBy] = narrowing }
        }
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
        request.labels = labels
        request.notStarted = Dictionary(decision.skipped.map { ($0.name, $0.reason) }, uniquingKeysWith: { first, _ in first })
        return request
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

    /// Records every component's outcome in its breaker (succeeded closes, failed counts;
    /// skipped and cancelled leave it alone) and ends this run's claims on trials, in one update.
    private func recordBreakers(_ report: RunReport?, registry: Registry, trials: Set<String>, runID: String,
                                stateDirectory: StateDirectory, at now: Date) throws(EngineError) {
        var outcomes: [(String, RunReport.StepReport, BreakerSettings)] = []
        for step in report?.steps ?? [] where step.status == .succeeded || step.status == .failed {
            guard let component = registry.component(named: step.id),
                  let settings = registry.breakerSettings(for: component) else { continue }
            outcomes.append((step.id, step, settings))
        }
        guard !outcomes.isEmpty || !trials.isEmpty else { return }
        try BreakerStore(stateDirectory: stateDirectory).update { breakers in
            for (name, step, settings) in outcomes {
                var breaker = breakers[name] ?? CircuitBreaker()
                breaker.record(succeeded: step.status == .succeeded, error: step.error, runID: runID, at: now,
                               settings: settings)
                breakers[name] = breaker
            }
            for name in trials where breakers[name]?.trial?.runID == runID { breakers[name]?.trial = nil }
        }
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
    /// The components skipped: open circuits, half-open ones whose trial another invocation
    /// holds, and (transitively) the components depending on them.
    var skipped: [StageReport.SkippedComponent] = []
    /// Components whose breaker is half-open: one attempt.
    var trials: Set<String> = []
    /// Each selected component's breaker state name.
    var states: [String: String] = [:]

    /// - Parameters:
    ///   - claimant: the run that would hold the trials; a live claim of another run on a
    ///     half-open circuit keeps its component out. Nil (a dry run): claims are shown, not made.
    ///   - considering: the components the run may start (inside `--from`/`--to`); nil = all.
    ///     The others are left to the run, which does not start them.
    init(entries: [StageSelection.Entry], registry: Registry, breakers: [String: CircuitBreaker], now: Date,
         claimant: String? = nil, considering: Set<String>? = nil) {
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
            guard considering?.contains(name) ?? true else { continue }
            switch state {
            case .open:
                blocked[name] = breaker.skipReason(at: now, settings: settings)
            case .halfOpen:
                if let claim = breaker.trialHeld(notBy: claimant) {
                    blocked[name] = breaker.trialSkipReason(claim)
                } else {
                    trials.insert(name)
                }
            case .closed:
                break
            }
        }
        // Whatever depends on a skipped component is skipped too (to a fixed point: the
        // registry's order need not be a topological one).
        var changed = !blocked.isEmpty
        while changed {
            changed = false
            for entry in entries where blocked[entry.component.name] == nil && (considering?.contains(entry.component.name) ?? true) {
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
