import Orchestration

/// The kind of an Agents error: an extensible set of named codes, each mapping to one SPEC §5
/// exit code through an ``EngineError/Code``.
///
/// A conforming type is a struct wrapping its name, so new codes can be added without breaking
/// callers' `switch`es:
///
/// ```swift
/// public struct MyErrorCode: ErrorCode {
///     public var rawValue: String
///     public init(rawValue: String) { self.rawValue = rawValue }
///     public static let broken = MyErrorCode(rawValue: "broken")
///     public var engineCode: EngineError.Code { .stateFailure }
/// }
/// public typealias MyError = CodedError<MyErrorCode>
/// ```
public protocol ErrorCode: RawRepresentable<String>, Sendable, Hashable, CustomStringConvertible {
    /// Creates a code from its name.
    init(rawValue: String)
    /// The engine code (and so the exit code) of errors of this kind.
    var engineCode: EngineError.Code { get }
}

extension ErrorCode {
    /// The code's name.
    public var description: String { rawValue }
}

/// An error of the Agents module: a ``ErrorCode`` saying what kind of failure, one sentence a user
/// can act on, and the SPEC §5 exit code (the code's, unless overridden).
///
/// Shaped like ``EngineError`` (same initializer, ``code``, ``message``, ``exitCodeOverride``),
/// which ``engineError`` turns it into for the CLI's exit funnel. Each Agents error type
/// (``PlanParseError``, ``PlanValidationError``, ``AgentSpawnError``, ``OrchestratorError``) is
/// this type over its own code.
public struct CodedError<Kind: ErrorCode>: Error, Sendable, Hashable, CustomStringConvertible {
    /// The type of ``code`` (`AgentSpawnError.Code` names ``AgentSpawnErrorCode``).
    public typealias Code = Kind

    /// What kind of failure.
    public var code: Code
    /// One sentence a user can act on (starting with its location when it has one).
    public var message: String
    /// The exit code when it differs from the code's (e.g. 4 for a state folder of an
    /// incompatible schema).
    public var exitCodeOverride: Int32?

    /// Creates an error.
    /// - Parameters:
    ///   - code: The kind of failure, which decides the exit code.
    ///   - message: One sentence.
    ///   - exitCode: An explicit exit code, if the code's is not right.
    public init(_ code: Code, _ message: String, exitCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.exitCodeOverride = exitCode
    }

    /// The message.
    public var description: String { message }

    /// The SPEC §5 exit code.
    public var exitCode: Int32 { exitCodeOverride ?? code.engineCode.exitCode }

    /// The error as the CLI reports it (same message and exit code).
    public var engineError: EngineError {
        guard let exitCodeOverride else { return EngineError(code.engineCode, message) }
        let engineCode: EngineError.Code = switch exitCodeOverride {
        case 3: .unknownReference
        case 4: .protocolViolation
        case 5: .securityViolation
        case 74: .stateFailure
        case 75: .runHeld
        default: .usage
        }
        return EngineError(engineCode, message, exitCode: exitCodeOverride)
    }
}
