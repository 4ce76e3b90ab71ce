import Synchronization

/// A single-consumer, unbounded message queue: producers ``send(_:)`` from anywhere without
/// waiting; the owner's loop awaits ``next()``.
///
/// Unlike re-iterating an `AsyncStream`, a cancelled ``next()`` does not end the mailbox: it
/// returns nil and the messages stay queued.
final class Mailbox<Message: Sendable>: Sendable {
    private struct State {
        var buffer: [Message] = []
        var waiter: CheckedContinuation<Message?, Never>?
        var closed = false
    }

    private let state = Mutex(State())

    /// Queues a message, or hands it to the waiting consumer. Ignored once closed.
    /// - Returns: false when the mailbox was closed and the message dropped.
    @discardableResult
    func send(_ message: Message) -> Bool {
        let (accepted, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Message?, Never>?) in
            guard !state.closed else { return (false, nil) }
            if let waiter = state.waiter {
                state.waiter = nil
                return (true, waiter)
            }
            state.buffer.append(message)
            return (true, nil)
        }
        waiter?.resume(returning: message)
        return accepted
    }

    /// The next message; nil when the mailbox is closed and empty, or the caller is cancelled.
    ///
    /// - Important: One consumer at a time.
    func next() async -> Message? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Message?, Never>) in
                let immediate: Message?? = state.withLock { state in
                    if !state.buffer.isEmpty { return .some(state.buffer.removeFirst()) }
                    if state.closed || Task.isCancelled { return .some(nil) }
                    precondition(state.waiter == nil, "Mailbox.next() called by two consumers at once")
                    state.waiter = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }

    /// Takes every queued message without waiting (oldest first).
    func drain() -> [Message] {
        state.withLock { state in
            defer { state.buffer.removeAll() }
            return state.buffer
        }
    }

    /// Closes the mailbox: queued messages are still delivered, new ones dropped, and a
    /// waiting consumer gets nil once the queue is empty.
    func close() {
        let waiter = state.withLock { state in
            state.closed = true
            defer { state.waiter = nil }
            return state.buffer.isEmpty ? state.waiter : nil
        }
        waiter?.resume(returning: nil)
    }
}
