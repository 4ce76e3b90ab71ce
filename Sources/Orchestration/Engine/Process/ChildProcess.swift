import COmnibaseShims
import Glibc

/// A started child: the leader of its own process group, observed by the ``ProcessMonitor`` and
/// not reaped until the attempt has decided what to do with its group.
struct ChildProcess: Sendable {
    /// The leader's pid, which is also the process group id.
    let pid: pid_t
    /// The leader's pidfd, or -1 when it is observed by a fallback thread; closed after reaping.
    let pidfd: Int32
    /// Signalled when the leader exits.
    let exit: ExitWatch
    /// Signalled when the child's output pipes are read to end-of-file; `nil` when its output
    /// goes to `/dev/null` or straight into files.
    let output: OutputDrain?
    /// The memory of a captured stdout and stderr, if captured.
    let captures: (stdout: OutputCapture?, stderr: OutputCapture?)
    /// Log files created before the spawn (``ChildOutput/createdFiles``), removed if the child
    /// never executed.
    let createdFiles: [String]
    /// The inode numbers of the child's output pipes (``ChildOutput/pipeInodes``).
    let pipeInodes: [UInt64]
    /// The spawn's memory, held by the child until it executes; finished once, when it is reaped.
    let spawn: SpawnHandle?
    /// Says in one sentence why the child could not execute, from the error number it reported.
    let describeFailure: @Sendable (Int32) -> LaunchFailure

    /// How long teardown waits, after SIGKILL, for the leader to exit and the group to empty.
    static let killSettleBound: Duration = .seconds(2)
    /// How often teardown re-reads `/proc` while the group empties.
    static let killSettlePoll: Duration = .milliseconds(5)

    /// Waits, at most ``OutputDrain/window`` and even if the calling task is cancelled, for the
    /// output to be copied to the end; call it after reaping (or tearing down) the group.
    ///
    /// - Returns: What went wrong with the log files so far, if anything, and what was captured
    ///   (which stops the captures: later output is read but not kept).
    func settleOutput() async -> (logError: String?, stdout: CapturedOutput?, stderr: CapturedOutput?) {
        guard let output else { return (nil, nil, nil) }
        _ = await output.wait(until: ContinuousClock.now.advanced(by: OutputDrain.window))
        return (output.error, captures.stdout?.seal(), captures.stderr?.seal())
    }

    /// Reaps the leader, which must have exited (so this does not block), and closes its pidfd.
    ///
    /// - Returns: How it ended, and the error number of the step before its exec that failed
    ///   (0 when it executed the command): a child that never executed ended as
    ///   `failedToStart`, with the reason.
    func reap() -> (termination: ProcessOutcome.Termination, notExecuted: Int32) {
        exit.settleKill()
        let termination = Self.reap(pid: pid, pidfd: pidfd)
        let code = spawn?.finish() ?? 0
        if code != 0 {
            ChildOutput.removeCreated(createdFiles)
            return (.failedToStart(describeFailure(code).message), code)
        }
        return (termination, 0)
    }

    /// Reaps `pid` with `waitpid` and then closes `pidfd` (if any), in that order, so the pidfd
    /// cannot be mistaken for another process's while the pid is still ours.
    @discardableResult
    static func reap(pid: pid_t, pidfd: Int32) -> ProcessOutcome.Termination {
        var status: Int32 = 0
        let result = SystemCallError.retryingOnInterrupt { waitpid(pid, &status, 0) }
        let lost = result == -1 ? SystemCallError(call: "waitpid", code: errno) : nil
        if pidfd >= 0 { close(pidfd) }
        if let lost {
            return .failedToStart("the exit status of process \(pid) was lost (\(lost)): something else reaped it")
        }
        if omni_wifexited(status) != 0 { return .exited(omni_wexitstatus(status)) }
        if omni_wifsignaled(status) != 0 { return .signaled(omni_wtermsig(status)) }
        return .failedToStart("process \(pid) reported an unexpected wait status \(status)")
    }

