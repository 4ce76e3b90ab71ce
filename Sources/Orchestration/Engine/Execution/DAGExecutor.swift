import Foundation

/// Options of one run that do not come from the plan.
public struct RunOptions: Sendable {
    /// The run's id.
    public var runID: String
    /// Overrides the plan's `max_concurrency` (`--max-concurrency`, `--mode sync` = 1).
    public var maxConcurrency: Int?
    /// How each step enters the run (resume, `--from`/`--to`); nil = all pending.
    public var initial: [SchedulerStateMachine.InitialState]?
    /// Scheduling priorities (larger first); nil = remaining path length in node counts.
    public var priorities: [Double]?
    /// Where attempt logs go; nil discards step output.
    public var logDirectory: String?
    /// A correlation id for the report.
    public var traceID: String
    /// The `seq` of the first event of this session (a resumed run continues its numbering).
    public var firstSeq: Int64
    /// Whether this session resumes an earlier one (emits `run_resumed` instead of `run_started`).
    public var resuming: Bool
    /// Attempts each step made in earlier sessions (resume); nil = none.
    public var previousAttempts: [Int]?
    /// `--keep-going`: every failure acts as `skip_dependents` (SPEC section 4), `abort` and
    /// `continue` alike: a failure never stops the run, and nothing that depends on a failed
    /// step runs.
    public var keepGoing = false
    /// The outputs of the steps that succeeded in earlier sessions (resume), for the steps that
    /// use them (`${steps.ID.outputs.NAME}`).
    public var outputs = StepOutputs()
    /// A stop requested before the run could start a step (SIGTERM while `resume` took over from
    /// a dead engine): no step starts, every pending one ends `cancelled`.
    public var stoppedBeforeStart: StopReason?
    /// Whether files created in ``logDirectory`` get mode 0600 whatever the creator's umask
    /// (``OutputFile/makeNewFilesPrivate(inFolder:)``); when false, each process attempt's
    /// outputs file is made 0600 once the attempt has ended.
    package var logDirectoryKeepsFilesPrivate = false

    /// Creates options.
    public init(runID: String = RunID.make(), maxConcurrency: Int? = nil,
                initial: [SchedulerStateMachine.InitialState]? = nil, priorities: [Double]? = nil,
                logDirectory: String? = nil, traceID: String = RunID.traceID(), firstSeq: Int64 = 1,
                resuming: Bool = false) {
        self.runID = runID
        self.maxConcurrency = maxConcurrency
        self.initial = initial
        self.priorities = priorities
        self.logDirectory = logDirectory
        self.traceID = traceID
        self.firstSeq = firstSeq
        self.resuming = resuming
    }
}

/// Runs a plan: one loop over one task group, never more than `max_concurrency` attempts at once.
///
/// The loop feeds what happened into ``SchedulerStateMachine`` and performs the actions it
/// returns: it records each turn's events with the observers first, then starts attempts and
/// arms retry timers (through the injected clock). A stop request (SIGINT/SIGTERM) tears running
/// attempts down by cancelling them; they end `cancelled`.
public struct DAGExecutor<C: Clock>: Sendable where C.Duration == Duration {
    private let plan: Plan
    private let graph: PlanGraph
    private let options: RunOptions
    private let runner: any StepRunner
    private let observers: [any RunObserver]
    private let commitGate: (any CommitGate)?
    private let clock: C

    /// Creates an executor for a plan built in code, validating its DAG.
    ///
    /// ```swift
    /// let plan = Plan(id: "in-process", steps: [.closure("a") { _ in }, .closure("b", dependsOn: ["a"]) { _ in }])
    /// let report = try await DAGExecutor(plan: plan, clock: ContinuousClock()).run()
    /// ```
    /// - Parameters:
    ///   - options: the run's id, concurrency override, priorities; fresh ones by default.
    ///   - runner: where attempts run (local processes and in-process closures by default).
    ///   - observers: who records the events.
    ///   - commitGate: when set, a step starts only once its dependencies' results are durable.
    ///   - clock: the clock of retry delays (a manual clock in tests).
    /// - Throws: ``EngineError`` (exit 2) naming the first problem of the DAG (a duplicate id, an
    ///   unknown dependency, a cycle).
    public init(plan: Plan, options: RunOptions = RunOptions(), runner: any StepRunner = LocalStepRunner(),
                observers: [any RunObserver] = [], commitGate: (any CommitGate)? = nil, clock: C) throws(EngineError) {
        let loaded = try LoadedPlan(plan)
        self.init(plan: loaded.plan, graph: loaded.graph, options: options, runner: runner, observers: observers,
                  commitGate: commitGate, clock: clock)
    }

