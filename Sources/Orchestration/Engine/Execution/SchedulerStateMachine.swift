/// The rules of SPEC §2 as a pure state machine: events in, actions out, no I/O.
///
/// The executor feeds it what happened (an attempt finished, a retry timer fired, a stop was
/// requested) and performs the actions it returns (start an attempt, arm a retry timer, record a
/// final status, tear down running attempts, finish the run). Every transition outside SPEC's
/// `pending -> running -> final` is a bug and traps.
///
/// A step with an `"if"` (``StepCondition``) is decided when its dependencies are settled: the
/// machine returns ``Action/evaluateCondition(step:)`` and the executor answers with
/// ``conditionEvaluated(_:holds:into:)`` at once (the expression reads outputs and variables the
/// machine does not hold). A condition without `failure()`/`always()` is decided only once every
/// dependency lets the step run (SPEC §2, `success()` implied); one with them (``Policy/awaitsAnyOutcome``)
/// once every dependency, direct and transitive, is final, whatever its status. Such steps are
/// spared by a critical `abort` (they are what cleanup and notification steps are for) but not
/// by a stop request (SIGINT/SIGTERM): a stop cancels them like every other step not started.
/// A step skipped because its condition is false, and a step skipped only because of such skips,
/// does not make the run fail.
///
/// Among ready steps, the one with the longest remaining path (``PlanGraph/remainingPathLengths(weights:)``)
/// starts first; ties go to the step that comes first in the plan.
public struct SchedulerStateMachine: Sendable {
    /// What the executor must do.
    public enum Action: Sendable, Equatable {
        /// Start attempt `attempt` (1-based) of `step`.
        case start(step: Int, attempt: Int)
        /// Arm a timer; when it fires, call ``retryTimerFired(_:into:)``. `attempt` is the next one.
        case scheduleRetry(step: Int, attempt: Int, delay: Duration)
        /// `step` reached a final status.
        case finish(step: Int, status: StepStatus, reason: FinishReason)
        /// Tear down every running attempt (a stop was requested); each reports back as cancelled.
        case terminateRunning
        /// Every step is final; the run ended with this status.
        case runFinished(RunStatus)
        /// Decide `step`'s condition now (``conditionInputs(of:)`` gives `success()` and
        /// `failure()`) and report it with ``conditionEvaluated(_:holds:into:)`` before anything else.
        case evaluateCondition(step: Int)
    }

    /// Why a step reached its final status.
    public enum FinishReason: Sendable, Equatable {
        /// Its last attempt succeeded or failed on its own.
        case attempted
        /// A dependency ended in a way that does not let it run.
        case dependencyBlocked(dependency: Int)
        /// A critical step failed with `on_failure: abort` before this one started.
        case aborted(by: Int)
        /// Outside the `--from`/`--to` selection.
        case outsideSelection
        /// The run was stopped (SIGINT/SIGTERM).
        case interrupted
        /// The user skipped it (`run --step`).
        case skippedByUser
        /// Its attempt failed in a way its `retry_on` does not retry; the text says why
        /// (`not retried: exit code 3 is not in retry_on.exit_codes`).
        case notRetried(String)
        /// Its attempt failed with retries left, but the run's `globals.retry_budget` (the
        /// value) was used up.
        case retryBudgetExhausted(Int)
        /// Its `"if"` was false.
        case conditionFalse
        /// The caller decided before the run that it is not started; the text says why (a stage's
        /// open circuit breaker).
        case notStarted(String)
    }

    /// How a step enters the run.
    public enum InitialState: Sendable, Equatable {
        /// To be run.
        case pending
        /// Succeeded in an earlier session of the same run (resume): kept, not run again.
        case alreadySucceeded
        /// Outside the `--from`/`--to` selection: reported skipped, treated as satisfied by
        /// dependents, not counted in the run's status.
        case excluded
        /// Not started, for the reason given (a stage's open circuit breaker): reported skipped
        /// with it, counted in the run's status (a critical one fails the run) and, as any
        /// skipped step, its dependents are skipped.
        case notStarted(reason: String)
    }

    /// A step's scheduling rules.
    public struct Policy: Sendable {
        /// 1 + retries.
        public var maxAttempts: Int
        /// `critical`.
        public var critical: Bool
        /// The effective policy (a non-critical `abort` is `skip_dependents`).
        public var onFailure: FailurePolicy
        /// The retry delays.
        public var retry: RetryPolicy
        /// Whether it has an `"if"` to decide before it starts.
        public var hasCondition: Bool
        /// Whether its condition calls `failure()` or `always()`: decided once its dependencies
        /// have ended whatever their status, and started even after a critical `abort`.
        public var awaitsAnyOutcome: Bool

