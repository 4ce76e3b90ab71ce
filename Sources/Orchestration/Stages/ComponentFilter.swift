import Orchestration

/// A selection filter written `key=value,key=value` (`--filter`, a stage's `filter`).
///
/// Clauses are ANDed; one clause's value may list alternatives with `|` (ORed):
/// `type=validator|tool,tags=pre-commit` selects validators and tools tagged `pre-commit`.
///
/// | key | matches when |
/// | --- | --- |
/// | `name` | the component's name is one of the values |
/// | `type` | its type is one of the values (`tool`, `validator`, `test`) |
/// | `lifecycle` | its lifecycle is one of the values |
/// | `tags` (or `tag`) | it has at least one of the values among its tags |
public struct ComponentFilter: Sendable, Hashable, CustomStringConvertible {
    /// What a clause tests.
    public enum Key: String, Sendable, Hashable, CaseIterable {
        /// The component's name.
        case name
        /// Its type.
        case type
        /// Its lifecycle phase.
        case lifecycle
        /// Its tags (any of the values).
        case tags
    }

    /// `key=value|value`.
    public struct Clause: Sendable, Hashable {
        /// The tested field.
        public var key: Key
        /// Alternatives; one must match.
        public var values: [String]

        /// Creates a clause.
        public init(key: Key, values: [String]) {
            self.key = key
            self.values = values
        }
    }

    /// Why a filter text is not valid; the message is one sentence.
    public struct ParseError: Error, Sendable {
        /// What is wrong.
        public var message: String
    }

    /// The clauses, in the order written.
    public var clauses: [Clause]

    /// Creates a filter from clauses.
    public init(clauses: [Clause] = []) { self.clauses = clauses }

    /// Parses `key=value,key=value`.
    /// - Throws: ``ParseError`` for an empty clause, a missing `=`, an unknown key or an unknown
    ///   `type`/`lifecycle` value (with a suggestion for a likely typo).
    public init(parsing text: String) throws(ParseError) {
        var clauses: [Clause] = []
        for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
            let part = raw.trimmingSpaces
            guard !part.isEmpty else { throw ParseError(message: "empty clause in \"\(text)\" (write key=value,key=value)") }
            guard let equals = part.firstIndex(of: "=") else {
                throw ParseError(message: "clause \"\(part)\" needs key=value")
            }
            let name = String(part[..<equals]).trimmingSpaces
            let keyName = name == "tag" ? "tags" : name
            guard let key = Key(rawValue: keyName) else {
                let hint = Suggestion.closest(to: name, among: Key.allCases.map(\.rawValue)).map { " (did you mean \"\($0)\"?)" } ?? ""
                throw ParseError(message: "unknown filter key \"\(name)\"\(hint); use name, type, lifecycle or tags")
            }
            let values = part[part.index(after: equals)...].split(separator: "|", omittingEmptySubsequences: false)
                .map { String($0).trimmingSpaces }
            guard !values.contains(where: \.isEmpty) else { throw ParseError(message: "clause \"\(part)\" has an empty value") }
            switch key {
            case .type: try Self.check(values, among: Component.Kind.allCases.map(\.rawValue), key: "type")
            case .lifecycle: try Self.check(values, among: Component.Lifecycle.allCases.map(\.rawValue), key: "lifecycle")
            case .name, .tags: break
            }
            clauses.append(Clause(key: key, values: values))
        }
        self.clauses = clauses
    }

    private static func check(_ values: [String], among allowed: [String], key: String) throws(ParseError) {
        for value in values where !allowed.contains(value) {
            let hint = Suggestion.closest(to: value, among: allowed).map { " (did you mean \"\($0)\"?)" } ?? ""
            throw ParseError(message: "unknown \(key) \"\(value)\"\(hint); expected one of \(allowed.joined(separator: ", "))")
        }
    }

    /// Whether a component passes every clause.
    public func matches(_ component: Component) -> Bool {
        clauses.allSatisfy { clause in
            switch clause.key {
            case .name: return clause.values.contains(component.name)
            case .type: return clause.values.contains(component.kind.rawValue)
            case .lifecycle: return clause.values.contains(component.lifecycle.rawValue)
            case .tags: return component.tags.contains { clause.values.contains($0) }
            }
        }
    }

    /// Whether a clause tests `key`.
    public func mentions(_ key: Key) -> Bool { clauses.contains { $0.key == key } }

    /// The same filter without the clauses on `key`.
    public func removing(_ key: Key) -> ComponentFilter {
        ComponentFilter(clauses: clauses.filter { $0.key != key })
    }

    /// The filter combined with another: both must match.
    public func and(_ other: ComponentFilter) -> ComponentFilter {
        ComponentFilter(clauses: clauses + other.clauses)
    }

    /// The canonical text, `key=a|b,key=c`.
    public var description: String {
        clauses.map { "\($0.key.rawValue)=\($0.values.joined(separator: "|"))" }.joined(separator: ",")
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    var trimmingSpaces: String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice.removeFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice.removeLast() }
        return String(slice)
    }
}
