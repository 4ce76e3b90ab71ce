import Foundation
import Synchronization

/// Runs each attempt of a process step as one Slurm batch job (SPEC §9, `--executor slurm`).
///
/// ## One attempt
/// 1. The engine writes a job script next to the attempt's logs (`<step>.<attempt>.sh`, 0600;
///    removed once submitted when the plan has secrets, whose values an argv may hold): it sets
///    the engine's umask, changes to the step's `cwd` and `exec`s the step's argv, every word
///    single-quoted, so no shell expansion ever touches an argument. The step's environment (the
///    engine's, the plan's `env`, `OMNIBASE_RUN_ID`/`STEP_ID`/`ATTEMPT`) is `sbatch`'s own,
///    passed on with `--export=ALL`, with `SLURM_UMASK=0077` so that Slurm creates the log files
///    0600 like every file of the state folder.
/// 2. `sbatch --parsable --no-requeue --job-name <run id> --comment <step>/<attempt>` with the
///    attempt's `.out` and `.err` logs as `--output`/`--error`, `--time` as a backstop (the
///    step's `time`, else `timeout_sec + kill_grace_sec` rounded up to minutes, plus one), the
///    plan's partition, account, cpus, mem and `extra_args`.
/// 3. One poller per run (``SlurmJobMonitor``) asks `squeue` about all of the run's jobs at once:
///    state and, once ended, exit status (`--Format=JobID,State,exit_code`); `scontrol show job`
///    only for a job that `squeue` no longer lists (gone from its records: "job record lost").
/// 4. In the queue: a job that Slurm keeps pending with a reason saying it can never start
///    (``SlurmJobStates/neverStart``) is cancelled and fails the attempt with that reason; with
///    `pending_timeout_sec`, so is one still queued that long (a timed-out attempt).
/// 5. The engine's own timeout counts from the job's start: `scancel --signal=TERM --full`, then
///    `scancel --signal=KILL --batch` after `kill_grace_sec` (``SlurmJobMonitor/terminate(_:grace:)``).
///    A stop of the run (task cancellation) ends every job of the run the same way, each
///    `scancel` call naming them all, and waits until they have ended.
/// 6. After a timeout (the engine's, or Slurm's time limit: `TIMEOUT`), the processes of this
///    host that carry the attempt's marks (``OrphanReaper/tearDown(marked:grace:)``) are ended
///    as a local attempt's are: a job's process tracking without cgroups misses one that ignores
///    TERM or left with `setsid`. On other nodes that is Slurm's part (its cgroups).
///
/// `COMPLETED` with exit code 0 succeeds; `TIMEOUT` is a timed-out attempt (``AttemptOutcome/timedOut``,
/// so `retry_on.timeout` applies); every other end (`FAILED`, `OUT_OF_MEMORY`, `NODE_FAIL`,
/// `PREEMPTED`, `CANCELLED` by someone else, `BOOT_FAIL`, `DEADLINE`) fails the attempt with an
/// error naming the Slurm state, and so does a job that vanished from Slurm's records ("job
/// record lost").
///
/// - Important: The state folder (logs and job scripts) and the steps' folders must be on a
///   file system that the cluster's nodes share, at the same paths.
public struct SlurmStepRunner: StepRunner, LoopSafeRunner {
    /// How often the poller asks Slurm.
    public struct Polling: Sendable, Hashable {
        /// The interval after a change (a job submitted, started or ended).
        public var initial: Duration
        /// The longest interval, reached by doubling while nothing changes.
        public var maximum: Duration
        /// How often the poller checks for new jobs and expired deadlines between polls.
        public var tick: Duration

        /// Creates intervals (defaults: 1 s, backing off to 10 s; deadlines checked every 100 ms).
        public init(initial: Duration = .seconds(1), maximum: Duration = .seconds(10), tick: Duration = .milliseconds(100)) {
            self.initial = initial
            self.maximum = max(initial, maximum)
            self.tick = min(tick, initial)
        }
    }

    /// The most jobs of one run in flight when neither the plan nor the user sets a limit.
    public static let defaultMaxConcurrency = 64

    private let settings: SlurmSettings
    private let baseEnvironment: [String: String]
    private let monitor: SlurmJobMonitor
    private let keepScripts: Bool
    /// The engine's umask, which the step gets back inside its job (Slurm opens the logs first,
    /// with `SLURM_UMASK`).
    private let umask: String

    /// Creates the runner of one run.
    /// - Parameters:
    ///   - runID: the run; every job of the run is named after it.
    ///   - settings: the plan's `globals.slurm` (a step's `slurm` overrides `cpus`, `mem`, `time`).
    ///   - environment: what steps inherit (the engine's environment by default).
    ///   - polling: the poller's intervals.
    ///   - keepScripts: keep each job script beside the attempt's logs (false when the plan has
    ///     secrets: an argv may hold their values).
    public init(runID: String, settings: SlurmSettings, environment: [String: String] = ProcessInfo.processInfo.environment,
                polling: Polling = Polling(), keepScripts: Bool = true) {
        self.settings = settings
        baseEnvironment = environment
        monitor = SlurmJobMonitor(jobName: runID, polling: polling)
        self.keepScripts = keepScripts
        umask = Self.engineUmask()
    }

