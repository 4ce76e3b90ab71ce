/// What is wrong with one field of a strictly read JSON file; the loaders turn it into their own
/// error type (``StrictFieldFailure``).
package struct FieldProblem: Sendable, Hashable {
    /// What kind of problem.
    package enum Kind: Sendable, Hashable {
        /// The value that should be an object is not one.
        case notAnObject
        /// An object has a key the format does not know.
        case unknownKey
        /// A required field is missing.
        case missingField
        /// A value has the wrong JSON type.
        case wrongType
        /// A value has the right type but is out of range or malformed.
        case invalidValue
    }

    /// What kind of problem.
    package var kind: Kind
    /// One sentence, starting with `FILE:LINE:COLUMN: JSON.PATH:`.
    package var message: String

    package init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

/// An error type that a ``StrictFields`` reader throws.
package protocol StrictFieldFailure: Error {
    /// The error for one field problem.
    init(_ problem: FieldProblem)

    /// The sentence for a number of seconds that is negative (`finite`) or not finite; `text` is
    /// the number as written. Default: `must not be negative, not -5` and `must be a finite
    /// number of seconds`.
    static func badSecondsMessage(finite: Bool, text: String) -> String
}

extension StrictFieldFailure {
    package static func badSecondsMessage(finite: Bool, text: String) -> String {
        finite ? "must not be negative, not \(text)" : "must be a finite number of seconds"
    }
}

/// One JSON object of a file being decoded strictly: the one field reader of the plan, registry
/// and project loaders.
///
/// Unknown keys are rejected when the reader is created (with a "did you mean"); typed accessors
/// reject wrong types and out-of-range values. Every message starts with
/// `FILE:LINE:COLUMN: JSON.PATH:` (the value's location, or the object's for a missing field), so
/// a user can jump to the spot.
///
/// ```swift
/// let step = try StrictFields<EngineError>(node, path: "steps[0]", allowed: ["id", "retries"],
///                                          file: "plan.json", what: "steps[0]")
/// let id = try step.string("id", required: true)!
/// let retries = try step.int("retries", minimum: 0, maximum: 1000) ?? 0
/// ```
package struct StrictFields<Failure: StrictFieldFailure> {
    /// The object's members.
    package let object: JSONObject
    /// The object's node.
    package let node: JSONNode
    /// The object's JSON path (`steps[2]`), empty for the root.
    package let path: String
    /// The file name for messages.
    package let file: String

    /// Opens `node` as an object whose keys must be among `allowed`.
    ///
    /// - Parameter what: How a message names the value when it is not an object (`a plan`,
    ///   `steps[2]`).
    /// - Parameter elsewhere: keys of other objects, with the object each belongs in
    ///   (`kill_grace_sec` in a step: `globals`), said instead of a "did you mean".
    package init(_ node: JSONNode, path: String, allowed: [String], file: String, what: String,
                 elsewhere: [String: String] = [:]) throws(Failure) {
        guard case .object(let object) = node.kind else {
            throw Self.error(file: file, node.location, path, "\(what) must be an object, not \(node.typeName)", kind: .notAnObject)
        }
        for member in object.members where !allowed.contains(member.key) {
            let suggestion = Suggestion.closest(to: member.key, among: allowed).map { "did you mean \"\($0)\"?" }
            let hints = [elsewhere[member.key].map { "a key of \($0), not of \(what)" }, suggestion].compactMap { $0 }
            let hint = hints.isEmpty ? "" : " (" + hints.joined(separator: "; ") + ")"
            throw Self.error(file: file, member.keyLocation, Self.join(path, member.key),
                             "unknown key \"\(member.key)\"\(hint)", kind: .unknownKey)
        }
        self.object = object
        self.node = node
        self.path = path
        self.file = file
    }

    /// `FILE:LINE:COLUMN: PATH: message` (no `PATH:` when the path is empty).
    package static func locate(_ file: String, _ location: SourceLocation, _ path: String, _ message: String) -> String {
        let at = path.isEmpty ? "" : " \(path):"
        return "\(file):\(location.line):\(location.column):\(at) \(message)"
    }

    /// A located error.
    package static func error(file: String, _ location: SourceLocation, _ path: String, _ message: String,
                              kind: FieldProblem.Kind = .invalidValue) -> Failure {
        Failure(FieldProblem(kind, locate(file, location, path, message)))
    }

    /// `path.key`, or `key` at the root.
    package static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The member's value, if present.
    package subscript(key: String) -> JSONNode? { object[key] }

    /// The location of a member's value, or of the object when it is absent.
    package func location(_ key: String) -> SourceLocation { object[key]?.location ?? node.location }

    /// A located sentence about the member `key` (or the object when it is absent).
    package func message(_ key: String, _ text: String) -> String {
        Self.locate(file, location(key), Self.join(path, key), text)
    }

    /// A located error about the member `key` (or the object when it is absent).
    package func fail(_ key: String, _ message: String, kind: FieldProblem.Kind = .invalidValue) -> Failure {
        Self.error(file: file, location(key), Self.join(path, key), message, kind: kind)
    }

    private func wrongType(_ key: String, _ value: JSONNode, _ expected: String) -> Failure {
        Self.error(file: file, value.location, Self.join(path, key), "must be \(expected), not \(value.typeName)", kind: .wrongType)
    }

    private func invalid(_ key: String, _ value: JSONNode, _ message: String) -> Failure {
        Self.error(file: file, value.location, Self.join(path, key), message)
    }

    /// A string; `required` makes a missing key an error, `nonEmpty` an empty string.
    package func string(_ key: String, required: Bool = false, nonEmpty: Bool = false) throws(Failure) -> String? {
        guard let value = object[key] else {
            if required {
                throw Self.error(file: file, node.location, path, "missing required field \"\(key)\"", kind: .missingField)
            }
            return nil
        }
        guard case .string(let text) = value.kind else { throw wrongType(key, value, "a string") }
        if nonEmpty && text.isEmpty { throw invalid(key, value, "must not be empty") }
        return text
    }

    /// `true` or `false`.
    package func bool(_ key: String) throws(Failure) -> Bool? {
        guard let value = object[key] else { return nil }
        guard case .bool(let flag) = value.kind else { throw wrongType(key, value, "true or false") }
        return flag
    }

    /// An integer in `minimum...maximum`.
    package func int(_ key: String, minimum: Int, maximum: Int = Int(Int32.max)) throws(Failure) -> Int? {
        guard let value = object[key] else { return nil }
        guard case .number(let number) = value.kind else { throw wrongType(key, value, "an integer") }
        guard let n = number.int else {
            // An integer literal too large for any integer type is out of range, not a non-integer.
            if !number.isFractionOrExponent {
                let negative = number.text.hasPrefix("-")
                throw invalid(key, value, negative ? "must be at least \(minimum), not \(number.text)"
                                                   : "must be at most \(maximum), not \(number.text)")
            }
            throw invalid(key, value, "must be an integer, not \(number.text)")
        }
        guard n >= minimum else { throw invalid(key, value, "must be at least \(minimum), not \(n)") }
        guard n <= maximum else { throw invalid(key, value, "must be at most \(maximum), not \(n)") }
        return n
    }

    /// A number of seconds: finite, not negative, not zero when `positive`, at most a year.
    package func secondsValue(_ key: String, positive: Bool) throws(Failure) -> Double? {
        guard let value = object[key] else { return nil }
        guard case .number(let number) = value.kind else { throw wrongType(key, value, "a number of seconds") }
        let seconds = number.double
        guard seconds.isFinite, seconds >= 0 else {
            throw invalid(key, value, Failure.badSecondsMessage(finite: seconds.isFinite, text: number.text))
        }
        if positive && seconds == 0 { throw invalid(key, value, "must be greater than 0") }
        guard seconds <= 31_536_000 else { throw invalid(key, value, "must be at most one year (31536000 seconds)") }
        return seconds
    }

    /// ``secondsValue(_:positive:)`` as a duration.
    package func seconds(_ key: String, positive: Bool) throws(Failure) -> Duration? {
        try secondsValue(key, positive: positive).map { .seconds($0) }
    }

    /// One of the raw values of `E`, with the allowed values and a "did you mean" otherwise.
    package func enumeration<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type, required: Bool = false)
        throws(Failure) -> E? where E.RawValue == String {
        guard let raw = try string(key, required: required) else { return nil }
        if let value = E(rawValue: raw) { return value }
        throw fail(key, Self.unknownValue(raw, E.self))
    }

    /// "unknown value" with the allowed values and a suggestion for a likely typo.
    package static func unknownValue<E: RawRepresentable & CaseIterable>(_ raw: String, _ type: E.Type) -> String
    where E.RawValue == String {
        let allowed = E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        let hint = Suggestion.closest(to: raw, among: E.allCases.map(\.rawValue)).map { " (did you mean \"\($0)\"?)" } ?? ""
        return "unknown value \"\(raw)\"\(hint); expected one of \(allowed)"
    }

    /// An array (its elements unchecked).
    package func array(_ key: String) throws(Failure) -> [JSONNode]? {
        guard let value = object[key] else { return nil }
        guard case .array(let items) = value.kind else { throw wrongType(key, value, "an array") }
        return items
    }

    /// An array of strings, with each element's location.
    package func strings(_ key: String) throws(Failure) -> [(String, SourceLocation)]? {
        guard let items = try array(key) else { return nil }
        var result: [(String, SourceLocation)] = []
        for (index, item) in items.enumerated() {
            guard case .string(let text) = item.kind else {
                throw Self.error(file: file, item.location, "\(Self.join(path, key))[\(index)]",
                                 "must be a string, not \(item.typeName)", kind: .wrongType)
            }
            result.append((text, item.location))
        }
        return result
    }

    /// An object whose values are all strings (environment, variables), in file order; empty
    /// when the key is absent.
    package func stringMembers(_ key: String) throws(Failure) -> [(String, String, SourceLocation)] {
        guard let value = object[key] else { return [] }
        guard case .object(let members) = value.kind else { throw wrongType(key, value, "an object of strings") }
        var result: [(String, String, SourceLocation)] = []
        for member in members.members {
            guard case .string(let text) = member.value.kind else {
                throw Self.error(file: file, member.value.location, "\(Self.join(path, key)).\(member.key)",
                                 "must be a string, not \(member.value.typeName)", kind: .wrongType)
            }
            result.append((member.key, text, member.value.location))
        }
        return result
    }

    /// ``stringMembers(_:)`` as a dictionary, or `nil` when the key is absent.
    package func stringMap(_ key: String) throws(Failure) -> [String: String]? {
        guard object[key] != nil else { return nil }
        var map: [String: String] = [:]
        for (name, value, _) in try stringMembers(key) { map[name] = value }
        return map
    }
}
