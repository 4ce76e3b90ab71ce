import Orchestration

/// One JSON object of a project plan being decoded: unknown keys are rejected when it is
/// created, typed accessors reject wrong types and out-of-range values with the value's location.
struct JSONFields {
    let object: JSONObject
    let node: JSONNode
    /// The object's JSON path (`tasks[2]`), empty for the root.
    let path: String
    /// The file name for messages.
    let file: String

    init(_ node: JSONNode, path: String, allowed: [String], file: String) throws(PlanParseError) {
        guard case .object(let object) = node.kind else {
            let what = path.isEmpty ? "a project plan" : path
            throw PlanParseError(.wrongType, Self.locate(file, node.location, path, "\(what) must be an object, not \(node.typeName)"))
        }
        for member in object.members where !allowed.contains(member.key) {
            let hint = Suggestion.closest(to: member.key, among: allowed).map { " (did you mean \"\($0)\"?)" } ?? ""
            throw PlanParseError(.unknownKey, Self.locate(file, member.keyLocation, Self.join(path, member.key),
                                                           "unknown key \"\(member.key)\"\(hint)"))
        }
        self.object = object
        self.node = node
        self.path = path
        self.file = file
    }

    /// `FILE:LINE:COLUMN: PATH: message`.
    static func locate(_ file: String, _ location: SourceLocation, _ path: String, _ message: String) -> String {
        let at = path.isEmpty ? "" : " \(path):"
        return "\(file):\(location.line):\(location.column):\(at) \(message)"
    }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    subscript(key: String) -> JSONNode? { object[key] }

    /// Where `key`'s value is (or the object, when the key is absent).
    func location(_ key: String) -> SourceLocation { object[key]?.location ?? node.location }

    /// A located message about `key`.
    func message(_ key: String, _ text: String) -> String {
        Self.locate(file, location(key), Self.join(path, key), text)
    }

    private func wrongType(_ key: String, _ value: JSONNode, _ expected: String) -> PlanParseError {
        PlanParseError(.wrongType, Self.locate(file, value.location, Self.join(path, key), "must be \(expected), not \(value.typeName)"))
    }

    private func invalid(_ key: String, _ value: JSONNode, _ text: String) -> PlanParseError {
        PlanParseError(.invalidValue, Self.locate(file, value.location, Self.join(path, key), text))
    }

    func string(_ key: String, required: Bool = false, nonEmpty: Bool = false) throws(PlanParseError) -> String? {
        guard let value = object[key] else {
            if required {
                throw PlanParseError(.missingField, Self.locate(file, node.location, path, "missing required field \"\(key)\""))
            }
            return nil
        }
        guard case .string(let text) = value.kind else { throw wrongType(key, value, "a string") }
        if nonEmpty && text.isEmpty { throw invalid(key, value, "must not be empty") }
        return text
    }

    func int(_ key: String, minimum: Int, maximum: Int = 1_000_000) throws(PlanParseError) -> Int? {
        guard let value = object[key] else { return nil }
        guard case .number(let number) = value.kind else { throw wrongType(key, value, "an integer") }
        guard let n = number.int else { throw invalid(key, value, "must be an integer, not \(number.text)") }
        guard n >= minimum else { throw invalid(key, value, "must be at least \(minimum), not \(n)") }
        guard n <= maximum else { throw invalid(key, value, "must be at most \(maximum), not \(n)") }
        return n
    }

    /// A number of seconds: finite, not negative, not zero when `positive`, at most a year.
    func seconds(_ key: String, positive: Bool) throws(PlanParseError) -> Duration? {
        guard let value = object[key] else { return nil }
        guard case .number(let number) = value.kind else { throw wrongType(key, value, "a number of seconds") }
        let seconds = number.double
        guard seconds.isFinite, seconds >= 0 else { throw invalid(key, value, "must be a finite number of seconds, not \(number.text)") }
        if positive && seconds == 0 { throw invalid(key, value, "must be greater than 0") }
        guard seconds <= 31_536_000 else { throw invalid(key, value, "must be at most one year (31536000 seconds)") }
        return .seconds(seconds)
    }

    func array(_ key: String) throws(PlanParseError) -> [JSONNode]? {
        guard let value = object[key] else { return nil }
        guard case .array(let items) = value.kind else { throw wrongType(key, value, "an array") }
        return items
    }

    /// An array of strings, with each element's location.
    func strings(_ key: String) throws(PlanParseError) -> [(String, SourceLocation)] {
        guard let items = try array(key) else { return [] }
        var result: [(String, SourceLocation)] = []
        for (index, item) in items.enumerated() {
            guard case .string(let text) = item.kind else {
                throw PlanParseError(.wrongType, Self.locate(file, item.location, "\(Self.join(path, key))[\(index)]",
                                                              "must be a string, not \(item.typeName)"))
            }
            result.append((text, item.location))
        }
        return result
    }

    /// An object whose values are all strings, in file order.
    func stringMembers(_ key: String) throws(PlanParseError) -> [(String, String, SourceLocation)] {
        guard let value = object[key] else { return [] }
        guard case .object(let members) = value.kind else { throw wrongType(key, value, "an object of strings") }
        var result: [(String, String, SourceLocation)] = []
        for member in members.members {
            guard case .string(let text) = member.value.kind else {
                throw PlanParseError(.wrongType, Self.locate(file, member.value.location, "\(Self.join(path, key)).\(member.key)",
                                                              "must be a string, not \(member.value.typeName)"))
            }
            result.append((member.key, text, member.value.location))
        }
        return result
    }
}
