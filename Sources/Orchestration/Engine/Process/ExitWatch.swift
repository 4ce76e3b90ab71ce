import Glibc
import Synchronization

/// The "leader has exited" signal of one spawned child, set by the ``ProcessLoop`` and awaited
/// by the task running the attempt.
///
/// Exiting is observed **without reaping**: the child stays a zombie until the attempt decides
/// whether its group must be torn down, so its pid (which is also the group id) cannot be reused
/// while the engine may still signal the group.
///
/// One waiter at a time (the task running the attempt); a wait that is interrupted (deadline or
/// cancellation) can be followed by another one. The deadline of a wait is kept by the
/// ``ProcessLoop`` (one continuation, no task, no timer); without a loop, by a sleeping task.
final class ExitWatch: LoopDeadline {
    /// How a wait ended.
    enum WaitResult: Sendable, Equatable {
        /// The leader has exited (it is a zombie, not yet reaped).
        case exited
        /// The deadline passed first.
        case deadlinePassed
        /// The waiting task was cancelled first.
        case cancelled
    }

    private enum State {
        /// Running, nobody waiting.
        case running
        /// Running, one task suspended until exit, its deadline (if any) or its cancellation;
        /// `terminating`: the process group the loop sends SIGTERM when the deadline passes, and
        /// how long after that it sends SIGKILL (if it does).
        case waiting(CheckedContinuation<WaitResult, Never>, deadline: ContinuousClock.Instant?,
                     terminating: (leader: pid_t, killAfter: Duration?)?)
        /// Exited, not necessarily reaped yet: reaping is the attempt's job.
        case exited
        /// The attempt gave up waiting (the leader did not die even after SIGKILL): whoever
        /// observes the exit reaps the pid and closes the pidfd, so no zombie or fd is left.
        case abandoned(pid: pid_t, pidfd: Int32, spawn: SpawnHandle?)
    }

    private let state = Mutex<State>(.running)
    /// When the loop sent the group SIGTERM at a wait's deadline (``wait(until:terminating:killAfter:)``).
    private let terminated = Mutex<ContinuousClock.Instant?>(nil)
    /// The SIGKILL the loop owes the group it terminated, once the grace has passed. Sent and
    /// cleared under this lock, and cleared before the leader is reaped (``settleKill()``), so it
    /// never reaches a group whose id could have been reused.
    private let pendingKill = Mutex<(group: pid_t, at: ContinuousClock.Instant)?>(nil)
    /// The loop that keeps the deadlines of waits, if there is one.
    private let timekeeper: ProcessLoop?

    /// Creates the watch of a child that is running; `timekeeper` keeps the deadlines of waits.
    init(timekeeper: ProcessLoop? = ProcessLoop.shared) {
        self.timekeeper = timekeeper
    }

    /// Whether the exit has been observed.
    var hasExited: Bool {
        state.withLock { state in
            if case .exited = state { return true }
            return false
        }
    }

    /// Records the exit and wakes the waiter. Called exactly once, by the loop thread (or the
    /// fallback waiter thread), never from the cooperative pool.
    func markExited() {
        enum Action { case none, resume(CheckedContinuation<WaitResult, Never>), reap(pid_t, Int32, SpawnHandle?) }
        let action: Action = state.withLock { state in
            switch state {
            case .running:
                state = .exited
                return .none
            case .waiting(let continuation, _, _):
                state = .exited
                return .resume(continuation)
            case .abandoned(let pid, let pidfd, let spawn):
                state = .exited
                return .reap(pid, pidfd, spawn)
            case .exited:
                preconditionFailure("ExitWatch: the exit of one child was reported twice")
            }
        }
        switch action {
        case .none: break
        case .resume(let continuation): continuation.resume(returning: .exited)
        case .reap(let pid, let pidfd, let spawn):
            ChildProcess.reap(pid: pid, pidfd: pidfd)
            _ = spawn?.finish()
        }
    }

    /// Hands reaping (and the spawn's memory) over to whoever observes the exit; returns `false`
    /// (and changes nothing) when the exit was already observed, in which case the caller reaps.
    func abandon(pid: pid_t, pidfd: Int32, spawn: SpawnHandle?) -> Bool {
        state.withLock { state in
            switch state {
            case .running:
                // Whoever reaps it later must not find a SIGKILL still owed to its group.
                settleKill()
                state = .abandoned(pid: pid, pidfd: pidfd, spawn: spawn)
                return true
            case .exited:
                return false
            case .waiting, .abandoned:
                preconditionFailure("ExitWatch: abandoned while a wait is in progress")
            }
        }
    }

    /// Waits until the leader exits, `deadline` passes (if given) or the calling task is cancelled.
    /// When the exit and the deadline come together, the exit wins.
    ///
    /// With `terminating` (the child's process group) and a loop keeping the deadline, the loop
    /// itself sends the group SIGTERM and SIGCONT when the deadline passes, before it resumes
    /// the waiter, and SIGKILL `killAfter` later unless the leader is reaped first: neither
    /// signal of a timeout waits for the waiting task to get a thread (a run on the global pool,
    /// whose threads other work may hold). A wait that begins after its deadline sends SIGTERM
    /// itself and leaves the loop the SIGKILL. ``terminationSent`` tells when SIGTERM went.
    func wait(until deadline: ContinuousClock.Instant?, terminating group: pid_t? = nil,
              killAfter grace: Duration? = nil) async -> WaitResult {
        if let deadline, timekeeper == nil {
            return await waitRacingASleep(until: deadline)
        }
        let result = await waitForEvent(until: deadline, terminating: group.map { ($0, grace) })
        // An exit caused by the loop's SIGTERM is the timeout's, not the child's own.
        if result == .deadlinePassed && group != nil && terminationSent != nil { return result }
        return result != .exited && hasExited ? .exited : result
    }