    /// Creates an executor for a plan and its already validated graph (``LoadedPlan``).
    /// - Parameters:
    ///   - plan: the plan; `graph` must be its validated graph.
    ///   - runner: where attempts run.
    ///   - observers: who records the events.
    ///   - commitGate: when set, a step starts only once its dependencies' results are durable,
    ///     and the run returns only once its last event is.
    ///   - clock: the clock of retry delays (a manual clock in tests).
    package init(plan: Plan, graph: PlanGraph, options: RunOptions, runner: any StepRunner = LocalStepRunner(),
                observers: [any RunObserver] = [], commitGate: (any CommitGate)? = nil, clock: C) {
        precondition(graph.count == plan.steps.count, "the graph must be the plan's")
        self.plan = plan
        self.graph = graph
        self.options = options
        self.runner = runner
        self.observers = observers
        self.commitGate = commitGate
        self.clock = clock
    }

    private enum Wake: Sendable {
        case attemptFinished(step: Int, AttemptOutcome, refusal: String?)
        case retryTimerFired(step: Int)
        case stopRequested(StopReason)
        case stopStreamEnded
        /// An attempt that waited for its dependencies' results to be durable was not started:
        /// the store failed.
        case durabilityFailed(step: Int, EngineError)
        case jobSubmitted(Submission)
        case submissionsEnded
        case admitted(step: Int, attempt: Int, Admission)
    }

    /// Runs the plan to its end.
    /// - Parameter stopRequests: yields when the run must stop (signals).
    /// - Returns: the final report; its `exitCode` follows SPEC §5.
    /// - Throws: ``EngineError`` when an observer failed (e.g. the state folder); the run was
    ///   stopped as for a signal before the error is thrown.
    public func run(stopRequests: AsyncStream<StopReason>? = nil) async throws(EngineError) -> RunReport {
        // A run of processes only, by runners that never block, runs on the process loop's thread
        // (``ProcessLoop``): exits resume the scheduler where they are seen.
        if let processLoop = ProcessLoop.shared, runsOnProcessLoop {
            return try await withTaskExecutorPreference(processLoop) { () async throws(EngineError) -> RunReport in
                try await runScheduler(stopRequests: stopRequests, onLoop: true)
            }
        }
        return try await runScheduler(stopRequests: stopRequests, onLoop: false)
    }

    /// Whether every step is a process, the runner says its attempts never block a thread
    /// (``LoopSafeRunner``; a closure step may compute or block for as long as it likes), and
    /// the run has no more slots than ``loopSlotLimit`` allows.
    var runsOnProcessLoop: Bool {
        guard (runner as? any LoopSafeRunner)?.neverBlocksItsThread == true else { return false }
        guard options.maxConcurrency ?? plan.maxConcurrency <= Self.loopSlotLimit else { return false }
        return !plan.steps.contains { step in
            if case .closure = step.action { return true }
            return false
        }
    }

    /// The most slots a run may have to run on the process loop: no more than the cores, and at
    /// most 4. One thread that spawns, reaps and schedules serves a few slots with no hand-offs
    /// (10,000 `true` steps at -j2 on 2 cores: 4.3-4.8 context switches per step down to 1.6-1.9,
    /// engine CPU 250-290 down to 170-195 us per step with the store on); with more slots than
    /// cores that one thread gets only its share of the cores among the steps, and the pool's
    /// threads together get more (-j8 on 2 cores, a lattice with the store off: 0.77x ninja on
    /// the pool, 0.91-0.93x on the loop), as they do when many cores make many steps end at once.
    static var loopSlotLimit: Int { min(ProcessInfo.processInfo.activeProcessorCount, 4) }

