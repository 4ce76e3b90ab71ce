import Foundation

/// What a user asked of a run besides the plan: kept with the run so `resume` and `replay` repeat it.
public struct RunRequest: Sendable, Hashable {
    /// `--max-concurrency` (or 1 for `--mode sync`); nil = the plan's.
    public var maxConcurrency: Int?
    /// `--from` (repeatable): run what is downstream of any of these steps.
    public var from: [String]
    /// `--to` (repeatable): run what is upstream of any of these steps.
    public var to: [String]
    /// The stage, for stage orchestrators.
    public var stage: String?
    /// Free-form labels kept with the run (e.g. the git commit a stage ran on), readable from
    /// ``RunStore/RunRecord/options`` under `labels`.
    public var labels: [String: String]
    /// Among ready steps, start the one that comes first in the plan (instead of the one with the
    /// longest remaining path): a stage in sync mode runs in registry order where dependencies allow.
    public var preservePlanOrder: Bool
    /// `--executor`: where steps that do not name an executor run; nil = the plan's
    /// `globals.executor`, else local.
    public var executor: ExecutorKind?
    /// `-k`/`--keep-going`: every failure acts as `skip_dependents` (``RunOptions/keepGoing``).
    public var keepGoing: Bool
    /// Steps of the plan that this run does not start, by id, each with the reason its report
    /// gives (a stage's open circuit breakers): they end `skipped` with it, count in the run's
    /// status (a critical one fails the run), and their dependents are skipped. `resume` keeps
    /// them unstarted; a replay, a new run, decides anew (nothing is carried over).
    public var notStarted: [String: String]

    /// Creates a request.
    public init(maxConcurrency: Int? = nil, from: [String] = [], to: [String] = [], stage: String? = nil,
                labels: [String: String] = [:], preservePlanOrder: Bool = false, executor: ExecutorKind? = nil,
                keepGoing: Bool = false, notStarted: [String: String] = [:]) {
        self.keepGoing = keepGoing
        self.notStarted = notStarted
        self.maxConcurrency = maxConcurrency
        self.from = from
        self.to = to
        self.stage = stage
        self.labels = labels
        self.preservePlanOrder = preservePlanOrder
        self.executor = executor
    }

    /// Priorities that make the scheduler prefer earlier steps of the plan.
    public static func planOrderPriorities(count: Int) -> [Double] { (0..<count).map { Double(count - $0) } }

    /// The request as stored in the run's `options` column.
    public var json: JSONValue {
        var members: [JSONValue.Member] = [
            .init("max_concurrency", maxConcurrency.map { .int($0) } ?? .null),
            .init("from", .array(from.map { .string($0) })),
            .init("to", .array(to.map { .string($0) })),
            .init("labels", .object(labels.sorted { $0.key < $1.key }.map { .init($0.key, .string($0.value)) })),
            .init("plan_order", .bool(preservePlanOrder)),
        ]
        if let executor { members.append(.init("executor", .string(executor.rawValue))) }
        if keepGoing { members.append(.init("keep_going", .bool(true))) }
        if !notStarted.isEmpty {
            members.append(.init("not_started", .object(notStarted.sorted { $0.key < $1.key }.map { .init($0.key, .string($0.value)) })))
        }
        return .object(members)
    }

    /// A request read back from a run's `options` column.
    public init(json: JSONValue, stage: String?) {
        maxConcurrency = json["max_concurrency"]?.intValue
        // Runs stored before `--from`/`--to` repeated hold one string (or null).
        func ids(_ value: JSONValue?) -> [String] {
            value?.stringValue.map { [$0] } ?? value?.arrayValue?.compactMap(\.stringValue) ?? []
        }
        from = ids(json["from"])
        to = ids(json["to"])
        self.stage = stage
        var labels: [String: String] = [:]
        for member in json["labels"]?.objectValue ?? [] { labels[member.key] = member.value.stringValue ?? "" }
        self.labels = labels
        preservePlanOrder = json["plan_order"]?.boolValue ?? false
        executor = json["executor"]?.stringValue.flatMap(ExecutorKind.init(rawValue:))
        keepGoing = json["keep_going"]?.boolValue ?? false
        var notStarted: [String: String] = [:]
        for member in json["not_started"]?.objectValue ?? [] { notStarted[member.key] = member.value.stringValue ?? "" }
        self.notStarted = notStarted
    }