        /// The policy of a plan step.
        public init(_ step: Step) {
            maxAttempts = step.retry.maxAttempts
            critical = step.critical
            onFailure = step.effectiveFailurePolicy
            retry = step.retry
            hasCondition = step.condition != nil
            awaitsAnyOutcome = step.condition?.awaitsAnyOutcome ?? false
        }
    }

    private enum Phase: Equatable {
        case waiting
        case ready
        case running(attempt: Int)
        case retryWait(attempt: Int)
        /// Its condition is being decided (``Action/evaluateCondition(step:)``).
        case evaluating
        case final(StepStatus)
    }

    /// Why a skipped step was skipped, for the run's status.
    private enum SkipCause: UInt8 { case none, condition, dependency }

    private let dependencies: [[Int32]]
    private let dependents: [[Int32]]
    private let policies: [Policy]
    private let counted: [Bool]
    /// The reason of each step that enters ``InitialState/notStarted(reason:)``.
    private let notStarted: [Int: String]
    private let order: [Int]
    private var skipCause: [SkipCause]
    /// Steps whose condition awaits any outcome, whose direct dependencies are final but some
    /// transitive one is not yet.
    private var parked: [Int] = []
    private let maxConcurrency: Int
    private var phase: [Phase]
    private var nextAttempt: [Int]
    private let attemptOffset: [Int]
    private var unmetDependencies: [Int32]
    private var ready: Heap<Int32>
    private var finalCount = 0
    private var started = false
    private var stopping = false
    private var abortedBy: Int?
    private var runFinished = false
    private let retryBudget: Int?
    private var jitter: SplitMix64

    /// Attempts running right now.
    public private(set) var runningCount = 0
    /// Steps waiting for a retry timer.
    public private(set) var retryWaitingCount = 0
    /// The most attempts that were ever running at once (for tests of the concurrency limit).
    public private(set) var maxRunningObserved = 0
    /// Retries scheduled in this session (what `globals.retry_budget` counts).
    public private(set) var retriesScheduled = 0

    /// Creates the state machine of one run.
    /// - Parameters:
    ///   - graph: the validated DAG.
    ///   - policies: each step's rules, by index.
    ///   - maxConcurrency: the most attempts running at once (at least 1).
    ///   - priorities: larger starts first (e.g. remaining path lengths); nil = node counts.
    ///   - initial: how each step enters (resume, `--from`/`--to`); nil = all pending.
    ///   - previousAttempts: attempts each step made in earlier sessions of the run (resume):
    ///     numbering continues after them and the step gets a fresh `1 + retries` budget.
    ///   - retryBudget: `globals.retry_budget`, the most retries of the session; nil = no cap.
    ///   - jitterSeed: the seed of the `retry_jitter` draws (``SplitMix64``), so the same seed
    ///     and the same sequence of events give the same delays.
    public init(graph: PlanGraph, policies: [Policy], maxConcurrency: Int, priorities: [Double]? = nil,
                initial: [InitialState]? = nil, previousAttempts: [Int]? = nil, retryBudget: Int? = nil,
                jitterSeed: UInt64 = 0) {
        precondition(policies.count == graph.count && maxConcurrency >= 1)
        let priority = priorities ?? graph.remainingPathLengths()
        dependencies = graph.dependencies
        dependents = graph.dependents
        self.policies = policies
        self.maxConcurrency = maxConcurrency
        precondition(retryBudget.map { $0 >= 0 } ?? true, "a retry budget is not negative")
        self.retryBudget = retryBudget
        jitter = SplitMix64(seed: jitterSeed)
        let initial = initial ?? [InitialState](repeating: .pending, count: graph.count)
        counted = initial.map { $0 != .excluded }
        var notStarted: [Int: String] = [:]
        for (step, state) in initial.enumerated() {
            if case .notStarted(let reason) = state { notStarted[step] = reason }
        }
        self.notStarted = notStarted
        order = graph.topologicalOrder
        skipCause = [SkipCause](repeating: .none, count: graph.count)
        phase = initial.map { state in
            switch state {
            case .pending: return .waiting
            case .alreadySucceeded: return .final(.succeeded)
            case .excluded, .notStarted: return .final(.skipped)
            }
        }
        attemptOffset = previousAttempts ?? [Int](repeating: 0, count: graph.count)
        nextAttempt = attemptOffset.map { $0 + 1 }
        unmetDependencies = [Int32](repeating: 0, count: graph.count)
        ready = Heap<Int32> { a, b in
            let pa = priority[Int(a)], pb = priority[Int(b)]
            return pa != pb ? pa > pb : a < b
        }
    }