    private func runScheduler(stopRequests: AsyncStream<StopReason>?, onLoop: Bool) async throws(EngineError) -> RunReport {
        var loop = RunLoop(plan: plan, graph: graph, options: options)
        loop.onProcessLoop = onLoop
        loop.asks = runner.asksBeforeStarting
        // Outputs files live beside the logs; a run without a state folder gets a private
        // temporary folder, removed when the run ends.
        let temporaryOutputs = options.logDirectory == nil ? Self.makeTemporaryFolder() : nil
        loop.outputsFolder = options.logDirectory ?? temporaryOutputs
        defer { if let temporaryOutputs { try? FileManager.default.removeItem(atPath: temporaryOutputs) } }
        let (submissions, submitted) = AsyncStream<Submission>.makeStream()
        loop.submitted = submitted
        defer { submitted.finish() }
        await withTaskGroup(of: Wake.self) { group in
            Self.listen(to: submissions, group: &group)
            if let stopRequests {
                group.addTask {
                    for await reason in stopRequests { return .stopRequested(reason) }
                    return .stopStreamEnded
                }
            }
            var actions: [SchedulerStateMachine.Action] = []
            loop.startEvent()
            if let reason = options.stoppedBeforeStart {
                loop.stopReason = reason
                loop.machine.startStopped(into: &actions)
            } else {
                loop.machine.start(into: &actions)
            }
            await perform(&actions, loop: &loop, group: &group)
            while !loop.machine.isFinished, let wake = await group.next() {
                switch wake {
                case .admitted(let step, let attempt, let admission):
                    switch admission {
                    case .run:
                        // Its start is recorded now, after the question: the time spent asking
                        // is not the step's.
                        loop.event(for: .start(step: step, attempt: attempt), admitted: true)
                        await record(&loop)
                        begin(step, attempt, loop: &loop, group: &group)
                    case .skip:
                        loop.machine.attemptFinished(step, .skipped, refusal: nil, into: &actions)
                    case .abort:
                        loop.machine.attemptFinished(step, .cancelled, refusal: nil, into: &actions)
                    }
                case .attemptFinished(let step, let outcome, let refusal):
                    loop.attemptFinished(step, outcome)
                    loop.machine.attemptFinished(step, outcome.result, refusal: refusal, into: &actions)
                case .retryTimerFired(let step):
                    loop.machine.retryTimerFired(step, into: &actions)
                case .stopRequested(let reason):
                    if loop.stopReason == nil { loop.stopReason = reason }
                    loop.machine.stop(into: &actions)
                case .stopStreamEnded, .submissionsEnded:
                    continue
                case .jobSubmitted(let submission):
                    loop.jobSubmitted(submission)
                    Self.listen(to: submissions, group: &group)
                case .durabilityFailed(let step, let error):
                    // Stop as for a signal; the attempt never started and ends cancelled.
                    if loop.observerFailure == nil { loop.observerFailure = error }
                    loop.machine.stop(into: &actions)
                    let outcome = AttemptOutcome(result: .cancelled, error: "interrupted")
                    loop.attemptFinished(step, outcome)
                    loop.machine.attemptFinished(step, outcome.result, refusal: nil, into: &actions)
                }
                await perform(&actions, loop: &loop, group: &group)
            }
            group.cancelAll()
        }
        if let commitGate, loop.observerFailure == nil {
            do { try await commitGate.waitUntilDurable(loop.nextSeq - 1) } catch { loop.observerFailure = error }
        }
        if let failure = loop.observerFailure { throw failure }
        return loop.builder.current
    }

    /// Decides the conditions the actions ask for, records the events of the actions, then
    /// starts what they say to start.
    private func perform(_ actions: inout [SchedulerStateMachine.Action], loop: inout RunLoop,
                         group: inout TaskGroup<Wake>) async {
        // Answers append their own actions (a start, a skip and what follows from it) in order.
        // Events are made in the actions' order, those before a condition first: a producer's
        // success (and so its outputs) is known when a condition reading them is decided.
        var index = 0
        var evented = 0
        while index < actions.count {
            if case .evaluateCondition(let step) = actions[index] {
                while evented < index {
                    loop.event(for: actions[evented])
                    evented += 1
                }
                let holds = loop.conditionHolds(step)
                loop.machine.conditionEvaluated(step, holds: holds, into: &actions)
            }
            index += 1
        }
        while evented < actions.count {
            loop.event(for: actions[evented])
            evented += 1
        }
        expectWaits(for: actions, loop: loop)
        await record(&loop)
        if loop.observerFailure != nil && !loop.machine.isFinished {
            // The state folder failed: stop as for a signal, so nothing runs unrecorded.
            var stopActions: [SchedulerStateMachine.Action] = []
            loop.machine.stop(into: &stopActions)
            for action in stopActions { loop.event(for: action) }
            await record(&loop)
            actions += stopActions
        }
        for action in actions {
            switch action {
            case .start(let step, let attempt):
                if loop.asks {
                    // The runner asks first (`run --step`); the start is recorded once admitted.
                    let runner = self.runner
                    let stepValue = plan.steps[step]
                    let context = AttemptContext(runID: options.runID, stepID: stepValue.id, attempt: attempt,
                                                 killGrace: plan.killGrace, logDirectory: options.logDirectory)
                    group.addTask { .admitted(step: step, attempt: attempt, await runner.admit(stepValue, context: context)) }
                } else {
                    begin(step, attempt, loop: &loop, group: &group)
                }
            case .scheduleRetry(let step, _, let delay):
                let clock = self.clock
                group.addTask {
                    // A cancelled timer still reports; the state machine ignores timers of
                    // steps that were cancelled meanwhile.
                    try? await clock.sleep(until: clock.now.advanced(by: delay), tolerance: nil)
                    return .retryTimerFired(step: step)
                }
            case .terminateRunning:
                // Attempts still waiting for durability see the cancellation when the wait ends
                // and report cancelled without starting.
                group.cancelAll()
            case .finish, .runFinished, .evaluateCondition:
                break
            }
        }
        actions.removeAll(keepingCapacity: true)
    }