    /// How each step of `graph` enters a new run: outside the `--from`/`--to` selection
    /// (``PlanGraph/initialStates(from:to:)``), not started (``notStarted``; a step outside the
    /// selection stays outside it), or pending; nil when every step is pending.
    /// - Throws: ``EngineError`` exit 3 for an id that names no step, 2 for an empty selection.
    public func initialStates(of graph: PlanGraph) throws(EngineError) -> [SchedulerStateMachine.InitialState]? {
        let selection = try graph.initialStates(from: from, to: to)
        guard !notStarted.isEmpty else { return selection }
        var states = selection ?? [SchedulerStateMachine.InitialState](repeating: .pending, count: graph.count)
        for (id, reason) in notStarted.sorted(by: { $0.key < $1.key }) {
            guard let index = graph.indexByID[id] else {
                throw EngineError(.unknownReference, "a step not to start names unknown step \"\(id)\"")
            }
            if states[index] == .pending { states[index] = .notStarted(reason: reason) }
        }
        return states
    }
}

/// Runs plans with durable state: the run's row, steps, attempts and events in `runs.db`, its
/// `events.jsonl`, attempt logs, and the lease that keeps one engine per run.
///
/// Layout under the state folder:
///
/// | path | content |
/// | --- | --- |
/// | `runs.db` (+ `-wal`, `-shm`, `.lock`) | the run history (see ``RunStore``) |
/// | `runs/<id>/events.jsonl` | one event per line (SPEC §3), written after each commit |
/// | `runs/<id>/logs/<step>.<attempt>.out` / `.err` | each attempt's output |
/// | `runs/<id>/logs/<step>.<attempt>.outputs` | each attempt's `$OMNIBASE_OUTPUT`, if it wrote one (``OutputFile``) |
/// | `runs/<id>/lease` | locked by the engine working on the run |
///
/// ```swift
/// let session = try RunSession(stateDirectory: ".state")
/// let report = try await session.start(try PlanLoader.load(path: "plans/hello.json"))
/// if report.status != .succeeded {
///     _ = try await session.resume(runID: report.runID)   // re-runs what did not succeed
/// }
/// ```
public struct RunSession: Sendable {
    /// The state folder.
    public let stateDirectory: StateDirectory
    /// `synchronous` of the store's writes.
    public var synchronous: SQLiteDatabase.Synchronous
    /// How often the Slurm executor polls (tests poll faster).
    public var slurmPolling = SlurmStepRunner.Polling()

    /// Where local (and closure) steps run, for every run, resume and replay of this session;
    /// steps of other executors go to theirs (``ExecutorRegistry``).
    public var runner: any StepRunner

    /// Opens the state folder (creating it 0700).
    /// - Parameter runner: where local steps run (local processes and in-process closures by
    ///   default; `run --step` asks first).
    public init(stateDirectory path: String, synchronous: SQLiteDatabase.Synchronous = .full,
                runner: any StepRunner = LocalStepRunner()) throws(EngineError) {
        try DescriptorGate.requireRoomToRun()
        do { stateDirectory = try StateDirectory(path: path) } catch { throw EngineError(error) }
        self.synchronous = synchronous
        self.runner = runner
    }

