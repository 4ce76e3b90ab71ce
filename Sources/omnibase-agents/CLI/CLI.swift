import Foundation
import Orchestration

/// A command, in argument-parser's shape: a static configuration (help texts and the option
/// table), an initializer that reads the parsed arguments, `validate()` for what involves several
/// options, and `run()`. A command with subcommands is a group: it holds the subcommand that
/// ``CLI/subcommand(of:_:)`` chose and forwards `validate()` and `run()` to it.
protocol CLICommand: Sendable {
    /// The name, help texts, option table and subcommands.
    static var configuration: CommandConfiguration { get }
    /// Reads the arguments (parsed by the table of the command and of its parents).
    init(parsing arguments: ParsedArguments) throws(EngineError)
    /// Checks what involves several options; usage errors (exit 2).
    func validate() throws(EngineError)
    /// Does the work; returns the exit code.
    func run() async throws(EngineError) -> Int32
}

extension CLICommand {
    func validate() throws(EngineError) {}
}

/// The command tree and the one exit funnel: every error becomes one sentence on stderr and its
/// SPEC §5 exit code; help and version go to stdout with exit 0.
///
/// - To add an option: one line in the command's table (`sections` of its configuration), such as
///   `.choice("--executor", among: ["local", "slurm"], "Where steps run.")`, and read it in the
///   command's `init(parsing:)` with `arguments.choice("--executor")`. The parser, the "given
///   twice" and unknown-option errors and the help line come from that declaration. An option
///   shared by several commands is a static `Option` (like ``CommonOptions/format``) or an
///   ``OptionSection`` listed in each of their tables.
/// - To add a command: a struct conforming to ``CLICommand`` (configuration, `init(parsing:)`,
///   `run()`), then its type in ``commands``. A subcommand is a nested type listed in its group's
///   `subcommands`; the group forwards to ``subcommand(of:_:)``.
enum CLI {
    /// The commands, in the order of the command list. A new command is one type here.
    static let commands: [any CLICommand.Type] = [
        RunCommand.self, ValidateCommand.self, ResumeCommand.self, ReplayCommand.self, RunsCommand.self,
        GraphCommand.self, ReportCommand.self, OrchCommand.self,
        AgentsCommand.self, CIEmitCommand.self, ServeCommand.self,
    ]

    static var help: String {
        var text = """
        omnibase-agents \(Orchestration.version): an actor-based concurrent workflow engine.

        Usage: omnibase-agents <command> [options]

        Commands:

        """
        for command in commands {
            let configuration = command.configuration
            text += "  \(configuration.name.padding(toLength: 10, withPad: " ", startingAt: 0))\(configuration.abstract)\n"
        }
        text += """

        Common options: --format human|json|yaml, --no-color, --state-dir DIR, -h/--help.
        Run 'omnibase-agents <command> --help' for a command's options.
        Exit codes: 0 ok, 1 run failed, 2 bad plan or arguments, 3 unknown id, 4 protocol,
        5 security, 74 state folder failed, 75 run held by another engine, 130/143 interrupted
        (129/131: SIGHUP/SIGQUIT).

        """
        return text
    }

    static func main(_ arguments: [String]) async -> Int32 {
        guard let first = arguments.first else {
            return fail(EngineError(.usage, "missing command; run 'omnibase-agents --help' for the list"))
        }
        if first == "-h" || first == "--help" || first == "help" {
            StandardStreams.print(help, terminator: "")
            return 0
        }
        if first == "--version" || first == "-V" {
            StandardStreams.print("omnibase-agents \(Orchestration.version)")
            return 0
        }
        let names = commands.map { $0.configuration.name }
        guard let command = commands.first(where: { $0.configuration.name == first }) else {
            let hint = Suggestion.closest(to: first, among: names).map { " (did you mean '\($0)'?)" } ?? ""
            return fail(EngineError(.usage, "unknown command '\(first)'\(hint); run 'omnibase-agents --help' for the list"))
        }
        let rest = Array(arguments.dropFirst())
        if rest.contains("-h") || rest.contains("--help") {
            StandardStreams.print(command.configuration.help, terminator: "")
            return 0
        }
        let instance: any CLICommand
        do { instance = try parse(command, rest) } catch { return fail(error, seeHelp: true) }
        let status: Int32
        do { status = try await instance.run() } catch { return fail(error) }
        guard let failure = StandardStreams.stdoutFailure else { return status }
        // After SIGHUP the terminal is gone and nobody reads the report: keep the stop's code.
        if status == StopReason.hangup.exitCode { return status }
        // The reader stopped reading (`runs list | head`): quiet, with the status a process
        // that SIGPIPE ended would have (the engine ignores SIGPIPE so that it can finish
        // recording a run first).
        if StandardStreams.stdoutReaderGone { return 128 + SIGPIPE }
        return fail(EngineError(.stateFailure, "cannot write the output to stdout: \(failure)"))
    }