    /// Tells the commit gate, before the turn is recorded, that a start of this turn will wait
    /// for its dependencies' results to be durable: their commit then goes at once, without
    /// gathering more turns first (a lattice's layer). A start with nothing else running
    /// commits for itself (``begin``): announced, it would hurry the store writer into a
    /// commit of its own beside that one.
    private func expectWaits(for actions: [SchedulerStateMachine.Action], loop: RunLoop) {
        // A start with nothing else running commits on the executor's thread (``begin``):
        // nothing to announce.
        guard let commitGate, !loop.asks, loop.machine.runningCount != 1 else { return }
        var needed: Int64 = 0
        for case .start(let step, _) in actions {
            for dep in graph.dependencies[step] { needed = max(needed, loop.finalSeq[Int(dep)]) }
        }
        if needed > commitGate.durableSeq { commitGate.expectWait(for: needed) }
    }

    /// Starts an attempt whose start is recorded, once its dependencies' results are durable.
    private func begin(_ step: Int, _ attempt: Int, loop: inout RunLoop, group: inout TaskGroup<Wake>) {
        var needed: Int64 = 0
        for dep in graph.dependencies[step] { needed = max(needed, loop.finalSeq[Int(dep)]) }
        if let commitGate, needed > commitGate.durableSeq {
            // A step starts only once its dependencies' results are durable. When it is the
            // only attempt running (a chain), the executor has nothing to do but wait: it
            // commits on its own thread (the run's commit record: no hand-off, no wake-ups).
            // Otherwise the step's own task waits for that, then starts it (no hop back
            // through this loop between the two).
            if loop.machine.runningCount == 1 && commitGate.commitIfIdle(upTo: needed) {
                startAttempt(step, attempt, awaiting: nil, loop: &loop, group: &group)
                return
            }
            startAttempt(step, attempt, awaiting: (commitGate, needed), loop: &loop, group: &group)
        } else {
            startAttempt(step, attempt, awaiting: nil, loop: &loop, group: &group)
        }
    }

    /// Waits for the next runner report of a job id (one listener at a time, added again after
    /// each report; a stop's `cancelAll` ends it).
    private static func listen(to submissions: AsyncStream<Submission>, group: inout TaskGroup<Wake>) {
        group.addTask {
            for await submission in submissions { return .jobSubmitted(submission) }
            return .submissionsEnded
        }
    }

