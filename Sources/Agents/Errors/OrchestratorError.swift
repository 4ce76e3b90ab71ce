import Orchestration

/// A failure of the orchestrator itself: its repository, its state, its session.
///
/// Each code maps to one SPEC §5 exit code through ``engineError``; the message is one sentence
/// a user can act on.
public struct OrchestratorError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure. New codes can be added without breaking callers.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The code's name.
        public var rawValue: String
        /// Creates a code from its name.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The configuration cannot work: no git repository, an integration branch that is
        /// checked out elsewhere, bad options (exit 2).
        public static let invalidConfiguration = Code(rawValue: "invalid_configuration")
        /// `--resume` found no session to continue, or `status` found none (exit 3).
        public static let noSession = Code(rawValue: "no_session")
        /// Another live `agents run` holds the state folder (exit 75).
        public static let sessionHeld = Code(rawValue: "session_held")
        /// A session exists that was not finished; the caller must resume it or start afresh
        /// explicitly (exit 2).
        public static let unfinishedSession = Code(rawValue: "unfinished_session")
        /// A git command failed where the orchestrator cannot go on (exit 74: the workspace failed).
        public static let gitFailed = Code(rawValue: "git_failed")
        /// The state folder failed (exit 74), or has an incompatible schema (exit 4).
        public static let stateFailed = Code(rawValue: "state_failed")
        /// The method needs a started orchestrator, or one not yet started (exit 2).
        public static let wrongState = Code(rawValue: "wrong_state")

        /// The code's name.
        public var description: String { rawValue }
    }

    /// What kind of failure.
    public var code: Code
    /// One sentence a user can act on.
    public var message: String
    /// The exit code when it differs from the code's default (e.g. 4 for an incompatible schema).
    public var exitCodeOverride: Int32?

    /// Creates an error.
    /// - Parameters:
    ///   - code: The kind of failure.
    ///   - message: One sentence.
    ///   - exitCode: An explicit exit code, if the code's default is not right.
    public init(_ code: Code, _ message: String, exitCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.exitCodeOverride = exitCode
    }

    /// Wraps a failure of the state folder (a ``StoreError`` keeps its exit code).
    init(store error: any Error) {
        if let store = error as? StoreError {
            self.init(.stateFailed, store.description, exitCode: store.exitCode)
        } else if let own = error as? OrchestratorError {
            self = own
        } else {
            self.init(.stateFailed, "\(error)")
        }
    }

    /// The message.
    public var description: String { message }

    /// The SPEC §5 exit code.
    public var exitCode: Int32 {
        if let exitCodeOverride { return exitCodeOverride }
        switch code {
        case .noSession: return 3
        case .sessionHeld: return 75
        case .gitFailed, .stateFailed: return 74
        default: return 2
        }
    }

    /// The error as the CLI reports it.
    public var engineError: EngineError {
        let engineCode: EngineError.Code
        switch exitCode {
        case 3: engineCode = .unknownReference
        case 4: engineCode = .protocolViolation
        case 5: engineCode = .securityViolation
        case 74: engineCode = .stateFailure
        case 75: engineCode = .runHeld
        default: engineCode = .usage
        }
        return EngineError(engineCode, message, exitCode: exitCode)
    }
}