    /// Starts a new run of `loaded` and runs it to its end.
    /// - Parameters:
    ///   - request: concurrency override, selection, stage.
    ///   - observers: more observers (progress printers).
    ///   - stopRequests: signals.
    ///   - runID: the new run's id.
    ///   - parentRunID: the run this one replays.
    /// - Returns: the final report.
    /// - Throws: ``EngineError`` (exit 3 for an unknown `--from`/`--to` step, 74 when the state
    ///   folder fails).
    public func start(_ loaded: LoadedPlan, request: RunRequest = RunRequest(), observers: [any RunObserver] = [],
                      stopRequests: AsyncStream<StopReason>? = nil, runID: String = RunID.make(),
                      parentRunID: String? = nil) async throws(EngineError) -> RunReport {
        let initial = try request.initialStates(of: loaded.graph)
        // The database before the run's folder (which the lease creates): a state folder the
        // store refuses (a damaged history, StateDirectory.checkHistoryIntact) is left untouched.
        let traceID = RunID.traceID()
        let lease: RunLease
        let failedLastTime: Set<String>
        do {
            let store = try RunStore(stateDirectory: stateDirectory, synchronous: synchronous)
            failedLastTime = try store.failedStepsOfLatestRun(planID: loaded.plan.id) ?? []
            lease = try RunLease(stateDirectory: stateDirectory, runID: runID)
            try store.createRun(RunStore.NewRun(
                runID: runID, planID: loaded.plan.id, traceID: traceID, stage: request.stage, parentRunID: parentRunID,
                source: loaded.source.withholding(loaded.plan.isSecret), options: request.json,
                stepIDs: loaded.graph.ids, engine: .current))
        }
        defer { lease.release() }
        var options = RunOptions(runID: runID, maxConcurrency: Self.maxConcurrency(request, loaded.plan), initial: initial,
                                 traceID: traceID)
        options.priorities = request.preservePlanOrder
            ? RunRequest.planOrderPriorities(count: loaded.graph.count) : priorities(for: loaded, failedFirst: failedLastTime)
        options.keepGoing = request.keepGoing
        return try await execute(loaded, options: options, observers: observers, stopRequests: stopRequests,
                                 stage: request.stage, runner: router(loaded.plan, runID: runID, executor: request.executor))
    }

    /// Starts a durable run of a plan built in code (see ``LoadedPlan/init(_:)``).
    /// - Throws: ``EngineError``: exit 2 when the plan's DAG is invalid, and as
    ///   the start of a loaded plan.
    public func start(_ plan: Plan, request: RunRequest = RunRequest(), observers: [any RunObserver] = [],
                      stopRequests: AsyncStream<StopReason>? = nil,
                      runID: String = RunID.make()) async throws(EngineError) -> RunReport {
        try await start(LoadedPlan(plan), request: request, observers: observers, stopRequests: stopRequests, runID: runID)
    }