    /// Adds the task of an attempt; with `awaiting`, the task first waits until that `seq` is
    /// durable (a stop meanwhile: the attempt ends cancelled without starting; a store failure:
    /// ``Wake/durabilityFailed(step:_:)``).
    private func startAttempt(_ step: Int, _ attempt: Int, awaiting: (gate: any CommitGate, seq: Int64)?,
                              loop: inout RunLoop, group: inout TaskGroup<Wake>) {
        let runner = self.runner
        var stepValue = plan.steps[step]
        var context = AttemptContext(runID: options.runID, stepID: stepValue.id, attempt: attempt,
                                     killGrace: plan.killGrace, logDirectory: options.logDirectory)
        if let submitted = loop.submitted {
            context.reportJobID = { jobID in submitted.yield(Submission(step: step, attempt: attempt, jobID: jobID)) }
        }
        // The outputs it uses, inserted verbatim before anything starts; one that its producer
        // did not write fails the attempt (a retry cannot change it).
        var secretValues: [String] = []
        switch stepValue.action {
        case .process(let command):
            if let bindings = command.outputBindings {
                switch bindings.resolve(command, value: { loop.output(step: $0.step, name: $0.name) }) {
                case .success(let resolved):
                    stepValue.action = .process(resolved)
                    secretValues = bindings.references.filter { plan.isSecret($0.name) }
                        .compactMap { loop.output(step: $0.step, name: $0.name) }
                case .failure(let missing):
                    let outcome = AttemptOutcome(result: .failed, error: loop.missingOutputError(missing.reference))
                    let refusal = stepValue.retry.retries > 0 ? "not retried: the outputs it uses cannot change on a retry" : nil
                    group.addTask { .attemptFinished(step: step, outcome, refusal: refusal) }
                    return
                }
            }
        case .closure:
            context.outputs = loop.outputs
        }
        // A closure runs in this process under an attempt number never used before: its path
        // is fresh, and it has an outputs file only if it asked for the path (no system call
        // per closure step otherwise: 6 us per node of a chain of no-op closures), the path made
        // only then.
        let outputPath: String?
        let closureUse: OutputUse?
        if case .closure = stepValue.action {
            outputPath = nil
            closureUse = loop.outputsFolder.map { OutputUse(folder: $0, stepID: stepValue.id, attempt: attempt) }
        } else {
            outputPath = loop.outputsFolder.map { "\($0)/\(OutputFile.fileName(stepID: stepValue.id, attempt: attempt))" }
            closureUse = nil
        }
        context.outputPath = outputPath
        context.outputUse = closureUse
        let secretNames = plan.secretNames
        let secretValueMask = loop.secretValues
        let mendsOutputsMode = options.logDirectory != nil && !options.logDirectoryKeepsFilesPrivate
        // Constants, not the variables above: an escaping closure boxes a `var` it captures on
        // the heap (one allocation per attempt more, measured).
        let (attemptStep, attemptContext, attemptSecrets) = (stepValue, context, secretValues)
        group.addTask {
            if let awaiting {
                do throws(EngineError) { try await awaiting.gate.waitUntilDurable(awaiting.seq) } catch {
                    return .durabilityFailed(step: step, error)
                }
                if Task.isCancelled {
                    return .attemptFinished(step: step, AttemptOutcome(result: .cancelled, error: "interrupted"), refusal: nil)
                }
            }
            if let outputPath {
                do throws(OutputFile.Failure) { try OutputFile.checkFresh(atPath: outputPath) } catch {
                    return .attemptFinished(step: step, AttemptOutcome(result: .failed, error: error.message), refusal: nil)
                }
            }
            var outcome: AttemptOutcome
            // The engine's own runner called directly, not through the protocol: the witness's
            // async frame (1,184 bytes, a task-allocator slab of its own) is a `malloc` and a
            // cross-thread `free` per attempt (in-process, store off: 11.3 -> 10.1 us/node).
            if let local = runner as? LocalStepRunner {
                outcome = await local.run(attemptStep, context: attemptContext)
            } else {
                outcome = await runner.run(attemptStep, context: attemptContext)
            }
            // The step created its outputs file with its own umask where the logs folder has no
            // ACL to make it owner-only as every file of the state folder is.
            if mendsOutputsMode, let outputPath { OutputFile.makePrivate(atPath: outputPath) }
            if !attemptSecrets.isEmpty, let error = outcome.error {
                // A secret output inserted into the command must not show in "cannot start" messages.
                outcome.error = SecretMask(values: attemptSecrets).apply(error)
            }
            if outcome.result == .succeeded,
               let outputPath = outputPath ?? closureUse.flatMap({ $0.wasUsed ? $0.path : nil }) {
                do throws(OutputFile.Failure) {
                    // An output is secret by its name, or when its value holds a secret value (a
                    // secret variable's, or a secret output's this attempt was given): its events
                    // show `***`, while the steps that use it get it verbatim.
                    let valueMask = attemptSecrets.isEmpty ? secretValueMask : secretValueMask.merging(SecretMask(values: attemptSecrets))
                    outcome.outputs = try OutputFile.read(atPath: outputPath).map { output in
                        StepOutput(name: output.name, value: output.value,
                                   isSecret: secretNames.contains(output.name) || SecretMask.isSecretName(output.name)
                                       || valueMask.occurs(in: output.value))
                    }
                } catch {
                    // Refused outputs fail the attempt, which retries like any failed attempt
                    // (a `retry_on` has no rule for them: the failure is final).
                    outcome.result = .failed
                    outcome.error = "outputs refused: \(error.message)"
                    let refusal = attemptStep.retry.retryOn != nil && attemptStep.retry.retries > 0
                        ? "not retried: retry_on has no rule for refused outputs" : nil
                    return .attemptFinished(step: step, outcome, refusal: refusal)
                }
            }
            return .attemptFinished(step: step, outcome,
                                    refusal: Self.retryRefusal(of: outcome, step: attemptStep, context: attemptContext))
        }
    }

