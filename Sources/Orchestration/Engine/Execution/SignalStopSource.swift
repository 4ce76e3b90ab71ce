import COmnibaseShims
import Dispatch
import Foundation
import Synchronization

/// Turns SIGINT, SIGTERM, SIGHUP and SIGQUIT into stop requests for a run.
///
/// The signals are ignored at the process level (`SIG_IGN`) and observed through dispatch
/// signal sources on a private queue, so they arrive as values in ``requests`` instead of
/// interrupting arbitrary code. SIGHUP (the terminal or SSH session went away) and SIGQUIT
/// (Ctrl-\) stop a run exactly like SIGTERM, so a dropped session never leaves steps running
/// under a run that stays `running`; they only differ in the exit code (129, 131). Children are unaffected: the process layer resets every signal
/// disposition to the default in the child (`omni_spawn_start`).
package final class SignalStopSource: Sendable {
    /// Yields once per received signal.
    public let requests: AsyncStream<StopReason>
    private let continuation: AsyncStream<StopReason>.Continuation
    private let sources: Mutex<[any DispatchSourceSignal]>

    /// The signals observed, with the stop each one requests.
    static let handled: [(Int32, StopReason)] = [
        (SIGINT, .interrupt), (SIGTERM, .terminate), (SIGHUP, .hangup), (SIGQUIT, .quit),
    ]

    /// Starts observing SIGINT, SIGTERM, SIGHUP and SIGQUIT.
    public init() {
        let (stream, continuation) = AsyncStream.makeStream(of: StopReason.self)
        requests = stream
        self.continuation = continuation
        let queue = DispatchQueue(label: "omnibase.signals")
        var sources: [any DispatchSourceSignal] = []
        // libdispatch installs its own handler when it registers a source, later and on another
        // thread; until then a latch catches the signal (it was SIG_IGN, which dropped a signal
        // that came in between: under load, a SIGTERM a second after start was lost).
        for (number, reason) in Self.handled {
            omni_signal_latch(number)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { continuation.yield(reason) }
            source.resume()
            sources.append(source)
        }
        self.sources = Mutex(sources)
        let deadline = ContinuousClock.now.advanced(by: .seconds(2))
        while Self.handled.contains(where: { omni_signal_latch_installed($0.0) != 0 }), ContinuousClock.now < deadline {
            usleep(200)
        }
        for (number, reason) in Self.handled where omni_signal_latch_take(number) != 0 {
            continuation.yield(reason)
        }
    }

    /// Requests a stop as if a signal had arrived (e.g. the user chose abort).
    public func request(_ reason: StopReason) {
        continuation.yield(reason)
    }

    /// Stops observing; the stream ends.
    public func finish() {
        sources.withLock { sources in
            for source in sources { source.cancel() }
            sources.removeAll()
        }
        continuation.finish()
    }
}
