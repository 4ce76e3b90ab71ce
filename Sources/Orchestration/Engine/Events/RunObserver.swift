import Glibc

/// Receives a run's events: the JSONL writer, the store, progress printers, metrics.
///
/// Observers see the events of one scheduler turn at once, in order, with `seq` assigned. The
/// executor waits for `record` to return before it starts the steps that turn decided to start,
/// so an observer that makes events durable guarantees "a step's result is committed before
/// anything that depends on it starts".
///
/// ```swift
/// struct Failures: RunObserver {
///     func record(_ events: [RunEvent]) async throws {
///         for event in events {
///             if case .stepFailed(let end) = event.payload { print("\(event.stepID ?? ""): \(end?.error ?? "failed")") }
///         }
///     }
/// }
/// let report = try await RunSession(stateDirectory: ".state").start(plan, observers: [Failures()])
/// ```
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
    /// SIGHUP: the controlling terminal went away (a dropped SSH session).
    case hangup
    /// SIGQUIT (Ctrl-\): handled like SIGTERM, without a core dump.
    case quit
    /// The user chose to abort (`run --step`).
    case user

    /// The exit code: 128 plus the signal number, as a shell reports a death by that signal:
    /// 130 (SIGINT, or the user's abort), 143 (SIGTERM), 129 (SIGHUP), 131 (SIGQUIT).
    public var exitCode: Int32 {
        switch self {
        case .interrupt, .user: return 130
        case .terminate: return 143
        case .hangup: return 129
        case .quit: return 131
        }
    }
    /// What stopped the run.
    public var signalName: String {
        switch self {
        case .interrupt: return SignalName.describe(SIGINT)
        case .terminate: return SignalName.describe(SIGTERM)
        case .hangup: return SignalName.describe(SIGHUP)
        case .quit: return SignalName.describe(SIGQUIT)
        case .user: return "the user"
        }
    }
}
