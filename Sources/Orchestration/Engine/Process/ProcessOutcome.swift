/// How one attempt of a ``ProcessSpec`` ended.
package struct ProcessOutcome: Sendable, Equatable {
    /// How the leader of the process group ended.
    public enum Termination: Sendable, Equatable, CustomStringConvertible {
        /// The leader exited with this status.
        case exited(Int32)
        /// The leader was killed by this signal.
        case signaled(Int32)
        /// The command could not be started; the string is one sentence a user can act on,
        /// such as `command not found: foo` or `working directory does not exist: /x`.
        ///
        /// - Important: It is also used, with a sentence saying so, in the one case where the
        ///   process ran but its exit status was lost: something else in the engine's process
        ///   reaped the child (a `waitpid(-1)` or a `SIGCHLD` set to `SIG_IGN`), which is a bug.
        case failedToStart(String)

        /// A short phrase for logs: `exited with status 3`, `killed by signal 9 (SIGKILL)`.
        public var description: String {
            switch self {
            case .exited(let status): "exited with status \(status)"
            case .signaled(let signal): "killed by signal \(signal)\(SignalName.name(for: signal).map { " (\($0))" } ?? "")"
            case .failedToStart(let reason): "failed to start: \(reason)"
            }
        }
    }

    /// How the leader ended.
    public var termination: Termination
    /// The attempt exceeded ``ProcessSpec/timeout`` and its process group was torn down.
    public var timedOut: Bool
    /// The calling task was cancelled and the process group was torn down.
    public var cancelled: Bool
    /// The leader's pid (also the process group id); `nil` if nothing was started.
    public var pid: Int32?
    /// Live (non-zombie) members of the process group still found after a teardown; 0 when the
    /// group was emptied, and always 0 after a normal exit (nothing is torn down then).
    public var survivors: Int
    /// What went wrong with the log files (one could not be created, the disk filled up), or
    /// `nil`; it does not change ``termination``. The output that could not be stored was read
    /// and discarded, so the process was never blocked by it.
    ///
    /// - Important: It covers what happened until ``LocalProcess/run(_:)`` returned. Output that
    ///   a background process writes later still goes to the log, but errors with it are not
    ///   reported anywhere. (In the rare fallback where the child writes into its log files
    ///   directly, a full disk fails the child's own writes instead, and nothing is reported here.)
    public var logError: String?
    /// What the child wrote to stdout, when ``ProcessSpec/stdout`` is
    /// ``OutputDestination/capture(limit:)`` and the process was started; otherwise `nil`.
    ///
    /// It holds what arrived until ``LocalProcess/run(_:)`` returned: output that a background
    /// process still holding the pipe writes later is read and thrown away.
    public var capturedStdout: CapturedOutput?
    /// What the child wrote to stderr, like ``capturedStdout``.
    public var capturedStderr: CapturedOutput?

    /// `true` when the leader exited with status 0 on its own, before any timeout or cancellation.
    public var succeeded: Bool {
        termination == .exited(0) && !timedOut && !cancelled
    }

    /// Creates an outcome (the engine's tests and fakes build them directly).
    ///
    /// - Parameters:
    ///   - termination: How the leader ended.
    ///   - timedOut: Whether the timeout tore the group down.
    ///   - cancelled: Whether cancellation tore the group down.
    ///   - pid: The leader's pid, if one was started.
    ///   - survivors: Live group members left after a teardown.
    ///   - logError: What went wrong with the log files, if anything.
    ///   - capturedStdout: What was captured of stdout, if it was captured.
    ///   - capturedStderr: What was captured of stderr, if it was captured.
    public init(
        termination: Termination, timedOut: Bool = false, cancelled: Bool = false, pid: Int32? = nil, survivors: Int = 0,
        logError: String? = nil, capturedStdout: CapturedOutput? = nil, capturedStderr: CapturedOutput? = nil
    ) {
        self.termination = termination
        self.timedOut = timedOut
        self.cancelled = cancelled
        self.pid = pid
        self.survivors = survivors
        self.logError = logError
        self.capturedStdout = capturedStdout
        self.capturedStderr = capturedStderr
    }
}