    /// `Umask:` of `/proc/self/status` (reading it changes nothing, unlike `umask(2)`).
    static func engineUmask() -> String {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("Umask:") }
        let value = line?.split(separator: "\t").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        return !value.isEmpty && value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x37 }) ? value : "0022"
    }

    /// Its commands (`sbatch`, `squeue`, `scancel`) are processes waited for through the
    /// ``ProcessLoop``, its polls sleep by suspending.
    package var neverBlocksItsThread: Bool { true }

    public func run(_ step: Step, context: AttemptContext) async -> AttemptOutcome {
        guard case .process(let command) = step.action else {
            // Closure steps live in the engine's process: they always run locally.
            return await LocalStepRunner().run(step, context: context)
        }
        if Task.isCancelled { return AttemptOutcome(result: .cancelled, error: "interrupted") }
        let script: String
        do {
            script = try writeScript(command, context: context)
        } catch {
            return AttemptOutcome(result: .failed, error: "cannot write the Slurm job script: \(error)")
        }
        let arguments = sbatchArguments(step, context: context, script: script)
        // Submission is not interrupted: a job that Slurm accepted must have its id known.
        let environment = jobEnvironment(command, context: context)
        let submitted = await withUncancelledTask { await SlurmCLI.run("sbatch", arguments, environment: environment) }
        // sbatch keeps a copy of the script; one outside the state folder is not kept, nor one
        // that may hold secret values.
        if context.logDirectory == nil || !keepScripts { unlink(script) }
        guard submitted.status == 0 else {
            return AttemptOutcome(result: .failed, error: "sbatch failed: \(submitted.problem)")
        }
        guard let jobID = SlurmCLI.parseJobID(submitted.stdout) else {
            return AttemptOutcome(result: .failed, error: "sbatch printed no job id (got \"\(submitted.stdout.prefix(80))\")")
        }
        defer {
            monitor.forget(jobID)
            // Slurm opened both logs when the job started: an empty one means no output.
            if context.logDirectory != nil {
                AttemptLog.removeIfEmpty(atPath: context.stdoutPath)
                AttemptLog.removeIfEmpty(atPath: context.stderrPath)
            }
        }
        context.reportJobID?(jobID)
        if monitor.register(jobID) == .stopping {
            // The run began to stop while this job was being submitted.
            let grace = context.killGrace
            await withUncancelledTask { await SlurmJobMonitor.terminate([jobID], grace: grace) }
            return await stopped(jobID, context: context)
        }
        // In the queue: until the job starts, Slurm says it never will, the plan's
        // `pending_timeout_sec` passes or the run stops.
        let pendingLimit = settings.overridden(by: step.slurm).pendingTimeout
        var wake = await monitor.wait(jobID, until: .leftQueue, deadline: pendingLimit.map { ContinuousClock.now.advanced(by: $0) },
                                      cancellable: true)
        var unqueued: AttemptOutcome?
        switch wake {
        case .phase(.blocked(let reason)):
            unqueued = AttemptOutcome(result: .failed, error: Self.neverStarts(jobID, reason: reason), jobID: jobID)
        case .deadline:
            let why = await Self.pendingReason(of: jobID).map { " (reason \($0))" } ?? ""
            unqueued = AttemptOutcome(result: .failed, timedOut: true,
                                      error: "timed out waiting to start: Slurm job \(jobID) was still pending\(why) after "
                                        + "\(formatSeconds(pendingLimit ?? .zero)) (pending_timeout_sec); cancelled", jobID: jobID)
        default:
            unqueued = nil
        }
        if var unqueued {
            // Cancelled in the queue, unless it started meanwhile: then it goes on as any job.
            wake = await unqueue(jobID)
            switch wake {
            case .phase(.ended(let end)) where end.neverRan:
                return unqueued
            case .deadline:
                unqueued.error = (unqueued.error ?? "") + ", but it had not left the queue "
                    + "\(formatSeconds(SlurmJobMonitor.endWait)) later"
                return unqueued
            default:
                break
            }
        }
        // Running: the step's own timeout counts from the start the poller saw.
        if case .phase(.running(let since)) = wake {
            wake = await monitor.wait(jobID, until: .ended, deadline: step.timeout.map { since.advanced(by: $0) }, cancellable: true)
        }
        switch wake {
        case .phase(.ended(let end)):
            let outcome = Self.outcome(end, jobID: jobID, timeLimit: timeLimit(step, context: context))
            if outcome.timedOut { await tearDownLeftovers(context) }
            return outcome
        case .phase:
            preconditionFailure("a wait for the end returned before it")
        case .deadline:
            return await timedOut(jobID, timeout: step.timeout ?? .zero, context: context)
        case .cancelled:
            return await stopped(jobID, context: context)
        }
    }

    /// Cancels a job that still waits in the queue (`scancel --state=PENDING`, which leaves a job
    /// that has just started alone) and waits until it has started or ended.
    private func unqueue(_ jobID: String) async -> SlurmJobMonitor.Wake {
        await withUncancelledTask { [monitor] in
            _ = await SlurmCLI.run("scancel", ["--state=PENDING", jobID])
            monitor.expectChange()
            return await monitor.wait(jobID, until: .started, deadline: .now.advanced(by: SlurmJobMonitor.endWait))
        }
    }

    /// Why a job waits in the queue (`squeue`'s reason), if Slurm says.
    private static func pendingReason(of jobID: String) async -> String? {
        let shown = await SlurmCLI.run("squeue", ["-h", "-j", jobID, "-O", "Reason:|"])
        let reason = shown.stdout.split(separator: "\n").first?.split(separator: "|").first.map(String.init) ?? ""
        return shown.status == 0 && !reason.isEmpty ? reason : nil
    }

    /// The error of an attempt whose job Slurm says can never start (``SlurmJobStates/neverStart``).
    static func neverStarts(_ jobID: String, reason: String) -> String {
        let code = SlurmJobStates.reasonCode(reason)
        let meaning = SlurmJobStates.neverStart[code].map { ": \($0)" } ?? ""
        return "Slurm job \(jobID) can never start as submitted: it waits with reason \(reason)\(meaning); cancelled"
    }

    /// Ends the jobs a dead engine left (TERM, then KILL after 5 s) and names their attempts.
    public func reclaimLostAttempts(runID: String) async -> [LostAttempt] {
        await reclaimLostAttempts(runID: runID, killGrace: .seconds(5))
    }

    /// The same with the plan's `kill_grace_sec` between TERM and KILL.
    public func reclaimLostAttempts(runID: String, killGrace: Duration) async -> [LostAttempt] {
        await SlurmJobMonitor.reclaim(jobName: runID, grace: killGrace)
    }

    // MARK: - Ends

    /// The engine's timeout: TERM to every process of the job, KILL after the grace period
    /// (``SlurmJobMonitor/terminate(_:grace:)``), then the attempt's marked processes on this host.
    private func timedOut(_ jobID: String, timeout: Duration, context: AttemptContext) async -> AttemptOutcome {
        let grace = context.killGrace
        let outcome = await withUncancelledTask { [monitor] in
            await SlurmJobMonitor.terminate([jobID], grace: grace)
            monitor.expectChange()
            let wake = await monitor.wait(jobID, until: .ended, deadline: .now.advanced(by: SlurmJobMonitor.endWait))
            var error = "timed out after \(formatSeconds(timeout))"
            guard case .phase(.ended(let end)) = wake else {
                error += "; Slurm job \(jobID) had not ended \(formatSeconds(SlurmJobMonitor.endWait)) after scancel"
                return AttemptOutcome(result: .failed, timedOut: true, error: error, jobID: jobID)
            }
            return AttemptOutcome(result: .failed, exitCode: end.exitCode, signal: end.signal, timedOut: true, error: error,
                                  jobID: jobID)
        }
        await tearDownLeftovers(context)
        return outcome
    }

    /// Ends the processes of this host that carry the attempt's marks once its job has timed
    /// out, as a local attempt's are (``LocalStepRunner``): Slurm's process tracking on a host
    /// without its cgroup plugin (`proctrack/linuxproc`, `pgid`) lets one that ignores TERM or
    /// left with `setsid` outlive the job. A best effort: a job on another node is Slurm's to
    /// clean up; a stop of the run ends the whole run's processes anyway (``RunSession``).
    private func tearDownLeftovers(_ context: AttemptContext) async {
        let marks = OrphanReaper.Marks.attempt(runID: context.runID, stepID: context.stepID, attempt: context.attempt)
        let grace = context.killGrace
        _ = await withUncancelledTask { await OrphanReaper.tearDown(marked: marks, grace: grace) }
    }

    /// A stop of the run: every job of the run cancelled in one `scancel`, then this one's end awaited.
    private func stopped(_ jobID: String, context: AttemptContext) async -> AttemptOutcome {
        let grace = context.killGrace
        return await withUncancelledTask { [monitor] in
            await monitor.cancelAll(grace: grace)
            let wake = await monitor.wait(jobID, until: .ended, deadline: .now.advanced(by: SlurmJobMonitor.endWait))
            var outcome = AttemptOutcome(result: .cancelled, error: "interrupted", jobID: jobID)
            // A job cancelled while it still waited in the queue ends `CANCELLED` with exit code
            // 0 and no signal: its command never ran, so it has no exit code.
            if case .phase(.ended(let end)) = wake, !end.neverRan {
                outcome.exitCode = end.exitCode
                outcome.signal = end.signal
            }
            return outcome
        }
    }

    /// The verdict on a job that ended without the engine stopping it; `TIMEOUT` (Slurm's time
    /// limit, `timeLimit` when known) is a timed-out attempt.
    static func outcome(_ end: SlurmJobEnd, jobID: String, timeLimit: String? = nil) -> AttemptOutcome {
        if end.state == "COMPLETED" && end.exitCode == 0 && end.signal == nil {
            return AttemptOutcome(result: .succeeded, exitCode: 0, jobID: jobID)
        }
        guard let state = end.state else {
            return AttemptOutcome(result: .failed, error: "Slurm job \(jobID): job record lost (\(end.detail))", jobID: jobID)
        }
        if state == "TIMEOUT" {
            let limit = timeLimit.map { " (--time=\($0))" } ?? ""
            return AttemptOutcome(result: .failed, exitCode: end.exitCode, signal: end.signal, timedOut: true,
                                  error: "timed out: Slurm ended the job at its time limit\(limit); Slurm job \(jobID) TIMEOUT",
                                  jobID: jobID)
        }
        var what: String
        if let signal = end.signal {
            what = "killed by signal \(signal) (\(SignalName.describe(signal)))"
        } else if let code = end.exitCode, code != 0 {
            what = "exited with code \(code)"
        } else {
            what = "ended"
        }
        what += "; Slurm job \(jobID) \(state)"
        if state == "CANCELLED" { what += " (not by the engine)" }
        return AttemptOutcome(result: .failed, exitCode: end.exitCode, signal: end.signal, error: what, jobID: jobID)
    }

    // MARK: - Submission

    /// The step's full environment, as a local attempt gets it.
    private func jobEnvironment(_ command: ProcessCommand, context: AttemptContext) -> [String: String] {
        var environment = baseEnvironment
        for (name, value) in command.environment { environment[name] = value }
        environment["OMNIBASE_RUN_ID"] = context.runID
        environment["OMNIBASE_STEP_ID"] = context.stepID
        environment["OMNIBASE_ATTEMPT"] = String(context.attempt)
        // In the run's folder, which the nodes share (SPEC section 9): the engine reads it after the job.
        environment["OMNIBASE_OUTPUT"] = context.outputPath
        // Slurm creates the log files with this umask; the script restores the engine's.
        environment["SLURM_UMASK"] = "0077"
        return environment
    }

    /// Writes `<logs>/<step>.<attempt>.sh` (or a temporary file when output is discarded).
    private func writeScript(_ command: ProcessCommand, context: AttemptContext) throws -> String {
        var text = "#!/bin/sh\n"
        text += "# omnibase-agents: run \(context.runID), step \(context.stepID), attempt \(context.attempt)\n"
        text += "umask \(umask)\n"
        if let cwd = command.workingDirectory {
            text += "cd \(Self.quote(cwd)) || { echo \(Self.quote("cannot enter the working directory: \(cwd)")) >&2; exit 126; }\n"
        }
        text += "exec " + command.argv.map(Self.quote).joined(separator: " ") + "\n"
        let path = context.logDirectory.map { "\($0)/\(context.stepID).\(context.attempt).sh" }
            ?? NSTemporaryDirectory() + "omnibase-\(context.runID)-\(context.stepID).\(context.attempt).sh"
        // Created 0600 (sbatch reads the script; it need not be executable).
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemCallError(call: "open \(path)", code: errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw SystemCallError(call: "write \(path)", code: errno) }
            written += n
        }
        return path
    }

    private func sbatchArguments(_ step: Step, context: AttemptContext, script: String) -> [String] {
        let slurm = settings.overridden(by: step.slurm)
        var arguments = ["--parsable", "--no-requeue", "--export=ALL", "--job-name=\(context.runID)",
                         "--comment=\(context.stepID)/\(context.attempt)",
                         "--output=\(Self.escapePattern(context.stdoutPath))", "--error=\(Self.escapePattern(context.stderrPath))"]
        if let time = timeLimit(step, context: context) { arguments.append("--time=\(time)") }
        if let partition = slurm.partition { arguments.append("--partition=\(partition)") }
        if let account = slurm.account { arguments.append("--account=\(account)") }
        if let cpus = slurm.cpus { arguments.append("--cpus-per-task=\(cpus)") }
        if let mem = slurm.mem { arguments.append("--mem=\(mem)") }
        return arguments + slurm.extraArguments + [script]
    }

    /// The job's `--time`: the step's `time`, else (a backstop only: the engine's own timer ends
    /// the attempt first) `timeout_sec + kill_grace_sec` rounded up to minutes, plus one; nil
    /// without either (the partition's default).
    private func timeLimit(_ step: Step, context: AttemptContext) -> String? {
        if let time = settings.overridden(by: step.slurm).time { return time }
        guard let timeout = step.timeout else { return nil }
        let seconds = Double(timeout.components.seconds) + Double(context.killGrace.components.seconds) + 1
        return String(Int((seconds / 60).rounded(.up)) + 1)
    }

    /// One word in single quotes, exactly as given (only `'` itself needs care in sh).
    static func quote(_ word: String) -> String {
        "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// `%` starts a file-name pattern for `sbatch --output`; `%%` is a literal one.
    static func escapePattern(_ path: String) -> String {
        path.replacingOccurrences(of: "%", with: "%%")
    }
}