    /// Tears the whole process group down and reaps the leader.
    ///
    /// SIGTERM and then SIGCONT (so a stopped member still gets to handle SIGTERM) go to the group;
    /// the leader gets `grace` to exit; then SIGKILL goes to the group **always**, because
    /// grandchildren may outlive a leader that died on SIGTERM. All of this happens while the
    /// leader is still unreaped, so the group id cannot have been reused. Then `/proc` is polled
    /// until no member of the group runs any more (bounded by ``killSettleBound``), and only
    /// then is the leader reaped.
    ///
    /// - Important: Run this in an uncancelled context (``withUncancelledTask(_:)``): it sleeps.
    /// - Returns: How the leader ended, and how many members were still alive at the end.
    func tearDown(grace: Duration) async -> (termination: ProcessOutcome.Termination, survivors: Int) {
        let group = ProcessGroup(leader: pid)
        let clock = ContinuousClock()
        // At a timeout the loop has already sent SIGTERM (``ExitWatch/wait(until:terminating:)``):
        // once is enough, and the grace counts from then.
        let terminatedAt = exit.terminationSent
        if terminatedAt == nil {
            group.send(SIGTERM)
            group.send(SIGCONT)
        }
        _ = await exit.wait(until: (terminatedAt ?? clock.now).advanced(by: grace))
        group.send(SIGKILL)
        let leaderExited = await exit.wait(until: clock.now.advanced(by: Self.killSettleBound)) == .exited
        var survivors = await group.waitUntilEmpty(within: Self.killSettleBound, pollingEvery: Self.killSettlePoll)
        survivors += await endPipeHolders(grace: grace)
        if !leaderExited && exit.abandon(pid: pid, pidfd: pidfd, spawn: spawn) {
            // The leader survived SIGKILL for the whole bound (uninterruptible sleep). Whoever
            // observes its exit later reaps it; it is counted among the survivors.
            return (.signaled(SIGKILL), max(survivors, 1))
        }
        return (reap().termination, survivors)
    }
}

extension ChildProcess {
    /// Ends the processes that still hold the child's output pipes once its group is gone: a
    /// descendant that left the group and the session (`setsid`) and cleared its environment
    /// (`env -i`), so that neither the group nor the attempt's marks find it (SPEC section 2: no
    /// process that the step started survives it). SIGTERM and SIGCONT, up to `grace` (at most
    /// 2 s) for them to let go of the pipes, then SIGKILL. Only when the output has not reached
    /// end-of-file, so the common teardown scans nothing.
    ///
    /// - Returns: How many were still alive at the end.
    func endPipeHolders(grace: Duration) async -> Int {
        guard let output, !output.isComplete, !pipeInodes.isEmpty else { return 0 }
        let holders = ProcessTable.holders(ofPipes: Set(pipeInodes))
        guard !holders.isEmpty else { return 0 }
        for pid in holders {
            kill(pid, SIGTERM)
            kill(pid, SIGCONT)
        }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: min(grace, Self.killSettleBound))
        while clock.now < deadline, !output.isComplete {
            try? await Task.sleep(for: Self.killSettlePoll * 4, clock: clock)
        }
        if output.isComplete { return 0 }
        let inodes = Set(pipeInodes)
        for pid in ProcessTable.holders(ofPipes: inodes) { kill(pid, SIGKILL) }
        // The pipes reach end-of-file once their last holder is gone: no /proc scan per poll.
        let settled = clock.now.advanced(by: Self.killSettleBound)
        while clock.now < settled, !output.isComplete {
            try? await Task.sleep(for: Self.killSettlePoll, clock: clock)
        }
        return output.isComplete ? 0 : ProcessTable.holders(ofPipes: inodes).count
    }
}

/// The memory of one spawn (`omni_spawn_start`), which its child uses until it executes. The
/// address only: the block it names is touched through the C shim (under its lock, or by the
/// kernel's clearing of the child's tid word), never from Swift.
struct SpawnHandle: Sendable {
    private let address: UInt

    init?(_ pointer: UnsafeMutableRawPointer?) {
        guard let pointer else { return nil }
        address = UInt(bitPattern: pointer)
    }

    /// Waits until the child executed or exited (at once after its exit), gives the memory back
    /// and returns 0 if it executed, or the error number of the step that failed before. Call it
    /// exactly once.
    func finish() -> Int32 {
        omni_spawn_finish(UnsafeMutableRawPointer(bitPattern: address))
    }

    /// Whether the child has executed the command (without waiting).
    var hasExecuted: Bool {
        omni_spawn_executed(UnsafeMutableRawPointer(bitPattern: address)) != 0
    }
}
