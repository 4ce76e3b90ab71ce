import Foundation

/// Where and how one attempt runs.
public struct AttemptContext: Sendable {
    /// The run.
    public var runID: String
    /// The step.
    public var stepID: String
    /// 1-based attempt number.
    public var attempt: Int
    /// SIGTERM to SIGKILL on timeout or stop.
    public var killGrace: Duration
    /// The run's `logs` folder (``AttemptLog``), or nil to discard output.
    public var logDirectory: String?
    /// Tells the engine the id a cluster gave the attempt as soon as it is known (it records a
    /// `step_submitted` event); nil when nobody listens.
    public var reportJobID: (@Sendable (String) -> Void)? = nil
    /// The attempt's outputs file (``OutputFile``; the attempt creates it when it first writes):
    /// runners give it to the attempt as `OMNIBASE_OUTPUT` (closure steps as
    /// ``StepContext/outputPath``); nil when the caller collects no outputs.
    public var outputPath: String? {
        get { storedOutputPath ?? outputUse?.path }
        set { storedOutputPath = newValue }
    }
    /// The path set explicitly (the engine sets none for a closure step: its ``outputUse`` makes
    /// the path when the closure asks for it).
    package private(set) var storedOutputPath: String? = nil
    /// For a closure step: its outputs path, made when asked for, and whether the closure did
    /// (``StepContext/outputPath``).
    package var outputUse: OutputUse?
    /// The outputs of the run's steps that succeeded before this attempt started (its
    /// dependencies' among them), for closure steps (``StepContext/outputs``).
    public var outputs = StepOutputs()

    /// Creates a context (the engine makes one per attempt; other callers of a runner, such as
    /// the agents' iterations, make their own).
    public init(runID: String, stepID: String, attempt: Int, killGrace: Duration, logDirectory: String?,
                reportJobID: (@Sendable (String) -> Void)? = nil) {
        self.runID = runID
        self.stepID = stepID
        self.attempt = attempt
        self.killGrace = killGrace
        self.logDirectory = logDirectory
        self.reportJobID = reportJobID
    }

    /// The attempt's stdout log path.
    public var stdoutPath: String { logPath(.stdout) }
    /// The attempt's stderr log path.
    public var stderrPath: String { logPath(.stderr) }

    private func logPath(_ stream: AttemptLog.Stream) -> String {
        guard let logDirectory else { return "/dev/null" }
        return "\(logDirectory)/\(AttemptLog(stepID: stepID, attempt: attempt, stream: stream).fileName)"
    }
}

/// The seam between the scheduler and where steps execute (``LocalStepRunner``,
/// ``SlurmStepRunner``), without touching the scheduler: the engine keeps retries, timeouts
/// and state; a runner runs one attempt and, on `resume`, reclaims what a dead engine left.
///
/// ```swift
/// struct Logged: StepRunner {
///     let base = LocalStepRunner()
///     func run(_ step: Step, context: AttemptContext) async -> AttemptOutcome {
///         print("starting \(step.id) #\(context.attempt)")
///         return await base.run(step, context: context)
///     }
///     func reclaimLostAttempts(runID: String) async -> [LostAttempt] {
///         await base.reclaimLostAttempts(runID: runID)
///     }
/// }
/// let session = try RunSession(stateDirectory: ".state", runner: Logged())
/// ```
public protocol StepRunner: Sendable {
    /// Runs one attempt to completion and never throws: every failure is in the outcome.
    ///
    /// - Important: Cancellation of the calling task means the run is being stopped: tear the
    ///   attempt down and return an outcome with result `cancelled`.
    func run(_ step: Step, context: AttemptContext) async -> AttemptOutcome

    /// Tears down what an engine that died while running `runID` left with this runner (local
    /// process groups, a cluster's jobs), before `resume` runs anything again; the default
    /// does nothing.
    /// - Returns: the attempts it found, so the engine records them (with their job ids, and
    ///   the result of those that had ended on their own: ``LostAttempt/outcome``) and never
    ///   numbers a new attempt like one of them.
    func reclaimLostAttempts(runID: String) async -> [LostAttempt]

    /// The same, giving what is torn down `killGrace` (the plan's `kill_grace_sec`) between
    /// SIGTERM and SIGKILL, as a timeout or a stop does (SPEC section 2). The default calls
    /// ``reclaimLostAttempts(runID:)``.
    func reclaimLostAttempts(runID: String, killGrace: Duration) async -> [LostAttempt]

    /// Whether the runner asks before each attempt (``admit(_:context:)``): the engine then
    /// records the attempt's start only once it is let through, so a step skipped at the
    /// question has no attempt and the time spent asking is not the step's. False by default.
    var asksBeforeStarting: Bool { get }

    /// Lets an attempt start, skips the step, or aborts the run (`run --step`); only called when
    /// ``asksBeforeStarting`` is true. The default lets every attempt run.
    func admit(_ step: Step, context: AttemptContext) async -> Admission
}

