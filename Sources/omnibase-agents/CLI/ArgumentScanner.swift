import Foundation
import Orchestration

/// A small command-line scanner: `--name value`, `--name=value`, repeated options, flags,
/// positionals and `--`. Each command declares what it accepts; anything else is a usage error
/// (exit 2) with a suggestion for a likely typo.
struct ArgumentScanner {
    private var arguments: [String]
    private var positionals: [String] = []
    private var options: [(name: String, value: String?)] = []

    /// Splits `arguments` given the names of options that take a value.
    init(_ arguments: [String], valueOptions: Set<String>, flags: Set<String>) throws(EngineError) {
        self.arguments = arguments
        var index = 0
        var onlyPositionals = false
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if onlyPositionals || !argument.hasPrefix("-") || argument == "-" {
                positionals.append(argument)
                continue
            }
            if argument == "--" { onlyPositionals = true; continue }
            var name = argument
            var inlineValue: String?
            if let equals = argument.firstIndex(of: "="), argument.hasPrefix("--") {
                name = String(argument[..<equals])
                inlineValue = String(argument[argument.index(after: equals)...])
            }
            if valueOptions.contains(name) {
                if let inlineValue {
                    options.append((name, inlineValue))
                } else {
                    guard index < arguments.count else { throw usage("option \(name) needs a value") }
                    options.append((name, arguments[index]))
                    index += 1
                }
            } else if flags.contains(name) {
                guard inlineValue == nil else { throw usage("option \(name) takes no value") }
                options.append((name, nil))
            } else {
                let known = valueOptions.union(flags)
                let hint = Self.suggestion(for: name, among: known).map { " (did you mean \($0)?)" } ?? ""
                throw usage("unknown option \(name)\(hint)")
            }
        }
    }

    /// The arguments that are not options.
    var remainingPositionals: [String] { positionals }

    /// Whether a flag was given.
    func flag(_ name: String) -> Bool { options.contains { $0.name == name } }

    /// The last value of an option (later ones win).
    func value(_ name: String) -> String? { options.last { $0.name == name }?.value ?? nil }

    /// Every value of a repeatable option, in order.
    func values(_ name: String) -> [String] { options.filter { $0.name == name }.compactMap(\.value) }

    /// An integer option within a range.
    func integer(_ name: String, range: ClosedRange<Int>) throws(EngineError) -> Int? {
        guard let text = value(name) else { return nil }
        guard let number = Int(text) else { throw usage("option \(name) needs an integer, not \"\(text)\"") }
        guard range.contains(number) else {
            throw usage("option \(name) must be between \(range.lowerBound) and \(range.upperBound), not \(number)")
        }
        return number
    }

    /// An option restricted to a set of values.
    func choice(_ name: String, among allowed: [String]) throws(EngineError) -> String? {
        guard let text = value(name) else { return nil }
        guard allowed.contains(text) else {
            throw usage("option \(name) must be one of \(allowed.joined(separator: ", ")), not \"\(text)\"")
        }
        return text
    }

    /// `--executor local|slurm`, or nil when not given.
    func executor() throws(EngineError) -> ExecutorKind? {
        try choice("--executor", among: ExecutorKind.allCases.map(\.rawValue)).flatMap(ExecutorKind.init(rawValue:))
    }

    /// `--var NAME=VALUE` pairs.
    func variables() throws(EngineError) -> [String: String] {
        var result: [String: String] = [:]
        for pair in values("--var") {
            guard let equals = pair.firstIndex(of: "=") else {
                throw usage("--var needs NAME=VALUE, not \"\(pair)\"")
            }
            let name = String(pair[..<equals])
            guard VariableSubstitution.isValidName(name) else {
                throw usage("--var name \"\(name)\" is not a valid variable name (letters, digits and _)")
            }
            result[name] = String(pair[pair.index(after: equals)...])
        }
        return result
    }

    /// The state folder: `--state-dir`, else `$OMNIBASE_STATE_DIR` (an empty one counts as unset),
    /// else `.state`.
    /// - Throws: a usage error for `--state-dir ""`, which would otherwise mean the current folder.
    func stateDirectory() throws(EngineError) -> String {
        if let given = value("--state-dir") {
            guard !given.isEmpty else { throw usage("--state-dir needs a folder, not an empty value") }
            return given
        }
        if let fromEnvironment = ProcessInfo.processInfo.environment["OMNIBASE_STATE_DIR"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return ".state"
    }

    static func suggestion(for name: String, among known: Set<String>) -> String? {
        Suggestion.closest(to: name, among: known.sorted())
    }
}

/// A usage error (exit 2).
func usage(_ message: String) -> EngineError { EngineError(.usage, message) }