/// How a job ended, as Slurm tells it.
struct SlurmJobEnd: Sendable, Hashable {
    /// `JobState` (`COMPLETED`, `FAILED`, ...); nil when the job's record was lost.
    var state: String?
    /// The exit code, when it exited (`ExitCode=code:0`).
    var exitCode: Int32?
    /// The signal that ended it (`ExitCode=0:signal`).
    var signal: Int32?
    /// Why the record is lost.
    var detail: String = ""

    init(state: String? = nil, exitCode: Int32? = nil, signal: Int32? = nil, detail: String = "") {
        self.state = state
        self.exitCode = exitCode
        self.signal = signal
        self.detail = detail
    }

    /// Cancelled while it waited in the queue: its command never ran (`CANCELLED`, exit code 0,
    /// no signal).
    var neverRan: Bool { state == "CANCELLED" && (exitCode ?? 0) == 0 && signal == nil }

    /// From `squeue --Format=exit_code`: the job's raw wait status (`code << 8`, or the signal).
    init(state: String, waitStatus: Int32) {
        self.state = state
        let signal = waitStatus & 0x7F
        if signal == 0 { exitCode = (waitStatus >> 8) & 0xFF } else { self.signal = signal }
    }
}

/// The one poller of a run's jobs: a table of jobs and waiting attempts behind a mutex, and a
/// polling task that lives while the table has jobs.
///
/// Attempts register their job and wait for a phase (started, ended) or a deadline. The polling
/// task asks `squeue` for all the run's jobs in one call (by job name: state and exit status),
/// asks `scontrol show job` about a job `squeue` does not list, and wakes the waiters. Its
/// interval starts at ``SlurmStepRunner/Polling/initial``, doubles while nothing changes and
/// resets on a change.
final class SlurmJobMonitor: Sendable {
    /// What a job is doing.
    enum Phase: Sendable, Hashable {
        case queued
        /// Pending with a reason that says it can never start as submitted (``SlurmJobStates/neverStart``).
        case blocked(reason: String)
        case running(since: ContinuousClock.Instant)
        case ended(SlurmJobEnd)
    }

