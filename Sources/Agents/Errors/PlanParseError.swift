import Orchestration

/// A project plan (`PROJECT_DIR/plan.json`) that is not well-formed: unreadable, invalid JSON,
/// an unknown key, a wrong type or a missing field.
///
/// The message starts with `FILE:LINE:COLUMN: JSON.PATH:` so a user can jump to the spot, as the
/// plan engine's messages do (SPEC §1). It maps to exit code 2 (``EngineError/Code/invalidPlan``).
public typealias PlanParseError = CodedError<PlanParseErrorCode>

/// What kind of problem a ``PlanParseError`` is. New codes can be added without breaking callers.
public struct PlanParseErrorCode: ErrorCode {
    /// The code's name.
    public var rawValue: String
    /// Creates a code from its name.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The file cannot be read (missing, not a regular file, too large).
    public static let unreadable = Self(rawValue: "unreadable")
    /// The file is not valid JSON.
    public static let invalidJSON = Self(rawValue: "invalid_json")
    /// An object has a key the format does not know.
    public static let unknownKey = Self(rawValue: "unknown_key")
    /// A value has the wrong JSON type.
    public static let wrongType = Self(rawValue: "wrong_type")
    /// A required field is missing.
    public static let missingField = Self(rawValue: "missing_field")
    /// A value has the right type but is out of range or malformed.
    public static let invalidValue = Self(rawValue: "invalid_value")

    /// Every plan error exits 2.
    public var engineCode: EngineError.Code { .invalidPlan }
}
