import Glibc
import Synchronization

/// The "leader has exited" signal of one spawned child, set by the ``ProcessMonitor`` and awaited
/// by the task running the attempt.
///
/// Exiting is observed **without reaping**: the child stays a zombie until the attempt decides
/// whether its group must be torn down, so its pid (which is also the group id) cannot be reused
/// while the engine may still signal the group.
///
/// One waiter at a time (the task running the attempt); a wait that is interrupted (deadline or
/// cancellation) can be followed by another one.
final class ExitWatch: Sendable {
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
        /// Running, one task suspended until exit (resumed with `true`) or cancellation (`false`).
        case waiting(CheckedContinuation<Bool, Never>)
        /// Exited, not necessarily reaped yet: reaping is the attempt's job.
        case exited
        /// The attempt gave up waiting (the leader did not die even after SIGKILL): whoever
        /// observes the exit reaps the pid and closes the pidfd, so no zombie or fd is left.
        case abandoned(pid: pid_t, pidfd: Int32)
    }

    private let state = Mutex<State>(.running)

    /// Whether the exit has been observed.
    var hasExited: Bool {
        state.withLock { state in
            if case .exited = state { return true }
            return false
        }
    }

    /// Records the exit and wakes the waiter. Called exactly once, by the monitor thread (or the
    /// fallback waiter thread), never from the cooperative pool.
    func markExited() {
        enum Action { case none, resume(CheckedContinuation<Bool, Never>), reap(pid_t, Int32) }
        let action: Action = state.withLock { state in
            switch state {
            case .running:
                state = .exited
                return .none
            case .waiting(let continuation):
                state = .exited
                return .resume(continuation)
            case .abandoned(let pid, let pidfd):
                state = .exited
                return .reap(pid, pidfd)
            case .exited:
                preconditionFailure("ExitWatch: the exit of one child was reported twice")
            }
        }
        switch action {
        case .none: break
        case .resume(let continuation): continuation.resume(returning: true)
        case .reap(let pid, let pidfd): ChildProcess.reap(pid: pid, pidfd: pidfd)
        }
    }

    /// Hands reaping over to whoever observes the exit; returns `false` (and changes nothing)
    /// when the exit was already observed, in which case the caller reaps.
    func abandon(pid: pid_t, pidfd: Int32) -> Bool {
        state.withLock { state in
            switch state {
            case .running:
                state = .abandoned(pid: pid, pidfd: pidfd)
                return true
            case .exited:
                return false
            case .waiting, .abandoned:
                preconditionFailure("ExitWatch: abandoned while a wait is in progress")
            }
        }
    }

    /// Waits until the leader exits, `deadline` passes (if given) or the calling task is cancelled.
    ///
    /// Without a deadline this is one continuation and no extra task. With one, a sleeping child
    /// task races the exit and is cancelled as soon as the race is decided, so no timer is left.
    /// When both happen together the exit wins.
    func wait(until deadline: ContinuousClock.Instant?) async -> WaitResult {
        guard let deadline else {
            return await waitForExit() ? .exited : .cancelled
        }
        let first = await withTaskGroup(of: WaitResult.self) { group in
            group.addTask { await self.waitForExit() ? .exited : .cancelled }
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

    /// Suspends until the exit (`true`) or the cancellation of the calling task (`false`).
    private func waitForExit() async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let immediate: Bool? = state.withLock { state in
                    switch state {
                    case .exited:
                        return true
                    case .running:
                        // Checked under the lock: `onCancel` below takes the same lock after the
                        // task is flagged, so either we see the flag here or it sees `.waiting`.
                        if Task.isCancelled { return false }
                        state = .waiting(continuation)
                        return nil
                    case .waiting, .abandoned:
                        preconditionFailure("ExitWatch: only one task may wait at a time")
                    }
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let continuation: CheckedContinuation<Bool, Never>? = state.withLock { state in
                guard case .waiting(let continuation) = state else { return nil }
                state = .running
                return continuation
            }
            continuation?.resume(returning: false)
        }
    }
}