    /// The status a step has now.
    public func status(of step: Int) -> StepStatus {
        switch phase[step] {
        case .waiting, .ready, .retryWait, .evaluating: return .pending
        case .running: return .running
        case .final(let status): return status
        }
    }

    /// Whether the run has finished.
    public var isFinished: Bool { runFinished }

    // MARK: - Events

    /// Starts the run: reports excluded and not started steps (skipping what depends on the
    /// latter), starts the first ready steps.
    public mutating func start(into actions: inout [Action]) {
        precondition(!started, "a run starts once")
        started = true
        for step in phase.indices {
            switch phase[step] {
            case .final(.skipped):
                finalCount += 1
                let reason = notStarted[step].map(FinishReason.notStarted) ?? .outsideSelection
                actions.append(.finish(step: step, status: .skipped, reason: reason))
            case .final:
                finalCount += 1
            case .waiting:
                var unmet: Int32 = 0
                for dep in dependencies[step] {
                    // A step not started is told to its dependents below, as one that ended now.
                    if case .final = phase[Int(dep)], notStarted[Int(dep)] == nil { continue }
                    unmet += 1
                }
                unmetDependencies[step] = unmet
                if unmet == 0 { dependenciesSettled(step, into: &actions) }
            default:
                preconditionFailure("step \(step) is \(phase[step]) before the run started")
            }
        }
        for step in notStarted.keys.sorted() { dependencyEnded(step, into: &actions) }
        if !notStarted.isEmpty { wakeParked(into: &actions) }
        fillSlots(into: &actions)
        finishIfDone(into: &actions)
    }

    /// Records the end of an attempt.
    /// - Parameters:
    ///   - refusal: for a failed attempt, why its step's `retry_on` does not retry it (computed
    ///     at the edge from the attempt's outcome and stderr, ``RetryCondition/refusal(for:stderrTail:)``);
    ///     nil = retryable. A refused failure is final at once.
    public mutating func attemptFinished(_ step: Int, _ result: AttemptOutcome.Result, refusal: String? = nil,
                                         into actions: inout [Action]) {
        guard case .running(let attempt) = phase[step] else {
            preconditionFailure("attempt of step \(step) finished while it was \(phase[step])")
        }
        runningCount -= 1
        switch result {
        case .succeeded:
            finalize(step, .succeeded, .attempted, into: &actions)
        case .cancelled:
            finalize(step, .cancelled, .interrupted, into: &actions)
        case .skipped:
            finalize(step, .skipped, .skippedByUser, into: &actions)
        case .failed:
            let policy = policies[step].retry
            let retry = attempt - attemptOffset[step]
            let spared = policies[step].awaitsAnyOutcome
            if retry >= policies[step].maxAttempts || stopping || (abortedBy != nil && !spared) {
                finalize(step, .failed, .attempted, into: &actions)
            } else if let refusal {
                finalize(step, .failed, .notRetried(refusal), into: &actions)
            } else if let retryBudget, retriesScheduled >= retryBudget {
                finalize(step, .failed, .retryBudgetExhausted(retryBudget), into: &actions)
            } else {
                retriesScheduled += 1
                phase[step] = .retryWait(attempt: attempt + 1)
                retryWaitingCount += 1
                let delay = policy.jitter ? policy.jitteredDelay(beforeRetry: attempt, unit: jitter.nextUnit())
                    : policy.delay(beforeRetry: attempt)
                actions.append(.scheduleRetry(step: step, attempt: attempt + 1, delay: delay))
            }
        }
        fillSlots(into: &actions)
        finishIfDone(into: &actions)
    }

    /// A retry timer fired. Timers of steps that were cancelled meanwhile are ignored.
    public mutating func retryTimerFired(_ step: Int, into actions: inout [Action]) {
        switch phase[step] {
        case .final(.cancelled):
            return
        case .retryWait(let attempt):
            retryWaitingCount -= 1
            nextAttempt[step] = attempt
            makeReady(step)
            fillSlots(into: &actions)
        default:
            preconditionFailure("retry timer of step \(step) fired while it was \(phase[step])")
        }
    }