    /// Continues a failed, cancelled or crashed run: same run id, succeeded steps kept, the rest
    /// run again, events appended.
    /// - Parameters:
    ///   - secrets: the values of the run's secret `--var`s, which were not stored.
    ///   - plan: the plan again, for a run of a plan built in code (``LoadedPlan/init(_:)``);
    ///     nil loads the plan file's stored snapshot.
    ///   - executor: `--executor`; nil keeps the one the run was started with.
    ///   - keepGoing: `--keep-going`: from now on (and in later resumes) every failure acts as
    ///     `skip_dependents`; false keeps what the run was started with.
    /// - Throws: ``EngineError``: exit 3 for an unknown run, 75 when a live engine holds it, 2
    ///   when `secrets` does not give exactly the values that were not stored, or when the run's
    ///   plan was built in code and `plan` is nil.
    public func resume(runID: String, secrets: [String: String] = [:], plan: Plan? = nil,
                       observers: [any RunObserver] = [],
                       stopRequests: AsyncStream<StopReason>? = nil,
                       executor: ExecutorKind? = nil, keepGoing: Bool = false) async throws(EngineError) -> RunReport {
        let store = try RunStore(stateDirectory: stateDirectory, synchronous: synchronous)
        guard var record = try store.run(runID) else { throw unknownRun(runID) }
        let lease = try RunLease(stateDirectory: stateDirectory, runID: runID, holder: record.engine)
        defer { lease.release() }
        // What the last engine committed at `--synchronous normal` and the database lacks.
        let replayed = try CommitRecord.replay(stateDirectory: stateDirectory, runID: runID, store: store)
        if replayed > 0 {
            guard let current = try store.run(runID) else { throw unknownRun(runID) }
            record = current
        }
        // A run whose end only its commit record held (its engine could not write the database,
        // a full disk) is finished by this resume, which records it: not refused.
        if record.status == .succeeded && replayed == 0 {
            // An engine killed after its last commit may have left events.jsonl short: mend it.
            do { try EventLogFile(stateDirectory: stateDirectory, runID: runID).repair(from: store.events(runID)) } catch {
                throw EngineError(error)
            }
            throw EngineError(.usage, "run \(runID) already succeeded; nothing to resume (use 'replay \(runID)' to run it again)")
        }
        let source = try Self.complete(record.source, secrets: secrets, runID: runID)
        let loaded = try Self.plan(plan, stored: source, runID: runID)
        // A secret value the run has not run with (rotated) is checked from now on too, so that
        // a report can tell that one value no longer masks every attempt's logs.
        let checks = record.source.secretChecks(adding: secrets)
        if checks != record.source.secretChecks {
            var updated = record.source
            updated.secretChecks = checks
            try store.updateSecretChecks(runID: runID, source: updated)
        }
        var request = RunRequest(json: record.options, stage: record.stage)
        // A stop while the takeover below waits (SIGTERM to `resume`) lets it finish, then
        // starts nothing.
        let stops = stopRequests.map(StopWatch.init)
        // The lease is ours, so the engine that had the run is gone: each executor tears down
        // what it left (cluster jobs first, then local process groups, with the plan's
        // `kill_grace_sec` between SIGTERM and SIGKILL) and names those attempts.
        let reclaimed = await router(loaded.plan, runID: runID, executor: request.executor)
            .reclaimLostAttempts(runID: runID, killGrace: loaded.plan.killGrace)
        let stored = try store.steps(runID)
        guard stored.map(\.id) == loaded.graph.ids else {
            throw EngineError(.protocolViolation, "run \(runID): its stored steps do not match its plan snapshot")
        }
        if (executor.map { $0 != request.executor } ?? false) || (keepGoing && !request.keepGoing) {
            if let executor { request.executor = executor }
            if keepGoing { request.keepGoing = true }
            try store.updateOptions(runID: runID, options: request.json)
        }
        let selection = try request.initialStates(of: loaded.graph)
        var initial: [SchedulerStateMachine.InitialState] = []
        for (index, step) in stored.enumerated() {
            if let state = selection?[index], state != .pending {
                initial.append(state)  // outside --from/--to, or not started
            } else {
                initial.append(step.status == .succeeded ? .alreadySucceeded : .pending)
            }
        }
        // Attempts the dead engine left open: those whose start it recorded, then those that left
        // a trace (a journal line, a log file, a leftover process, a cluster's job) but whose
        // start was never committed (the engine died within a group commit's window), which may
        // have run. Each is closed once: with its job's own result when the job ended while
        // no engine watched it, else as "engine lost" (its step runs again). Numbering
        // continues above every trace.
        let closing = TakeoverClosing(logsFolder: stateDirectory.logsFolder(runID: runID), secretNames: loaded.plan.secretNames)
        let stepIndex = Dictionary(uniqueKeysWithValues: loaded.graph.ids.enumerated().map { ($1, $0) })
        var seq = record.lastSeq
        var lost: [RunEvent] = []
        var closed: [(step: Int, attempt: Int)] = []
        func close(_ stepID: String, _ attempt: Int, recordedJobID: String?, startUnrecorded: Bool) {
            guard let index = stepIndex[stepID] else { return }
            let found = reclaimed.first { $0.stepID == stepID && $0.attempt == attempt }
            var payload = closing.end(of: .init(step: loaded.plan.steps[index], number: attempt, recordedJobID: recordedJobID,
                                                found: found, startUnrecorded: startUnrecorded))
            if case .stepSucceeded(let end) = payload, initial[index] == .alreadySucceeded {
                // One success per step: a second one (which no engine would have started) is kept as a failed attempt.
                var second = end ?? AttemptEnd()
                second.error = "succeeded after the step had already succeeded"
                second.outputs = []
                payload = .stepAttemptFailed(second)
            }
            if startUnrecorded {
                seq += 1
                lost.append(RunEvent(seq: seq, runID: runID, stepID: stepID, attempt: attempt, payload: .stepStarted))
            }
            seq += 1
            lost.append(RunEvent(seq: seq, runID: runID, stepID: stepID, attempt: attempt, payload: payload))
            if case .stepSucceeded = payload, initial[index] == .pending { initial[index] = .alreadySucceeded }
            closed.append((index, attempt))
        }
        for attempt in try store.attempts(runID) where attempt.finishedAt == nil {
            close(attempt.stepID, attempt.attempt, recordedJobID: attempt.jobID, startUnrecorded: false)
        }
        var previousAttempts = stored.map(\.attempts)
        let traced = AttemptJournal.traces(stateDirectory: stateDirectory, runID: runID, stepIDs: Set(loaded.graph.ids))
            .merging(Dictionary(reclaimed.map { ($0.stepID, Set([$0.attempt])) }, uniquingKeysWith: { $0.union($1) })) { $0.union($1) }
        if !traced.isEmpty {
            let recorded = try store.attemptNumbers(runID)
            for (index, step) in stored.enumerated() {
                guard let numbers = traced[step.id] else { continue }
                previousAttempts[index] = max(previousAttempts[index], numbers.max() ?? 0)
                // Commits keep event order: a step recorded succeeded had no later attempt.
                guard step.status != .succeeded else { continue }
                for attempt in numbers.subtracting(recorded[step.id] ?? []).sorted() {
                    close(step.id, attempt, recordedJobID: nil, startUnrecorded: true)
                }
            }
        }
        // Logs a job opened and never wrote to (a job opens both when it starts): no file = no output.
        for (index, attempt) in closed {
            for stream in AttemptLog.Stream.allCases {
                let log = AttemptLog(stepID: loaded.graph.ids[index], attempt: attempt, stream: stream)
                AttemptLog.removeIfEmpty(atPath: stateDirectory.path(of: log, runID: runID))
            }
        }
        if !lost.isEmpty { try store.append(lost) }
        try store.claim(runID: runID, engine: .current)
        var options = RunOptions(runID: runID, maxConcurrency: Self.maxConcurrency(request, loaded.plan), initial: initial,
                                 traceID: record.traceID, firstSeq: seq + 1, resuming: true)
        options.previousAttempts = previousAttempts
        // Steps that succeeded in earlier sessions keep their outputs for the steps that use them.
        options.outputs = try store.outputs(runID)
        options.priorities = request.preservePlanOrder
            ? RunRequest.planOrderPriorities(count: loaded.graph.count)
            : priorities(for: loaded, failedFirst: Set(stored.filter { $0.status == .failed }.map(\.id)))
        options.keepGoing = request.keepGoing
        options.stoppedBeforeStart = stops?.requested
        _ = try await execute(loaded, options: options, observers: observers, stopRequests: stops?.stream,
                              stage: record.stage, durableSeq: seq,
                              runner: router(loaded.plan, runID: runID, executor: request.executor))
        guard var report = try store.report(runID) else { throw unknownRun(runID) }
        report.attachMatrices(from: loaded.plan)
        return report
    }

