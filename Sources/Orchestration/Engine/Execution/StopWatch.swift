import Synchronization

/// Passes stop requests on, and remembers the first: a stop that arrives before a run can start
/// a step (while `resume` takes over from a dead engine) is then known when it starts, instead
/// of being seen only after the first attempts were spawned.
final class StopWatch: Sendable {
    /// The requests, passed on as they come.
    let stream: AsyncStream<StopReason>
    private final class First: Sendable {
        let reason = Mutex<StopReason?>(nil)
    }
    private let first = First()
    private let forwarding: Task<Void, Never>

    init(_ upstream: AsyncStream<StopReason>) {
        let (stream, continuation) = AsyncStream<StopReason>.makeStream()
        self.stream = stream
        forwarding = Task { [first] in
            for await reason in upstream {
                first.reason.withLock { if $0 == nil { $0 = reason } }
                continuation.yield(reason)
            }
            continuation.finish()
        }
    }

    deinit { forwarding.cancel() }

    /// The first stop requested so far, if any.
    var requested: StopReason? { first.reason.withLock { $0 } }
}