    /// What a waiter waits for.
    enum Goal: Sendable {
        /// Running or ended, or blocked in the queue for good.
        case leftQueue
        /// Running or ended.
        case started
        /// Ended.
        case ended
    }

    /// Why a wait returned.
    enum Wake: Sendable {
        case phase(Phase)
        case deadline
        case cancelled
    }

    /// What ``register(_:)`` found: the run goes on, or it is stopping (cancel the new job).
    enum Registration: Sendable { case watching, stopping }

    /// How long an attempt waits for its job to end after `scancel`.
    static let endWait: Duration = .seconds(120)
    /// Consecutive failed polls after which the run's jobs count as lost.
    static let maxFailedPolls = 30

    private struct Waiter {
        var token: UInt64
        var goal: Goal
        var deadline: ContinuousClock.Instant?
        var continuation: CheckedContinuation<Wake, Never>
    }

    private struct State {
        var jobs: [String: Phase] = [:]
        var waiters: [String: [Waiter]] = [:]
        var cancelledTokens: Set<UInt64> = []
        var nextToken: UInt64 = 0
        var polling = false
        var stopping = false
        var interval: Duration
        var nextPoll: ContinuousClock.Instant = .now
        var failedPolls = 0
    }

    private let jobName: String
    private let polling: SlurmStepRunner.Polling
    private let state: Mutex<State>

