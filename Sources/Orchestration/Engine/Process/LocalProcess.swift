import Glibc
import COmnibaseShims

/// Runs step commands as local processes, each the leader of its own process group.
///
/// This is the engine's own process control; it does not use `Foundation.Process` (whose children
/// inherit the spawning thread's blocked signal mask on Linux, among other problems).
///
/// ## One attempt
/// 1. The command is looked up (``ProcessSpec/command``), a pipe is created for each log path
///    and handed to the ``ProcessLoop`` thread (``OutputPump``), and the child is started
///    (`omni_spawn_start`, a clone sharing the engine's memory until the exec, as `posix_spawn`
///    does, but without suspending the calling thread during the exec) as the leader of a new
///    process group, with an empty signal mask, default signal dispositions, stdin from
///    `/dev/null` and the pipes' write ends as stdout and stderr. The pump copies the pipes into
///    the log files, creating each file on the stream's first byte. Whether the exec worked is
///    known when the child is reaped: one that could not execute (command gone, `ETXTBSY`...)
///    exited with 127 and reported why, and its outcome is `failedToStart` with the reason.
/// 2. Its exit is observed by the same ``ProcessLoop`` thread through a pidfd (``ProcessMonitor``),
///    which first reads the child's pipes as far as they go, so one wake-up of the loop and one
///    resumption of the attempt cover both; no thread of the cooperative pool ever blocks, and
///    the deadline of the wait (the timeout) is kept by the loop too. The exited leader is left
///    a zombie until step 3 is decided.
/// 3. If the leader exits first, it is reaped. Background processes it left behind are **not**
///    killed (as with `make`: a step may start a daemon on purpose).
///    If the timeout passes or the calling task is cancelled first, the whole group is torn
///    down: SIGTERM and SIGCONT, ``ProcessSpec/killGrace`` for the leader to exit, SIGKILL to the
///    group in every case, a bounded check that no member still runs, then the leader is reaped.
/// 4. The attempt waits for the pump to read the pipes to end-of-file, at most
///    ``OutputDrain/window``, and returns. End-of-file comes at once unless a background process
///    still holds a pipe; the pump then goes on copying its output until it closes the pipe.
///
/// The first spawn raises the engine process's soft limit of open files to its hard limit, as
/// Go's runtime does: each running step holds two pipes and a pidfd, and the common default of
/// 1,024 let only about 300 steps run at once (the rest failed with "Too many open files"). Every
/// child gets the soft limit the process had before: programs that close every descriptor up to
/// the limit, or use `select`, expect that one.
///
/// - Important: A descendant that leaves the group (`setsid`, `setpgid`, daemons that double-fork
///   into their own session) is out of reach of this teardown and is not counted in
///   ``ProcessOutcome/survivors``. ``LocalStepRunner`` finds such processes afterwards by the
///   attempt's marks in their environment (``OrphanReaper/tearDown(marked:grace:)``).
package enum LocalProcess {
    /// Runs one process to completion; never throws: every failure is in the outcome.
    ///
    /// It returns once the leader has been reaped and its output is in the log files, or
    /// ``OutputDrain/window`` after the reaping if a background process still holds a pipe.
    ///
    /// Cancellation of the calling task tears the process group down (SIGTERM and SIGCONT, grace,
    /// SIGKILL, check that the group is empty) and returns with ``ProcessOutcome/cancelled`` set.
    /// A task that is already cancelled starts nothing: the outcome is `failedToStart` with
    /// `cancelled` set.
    ///
    /// - Parameter spec: What to run.
    /// - Returns: How the attempt ended.
    /// - Important: Nothing else in the engine may reap children (`waitpid(-1)`, `SIGCHLD` set to
    ///   `SIG_IGN`), or exit statuses are lost. Ignoring `SIGPIPE` in the engine is fine: children
    ///   get default dispositions back.
    public static func run(_ spec: ProcessSpec) async -> ProcessOutcome {
        await run(spec, monitor: .shared)
    }

    /// ``run(_:)`` with an explicit monitor and pump (tests use their fallbacks).
    static func run(_ spec: ProcessSpec, monitor: ProcessMonitor, pump: OutputPump = .shared) async -> ProcessOutcome {
        var retries = 0
        let gate = DescriptorGate.shared
        while true {
            if Task.isCancelled {
                return ProcessOutcome(termination: .failedToStart("cancelled before the process was started"), cancelled: true)
            }
            let outcome: ProcessOutcome
            let code: Int32
            let releases = gate.releases
            let refused = !gate.hasRoom()
            if refused {
                let failure = LaunchFailure.noRoomForStep()
                (outcome, code) = (ProcessOutcome(termination: .failedToStart(failure.message)), failure.code)
            } else {
                // Counted from before the launch takes its descriptors: a launch refused while
                // this one is under way (on another thread) waits for it, rather than finding no
                // step running and failing (20 steps at once under a limit that fits one: 19
                // failed).
                gate.enter()
                switch ProcessLauncher.launch(spec, monitor: monitor, pump: pump) {
                case .success(let child):
                    (outcome, code) = await supervise(child, spec)
                case .failure(let failure):
                    (outcome, code) = (ProcessOutcome(termination: .failedToStart(failure.message)), failure.code)
                }
                gate.leave()
            }
            // Out of descriptors, with steps of this process running: one of them ending gives
            // back what this needs (see DescriptorGate), so it waits for that, however long.
            // With no step running, the descriptors of one that just ended may still be closing:
            // the transient retries below give them that time before the refusal is final
            // (a launch at a limit that fits one step failed at once now and then).
            if code == EMFILE || code == ENFILE, !Task.isCancelled {
                if await gate.waitForRelease(after: releases) { continue }
            }
            // The clone, or the child before its exec, failed for a reason that clears by itself
            // (see ProcessLauncher.spawnRetries): nothing ran, so the spec is started again,
            // after a pause outside any lock.
            if ProcessLauncher.isTransient(code), retries < ProcessLauncher.spawnRetries, !Task.isCancelled {
                retries += 1
                try? await Task.sleep(for: .milliseconds(10 << retries))
                continue
            }
            return outcome
        }
    }

    /// Waits for a started child (steps 2 to 4 above).
    ///
    /// - Returns: How it ended, and the error number of the step before its exec that failed (0
    ///   when it executed the command).
    private static func supervise(_ child: ChildProcess, _ spec: ProcessSpec) async -> (ProcessOutcome, Int32) {
        let deadline = spec.timeout.map { ContinuousClock.now.advanced(by: $0) }
        let reason: ProcessOutcome.TeardownReason
        switch await child.exit.wait(until: deadline, terminating: child.pid, killAfter: spec.killGrace) {
        case .exited:
            let (termination, notExecuted) = child.reap()
            let output = await child.settleOutput()
            // A child that never executed the command is reported as if it had not been started.
            if notExecuted != 0 { return (ProcessOutcome(termination: termination), notExecuted) }
            return (ProcessOutcome(termination: termination, pid: child.pid, logError: output.logError,
                                   capturedStdout: output.stdout, capturedStderr: output.stderr), 0)
        case .deadlinePassed:
            reason = .timeout
        case .cancelled:
            reason = .cancellation
        }

        let grace = spec.killGrace
        let teardown = await withUncancelledTask { await child.tearDown(grace: grace) }
        let output = await child.settleOutput()
        return (ProcessOutcome(
            termination: teardown.termination,
            timedOut: reason == .timeout,
            cancelled: reason == .cancellation,
            pid: child.pid,
            survivors: teardown.survivors,
            logError: output.logError,
            capturedStdout: output.stdout,
            capturedStderr: output.stderr
        ), 0)
    }
}

extension LocalProcess {
    /// Raises this process's soft limit of open files to its hard limit now, as the first spawn
    /// does (see the type's notes); for a process that holds many descriptors without spawning
    /// (`serve`'s connections).
    package static func raiseOpenFilesLimit() { omni_raise_open_files_limit() }
}

extension ProcessOutcome {
    /// Why a process group was torn down.
    fileprivate enum TeardownReason {
        case timeout, cancellation
    }
}
