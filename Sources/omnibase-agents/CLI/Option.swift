/// One command-line option, declared once in its command's table: the parser accepts it, reads
/// its values and checks them from this declaration, and the help text prints it.
///
/// ```swift
/// .integer("--max-concurrency", "N", 1...100_000, "Run at most N steps at once.")
/// ```
struct Option: Sendable {
    /// What the option takes and how often it may be given.
    enum Kind: Sendable, Equatable {
        /// No value; giving it twice is the same as once.
        case flag
        /// One value; given twice is a usage error.
        case single
        /// One value each time; the values accumulate, in order.
        case repeatable
        /// One value among these; given twice is a usage error.
        case choice([String])
        /// One integer within the range; given twice is a usage error.
        case integer(ClosedRange<Int>)
    }

    /// `--name`.
    let name: String
    /// A one-letter alias (`-k`), if any.
    let short: String?
    /// What the help calls the value (`ID`, `NAME=VALUE`); nil for a flag.
    let valueName: String?
    let kind: Kind
    /// The help line (wrapped by the help generator).
    let help: String
    /// The sub-modes the option belongs to (a stage, an action: `"ci"`, `"registry add"`); empty
    /// means every mode of its command. See ``ParsedArguments/refuseOptions(outside:_:)``.
    var modes: [String]

    /// Whether the option takes a value.
    var takesValue: Bool { kind != .flag }

    /// Whether it may be given more than once with each value kept.
    var isRepeatable: Bool { kind == .repeatable }

    /// Whether the option belongs to `mode`; a mode and its sub-modes are written as words
    /// (`"registry"` holds `"registry add"`), so an option of `registry add` belongs to the
    /// `registry` stage but not to `registry list`.
    func belongs(to mode: String) -> Bool {
        modes.isEmpty || modes.contains { $0 == mode || $0.hasPrefix(mode + " ") || mode.hasPrefix($0 + " ") }
    }

    static func flag(_ name: String, short: String? = nil, _ help: String, modes: [String] = []) -> Option {
        Option(name: name, short: short, valueName: nil, kind: .flag, help: help, modes: modes)
    }

    static func single(_ name: String, _ valueName: String, _ help: String, modes: [String] = []) -> Option {
        Option(name: name, short: nil, valueName: valueName, kind: .single, help: help, modes: modes)
    }

    static func repeatable(_ name: String, _ valueName: String, _ help: String, modes: [String] = []) -> Option {
        Option(name: name, short: nil, valueName: valueName, kind: .repeatable, help: help, modes: modes)
    }

    /// A choice; the value name defaults to the choices joined by `|`.
    static func choice(_ name: String, _ valueName: String? = nil, among choices: [String], _ help: String,
                       modes: [String] = []) -> Option {
        Option(name: name, short: nil, valueName: valueName ?? choices.joined(separator: "|"), kind: .choice(choices),
               help: help, modes: modes)
    }

    static func integer(_ name: String, _ valueName: String, _ range: ClosedRange<Int>, _ help: String,
                        modes: [String] = []) -> Option {
        Option(name: name, short: nil, valueName: valueName, kind: .integer(range), help: help, modes: modes)
    }

    /// The same option in other modes (for a section that sets the modes of all its options).
    func inModes(_ modes: [String]) -> Option {
        var copy = self
        copy.modes = modes
        return copy
    }
}

/// A titled group of options in a command's table; `modes` (when not empty) applies to every
/// option of the group that does not name its own.
struct OptionSection: Sendable {
    let title: String
    let options: [Option]

    init(_ title: String, modes: [String] = [], _ options: [Option]) {
        self.title = title
        self.options = options.map { $0.modes.isEmpty && !modes.isEmpty ? $0.inModes(modes) : $0 }
    }
}
