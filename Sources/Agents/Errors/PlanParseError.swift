import Orchestration

/// A project plan (`PROJECT_DIR/plan.json`) that is not well-formed: unreadable, invalid JSON,
/// an unknown key, a wrong type or a missing field.
///
/// The message starts with `FILE:LINE:COLUMN: JSON.PATH:` so a user can jump to the spot, as the
/// plan engine's messages do (SPEC §1). It maps to exit code 2 (``EngineError/Code/invalidPlan``).
public struct PlanParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem. New codes can be added without breaking callers.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The code's name.
        public var rawValue: String
        /// Creates a code from its name.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The file cannot be read (missing, not a regular file, too large).
        public static let unreadable = Code(rawValue: "unreadable")
        /// The file is not valid JSON.
        public static let invalidJSON = Code(rawValue: "invalid_json")
        /// An object has a key the format does not know.
        public static let unknownKey = Code(rawValue: "unknown_key")
        /// A value has the wrong JSON type.
        public static let wrongType = Code(rawValue: "wrong_type")
        /// A required field is missing.
        public static let missingField = Code(rawValue: "missing_field")
        /// A value has the right type but is out of range or malformed.
        public static let invalidValue = Code(rawValue: "invalid_value")

        /// The code's name.
        public var description: String { rawValue }
    }

    /// What kind of problem.
    public var code: Code
    /// One sentence, starting with its location.
    public var message: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: The kind of problem.
    ///   - message: One located sentence.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }

    /// The error as the CLI reports it (exit 2).
    public var engineError: EngineError { EngineError(.invalidPlan, message) }
}