    init(jobName: String, polling: SlurmStepRunner.Polling) {
        self.jobName = jobName
        self.polling = polling
        state = Mutex(State(interval: polling.initial))
    }

    /// Starts watching a job (and the poller, if it is not running).
    func register(_ jobID: String) -> Registration {
        let (registration, startPoller) = state.withLock { state -> (Registration, Bool) in
            state.jobs[jobID] = .queued
            state.interval = polling.initial
            state.nextPoll = .now.advanced(by: polling.initial)
            let start = !state.polling
            state.polling = true
            return (state.stopping ? .stopping : .watching, start)
        }
        if startPoller {
            // The poller is not a long-lived part: it ends as soon as no job is left to watch
            // (checked under the lock that `register` takes), so it never outlives the run.
            Task { await self.pollLoop() }
        }
        return registration
    }

    /// Stops watching a job (its attempt has returned).
    func forget(_ jobID: String) {
        state.withLock { _ = $0.jobs.removeValue(forKey: jobID) }
    }

    /// Polls soon (after an `scancel`).
    func expectChange() {
        state.withLock { state in
            state.interval = polling.initial
            state.nextPoll = .now
        }
    }

    /// Waits until the job reaches `goal`, the deadline passes or (when `cancellable`) the task
    /// is cancelled.
    func wait(_ jobID: String, until goal: Goal, deadline: ContinuousClock.Instant? = nil, cancellable: Bool = false) async -> Wake {
        let token = state.withLock { state -> UInt64 in
            state.nextToken += 1
            return state.nextToken
        }
        let wait = { @Sendable () async -> Wake in
            await withCheckedContinuation { continuation in
                let immediate = self.state.withLock { state -> Wake? in
                    if cancellable, state.cancelledTokens.remove(token) != nil { return .cancelled }
                    guard let phase = state.jobs[jobID] else { return .phase(.ended(SlurmJobEnd(detail: "not watched"))) }
                    if Self.reached(phase, goal) { return .phase(phase) }
                    if let deadline, deadline <= .now { return .deadline }
                    state.waiters[jobID, default: []].append(Waiter(token: token, goal: goal, deadline: deadline,
                                                                    continuation: continuation))
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        }
        guard cancellable else { return await wait() }
        let wake = await withTaskCancellationHandler(operation: wait) {
            let continuation = self.state.withLock { state -> CheckedContinuation<Wake, Never>? in
                if let index = state.waiters[jobID]?.firstIndex(where: { $0.token == token }) {
                    return state.waiters[jobID]?.remove(at: index).continuation
                }
                state.cancelledTokens.insert(token)
                return nil
            }
            continuation?.resume(returning: .cancelled)
        }
        state.withLock { _ = $0.cancelledTokens.remove(token) }
        return wake
    }

    /// Ends every job of the run that has not ended (``terminate(_:grace:)``: one `scancel` call
    /// for each signal, naming them all); later calls do nothing.
    func cancelAll(grace: Duration) async {
        let ids = state.withLock { state -> [String] in
            guard !state.stopping else { return [] }
            state.stopping = true
            state.interval = polling.initial
            state.nextPoll = .now
            return state.jobs.filter { if case .ended = $0.value { false } else { true } }.keys.sorted()
        }
        await Self.terminate(ids, grace: grace)
    }

    /// Ends jobs as SPEC section 2 ends a step, TERM then KILL after `grace`, and returns once
    /// they have ended (or after `grace` and a few seconds more):
    /// 1. `scancel --state=PENDING`: the jobs still queued are cancelled (they never ran);
    /// 2. `scancel --signal=TERM --full --state=RUNNING`: TERM to every process of the others
    ///    (a plain `scancel` would do it too, but then KILL would come after Slurm's `KillWait`,
    ///    whatever `grace` is, and a cancelled job can no longer be signalled);
    /// 3. after `grace`, to each job still running, `scancel --signal=KILL --batch`: KILL to its
    ///    batch step's leader, the step's own process (the job script `exec`s it); Slurm then
    ///    ends the job and what is left of it. A KILL to the whole job (`--full`, or no option)
    ///    would be a plain cancel, TERM again and KILL only after `KillWait` (measured: 4.8 s
    ///    with `KillWait=5`, against 0.04 s with `--batch`);
    /// 4. a plain `scancel` of any job that has still not ended two seconds later (one that was
    ///    suspended, or started between the calls).
    static func terminate(_ ids: [String], grace: Duration) async {
        guard !ids.isEmpty else { return }
        _ = await SlurmCLI.run("scancel", ["--state=PENDING"] + ids)
        _ = await SlurmCLI.run("scancel", ["--signal=TERM", "--full", "--state=RUNNING"] + ids)
        var open = await waitForEnd(of: ids, until: .now.advanced(by: grace))
        guard !open.isEmpty else { return }
        _ = await SlurmCLI.run("scancel", ["--signal=KILL", "--batch"] + open)
        open = await waitForEnd(of: open, until: .now.advanced(by: .seconds(2)))
        guard !open.isEmpty else { return }
        _ = await SlurmCLI.run("scancel", open)
    }

    /// Waits until `squeue` shows each of `ids` ended (or no longer lists it), or until
    /// `deadline`; returns those still going (all of them while `squeue` fails).
    private static func waitForEnd(of ids: [String], until deadline: ContinuousClock.Instant) async -> [String] {
        var open = ids
        while true {
            let listing = await SlurmCLI.run("squeue", ["-h", "-t", "all", "-j", open.joined(separator: ","), "-O", "JobID:|,State:|"])
            if listing.status == 0 {
                var going: Set<String> = []
                for line in listing.stdout.split(separator: "\n") {
                    let fields = line.split(separator: "|").map(String.init)
                    if fields.count >= 2, !SlurmJobStates.final.contains(fields[1]) { going.insert(fields[0]) }
                }
                open = open.filter(going.contains)
            }
            let left = deadline - .now
            guard !open.isEmpty, left > .zero else { return open }
            try? await Task.sleep(for: min(left, .milliseconds(100)))
        }
    }

    private static func reached(_ phase: Phase, _ goal: Goal) -> Bool {
        switch (phase, goal) {
        case (.ended, _), (.running, .started), (.running, .leftQueue), (.blocked, .leftQueue): true
        default: false
        }
    }

    // MARK: - Polling

    private enum Step {
        case poll([String])
        case sleep
        case exit
    }

    private func pollLoop() async {
        while true {
            var expired: [CheckedContinuation<Wake, Never>] = []
            let step = state.withLock { state -> Step in
                let now = ContinuousClock.now
                for (jobID, waiters) in state.waiters {
                    let (due, keep) = waiters.partitioned { $0.deadline.map { $0 <= now } ?? false }
                    expired += due.map(\.continuation)
                    state.waiters[jobID] = keep.isEmpty ? nil : keep
                }
                let open = state.jobs.filter { if case .ended = $0.value { false } else { true } }.keys.sorted()
                if open.isEmpty && state.waiters.isEmpty {
                    state.polling = false
                    return .exit
                }
                guard !open.isEmpty, state.nextPoll <= now else { return .sleep }
                return .poll(open)
            }
            for continuation in expired { continuation.resume(returning: .deadline) }
            switch step {
            case .exit:
                return
            case .sleep:
                try? await Task.sleep(for: polling.tick)
            case .poll(let ids):
                await poll(ids)
            }
        }
    }

    private func poll(_ ids: [String]) async {
        // One call for every job of the run: id, state and (once ended) the raw wait status.
        let listing = await SlurmCLI.run("squeue", ["-h", "-t", "all", "--name=\(jobName)",
                                                    "--Format=JobID:|,State:|,exit_code:|,Reason:|"])
        guard listing.status == 0 else {
            let lostAll = state.withLock { state -> Bool in
                state.failedPolls += 1
                state.interval = min(state.interval * 2, polling.maximum)
                state.nextPoll = .now.advanced(by: state.interval)
                return state.failedPolls >= Self.maxFailedPolls
            }
            if lostAll {
                // Best effort, so that no job outlives the attempts that gave up on it.
                _ = await SlurmCLI.run("scancel", ids)
                let end = SlurmJobEnd(detail: "squeue failed \(Self.maxFailedPolls) times in a row: \(listing.problem)")
                settle(Dictionary(uniqueKeysWithValues: ids.map { ($0, Phase.ended(end)) }))
            }
            return
        }
        var states: [String: (state: String, status: Int32?, reason: String)] = [:]
        for line in listing.stdout.split(separator: "\n") {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            if fields.count >= 4 { states[fields[0]] = (fields[1], Int32(fields[2]), fields[3]) }
        }
        var updates: [String: Phase] = [:]
        for jobID in ids {
            switch states[jobID]?.state {
            case let name? where SlurmJobStates.final.contains(name):
                if let status = states[jobID]?.status {
                    updates[jobID] = .ended(SlurmJobEnd(state: name, waitStatus: status))
                } else {
                    updates[jobID] = .ended(await Self.end(of: jobID, listed: name))
                }
            case let name? where SlurmJobStates.started.contains(name):
                updates[jobID] = .running(since: .now)
            case "PENDING"?:
                let reason = states[jobID]?.reason ?? ""
                if SlurmJobStates.neverStart[SlurmJobStates.reasonCode(reason)] != nil { updates[jobID] = .blocked(reason: reason) }
            case .some:
                continue
            case nil:
                // Not listed: ask for the record itself before calling it lost.
                let end = await Self.end(of: jobID, listed: nil)
                if end.state == nil || SlurmJobStates.final.contains(end.state ?? "") { updates[jobID] = .ended(end) }
            }
        }
        settle(updates)
    }

    /// Applies what a poll found and wakes the waiters it satisfies.
    private func settle(_ updates: [String: Phase]) {
        var woken: [(CheckedContinuation<Wake, Never>, Phase)] = []
        state.withLock { state in
            state.failedPolls = 0
            var changed = false
            for (jobID, phase) in updates {
                guard let old = state.jobs[jobID] else { continue }
                if case .running = old, case .running = phase { continue }
                if case .blocked = old, case .blocked = phase { continue }
                if case .ended = old { continue }
                state.jobs[jobID] = phase
                changed = true
                let (done, keep) = (state.waiters[jobID] ?? []).partitioned { Self.reached(phase, $0.goal) }
                woken += done.map { ($0.continuation, phase) }
                state.waiters[jobID] = keep.isEmpty ? nil : keep
            }
            state.interval = changed ? polling.initial : min(state.interval * 2, polling.maximum)
            state.nextPoll = .now.advanced(by: state.interval)
        }
        for (continuation, phase) in woken { continuation.resume(returning: .phase(phase)) }
    }

    /// An ended job's state and exit code from `scontrol show job`; nil state when Slurm has no
    /// record of it.
    static func end(of jobID: String, listed: String?) async -> SlurmJobEnd {
        let shown = await SlurmCLI.run("scontrol", ["-o", "show", "job", jobID])
        guard shown.status == 0, let line = shown.stdout.split(separator: "\n").first else {
            if let listed { return SlurmJobEnd(state: listed) }
            return SlurmJobEnd(detail: "Slurm has no record of it: \(shown.problem)")
        }
        var end = SlurmJobEnd(state: listed)
        for field in line.split(separator: " ") {
            if field.hasPrefix("JobState=") {
                end.state = String(field.dropFirst("JobState=".count))
            } else if field.hasPrefix("ExitCode=") {
                let parts = field.dropFirst("ExitCode=".count).split(separator: ":")
                if parts.count == 2, let code = Int32(parts[0]), let signal = Int32(parts[1]) {
                    end.exitCode = signal == 0 ? code : nil
                    end.signal = signal == 0 ? nil : signal
                }
            }
        }
        return end
    }

    // MARK: - Resume

    /// What `resume` learns of a dead engine's jobs for `jobName`, after ending those that still
    /// ran or waited (``terminate(_:grace:)``, then a wait for their end): each job's attempt
    /// (from its comment `<step>/<attempt>`), and for a job that had ended on its own, with
    /// nobody to record it, its verdict as the poller would have given it and how long it ran.
    /// A job that was still running when the takeover came is torn down and has no verdict: its
    /// step runs again. A job that is `COMPLETING` had ended: its end is awaited and adopted.
    static func reclaim(jobName: String, grace: Duration) async -> [LostAttempt] {
        guard let found = await listing(jobName: jobName) else { return [] }
        let active = found.filter { !SlurmJobStates.final.contains($0.state) && $0.state != "COMPLETING" }.map(\.id)
        let completing = found.filter { $0.state == "COMPLETING" }.map(\.id)
        if !active.isEmpty { await terminate(active, grace: grace) }
        var jobs = found
        if !active.isEmpty || !completing.isEmpty {
            _ = await waitForEnd(of: active + completing, until: .now.advanced(by: endWait))
            jobs = await listing(jobName: jobName) ?? found
        }
        var lost: [LostAttempt] = []
        for job in jobs {
            guard let slash = job.comment.lastIndex(of: "/"), let attempt = Int(job.comment[job.comment.index(after: slash)...]),
                  slash > job.comment.startIndex else { continue }
            var record = LostAttempt(stepID: String(job.comment[..<slash]), attempt: attempt, jobID: job.id,
                                     wasRunning: active.contains(job.id))
            if !record.wasRunning, SlurmJobStates.final.contains(job.state) {
                var end: SlurmJobEnd
                if let status = job.waitStatus { end = SlurmJobEnd(state: job.state, waitStatus: status) } else {
                    end = await Self.end(of: job.id, listed: job.state)
                }
                record.outcome = SlurmStepRunner.outcome(end, jobID: job.id, timeLimit: job.timeLimit.isEmpty ? nil : job.timeLimit)
                record.ranFor = SlurmTime.duration(job.timeUsed)
            }
            lost.append(record)
        }
        return lost
    }

    /// One job of a run, as `squeue` lists it for a takeover.
    private struct ListedJob {
        var id: String
        var state: String
        var waitStatus: Int32?
        var comment: String
        var timeUsed: String
        var timeLimit: String
    }

    /// Every job named `jobName` that Slurm still has a record of; nil when `squeue` fails.
    private static func listing(jobName: String) async -> [ListedJob]? {
        let listing = await SlurmCLI.run("squeue", ["-h", "-t", "all", "--name=\(jobName)",
                                                    "--Format=JobID:|,State:|,exit_code:|,TimeUsed:|,TimeLimit:|,Comment:|"])
        guard listing.status == 0 else { return nil }
        return listing.stdout.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count >= 6 else { return nil }
            return ListedJob(id: fields[0], state: fields[1], waitStatus: Int32(fields[2]), comment: fields[5],
                             timeUsed: fields[3], timeLimit: fields[4])
        }
    }
}

/// Slurm's durations (`TimeUsed`, `TimeLimit`): `M:SS`, `H:MM:SS`, `D-HH:MM:SS`.
enum SlurmTime {
    /// The duration written, or nil for anything else (`UNLIMITED`, `INVALID`, empty).
    static func duration(_ text: String) -> Duration? {
        let dayParts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(dayParts.count) else { return nil }
        var seconds = 0
        if dayParts.count == 2 {
            guard let days = Int(dayParts[0]), days >= 0 else { return nil }
            seconds = days * 86_400
        }
        let clock = dayParts[dayParts.count - 1].split(separator: ":", omittingEmptySubsequences: false)
        guard (2...3).contains(clock.count) || (dayParts.count == 2 && clock.count == 1) else { return nil }
        var units = 0
        for part in clock {
            guard let value = Int(part), value >= 0 else { return nil }
            units = units * 60 + value
        }
        // D-HH counts hours; D-HH:MM minutes; otherwise seconds.
        if dayParts.count == 2 && clock.count < 3 { units *= clock.count == 1 ? 3_600 : 60 }
        return .seconds(seconds + units)
    }
}

/// Slurm's job states, as `squeue` and `scontrol` print them.
enum SlurmJobStates {
    /// The reasons a pending job waits with that say it can never start as submitted, with what
    /// each means: the job asks for more than its partition, account or QOS will ever give, or
    /// for something no node has. Only a change of the job or of the cluster's configuration
    /// lets it run (Slurm keeps such a job pending unless `EnforcePartLimits` rejects it at
    /// submission). Not among them: reasons that pass (`Resources`, `Priority`, `BeginTime`,
    /// group and per-user limits, `JobHeldUser`/`JobHeldAdmin`, `PartitionDown`, `NodeDown`,
    /// `ReqNodeNotAvail`: nodes down, drained or reserved for maintenance come back); the
    /// plan's `pending_timeout_sec` bounds those.
    static let neverStart: [String: String] = [
        "PartitionNodeLimit": "it asks for more nodes than its partition allows (or fewer than it requires)",
        "PartitionTimeLimit": "its time limit is longer than its partition allows",
        "PartitionConfig": "it asks for more than its partition is configured to give",
        "BadConstraints": "no node of its partition can satisfy what it asks for",
        "InvalidAccount": "its account is not valid",
        "InvalidQOS": "its QOS is not valid",
        "AccountNotAllowed": "its partition does not allow its account",
        "QOSNotAllowed": "its partition does not allow its QOS",
        "DependencyNeverSatisfied": "a dependency can never be satisfied",
        "ReservationDeleted": "the reservation it asks for was deleted",
        "QOSMaxCpuPerJobLimit": "it asks for more CPUs than its QOS allows a job",
        "QOSMaxNodePerJobLimit": "it asks for more nodes than its QOS allows a job",
        "QOSMaxWallDurationPerJobLimit": "its time limit is longer than its QOS allows a job",
        "QOSMaxMemoryPerJob": "it asks for more memory than its QOS allows a job",
        "QOSMaxGRESPerJob": "it asks for more generic resources than its QOS allows a job",
        "QOSMaxCpuMinutesPerJobLimit": "it asks for more CPU-minutes than its QOS allows a job",
        "QOSMinCpuNotSatisfied": "it asks for fewer CPUs than its QOS requires",
        "QOSMinMemory": "it asks for less memory than its QOS requires",
        "QOSMinGRES": "it asks for fewer generic resources than its QOS requires",
        "AssocMaxCpuPerJobLimit": "it asks for more CPUs than its association allows a job",
        "AssocMaxNodePerJobLimit": "it asks for more nodes than its association allows a job",
        "AssocMaxWallDurationPerJobLimit": "its time limit is longer than its association allows a job",
        "AssocMaxMemPerJob": "it asks for more memory than its association allows a job",
        "AssocMaxGRESPerJob": "it asks for more generic resources than its association allows a job",
        "AssocMaxCpuMinutesPerJobLimit": "it asks for more CPU-minutes than its association allows a job",
    ]

