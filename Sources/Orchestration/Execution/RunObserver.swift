/// Receives a run's events: the JSONL writer, the store, progress printers, metrics.
///
/// Observers see the events of one scheduler turn at once, in order, with `seq` assigned. The
/// executor waits for `record` to return before it starts the steps that turn decided to start,
/// so an observer that makes events durable guarantees "a step's result is committed before
/// anything that depends on it starts".
public protocol RunObserver: Sendable {
    /// Records the events of one scheduler turn.
    /// - Throws: an ``EngineError``-convertible failure stops the run (nothing new starts).
    func record(_ events: [RunEvent]) async throws
}

/// Why a run was asked to stop.
public enum StopReason: Sendable, Hashable {
    /// SIGINT (Ctrl-C).
    case interrupt
    /// SIGTERM.
    case terminate

    /// The exit code of SPEC §5: 130 or 143.
    public var exitCode: Int32 { self == .interrupt ? 130 : 143 }
    /// The signal's name.
    public var signalName: String { self == .interrupt ? "SIGINT" : "SIGTERM" }
}
