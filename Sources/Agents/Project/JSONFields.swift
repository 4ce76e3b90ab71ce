import Orchestration

/// One JSON object of a project plan being decoded (``StrictFields``): unknown keys are rejected
/// when it is created, typed accessors reject wrong types and out-of-range values with the
/// value's location; every error is a ``PlanParseError``.
typealias JSONFields = StrictFields<PlanParseError>

extension StrictFields<PlanParseError> {
    /// Opens an object of the project plan `file`; the root is called "a project plan".
    init(_ node: JSONNode, path: String, allowed: [String], file: String) throws(PlanParseError) {
        try self.init(node, path: path, allowed: allowed, file: file, what: path.isEmpty ? "a project plan" : path)
    }
}

extension PlanParseError: StrictFieldFailure {
    /// The code of each kind of field problem (a value that is not an object is a wrong type).
    package init(_ problem: FieldProblem) {
        let code: Code = switch problem.kind {
        case .notAnObject, .wrongType: .wrongType
        case .unknownKey: .unknownKey
        case .missingField: .missingField
        case .invalidValue: .invalidValue
        }
        self.init(code, problem.message)
    }

    /// A negative or infinite number of seconds: `must be a finite number of seconds, not -5`.
    package static func badSecondsMessage(finite: Bool, text: String) -> String {
        "must be a finite number of seconds, not \(text)"
    }
}