/// What ``StepRunner/admit(_:context:)`` decided.
public enum Admission: Sendable, Hashable {
    /// Start the attempt.
    case run
    /// Do not run the step: it ends `skipped` ("skipped by the user") without an attempt.
    case skip
    /// Stop the run (the runner has asked for the stop): the step ends `cancelled`.
    case abort
}

extension StepRunner {
    public func reclaimLostAttempts(runID: String) async -> [LostAttempt] { [] }
    public func reclaimLostAttempts(runID: String, killGrace: Duration) async -> [LostAttempt] {
        await reclaimLostAttempts(runID: runID)
    }
    public var asksBeforeStarting: Bool { false }
    public func admit(_ step: Step, context: AttemptContext) async -> Admission { .run }
}

/// A runner of this package that may run on the ``ProcessLoop``'s thread: its attempts wait for
/// processes, timers and the store by suspending, never by blocking the thread (which would stop
/// the loop that reports the exits they wait for). A runner of the library's users is not one:
/// its runs execute on the global concurrent executor, as before.
package protocol LoopSafeRunner: StepRunner {
    /// Whether every attempt this runner runs (process steps; closure steps never count) only
    /// suspends; a router asks its runners.
    var neverBlocksItsThread: Bool { get }
}

/// An observer of this package that may record on the ``ProcessLoop``'s thread: it keeps events
/// in memory or hands them to the state folder's own files and writer, and never waits for a
/// reader (a terminal, a pipe, a network). Any other observer (the terminal's progress lines, a
/// library user's) records on the global concurrent executor, so that a terminal paused with
/// ^S or a slow reader of a pipe stalls the run's scheduler, as it always did, but never the
/// loop that enforces every running step's timeout and drains its output.
package protocol LoopSafeObserver: RunObserver {}

/// An attempt that a dead engine left behind (a process still running, a cluster's job), found
/// by ``StepRunner/reclaimLostAttempts(runID:)``.
public struct LostAttempt: Sendable, Hashable {
    /// The step.
    public var stepID: String
    /// The attempt number.
    public var attempt: Int
    /// The cluster's job id; nil for a local process.
    public var jobID: String?
    /// Whether it still ran (or waited) and was torn down; false when it had ended already.
    public var wasRunning: Bool
    /// How it ended on its own, when it had (a cluster's job that finished while no engine
    /// watched it): the verdict its runner would have given, which `resume` records for an
    /// attempt the dead engine had not recorded the end of, instead of "engine lost". nil when
    /// it was torn down, or its end is unknown.
    public var outcome: AttemptOutcome?
    /// How long it ran, when known (from the cluster's record), so that `resume` can tell an
    /// ``outcome`` that came after the step's timeout.
    public var ranFor: Duration?

    /// Creates a record.
    public init(stepID: String, attempt: Int, jobID: String?, wasRunning: Bool, outcome: AttemptOutcome? = nil,
                ranFor: Duration? = nil) {
        self.stepID = stepID
        self.attempt = attempt
        self.jobID = jobID
        self.wasRunning = wasRunning
        self.outcome = outcome
        self.ranFor = ranFor
    }
}

/// Runs process steps as local processes (``LocalProcess``) and closure steps in-process.
public struct LocalStepRunner: StepRunner, LoopSafeRunner {
    /// What every step inherits, encoded once (``EncodedEnvironment``).
    private let baseEnvironment: EncodedEnvironment

    /// Its processes are waited for through the ``ProcessLoop``.
    package var neverBlocksItsThread: Bool { true }

