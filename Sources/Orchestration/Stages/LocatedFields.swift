/// One JSON object of a configuration file being decoded strictly: unknown keys are rejected on
/// creation (with a "did you mean"), typed accessors reject wrong types and out-of-range values,
/// and every error starts with `FILE:LINE:COLUMN: PATH:` (exit 2), like plan errors.
struct LocatedFields {
    let object: JSONObject
    let node: JSONNode
    let path: String
    let file: String

    /// Opens `node` as an object whose keys must be among `allowed`.
    init(_ node: JSONNode, path: String, allowed: [String], file: String, what: String) throws(EngineError) {
        guard case .object(let object) = node.kind else {
            throw Self.error(file: file, node.location, path, "\(what) must be an object, not \(node.typeName)")
        }
        for member in object.members where !allowed.contains(member.key) {
            let hint = Suggestion.closest(to: member.key, among: allowed).map { " (did you mean \"\($0)\"?)" } ?? ""
            throw Self.error(file: file, member.keyLocation, Self.join(path, member.key), "unknown key \"\(member.key)\"\(hint)")
        }
        self.object = object
        self.node = node
        self.path = path
        self.file = file
    }

    /// A located configuration error (exit 2).
    static func error(file: String, _ location: SourceLocation, _ path: String, _ message: String) -> EngineError {
        let at = path.isEmpty ? "" : " \(path):"
        return EngineError(.invalidPlan, "\(file):\(location.line):\(location.column):\(at) \(message)")
    }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    subscript(key: String) -> JSONNode? { object[key] }

    /// The location of a member's value, or of the object when it is absent.
    func location(_ key: String) -> SourceLocation { object[key]?.location ?? node.location }

    /// A located error about the member `key` (or the object when it is absent).
    func fail(_ key: String, _ message: String) -> EngineError {
        Self.error(file: file, location(key), Self.join(path, key), message)
    }

    func string(_ key: String, required: Bool = false, nonEmpty: Bool = false) throws(EngineError) -> String? {
        guard let value = object[key] else {
            if required { throw Self.error(file: file, node.location, path, "missing required field \"\(key)\"") }
            return nil
        }
        guard case .string(let text) = value.kind else { throw fail(key, "must be a string, not \(value.typeName)") }
        if nonEmpty && text.isEmpty { throw fail(key, "must not be empty") }
        return text
    }

    func bool(_ key: String) throws(EngineError) -> Bool? {
        guard let value = object[key] else { return nil }
        guard case .bool(let flag) = value.kind else { throw fail(key, "must be true or false, not \(value.typeName)") }
        return flag
    }

    func int(_ key: String, minimum: Int, maximum: Int = Int(Int32.max)) throws(EngineError) -> Int? {
        guard let value = object[key] else { return nil }
        guard case .number(let number) = value.kind else { throw fail(key, "must be an integer, not \(value.typeName)") }
        guard let n = number.int else { throw fail(key, "must be an integer, not \(number.text)") }
        guard n >= minimum else { throw fail(key, "must be at least \(minimum), not \(n)") }
        guard n <= maximum else { throw fail(key, "must be at most \(maximum), not \(n)") }
        return n
    }

    /// Seconds: finite, not negative, not zero when `positive`, at most a year.
    func seconds(_ key: String, positive: Bool) throws(EngineError) -> Double? {
        guard let value = object[key] else { return nil }
        guard case .number(let number) = value.kind else { throw fail(key, "must be a number of seconds, not \(value.typeName)") }
        let seconds = number.double
        guard seconds.isFinite else { throw fail(key, "must be a finite number of seconds") }
        guard seconds >= 0 else { throw fail(key, "must not be negative, not \(number.text)") }
        if positive && seconds == 0 { throw fail(key, "must be greater than 0") }
        guard seconds <= 31_536_000 else { throw fail(key, "must be at most one year (31536000 seconds)") }
        return seconds
    }

    func enumeration<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type, required: Bool = false) throws(EngineError) -> E?
    where E.RawValue == String {
        guard let raw = try string(key, required: required) else { return nil }
        if let value = E(rawValue: raw) { return value }
        throw fail(key, Self.unknownValue(raw, E.self))
    }

    /// "unknown value" with the allowed values and a suggestion for a likely typo.
    static func unknownValue<E: RawRepresentable & CaseIterable>(_ raw: String, _ type: E.Type) -> String
    where E.RawValue == String {
        let allowed = E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        let hint = Suggestion.closest(to: raw, among: E.allCases.map(\.rawValue)).map { " (did you mean \"\($0)\"?)" } ?? ""
        return "unknown value \"\(raw)\"\(hint); expected one of \(allowed)"
    }

    func array(_ key: String) throws(EngineError) -> [JSONNode]? {
        guard let value = object[key] else { return nil }
        guard case .array(let items) = value.kind else { throw fail(key, "must be an array, not \(value.typeName)") }
        return items
    }

    /// An array of strings, each checked to be a string.
    func strings(_ key: String) throws(EngineError) -> [(String, SourceLocation)]? {
        guard let items = try array(key) else { return nil }
        var result: [(String, SourceLocation)] = []
        for (index, item) in items.enumerated() {
            guard case .string(let text) = item.kind else {
                throw Self.error(file: file, item.location, "\(Self.join(path, key))[\(index)]", "must be a string, not \(item.typeName)")
            }
            result.append((text, item.location))
        }
        return result
    }

    /// An object whose values are all strings.
    func stringMap(_ key: String) throws(EngineError) -> [String: String] {
        guard let value = object[key] else { return [:] }
        guard case .object(let members) = value.kind else { throw fail(key, "must be an object of strings, not \(value.typeName)") }
        var result: [String: String] = [:]
        for member in members.members {
            guard case .string(let text) = member.value.kind else {
                throw Self.error(file: file, member.value.location, "\(Self.join(path, key)).\(member.key)",
                                 "must be a string, not \(member.value.typeName)")
            }
            result[member.key] = text
        }
        return result
    }
}
