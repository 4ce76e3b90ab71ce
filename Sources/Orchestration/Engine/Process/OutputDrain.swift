import Synchronization

/// The "output copied to the end" signal of one attempt, set by the ``ProcessLoop`` thread and
/// awaited by the task running the attempt; it also collects log-file errors.
///
/// An attempt has one stream per distinct log path that goes through the pump (stdout and stderr,
/// or one when both paths are equal). The drain is complete when the pump has read every one of
/// them to end-of-file, which happens once no process holds a write end any more: usually the
/// moment the leader exits, later if a background descendant inherited the pipe.
///
/// One waiter at a time (the task running the attempt). A waiting drain's deadline is kept by the
/// loop thread (``ProcessLoop/watch(_:until:)``), which reads its pipes anyway: a wait is one
/// continuation, with no task and no timer of its own.
final class OutputDrain: LoopDeadline {
    /// How long an attempt whose leader has been reaped (after a teardown, if any) waits for its
    /// output to reach end-of-file before ``LocalProcess/run(_:)`` returns anyway.
    ///
    /// A leader closes its pipe ends when it exits, before its exit is reported, so without other
    /// writers the end-of-file is already in the kernel when the attempt looks, and the only delay
    /// is the loop catching up (microseconds; a few scheduler time slices under load; 100 ms is
    /// about 25 of them). When the window passes, some descendant still holds the pipe: usually a
    /// background process that a successful step left running on purpose (it is not killed, as
    /// with `make`), which may write for hours, so waiting longer would only delay the run. The
    /// pump keeps copying whatever it writes until it closes the pipe.
    static let window: Duration = .milliseconds(100)

    private struct State {
        /// Streams registered with the pump and not yet read to end-of-file.
        var openStreams = 0
        /// What went wrong with the log files, in the order it happened.
        var errors: [String] = []
        /// The task waiting for the last end-of-file, and until when.
        var waiter: (continuation: CheckedContinuation<Bool, Never>, deadline: ContinuousClock.Instant)?
    }

    private let state = Mutex(State())
    /// The loop the streams go through, which keeps the deadline of a wait (`nil` when no
    /// stream can go through a loop: the drain is then always complete).
    private let timekeeper: ProcessLoop?

    /// Creates the drain of one attempt whose streams go through `pump`.
    init(pump: OutputPump) {
        timekeeper = pump.loop
    }

    /// Whether every stream has been read to end-of-file (or none went through the pump).
    var isComplete: Bool {
        state.withLock { $0.openStreams == 0 }
    }

    /// The log-file errors so far, joined into one text; `nil` when there were none.
    var error: String? {
        state.withLock { $0.errors.isEmpty ? nil : $0.errors.joined(separator: "; ") }
    }

    /// Counts one more stream; called just before the stream is handed to the pump.
    func streamAdded() {
        state.withLock { $0.openStreams += 1 }
    }

    /// Takes back a stream that the pump never received (its registration failed).
    func streamWithdrawn() {
        state.withLock { state in
            guard state.openStreams > 0, state.waiter == nil else {
                preconditionFailure("OutputDrain: withdrawing a stream that was not added, or during a wait")
            }
            state.openStreams -= 1
        }
    }

    /// Records a log-file error (the pump then discards that stream's output).
    func record(_ error: String) {
        state.withLock { $0.errors.append(error) }
    }

    /// Counts one stream read to end-of-file and wakes the waiter if it was the last. Called by
    /// the loop thread, never from the cooperative pool.
    func streamEnded() {
        let waiter: CheckedContinuation<Bool, Never>? = state.withLock { state in
            precondition(state.openStreams > 0, "OutputDrain: more streams ended than were added")
            state.openStreams -= 1
            guard state.openStreams == 0, let waiter = state.waiter else { return nil }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume(returning: true)
    }

    /// Waits until every stream is at end-of-file or `deadline` passes, **even if the calling
    /// task is cancelled**: the wait is bounded by the deadline, and returning early on
    /// cancellation would let a stopping engine exit before the last output of a torn-down step
    /// reached its log.
    ///
    /// When the output is already complete this takes one lock; otherwise it suspends until the
    /// loop thread reads the last end-of-file or finds the deadline passed.
    ///
    /// - Returns: `true` when the output is complete.
    func wait(until deadline: ContinuousClock.Instant) async -> Bool {
        if isComplete { return true }
        return await withCheckedContinuation { continuation in
            let complete = state.withLock { state in
                if state.openStreams == 0 { return true }
                precondition(state.waiter == nil, "OutputDrain: only one task may wait at a time")
                state.waiter = (continuation, deadline)
                return false
            }
            if complete {
                continuation.resume(returning: true)
            } else {
                // A stream was added, which only a pump with a loop does.
                timekeeper!.watch(self, until: deadline)
            }
        }
    }

    /// Called by the loop thread: wakes the waiter with `false` if its deadline is not after
    /// `now`.
    ///
    /// - Returns: The deadline of a wait still in progress, or `nil` when nobody waits any more.
    func expireWait(at now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        let (expired, pending): (CheckedContinuation<Bool, Never>?, ContinuousClock.Instant?) = state.withLock { state in
            guard let waiter = state.waiter else { return (nil, nil) }
            guard waiter.deadline <= now else { return (nil, waiter.deadline) }
            state.waiter = nil
            return (waiter.continuation, nil)
        }
        expired?.resume(returning: false)
        return pending
    }
}