    /// A private folder for the outputs files of a run that has no state folder (nil when none
    /// can be made: its steps then get no `OMNIBASE_OUTPUT`).
    private static func makeTemporaryFolder() -> String? {
        var template = Array((NSTemporaryDirectory() + "/omnibase-outputs-XXXXXX").utf8CString)
        return template.withUnsafeMutableBufferPointer { buffer in
            mkdtemp(buffer.baseAddress!).map { String(cString: $0) }
        }
    }

    /// Why `step`'s `retry_on` does not retry the failed `outcome` (nil: it does, or the step
    /// has no `retry_on`); reads at most the last 64 KiB of the attempt's stderr log.
    private static func retryRefusal(of outcome: AttemptOutcome, step: Step, context: AttemptContext) -> String? {
        guard outcome.result == .failed, let condition = step.retry.retryOn, step.retry.retries > 0 else { return nil }
        return condition.refusal(for: outcome) {
            AttemptLog.tail(atPath: context.stderrPath, maxBytes: RetryCondition.stderrWindow)
        }
    }

    private func record(_ loop: inout RunLoop) async {
        guard !loop.pending.isEmpty else { return }
        let events = loop.pending
        // Not `removeAll(keepingCapacity:)`: the observers may still hold `events`, and keeping
        // the capacity of a shared buffer means allocating a new one that large every turn. Room
        // for a usual turn (an attempt's end and the next start) at once: one allocation, not
        // one per element while it grows.
        loop.pending = []
        loop.pending.reserveCapacity(4)
        for observer in observers {
            do {
                if loop.onProcessLoop && !(observer is any LoopSafeObserver) {
                    // It may wait for a reader: not on the loop that enforces timeouts.
                    try await withTaskExecutorPreference(globalConcurrentExecutor) { try await observer.record(events) }
                } else {
                    try await observer.record(events)
                }
            } catch let error as EngineError {
                if loop.observerFailure == nil { loop.observerFailure = error }
            } catch {
                if loop.observerFailure == nil {
                    loop.observerFailure = EngineError(.stateFailure, "recording the run failed: \(error)")
                }
            }
        }
    }
}

/// A runner's report that an attempt became a cluster job.
private struct Submission: Sendable {
    var step: Int
    var attempt: Int
    var jobID: String
}

/// The executor's bookkeeping of one run: the state machine, the report and the events not
/// recorded yet.
private struct RunLoop {
    let plan: Plan
    let graph: PlanGraph
    let options: RunOptions
    var machine: SchedulerStateMachine
    var builder: RunReportBuilder
    var pending: [RunEvent] = []
    var nextSeq: Int64
    var lastOutcome: [AttemptOutcome?]
    var stopReason: StopReason?
    var observerFailure: EngineError?
    /// The number of each step's latest attempt (0 until it starts).
    var attempts: [Int]
    /// Whether the runner asks before each attempt: starts are then recorded when admitted.
    var asks = false
    /// Whether the scheduler runs on the ``ProcessLoop`` (observers that may block do not).
    var onProcessLoop = false
    /// The `seq` of each step's final event (0 until it has one).
    var finalSeq: [Int64]
    /// Where runners report their attempts' job ids.
    var submitted: AsyncStream<Submission>.Continuation?
    /// Where attempts' outputs files are created (the run's `logs` folder); nil = no outputs.
    var outputsFolder: String?
    /// The outputs of the steps that succeeded (in this session or, on resume, earlier ones).
    private(set) var outputs: StepOutputs
    /// The values of the plan's secret variables and environment entries: an output whose
    /// value holds one is secret.
    let secretValues: SecretMask