    /// Runs a stored run again from its snapshot, as a new run.
    /// - Parameters:
    ///   - secrets: the values of the run's secret `--var`s, which were not stored.
    ///   - executor: `--executor`; nil keeps the one the run was started with.
    ///   - keepGoing: `--keep-going`; false keeps what the run was started with.
    /// - Throws: ``EngineError``: exit 3 for an unknown run, 2 for a run that has not finished
    ///   (still running, or left by a dead engine for `resume`) or when `secrets` does not give
    ///   exactly the values that were not stored.
    public func replay(runID: String, secrets: [String: String] = [:], plan: Plan? = nil,
                       observers: [any RunObserver] = [],
                       stopRequests: AsyncStream<StopReason>? = nil,
                       executor: ExecutorKind? = nil, keepGoing: Bool = false) async throws(EngineError) -> RunReport {
        let store = try RunStore(stateDirectory: stateDirectory, readOnly: true)
        guard let record = try store.run(runID) else { throw unknownRun(runID) }
        try record.requireFinishedForReplay()
        let loaded = try Self.plan(plan, stored: Self.complete(record.source, secrets: secrets, runID: runID), runID: runID)
        var request = RunRequest(json: record.options, stage: record.stage)
        if let executor { request.executor = executor }
        if keepGoing { request.keepGoing = true }
        // What the replayed run did not start was that invocation's decision: a new run decides anew.
        request.notStarted = [:]
        return try await start(loaded, request: request, observers: observers, stopRequests: stopRequests, parentRunID: runID)
    }