    /// Parses `arguments` by the command's table (its own and its subcommands') and builds it.
    static func parse(_ command: any CLICommand.Type, _ arguments: [String]) throws(EngineError) -> any CLICommand {
        let parsed = try ParsedArguments(arguments, options: command.configuration.options)
        let instance = try command.init(parsing: parsed)
        try instance.validate()
        return instance
    }

    /// For a group: the subcommand its first positional names, built from the other arguments;
    /// an option of another subcommand is refused ("option --x belongs to 'runs list'").
    static func subcommand(of group: any CLICommand.Type, _ parsed: ParsedArguments) throws(EngineError) -> any CLICommand {
        let configuration = group.configuration
        let subcommands = configuration.subcommands
        let names = subcommands.map { $0.configuration.name }
        guard let word = parsed.positionals.first else {
            throw usage("\(configuration.name) needs an action: \(spelled(subcommands.map { $0.configuration.synopsis }))")
        }
        guard let sub = subcommands.first(where: { $0.configuration.name == word }) else {
            let hint = Suggestion.closest(to: word, among: names).map { " (did you mean '\($0)'?)" } ?? ""
            throw usage("unknown \(configuration.name) action '\(word)'\(hint); use \(spelled(names))")
        }
        try parsed.refuseOptions(outside: word) { option in
            "option \(option.name) belongs to " + spelled(option.modes.map { "'\(configuration.name) \($0)'" })
        }
        return try sub.init(parsing: parsed.droppingFirstPositional())
    }

    /// `a`, `a or b`, `a, b or c`.
    static func spelled(_ items: [String]) -> String {
        items.count <= 1 ? items.joined() : items.dropLast().joined(separator: ", ") + " or " + items.last!
    }

    /// Prints an error as one line on stderr and returns its exit code.
    static func fail(_ error: EngineError, seeHelp: Bool = false) -> Int32 {
        let hint = seeHelp && error.code == .usage ? " (see --help)" : ""
        // One line: secret values are masked and control characters are shown escaped, line
        // breaks too (`\n`: a step id "a\nb" read "a b", which is not the id), save those that
        // end the message.
        var message = PrintMask.shared.apply(error.message)
        while message.last?.isNewline == true { message.removeLast() }
        let line = TerminalText.escaped(message)
        StandardStreams.printError("omnibase-agents: error: \(line)\(hint)\n")
        return error.exitCode
    }
}

/// Options every command that prints or touches state shares; a command composes
/// ``CommonOptions/section`` into its table and reads them with ``init(_:)``.
struct CommonOptions {
    static let format = Option.choice("--format", among: ["human", "json", "yaml", "jsonl"],
                                      "Output format (default: human on a terminal, json otherwise; jsonl: runs events only).")
    static let noColor = Option.flag("--no-color", "Plain ASCII output (also NO_COLOR, TERM=dumb, CI=true).")
    static let stateDirectory = Option.single("--state-dir", "DIR", "The state folder (default: $OMNIBASE_STATE_DIR or ./.state).")
    static let section = OptionSection("Common options:", [format, noColor, stateDirectory])

    enum Format: String { case human, json, yaml, jsonl }

    var format: Format
    var style: TextStyle
    var stateDirectory: String
    var noColor: Bool

    /// - Parameter jsonLines: whether the command prints JSON Lines (`--format jsonl`).
    init(_ arguments: ParsedArguments, jsonLines: Bool = false) throws(EngineError) {
        noColor = arguments.flag("--no-color")
        style = TextStyle.detect(fd: 1, noColor: noColor)
        if let text = try arguments.choice("--format") {
            format = Format(rawValue: text)!
            guard format != .jsonl || jsonLines else {
                throw usage("--format jsonl is for 'runs events'; use json, yaml or human")
            }
        } else {
            format = isatty(1) != 0 ? .human : .json
        }
        stateDirectory = try arguments.stateDirectory()
    }

    /// Prints a JSON value or its human rendering, secret values masked (``PrintMask``).
    func emit(json: JSONValue, human: () -> String) {
        switch format {
        case .json, .jsonl: StandardStreams.print(PrintMask.shared.apply(json).serialized(pretty: true))
        case .yaml: StandardStreams.print(YAMLWriter.serialize(PrintMask.shared.apply(json)), terminator: "")
        case .human: StandardStreams.print(PrintMask.shared.apply(human()), terminator: "")
        }
    }
}