    /// The executor's answer to ``Action/evaluateCondition(step:)``: true makes the step ready,
    /// false ends it `skipped` ("condition false") and its dependents follow SPEC §2. An answer
    /// for a step cancelled meanwhile is ignored.
    public mutating func conditionEvaluated(_ step: Int, holds: Bool, into actions: inout [Action]) {
        switch phase[step] {
        case .final(.cancelled):
            return
        case .evaluating:
            if holds {
                makeReady(step)
            } else {
                skipCause[step] = .condition
                finalize(step, .skipped, .conditionFalse, into: &actions)
            }
        default:
            preconditionFailure("condition of step \(step) decided while it was \(phase[step])")
        }
        fillSlots(into: &actions)
        finishIfDone(into: &actions)
    }

    /// What `success()` and `failure()` are for `step` now: every direct dependency lets it run
    /// (SPEC §2; a step outside the `--from`/`--to` selection counts as letting), and some
    /// dependency, direct or transitive, failed.
    public func conditionInputs(of step: Int) -> (success: Bool, failure: Bool) {
        let success = dependencies[step].allSatisfy { lets(Int($0)) }
        var seen = Set<Int32>()
        var stack = dependencies[step]
        while let next = stack.popLast() {
            guard seen.insert(next).inserted else { continue }
            if phase[Int(next)] == .final(.failed) { return (success, true) }
            stack += dependencies[Int(next)]
        }
        return (success, false)
    }

    /// A stop was requested (SIGINT/SIGTERM): nothing new starts, every step not started ends
    /// `cancelled` (steps whose condition awaits any outcome too: a stop is a stop), running
    /// attempts are torn down. Idempotent.
    /// Starts a run that was stopped before its first step could start (a signal while
    /// `resume` took over from a dead engine): every step not already final ends `cancelled`,
    /// nothing starts, and the run ends `cancelled`.
    public mutating func startStopped(into actions: inout [Action]) {
        precondition(!started, "a run starts once")
        started = true
        stopping = true
        for step in phase.indices {
            switch phase[step] {
            case .final(.skipped):
                let reason = notStarted[step].map(FinishReason.notStarted) ?? .outsideSelection
                actions.append(.finish(step: step, status: .skipped, reason: reason))
            case .final:
                break
            default:
                phase[step] = .final(.cancelled)
                actions.append(.finish(step: step, status: .cancelled, reason: .interrupted))
            }
            finalCount += 1
        }
        finishIfDone(into: &actions)
    }

    public mutating func stop(into actions: inout [Action]) {
        guard !stopping, !runFinished else { return }
        stopping = true
        cancelNotStarted(reason: .interrupted, sparing: false, into: &actions)
        if runningCount > 0 { actions.append(.terminateRunning) }
        finishIfDone(into: &actions)
    }

    // MARK: - Transitions

    private mutating func makeReady(_ step: Int) {
        phase[step] = .ready
        ready.insert(Int32(step))
    }

    /// `step`'s dependencies no longer hold it back: decide its condition, or make it ready.
    private mutating func dependenciesSettled(_ step: Int, into actions: inout [Action]) {
        guard policies[step].hasCondition else { return makeReady(step) }
        if policies[step].awaitsAnyOutcome && !ancestorsFinal(step) {
            parked.append(step)
            return
        }
        phase[step] = .evaluating
        actions.append(.evaluateCondition(step: step))
    }

    /// Whether every dependency of `step`, direct and transitive, is final.
    private func ancestorsFinal(_ step: Int) -> Bool {
        var seen = Set<Int32>()
        var stack = dependencies[step]
        while let next = stack.popLast() {
            guard seen.insert(next).inserted else { continue }
            guard case .final = phase[Int(next)] else { return false }
            stack += dependencies[Int(next)]
        }
        return true
    }

    /// Decides the parked steps whose transitive dependencies have all ended.
    private mutating func wakeParked(into actions: inout [Action]) {
        guard !parked.isEmpty else { return }
        let waiting = parked
        parked.removeAll()
        for step in waiting {
            guard case .waiting = phase[step] else { continue }
            dependenciesSettled(step, into: &actions)
        }
    }

    /// Whether a final `step` lets its dependents run (SPEC §2); a step outside the selection does.
    private func lets(_ step: Int) -> Bool {
        switch phase[step] {
        case .final(.succeeded): return true
        case .final(.failed): return policies[step].onFailure == .continue
        case .final(.skipped): return !counted[step]
        default: return false
        }
    }