    /// Creates a runner whose steps inherit `environment` (the engine's own by default).
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        baseEnvironment = EncodedEnvironment(environment)
    }

    /// Ends the process groups (and `setsid` escapees) that carry the dead engine's run id
    /// (``OrphanReaper``), and names the attempts they belonged to; 5 s between SIGTERM and
    /// SIGKILL.
    public func reclaimLostAttempts(runID: String) async -> [LostAttempt] {
        await reclaimLostAttempts(runID: runID, killGrace: .seconds(5))
    }

    /// The same with the plan's `kill_grace_sec` between SIGTERM and SIGKILL.
    public func reclaimLostAttempts(runID: String, killGrace: Duration) async -> [LostAttempt] {
        let leftovers = await OrphanReaper.reap(runID: runID, grace: killGrace)
        return leftovers.attempts.sorted { $0.key < $1.key }.flatMap { step, attempts in
            attempts.sorted().map { LostAttempt(stepID: step, attempt: $0, jobID: nil, wasRunning: true) }
        }
    }

    public func run(_ step: Step, context: AttemptContext) async -> AttemptOutcome {
        switch step.action {
        case .process(let command):
            return await runProcess(command, step: step, context: context)
        case .closure(let body):
            var stepContext = StepContext(runID: context.runID, stepID: step.id, attempt: context.attempt,
                                          outputPath: context.storedOutputPath, outputs: context.outputs)
            stepContext.outputUse = context.outputUse
            return await Self.runClosure(body, timeout: step.timeout, context: stepContext)
        }
    }

    private func runProcess(_ command: ProcessCommand, step: Step, context: AttemptContext) async -> AttemptOutcome {
        // The step's own entries; the inherited ones are encoded once, in the runner.
        var environment = command.environment
        environment["OMNIBASE_RUN_ID"] = context.runID
        environment["OMNIBASE_STEP_ID"] = step.id
        environment["OMNIBASE_ATTEMPT"] = String(context.attempt)
        environment["OMNIBASE_OUTPUT"] = context.outputPath
        var spec = ProcessSpec(command: command.command, arguments: command.arguments, environment: environment,
                               workingDirectory: command.workingDirectory, stdoutPath: context.stdoutPath,
                               stderrPath: context.stderrPath, timeout: step.timeout, killGrace: context.killGrace)
        // An attempt number is never used twice (see AttemptJournal), so a log already at the
        // path belongs to another execution: keep it.
        spec.keepsExistingLogs = true
        spec.baseEnvironment = baseEnvironment
        let outcome = await LocalProcess.run(spec)
        if outcome.timedOut {
            // The group is gone; what the attempt moved out of it (`setsid`) still carries its
            // marks. A stop ends the whole run's processes afterwards (``RunSession``).
            let marks = OrphanReaper.Marks.attempt(runID: context.runID, stepID: step.id, attempt: context.attempt)
            let grace = context.killGrace
            _ = await withUncancelledTask { await OrphanReaper.tearDown(marked: marks, grace: grace) }
        }
        return Self.attemptOutcome(outcome, timeout: step.timeout)
    }

    /// Maps a process outcome to the scheduler's verdict and one explaining sentence.
    package static func attemptOutcome(_ outcome: ProcessOutcome, timeout: Duration?) -> AttemptOutcome {
        var exitCode: Int32?
        var signal: Int32?
        var error: String?
        switch outcome.termination {
        case .exited(let code):
            exitCode = code
            if code != 0 { error = "exited with code \(code)" }
        case .signaled(let number):
            signal = number
            error = "killed by signal \(number) (\(SignalName.describe(number)))"
        case .failedToStart(let reason):
            error = reason
        }
        if outcome.timedOut {
            let limit = timeout.map { " after \(formatSeconds($0))" } ?? ""
            error = "timed out\(limit)"
        }
        if outcome.cancelled {
            return AttemptOutcome(result: .cancelled, exitCode: exitCode, signal: signal, error: "interrupted")
        }
        // Output that could not be stored fails the attempt: a step whose log is lost must not
        // pass as if it had been recorded (the reason names the log and the system error).
        if let logError = outcome.logError {
            return AttemptOutcome(result: .failed, exitCode: exitCode, signal: signal, timedOut: outcome.timedOut,
                                  error: error.map { "\($0); \(logError)" } ?? logError)
        }
        let result: AttemptOutcome.Result = outcome.succeeded ? .succeeded : .failed
        return AttemptOutcome(result: result, exitCode: exitCode, signal: signal, timedOut: outcome.timedOut,
                              error: result == .succeeded ? nil : error)
    }

    /// Runs a closure step, racing it against its timeout.
    static func runClosure(_ body: @escaping @Sendable (StepContext) async throws -> Void, timeout: Duration?,
                           context: StepContext) async -> AttemptOutcome {
        guard let timeout else { return await runClosure(body, context: context) }
        return await runClosure(body, racing: timeout, context: context)
    }

    // Not inlined into the function above: the task group's state would make the async frame
    // that every closure attempt allocates, with or without a timeout, larger than a slab of the
    // task allocator (a `malloc` per attempt).
    @inline(never)
    private static func runClosure(_ body: @escaping @Sendable (StepContext) async throws -> Void, racing timeout: Duration,
                                   context: StepContext) async -> AttemptOutcome {
        await withTaskGroup(of: AttemptOutcome?.self) { group in
            group.addTask { await runClosure(body, context: context) }
            group.addTask {
                do { try await Task.sleep(for: timeout) } catch { return nil }
                return AttemptOutcome(result: .failed, timedOut: true, error: "timed out after \(formatSeconds(timeout))")
            }
            var first: AttemptOutcome?
            while let next = await group.next() {
                guard let outcome = next else { continue }
                if first == nil {
                    first = outcome
                    group.cancelAll()
                }
            }
            return first ?? AttemptOutcome(result: .cancelled, error: "interrupted")
        }
    }
}

extension LocalStepRunner {
    /// Runs a closure step's body once: returning succeeds, throwing fails, cancellation cancels.
    static func runClosure(_ body: @Sendable (StepContext) async throws -> Void, context: StepContext) async -> AttemptOutcome {
        do {
            try await body(context)
            return .success
        } catch is CancellationError {
            return AttemptOutcome(result: .cancelled, error: "interrupted")
        } catch {
            return AttemptOutcome(result: .failed, error: "\(error)")
        }
    }
}

/// `2s`, `0.5s`, `1.25s`.
func formatSeconds(_ duration: Duration) -> String {
    let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    return seconds == seconds.rounded() ? "\(Int(seconds))s" : "\((seconds * 1000).rounded() / 1000)s"
}
