import Foundation
import Orchestration

/// A subcommand: its help text, how it parses its arguments and what it does.
protocol CLICommand: Sendable {
    /// The name users type.
    static var name: String { get }
    /// One line for the command list.
    static var abstract: String { get }
    /// The full `--help` text.
    static var help: String { get }
    /// Parses and validates the arguments after the command name.
    init(arguments: [String]) throws(EngineError)
    /// Does the work; returns the exit code.
    func run() async throws(EngineError) -> Int32
}

/// The command tree and the one exit funnel: every error becomes one sentence on stderr and its
/// SPEC §5 exit code; help and version go to stdout with exit 0.
enum CLI {
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
            text += "  \(command.name.padding(toLength: 10, withPad: " ", startingAt: 0))\(command.abstract)\n"
        }
        text += """

        Common options: --format human|json|yaml, --no-color, --state-dir DIR, -h/--help.
        Run 'omnibase-agents <command> --help' for a command's options.
        Exit codes: 0 ok, 1 run failed, 2 bad plan or arguments, 3 unknown id, 4 protocol,
        5 security, 74 state folder failed, 75 run held by another engine, 130/143 interrupted.

        """
        return text
    }

    static func main(_ arguments: [String]) async -> Int32 {
        guard let first = arguments.first else {
            return fail(EngineError(.usage, "missing command; run 'omnibase-agents --help' for the list"))
        }
        if first == "-h" || first == "--help" || first == "help" {
            print(help, terminator: "")
            return 0
        }
        if first == "--version" || first == "-V" {
            print("omnibase-agents \(Orchestration.version)")
            return 0
        }
        guard let command = commands.first(where: { $0.name == first }) else {
            let hint = Suggestion.closest(to: first, among: commands.map { $0.name }).map { " (did you mean '\($0)'?)" } ?? ""
            return fail(EngineError(.usage, "unknown command '\(first)'\(hint); run 'omnibase-agents --help' for the list"))
        }
        let rest = Array(arguments.dropFirst())
        if rest.contains("-h") || rest.contains("--help") {
            print(command.help, terminator: "")
            return 0
        }
        let instance: any CLICommand
        do { instance = try command.init(arguments: rest) } catch { return fail(error, seeHelp: true) }
        do { return try await instance.run() } catch { return fail(error) }
    }

    /// Prints an error as one line on stderr and returns its exit code.
    static func fail(_ error: EngineError, seeHelp: Bool = false) -> Int32 {
        let hint = seeHelp && error.code == .usage ? " (see --help)" : ""
        let line = error.message.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " ")
        FileHandle.standardError.write(Data("omnibase-agents: error: \(line)\(hint)\n".utf8))
        return error.exitCode
    }
}

/// Options every command that prints or touches state shares.
struct CommonOptions {
    static let valueOptions: Set<String> = ["--format", "--state-dir"]
    static let flags: Set<String> = ["--no-color"]
    static let help = """
      --format human|json|yaml  Output format (default: human on a terminal, json otherwise).
      --no-color           Plain ASCII output (also NO_COLOR, TERM=dumb, CI=true).
      --state-dir DIR      The state folder (default: $OMNIBASE_STATE_DIR or ./.state).
    """

    enum Format: String { case human, json, yaml }

    var format: Format
    var style: TextStyle
    var stateDirectory: String
    var noColor: Bool

    init(_ scanner: ArgumentScanner) throws(EngineError) {
        noColor = scanner.flag("--no-color")
        style = TextStyle.detect(fd: 1, noColor: noColor)
        if let text = try scanner.choice("--format", among: ["human", "json", "yaml"]) {
            format = Format(rawValue: text)!
        } else {
            format = isatty(1) != 0 ? .human : .json
        }
        stateDirectory = scanner.value("--state-dir") ?? ProcessInfo.processInfo.environment["OMNIBASE_STATE_DIR"] ?? ".state"
    }

    /// Prints a JSON value or its human rendering.
    func emit(json: JSONValue, human: () -> String) {
        switch format {
        case .json: print(json.serialized(pretty: true))
        case .yaml: print(YAMLWriter.serialize(json), terminator: "")
        case .human: print(human(), terminator: "")
        }
    }
}