    /// When the loop sent SIGTERM at the deadline of a wait with `terminating`, if it did.
    var terminationSent: ContinuousClock.Instant? { terminated.withLock { $0 } }

    /// The wait itself: one continuation, resumed by the exit, the loop (deadline) or cancellation.
    private func waitForEvent(until deadline: ContinuousClock.Instant?,
                              terminating group: (leader: pid_t, killAfter: Duration?)?) async -> WaitResult {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                var killDue: ContinuousClock.Instant?
                let immediate: WaitResult? = state.withLock { state in
                    switch state {
                    case .exited:
                        return .exited
                    case .running:
                        // Checked under the lock: `onCancel` below takes the same lock after the
                        // task is flagged, so either we see the flag here or it sees `.waiting`.
                        if Task.isCancelled { return .cancelled }
                        if let deadline, deadline <= .now {
                            // Past already (the attempt got here late): terminated now, as the
                            // loop would have, and the loop still owes the group its KILL.
                            if let group { killDue = terminate(group, at: .now) }
                            return .deadlinePassed
                        }
                        state = .waiting(continuation, deadline: deadline, terminating: group)
                        return nil
                    case .waiting, .abandoned:
                        preconditionFailure("ExitWatch: only one task may wait at a time")
                    }
                }
                if let immediate {
                    if let killDue, let timekeeper { timekeeper.watch(self, until: killDue) }
                    continuation.resume(returning: immediate)
                } else if let deadline, let timekeeper {
                    timekeeper.watch(self, until: deadline)
                }
            }
        } onCancel: {
            let continuation: CheckedContinuation<WaitResult, Never>? = state.withLock { state in
                guard case .waiting(let continuation, _, _) = state else { return nil }
                state = .running
                return continuation
            }
            continuation?.resume(returning: .cancelled)
        }
    }

    /// Called by the loop thread: resumes the waiter with ``WaitResult/deadlinePassed`` if its
    /// deadline is not after `now`, after signalling the group it is terminating, if any; and
    /// sends a pending SIGKILL whose time has come.
    func expireWait(at now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        let (expired, pending): (CheckedContinuation<WaitResult, Never>?, ContinuousClock.Instant?) = state.withLock { state in
            guard case .waiting(let continuation, let deadline?, let group) = state else { return (nil, nil) }
            guard deadline <= now else { return (nil, deadline) }
            state = .running
            // Under the lock: the exit cannot be reported meanwhile, so the leader is not reaped
            // and its pid still names the group.
            if let group { _ = terminate(group, at: now) }
            return (continuation, nil)
        }
        expired?.resume(returning: .deadlinePassed)
        let kill = pendingKill.withLock { kill -> ContinuousClock.Instant? in
            guard let due = kill else { return nil }
            guard due.at <= now else { return due.at }
            // The leader is not reaped yet (reaping clears this first), so its pid names the group.
            ProcessGroup(leader: due.group).send(SIGKILL)
            kill = nil
            return nil
        }
        switch (pending, kill) {
        case (let wait?, let kill?): return min(wait, kill)
        default: return pending ?? kill
        }
    }

    /// Sends the group SIGTERM and SIGCONT (so a stopped member gets to handle it), notes when,
    /// and leaves the SIGKILL the loop sends after `killAfter`; returns when that is due. The
    /// caller holds the state lock, so the leader has not been reaped.
    private func terminate(_ group: (leader: pid_t, killAfter: Duration?), at now: ContinuousClock.Instant)
        -> ContinuousClock.Instant? {
        let members = ProcessGroup(leader: group.leader)
        members.send(SIGTERM)
        members.send(SIGCONT)
        terminated.withLock { $0 = now }
        guard let grace = group.killAfter else { return nil }
        let due = now.advanced(by: grace)
        pendingKill.withLock { $0 = (group.leader, due) }
        return due
    }

    /// Cancels the SIGKILL the loop still owes the group; call before reaping the leader.
    func settleKill() {
        pendingKill.withLock { $0 = nil }
    }

    /// The wait without a loop: a sleeping child task races the exit and is cancelled as soon as
    /// the race is decided.
    private func waitRacingASleep(until deadline: ContinuousClock.Instant) async -> WaitResult {
        let first = await withTaskGroup(of: WaitResult.self) { group in
            group.addTask { await self.wait(until: nil) == .exited ? .exited : .cancelled }
            group.addTask {
                do {
                    try await Task.sleep(until: deadline, clock: .continuous)
                    return .deadlinePassed
                } catch {
                    return .cancelled
                }
            }
            let first = await group.next() ?? .cancelled
            group.cancelAll()
            return first
        }
        return first != .exited && hasExited ? .exited : first
    }
}