    init(plan: Plan, graph: PlanGraph, options: RunOptions) {
        self.plan = plan
        self.graph = graph
        self.options = options
        var policies = plan.steps.map(SchedulerStateMachine.Policy.init)
        if options.keepGoing {
            for index in policies.indices { policies[index].onFailure = .skipDependents }
        }
        machine = SchedulerStateMachine(graph: graph, policies: policies,
                                        maxConcurrency: options.maxConcurrency ?? plan.maxConcurrency,
                                        priorities: options.priorities, initial: options.initial,
                                        previousAttempts: options.previousAttempts, retryBudget: plan.retryBudget,
                                        jitterSeed: SplitMix64.seed(runID: options.runID))
        builder = RunReportBuilder(runID: options.runID, planID: plan.id, stepIDs: graph.ids, traceID: options.traceID,
                                   indexByID: graph.indexByID, matrices: plan.steps.map(\.matrix))
        builder.setConditions(plan.steps.map { $0.condition?.text })
        nextSeq = options.firstSeq
        lastOutcome = [AttemptOutcome?](repeating: nil, count: graph.count)
        finalSeq = [Int64](repeating: 0, count: graph.count)
        attempts = options.previousAttempts ?? [Int](repeating: 0, count: graph.count)
        outputs = options.outputs
        secretValues = plan.secretMask()
    }

    /// The value of output `name` of step `step` (an id), or nil when that step has not
    /// succeeded or did not write it: what `${steps.ID.outputs.NAME}` reads, and what an
    /// expression over `steps.ID.outputs.NAME` should read. Values are verbatim, secret ones
    /// too: never show them.
    func output(step: String, name: String) -> String? {
        outputs.value(step: step, name: name)
    }

    /// The error of an attempt that uses an output its producer did not write: "step build did
    /// not write output version", and why when the producer did not succeed.
    func missingOutputError(_ reference: OutputTemplate.Reference) -> String {
        var why = ""
        if let producer = graph.indexByID[reference.step] {
            switch machine.status(of: producer) {
            case .succeeded: break
            case .failed: why = " (it failed)"
            case .skipped: why = " (it was skipped)"
            case .cancelled: why = " (it was cancelled)"
            case .pending, .running: why = " (it has not finished)"
            }
        }
        return "step \(reference.step) did not write output \(reference.name)\(why), which \(reference.text) needs"
    }

    mutating func emit(_ payload: RunEvent.Payload, step: Int? = nil, attempt: Int? = nil) {
        let event = RunEvent(seq: nextSeq, runID: options.runID, stepID: step.map { graph.ids[$0] }, attempt: attempt,
                             payload: payload)
        nextSeq += 1
        builder.apply(event, stepIndex: step)
        pending.append(event)
    }

    mutating func startEvent() {
        let start = RunStart(planID: plan.id, steps: graph.count, maxConcurrency: options.maxConcurrency ?? plan.maxConcurrency)
        emit(options.resuming ? .runResumed(start) : .runStarted(start))
    }

    /// Records a job id while its attempt still runs (a late report adds nothing: the attempt's
    /// final event carries the id too).
    mutating func jobSubmitted(_ submission: Submission) {
        guard attempts[submission.step] == submission.attempt, machine.status(of: submission.step) == .running else { return }
        emit(.stepSubmitted(jobID: submission.jobID), step: submission.step, attempt: submission.attempt)
    }

    mutating func attemptFinished(_ step: Int, _ outcome: AttemptOutcome) {
        lastOutcome[step] = outcome
        if outcome.result == .failed {
            emit(.stepAttemptFailed(AttemptEnd(outcome)), step: step, attempt: attemptNumber(step))
        }
    }

    private func attemptNumber(_ step: Int) -> Int? {
        attempts[step] > 0 ? attempts[step] : nil
    }

    mutating func event(for action: SchedulerStateMachine.Action, admitted: Bool = false) {
        switch action {
        case .start(let step, let attempt):
            guard !asks || admitted else { return }
            attempts[step] = attempt
            emit(.stepStarted, step: step, attempt: attempt)
        case .scheduleRetry(let step, let attempt, let delay):
            emit(.stepRetry(delaySeconds: Self.seconds(delay)), step: step, attempt: attempt)
        case .finish(let step, let status, let reason):
            finishEvent(step, status, reason)
        case .terminateRunning, .evaluateCondition:
            break
        case .runFinished(let status):
            let exitCode: Int32
            switch status {
            case .succeeded: exitCode = 0
            case .cancelled: exitCode = stopReason?.exitCode ?? (observerFailure?.exitCode ?? 130)
            default: exitCode = observerFailure?.exitCode ?? 1
            }
            // Every step's final status, those of earlier sessions of a resumed run included
            // (the report builder has seen only this session's events).
            var counts: [StepStatus: Int] = [:]
            for step in 0..<graph.count { counts[machine.status(of: step), default: 0] += 1 }
            emit(.runFinished(RunEnd(status: status, exitCode: exitCode, total: graph.count,
                                     succeeded: counts[.succeeded] ?? 0, failed: counts[.failed] ?? 0,
                                     skipped: counts[.skipped] ?? 0, cancelled: counts[.cancelled] ?? 0)))
        }
    }