    private func execute(_ loaded: LoadedPlan, options: RunOptions, observers: [any RunObserver],
                         stopRequests: AsyncStream<StopReason>?, stage: String?, durableSeq: Int64 = 0,
                         runner: any StepRunner) async throws(EngineError) -> RunReport {
        var options = options
        do {
            options.logDirectory = try stateDirectory.ensureSubdirectory(AttemptLog.folder(runID: options.runID))
        } catch {
            throw EngineError(error)
        }
        // Steps create their outputs files there with their own umask: 0600 all the same.
        options.logDirectoryKeepsFilesPrivate = options.logDirectory.map(OutputFile.makeNewFilesPrivate(inFolder:)) ?? false
        let recorder = try StoreRecorder(stateDirectory: stateDirectory, runID: options.runID, durableSeq: durableSeq,
                                         synchronous: synchronous)
        let mask = loaded.plan.secretMask()
        let runner = mask.isEmpty ? runner : MaskingStepRunner(base: runner, mask: mask)
        let executor = DAGExecutor(plan: loaded.plan, graph: loaded.graph, options: options, runner: runner,
                                   observers: [recorder] + observers, commitGate: recorder, clock: ContinuousClock())
        let result: Result<RunReport, EngineError>
        do { result = .success(try await executor.run(stopRequests: stopRequests)) } catch { result = .failure(error) }
        let stopped: Bool
        switch result {
        case .success(let report): stopped = report.status == .cancelled
        case .failure: stopped = true
        }
        if stopped {
            // A stop (or a failure that stopped the run) also ends what its steps moved out of
            // their process groups (`setsid`), as a resume's takeover would.
            let grace = loaded.plan.killGrace
            let marks = OrphanReaper.Marks.run(options.runID)
            _ = await withUncancelledTask { await OrphanReaper.tearDown(marked: marks, grace: grace) }
        }
        try await recorder.close()
        var report = try result.get()
        report.stage = stage
        if report.status == .failed {
            // The values of secret outputs are masked in the snapshot's log tails too.
            let outputs = (try? RunStore(stateDirectory: stateDirectory, readOnly: true).outputs(options.runID)) ?? StepOutputs()
            let snapshotMask = mask.merging(SecretMask(values: outputs.values(named: loaded.plan.isSecret)))
            try FailureSnapshot.write(report: report, loaded: loaded, stateDirectory: stateDirectory, mask: snapshotMask)
        }
        return report
    }

    /// The runner of a run: the session's for local and closure steps, and one of each other
    /// executor its steps use (``ExecutorRegistry``).
    func router(_ plan: Plan, runID: String, executor: ExecutorKind?) -> ExecutorRouter {
        ExecutorRegistry.router(for: plan, runID: runID, defaultKind: executor ?? plan.executor ?? .local, session: self)
    }

    /// `--max-concurrency`, else the plan's; a plan that sets none and runs on Slurm by default
    /// gets ``SlurmStepRunner/defaultMaxConcurrency`` jobs in flight.
    static func maxConcurrency(_ request: RunRequest, _ plan: Plan) -> Int? {
        if let given = request.maxConcurrency { return given }
        let slurm = (request.executor ?? plan.executor) == .slurm
        return slurm && plan.maxConcurrencyIsDefault ? SlurmStepRunner.defaultMaxConcurrency : nil
    }

