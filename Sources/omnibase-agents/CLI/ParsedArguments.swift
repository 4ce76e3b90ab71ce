import Foundation
import Orchestration

/// A command line split by a command's option table: `--name value`, `--name=value`, flags,
/// positionals and `--`. Anything the table does not declare is a usage error (exit 2) with a
/// suggestion for a likely typo; a single-valued option given twice is a usage error (never the
/// last one silently); a repeatable one accumulates its values in order. A value may start with
/// a dash, but the name of another option that takes a value is never taken as one
/// (`--executor --state-dir DIR` is an `--executor` without its value); `--name=VALUE` takes
/// any value.
struct ParsedArguments {
    /// The declarations, by long and short name.
    private let declared: [String: Option]
    /// The arguments that are not options, in order.
    private(set) var positionals: [String] = []
    /// Each given option's values in order (a flag has one empty value per time given).
    private var given: [String: [String]] = [:]

    /// Splits `arguments` by `options`.
    /// - Throws: a usage error for an unknown option, a missing value, a value given to a flag
    ///   or a single-valued option given twice.
    init(_ arguments: [String], options: [Option]) throws(EngineError) {
        var declared: [String: Option] = [:]
        for option in options {
            for name in [option.name] + (option.short.map { [$0] } ?? []) {
                precondition(declared[name] == nil, "option \(name) is declared twice")
                declared[name] = option
            }
        }
        self.declared = declared
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
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                inlineValue = String(argument[argument.index(after: equals)...])
            }
            guard let option = declared[name] else {
                // An option of another command: say where it belongs, as for a subcommand's.
                let owners = Self.commandsDeclaring(name)
                if !owners.isEmpty { throw usage("option \(name) belongs to \(CLI.spelled(owners))") }
                let hint = Suggestion.closest(to: name, among: options.map(\.name).sorted()).map { " (did you mean \($0)?)" } ?? ""
                throw usage("unknown option \(name)\(hint)")
            }
            let value: String
            if option.takesValue {
                if let inlineValue {
                    value = inlineValue
                } else {
                    guard index < arguments.count else { throw usage("option \(option.name) needs a value") }
                    value = arguments[index]
                    // `--executor --state-dir DIR`: taking `--state-dir` as the value would leave
                    // DIR as a stray positional and blame the wrong thing.
                    if let other = Self.valueTakingOption(named: value, in: declared) {
                        throw usage("option \(option.name) needs a value (\(other) is an option; write \(option.name)=\(other) "
                                    + "if that is the value)")
                    }
                    index += 1
                }
                if given[option.name] != nil, !option.isRepeatable {
                    throw usage("option \(option.name) given twice; it takes one value")
                }
            } else {
                guard inlineValue == nil else { throw usage("option \(option.name) takes no value") }
                value = ""
            }
            given[option.name, default: []].append(value)
        }
    }

    /// The name of the declared option that `argument` gives with its own value (`--state-dir`,
    /// `--state-dir=DIR`), or nil: a flag's name, an unknown word or anything else may be a value.
    private static func valueTakingOption(named argument: String, in declared: [String: Option]) -> String? {
        guard argument.hasPrefix("-") else { return nil }
        let name = argument.hasPrefix("--") ? String(argument.prefix { $0 != "=" }) : argument
        guard let option = declared[name], option.takesValue else { return nil }
        return name
    }

    /// The declaration of `name`; asking for an undeclared option is a programming error.
    private func option(_ name: String, _ kinds: (Option.Kind) -> Bool) -> Option {
        guard let option = declared[name], kinds(option.kind) else {
            preconditionFailure("option \(name) is not declared with this kind in the command's table")
        }
        return option
    }

    /// Whether an option was given (of any kind).
    func isGiven(_ name: String) -> Bool {
        _ = option(name) { _ in true }
        return given[name] != nil
    }

    /// Whether a flag was given.
    func flag(_ name: String) -> Bool {
        _ = option(name) { $0 == .flag }
        return given[name] != nil
    }

    /// The value of a single-valued option (`.single`).
    func value(_ name: String) -> String? {
        _ = option(name) { $0 == .single }
        return given[name]?.first
    }

    /// Every value of a repeatable option, in order.
    func values(_ name: String) -> [String] {
        _ = option(name) { $0 == .repeatable }
        return given[name] ?? []
    }

    /// The value of a choice option, checked against its declared choices.
    func choice(_ name: String) throws(EngineError) -> String? {
        let option = option(name) { if case .choice = $0 { true } else { false } }
        guard case .choice(let allowed) = option.kind, let text = given[name]?.first else { return nil }
        guard allowed.contains(text) else {
            throw usage("option \(name) must be one of \(allowed.joined(separator: ", ")), not \"\(text)\"")
        }
        return text
    }

    /// The value of an integer option, checked against its declared range.
    func integer(_ name: String) throws(EngineError) -> Int? {
        let option = option(name) { if case .integer = $0 { true } else { false } }
        guard case .integer(let range) = option.kind, let text = given[name]?.first else { return nil }
        guard let number = Int(text) else { throw usage("option \(name) needs an integer, not \"\(text)\"") }
        guard range.contains(number) else {
            throw usage("option \(name) must be between \(range.lowerBound) and \(range.upperBound), not \(number)")
        }
        return number
    }

    /// The given options that do not belong to `mode`, by name (see ``Option/belongs(to:)``):
    /// the first one is refused with `message(option)`.
    func refuseOptions(outside mode: String, _ message: (Option) -> String) throws(EngineError) {
        for name in given.keys.sorted() {
            if let option = declared[name], !option.belongs(to: mode) { throw usage(message(option)) }
        }
    }

    /// Exactly `count` positionals, else a usage error with `message(positionals)`.
    func positionals(count: Int, _ message: ([String]) -> String) throws(EngineError) -> [String] {
        guard positionals.count == count else { throw usage(message(positionals)) }
        return positionals
    }

    /// `--var NAME=VALUE` pairs; a name given twice is refused (SPEC section 4: no repeated
    /// option silently keeps only its last value). The values are not quoted: one may be secret.
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
            guard result[name] == nil else { throw usage("--var \(name) is given twice; give each variable once") }
            result[name] = String(pair[pair.index(after: equals)...])
        }
        return result
    }

    /// The state folder: `--state-dir`, else `$OMNIBASE_STATE_DIR` (an empty one counts as unset),
    /// else `.state`.
    /// - Throws: a usage error for `--state-dir ""`, which would otherwise mean the current folder.
    func stateDirectory() throws(EngineError) -> String {
        if let given = try folder("--state-dir") { return given }
        if let fromEnvironment = ProcessInfo.processInfo.environment["OMNIBASE_STATE_DIR"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return ".state"
    }

    /// A folder option's value; nil when the option is not given.
    /// - Throws: a usage error for an empty value (`--sandbox ""`), which would otherwise mean
    ///   the current folder.
    func folder(_ option: String) throws(EngineError) -> String? {
        guard let given = value(option) else { return nil }
        guard !given.isEmpty else { throw usage("\(option) needs a folder, not an empty value") }
        return given
    }

    /// The same arguments without the first positional (a subcommand's word).
    func droppingFirstPositional() -> ParsedArguments {
        var copy = self
        if !copy.positionals.isEmpty { copy.positionals.removeFirst() }
        return copy
    }
}

/// A usage error (exit 2).
func usage(_ message: String) -> EngineError { EngineError(.usage, message) }

extension ParsedArguments {
    /// The commands (with their action or stage, when the option is only theirs) that declare
    /// the option `name`: `'runs list'`, `'serve'`.
    static func commandsDeclaring(_ name: String) -> [String] {
        var owners: [String] = []
        for command in CLI.commands {
            let configuration = command.configuration
            guard let option = configuration.options.first(where: { $0.name == name || $0.short == name }) else { continue }
            if option.modes.isEmpty {
                owners.append("'\(configuration.name)'")
            } else {
                owners += option.modes.map { "'\(configuration.name) \($0)'" }
            }
        }
        return owners
    }
}