    private mutating func fillSlots(into actions: inout [Action]) {
        guard !stopping else { return }
        while runningCount < maxConcurrency, let next = ready.popFirst() {
            let step = Int(next)
            let attempt = nextAttempt[step]
            phase[step] = .running(attempt: attempt)
            runningCount += 1
            actions.append(.start(step: step, attempt: attempt))
        }
        maxRunningObserved = max(maxRunningObserved, runningCount)
    }

    private mutating func finalize(_ step: Int, _ status: StepStatus, _ reason: FinishReason,
                                   into actions: inout [Action]) {
        switch phase[step] {
        case .final(let previous):
            preconditionFailure("step \(step) is already \(previous), cannot become \(status)")
        default:
            break
        }
        phase[step] = .final(status)
        finalCount += 1
        actions.append(.finish(step: step, status: status, reason: reason))
        if status == .failed && policies[step].onFailure == .abort && abortedBy == nil {
            abortedBy = step
            cancelNotStarted(reason: .aborted(by: step), sparing: true, into: &actions)
        }
        dependencyEnded(step, into: &actions)
        wakeParked(into: &actions)
    }

    /// Tells the waiting dependents of `ended` (now final) that it ended: one that awaits any
    /// outcome counts it as settled; any other counts it when it lets it run, and is otherwise
    /// skipped, and so on downstream.
    private mutating func dependencyEnded(_ ended: Int, into actions: inout [Action]) {
        // Steps skipped on the way, whose dependents are told in turn (empty, so no allocation,
        // unless something is skipped).
        var skipped: [Int] = []
        tellDependents(of: ended, lets: lets(ended), skipped: &skipped, into: &actions)
        while let step = skipped.popLast() {
            tellDependents(of: step, lets: false, skipped: &skipped, into: &actions)
        }
    }

    private mutating func tellDependents(of cause: Int, lets causeLets: Bool, skipped: inout [Int],
                                         into actions: inout [Action]) {
        for d in dependents[cause] {
            let step = Int(d)
            guard case .waiting = phase[step] else { continue }
            if causeLets || policies[step].awaitsAnyOutcome {
                unmetDependencies[step] -= 1
                if unmetDependencies[step] == 0 { dependenciesSettled(step, into: &actions) }
            } else {
                phase[step] = .final(.skipped)
                skipCause[step] = .dependency
                finalCount += 1
                actions.append(.finish(step: step, status: .skipped, reason: .dependencyBlocked(dependency: cause)))
                skipped.append(step)
            }
        }
    }

    /// Every step that is not running and not final ends `cancelled`; with `sparing`, steps
    /// whose condition awaits any outcome stay, and learn that the cancelled ones ended.
    private mutating func cancelNotStarted(reason: FinishReason, sparing: Bool, into actions: inout [Action]) {
        let wasReady = ready.unordered
        ready.removeAll()
        var cancelled: [Int] = []
        for step in phase.indices {
            switch phase[step] {
            case .waiting, .ready, .evaluating, .retryWait:
                if sparing && policies[step].awaitsAnyOutcome { continue }
                if case .retryWait = phase[step] { retryWaitingCount -= 1 }
            case .running, .final:
                continue
            }
            phase[step] = .final(.cancelled)
            finalCount += 1
            actions.append(.finish(step: step, status: .cancelled, reason: reason))
            cancelled.append(step)
        }
        for step in wasReady where phase[Int(step)] == .ready { ready.insert(step) }
        if sparing {
            for step in cancelled { dependencyEnded(step, into: &actions) }
        }
    }

    private mutating func finishIfDone(into actions: inout [Action]) {
        guard !runFinished, finalCount == phase.count else { return }
        precondition(runningCount == 0 && retryWaitingCount == 0)
        runFinished = true
        if stopping {
            actions.append(.runFinished(.cancelled))
            return
        }
        // A skip rooted in false conditions only (every dependency that did not let the step run
        // was itself skipped that way) is the plan's choice, not a failure.
        var excused = [Bool](repeating: false, count: phase.count)
        for step in order where phase[step] == .final(.skipped) {
            switch skipCause[step] {
            case .condition: excused[step] = true
            case .dependency: excused[step] = dependencies[step].allSatisfy { lets(Int($0)) || excused[Int($0)] }
            case .none: break
            }
        }
        var succeeded = true
        for step in phase.indices where counted[step] && policies[step].critical && !excused[step] {
            if phase[step] != .final(.succeeded) { succeeded = false; break }
        }
        actions.append(.runFinished(succeeded ? .succeeded : .failed))
    }
}