    /// The scheduling priorities of a run that fails fast: ``priorities(for:)`` (node counts
    /// without history), then the steps in `failedFirst` (those that failed last time) raised
    /// above every other step, and the steps they depend on (transitively) above every step
    /// that is neither, so the failure shows again as early as the dependencies allow. The order
    /// within each group is kept; nil when `failedFirst` is empty and there is no history.
    public func priorities(for loaded: LoadedPlan, failedFirst: Set<String>) -> [Double]? {
        let graph = loaded.graph
        let failed = graph.ids.indices.filter { failedFirst.contains(graph.ids[$0]) }
        guard !failed.isEmpty else { return priorities(for: loaded) }
        var priority = priorities(for: loaded) ?? graph.remainingPathLengths()
        let lift = (priority.max() ?? 0) + 1
        var upstream = Set<Int>()
        var stack = failed
        while let node = stack.popLast() {
            for dependency in graph.dependencies[node].map(Int.init) where upstream.insert(dependency).inserted {
                stack.append(dependency)
            }
        }
        for node in upstream { priority[node] += lift }
        for node in failed { priority[node] += (upstream.contains(node) ? 1 : 2) * lift }
        return priority
    }

    /// The steps that failed in the latest finished run of a plan, when it failed (else empty).
    public func failedInLatestRun(planID: String) -> Set<String> {
        guard let store = try? RunStore(stateDirectory: stateDirectory, readOnly: true) else { return [] }
        return ((try? store.failedStepsOfLatestRun(planID: planID)) ?? nil) ?? []
    }

    /// The scheduling priority of each step: its longest remaining path in *measured* seconds
    /// (the median of its recent successful attempts in earlier runs of the same plan), so the
    /// ready step with the most work behind it starts first. Steps without history count as the
    /// median of the steps that have one; with no history at all, nil (node counts).
    public func priorities(for loaded: LoadedPlan) -> [Double]? {
        guard let store = try? RunStore(stateDirectory: stateDirectory, readOnly: true),
              let history = try? store.successfulDurations(planID: loaded.plan.id), !history.isEmpty else { return nil }
        var medians: [Double?] = loaded.graph.ids.map { id in
            guard let samples = history[id], !samples.isEmpty else { return nil }
            return samples.sorted()[samples.count / 2]
        }
        let known = medians.compactMap { $0 }.sorted()
        guard !known.isEmpty else { return nil }
        let fallback = max(known[known.count / 2], 1e-6)
        medians = medians.map { $0.map { max($0, 1e-6) } ?? fallback }
        return loaded.graph.remainingPathLengths(weights: medians.map { $0 ?? fallback })
    }

    /// A stored source with its withheld secrets given again (exit 2 when they do not match).
    /// The plan a stored run continues with: the caller's (a plan built in code), or the stored
    /// snapshot of its file.
    static func plan(_ plan: Plan?, stored source: PlanSource, runID: String) throws(EngineError) -> LoadedPlan {
        if let plan { return try LoadedPlan(plan) }
        guard !source.isInCode else {
            throw EngineError(.usage, "run \(runID) ran a plan built in code, which is not stored: "
                              + "continue it through the library with the same plan (RunSession.resume(runID:plan:))")
        }
        return try PlanLoader.load(source)
    }

    static func complete(_ source: PlanSource, secrets: [String: String], runID: String) throws(EngineError) -> PlanSource {
        switch source.supplying(secrets) {
        case .success(let complete): return complete
        case .failure(let mismatch): throw EngineError(.usage, "run \(runID) \(mismatch.sentence)")
        }
    }

    private func unknownRun(_ runID: String) -> EngineError {
        EngineError(.unknownReference, "no run \(runID) in \(stateDirectory.path)")
    }
}

/// Masks secret values in attempts' errors before anything records or prints them (a command
/// that is itself a secret value would otherwise show up in "cannot start" messages).
struct MaskingStepRunner: StepRunner, LoopSafeRunner {
    let base: any StepRunner
    let mask: SecretMask

    var neverBlocksItsThread: Bool { (base as? any LoopSafeRunner)?.neverBlocksItsThread == true }

    func run(_ step: Step, context: AttemptContext) async -> AttemptOutcome {
        var outcome = await base.run(step, context: context)
        outcome.error = outcome.error.map(mask.apply)
        return outcome
    }

    var asksBeforeStarting: Bool { base.asksBeforeStarting }

    func admit(_ step: Step, context: AttemptContext) async -> Admission { await base.admit(step, context: context) }
}
