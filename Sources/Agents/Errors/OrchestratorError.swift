import Orchestration

/// A failure of the orchestrator itself: its repository, its state, its session.
///
/// Each code maps to one SPEC §5 exit code; the message is one sentence a user can act on.
public typealias OrchestratorError = CodedError<OrchestratorErrorCode>

/// What kind of failure an ``OrchestratorError`` is. New codes can be added without breaking
/// callers.
public struct OrchestratorErrorCode: ErrorCode {
    /// The code's name.
    public var rawValue: String
    /// Creates a code from its name.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The configuration cannot work: no git repository, an integration branch that is
    /// checked out elsewhere, bad options (exit 2).
    public static let invalidConfiguration = Self(rawValue: "invalid_configuration")
    /// `--resume` found no session to continue, or `status` found none (exit 3).
    public static let noSession = Self(rawValue: "no_session")
    /// Another live `agents run` holds the state folder (exit 75).
    public static let sessionHeld = Self(rawValue: "session_held")
    /// A session exists that was not finished; the caller must resume it or start afresh
    /// explicitly (exit 2).
    public static let unfinishedSession = Self(rawValue: "unfinished_session")
    /// A git command failed where the orchestrator cannot go on (exit 74: the workspace failed).
    public static let gitFailed = Self(rawValue: "git_failed")
    /// The state folder failed (exit 74), or has an incompatible schema (exit 4).
    public static let stateFailed = Self(rawValue: "state_failed")
    /// The method needs a started orchestrator, or one not yet started (exit 2).
    public static let wrongState = Self(rawValue: "wrong_state")

    /// `noSession` exits 3, `sessionHeld` 75, git and state failures 74, the rest 2.
    public var engineCode: EngineError.Code {
        switch self {
        case .noSession: .unknownReference
        case .sessionHeld: .runHeld
        case .gitFailed, .stateFailed: .stateFailure
        default: .usage
        }
    }
}

extension CodedError where Kind == OrchestratorErrorCode {
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
}