    private mutating func finishEvent(_ step: Int, _ status: StepStatus, _ reason: SchedulerStateMachine.FinishReason) {
        let attempt = attemptNumber(step)
        finalSeq[step] = nextSeq
        switch status {
        case .succeeded:
            outputs.set(lastOutcome[step]?.outputs ?? [], of: graph.ids[step])
            emit(.stepSucceeded(lastOutcome[step].map(AttemptEnd.init)), step: step, attempt: attempt)
        case .failed:
            var outcome = lastOutcome[step]
            switch reason {
            case .notRetried, .retryBudgetExhausted:
                let error = outcome?.error
                outcome?.error = Self.appending(describe(reason), to: error)
            default:
                break
            }
            emit(.stepFailed(outcome.map(AttemptEnd.init)), step: step, attempt: attempt)
        case .skipped:
            emit(.stepSkipped(reason: describe(reason)), step: step)
        case .cancelled:
            let torn = reason == .interrupted ? lastOutcome[step].map(AttemptEnd.init) : nil
            emit(.stepCancelled(reason: describe(reason), attempt: torn), step: step, attempt: attempt)
        case .pending, .running:
            preconditionFailure("not a final status: \(status)")
        }
    }

    private func describe(_ reason: SchedulerStateMachine.FinishReason) -> String {
        switch reason {
        case .attempted:
            return "finished"
        case .dependencyBlocked(let dependency):
            let verb: String
            switch machine.status(of: dependency) {
            case .failed: verb = "failed"
            case .cancelled: verb = "was cancelled"
            default: verb = "was skipped"
            }
            return "dependency \"\(graph.ids[dependency])\" \(verb)"
        case .aborted(let by):
            return "run aborted: critical step \"\(graph.ids[by])\" failed"
        case .outsideSelection:
            return "outside the --from/--to selection"
        case .interrupted:
            return "run interrupted by \(stopReason?.signalName ?? "a stop request")"
        case .skippedByUser:
            return "skipped by the user"
        case .notRetried(let why):
            return why
        case .retryBudgetExhausted(let budget):
            return "not retried: the retry budget of \(budget) is exhausted"
        case .conditionFalse:
            return "condition false"
        case .notStarted(let why):
            return why
        }
    }

    /// Decides `step`'s `"if"` from the run as it is now: the machine's statuses, the plan's
    /// variables and the outputs of earlier steps (``output(step:name:)``; a missing one reads `''`).
    func conditionHolds(_ step: Int) -> Bool {
        guard let condition = plan.steps[step].condition else { preconditionFailure("step \(step) has no condition") }
        let (success, failure) = machine.conditionInputs(of: step)
        let machine = self.machine, graph = self.graph, variables = plan.variables
        return condition.evaluate(StepCondition.Inputs(
            success: success, failure: failure,
            variable: { variables[$0] },
            status: { id in graph.indexByID[id].map { machine.status(of: $0) } },
            output: { output(step: $0, name: $1) }))
    }

    /// `error (why)`, or `why` when there is no error.
    static func appending(_ why: String, to error: String?) -> String {
        guard let error, !error.isEmpty else { return why }
        return "\(error) (\(why))"
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

extension DAGExecutor where C == ContinuousClock {
    /// Creates an executor for a plan built in code on the continuous clock.
    ///
    /// ```swift
    /// let report = try await DAGExecutor(plan: plan).run()
    /// ```
    /// - Throws: ``EngineError`` (exit 2) naming the first problem of the DAG.
    public init(plan: Plan, options: RunOptions = RunOptions(), runner: any StepRunner = LocalStepRunner(),
                observers: [any RunObserver] = [], commitGate: (any CommitGate)? = nil) throws(EngineError) {
        try self.init(plan: plan, options: options, runner: runner, observers: observers, commitGate: commitGate,
                      clock: ContinuousClock())
    }
}
