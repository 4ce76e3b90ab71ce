import Synchronization
import Orchestration

/// Shares one stream of stop requests (SIGINT/SIGTERM) between the phases of a stage: pre
/// hooks, the run, post hooks. An `AsyncStream` has a single consumer, so ``pump()`` consumes
/// the source and every ``subscribe()`` gets its own stream, which first replays a stop that
/// already happened.
final class StopFanout: Sendable {
    private struct State {
        var reason: StopReason?
        var subscribers: [AsyncStream<StopReason>.Continuation] = []
        var finished = false
    }

    private let source: AsyncStream<StopReason>?
    private let state = Mutex(State())

    init(source: AsyncStream<StopReason>?) {
        self.source = source
    }

    /// The first stop requested so far.
    var reason: StopReason? { state.withLock { $0.reason } }

    /// Forwards the source's requests until it ends or the task is cancelled, then ends every
    /// subscription.
    func pump() async {
        if let source {
            for await reason in source {
                let subscribers = state.withLock { state in
                    if state.reason == nil { state.reason = reason }
                    return state.subscribers
                }
                for subscriber in subscribers { subscriber.yield(reason) }
            }
        }
        finish()
    }

    /// Ends every subscription (the stage is over).
    func finish() {
        let subscribers = state.withLock { state in
            state.finished = true
            defer { state.subscribers.removeAll() }
            return state.subscribers
        }
        for subscriber in subscribers { subscriber.finish() }
    }

    /// A new stream of the stop requests from now on, starting with one already received.
    func subscribe() -> AsyncStream<StopReason> {
        let (stream, continuation) = AsyncStream.makeStream(of: StopReason.self)
        let (past, finished) = state.withLock { state in
            if !state.finished { state.subscribers.append(continuation) }
            return (state.reason, state.finished)
        }
        if let past { continuation.yield(past) }
        if finished { continuation.finish() }
        return stream
    }
}
