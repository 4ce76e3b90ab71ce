/// An error the engine reports to a user: one sentence they can act on, and the exit code of SPEC §5.
///
/// Errors compare by ``code`` only, so callers can match on the kind of failure while the message
/// carries the context (file, line, step, field).
public struct EngineError: CodedError, Hashable {
    /// The kind of failure. New codes can be added without breaking callers.
    public struct Code: ErrorCode {
        private enum Kind: Sendable, Hashable {
            case usage, invalidPlan, unknownVariable, unknownReference, protocolViolation
            case securityViolation, stateFailure, runHeld, interrupted, executionFailed
        }
        private let kind: Kind

        /// Bad command-line arguments (exit 2).
        public static let usage = Code(kind: .usage)
        /// The plan is malformed or invalid (exit 2).
        public static let invalidPlan = Code(kind: .invalidPlan)
        /// A `${NAME}` has no value (exit 2).
        public static let unknownVariable = Code(kind: .unknownVariable)
        /// An unknown component, step or run id (exit 3).
        public static let unknownReference = Code(kind: .unknownReference)
        /// A state folder of an incompatible schema, a malformed event (exit 4).
        public static let protocolViolation = Code(kind: .protocolViolation)
        /// A path that escapes the workspace, a symlinked state file (exit 5).
        public static let securityViolation = Code(kind: .securityViolation)
        /// The state folder failed: disk full, I/O error, corruption (exit 74).
        public static let stateFailure = Code(kind: .stateFailure)
        /// The run is held by another live engine (exit 75).
        public static let runHeld = Code(kind: .runHeld)
        /// The engine was interrupted by a signal (exit 130 or 143, see ``EngineError/exitCode``).
        public static let interrupted = Code(kind: .interrupted)
        /// The run ended `failed` (exit 1).
        public static let executionFailed = Code(kind: .executionFailed)

        /// The SPEC §5 exit code of this kind of error.
        public var exitCode: Int32 {
            switch kind {
            case .usage, .invalidPlan, .unknownVariable: return 2
            case .unknownReference: return 3
            case .protocolViolation: return 4
            case .securityViolation: return 5
            case .stateFailure: return 74
            case .runHeld: return 75
            case .interrupted: return 130
            case .executionFailed: return 1
            }
        }

        public var description: String { "\(kind)" }
    }

    /// What kind of failure this is.
    public var code: Code
    /// One sentence a user can act on, with its context (file:line:column, step, field).
    public var message: String
    /// Overrides the code's exit code (e.g. 143 for SIGTERM).
    public var exitCodeOverride: Int32?

    /// Creates an error.
    /// - Parameters:
    ///   - code: the kind of failure, which decides the exit code.
    ///   - message: one sentence, starting with its location when it has one.
    public init(_ code: Code, _ message: String, exitCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.exitCodeOverride = exitCode
    }

    /// The process exit code for this error (SPEC §5).
    public var exitCode: Int32 { exitCodeOverride ?? code.exitCode }

    public static func == (lhs: EngineError, rhs: EngineError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}

extension EngineError: StrictFieldFailure {
    /// A plan or registry field problem: `invalidPlan` (exit 2).
    package init(_ problem: FieldProblem) {
        self.init(.invalidPlan, problem.message)
    }
}
