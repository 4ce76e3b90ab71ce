import Synchronization

/// A one-shot signal carrying a value: any number of tasks ``wait()`` until someone
/// ``open(_:)``s it; once open it stays open and later waits return at once.
///
/// A waiter that is cancelled returns nil at once (its continuation is resumed from the
/// cancellation handler under the lock, so no task is needed to clean up).
final class Latch<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [Int: CheckedContinuation<Value?, Never>] = [:]
        var nextToken = 0
    }

    private let state = Mutex(State())

    /// Opens the latch with `value` and wakes every waiter; ignored when already open.
    func open(_ value: Value) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value?, Never>] in
            guard state.value == nil else { return [] }
            state.value = value
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    /// Waits until the latch is open.
    /// - Returns: Its value; nil when the caller was cancelled first.
    func wait() async -> Value? {
        let token = state.withLock { state in
            defer { state.nextToken += 1 }
            return state.nextToken
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
                let immediate: Value?? = state.withLock { state in
                    if let value = state.value { return .some(value) }
                    if Task.isCancelled { return .some(nil) }
                    state.waiters[token] = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: token) }?.resume(returning: nil)
        }
    }
}