    /// A reason's code: `ReqNodeNotAvail, UnavailableNodes:n1` -> `ReqNodeNotAvail`.
    static func reasonCode(_ reason: String) -> String {
        String(reason.prefix { $0 != "," && $0 != " " && $0 != "(" })
    }

    /// The job's processes run (or are being cleaned up).
    static let started: Set<String> = ["RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"]
    /// The job is over.
    static let final: Set<String> = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                                     "PREEMPTED", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"]
}

/// Runs Slurm's command-line tools and captures what they print.
enum SlurmCLI {
    struct Result: Sendable {
        var status: Int32?
        var stdout: String
        var stderr: String

        /// The first line of stderr, or how the tool ended.
        var problem: String {
            if let line = stderr.split(separator: "\n").first { return String(line) }
            return status.map { "exit status \($0)" } ?? "it did not run"
        }
    }

    /// How long one tool may take (a controller that does not answer).
    static let timeout: Duration = .seconds(60)

    static func run(_ tool: String, _ arguments: [String],
                    environment: [String: String] = ProcessInfo.processInfo.environment) async -> Result {
        let base = NSTemporaryDirectory() + "omnibase-\(tool)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        defer {
            unlink(base + ".out")
            unlink(base + ".err")
        }
        let spec = ProcessSpec(command: tool, arguments: arguments, environment: environment,
                               stdoutPath: base + ".out", stderrPath: base + ".err", timeout: timeout, killGrace: .seconds(2))
        let outcome = await LocalProcess.run(spec)
        var status: Int32?
        var stderr = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
        switch outcome.termination {
        case .exited(let code): status = code
        case .signaled(let signal): stderr = "\(tool) was killed by signal \(signal)\n" + stderr
        case .failedToStart(let reason): stderr = "\(reason)\n" + stderr
        }
        if outcome.timedOut { stderr = "\(tool) did not answer within \(formatSeconds(timeout))\n" + stderr }
        return Result(status: status, stdout: (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "", stderr: stderr)
    }

    /// `sbatch --parsable` prints `ID` or `ID;CLUSTER`.
    static func parseJobID(_ output: String) -> String? {
        let id = output.split(separator: "\n").first?.split(separator: ";").first.map(String.init) ?? ""
        return !id.isEmpty && id.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) ? id : nil
    }
}

private extension Array {
    /// The elements that satisfy `belongs`, then the others, each in order.
    func partitioned(_ belongs: (Element) -> Bool) -> ([Element], [Element]) {
        var yes: [Element] = []
        var no: [Element] = []
        for element in self { if belongs(element) { yes.append(element) } else { no.append(element) } }
        return (yes, no)
    }
}
