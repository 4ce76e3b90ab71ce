import Foundation
import Testing
@testable import Orchestration
@testable import omnibase_agents

/// The declarative command line (issue 12 item 6): one option table per command, from which the
/// parser and the help text both come.
@Suite struct ArgumentParsingTests {
    static let table: [Option] = [
        .flag("--step", "Step through."),
        .single("--name", "N", "A name."),
        .repeatable("--from", "ID", "Downstream of ID."),
        .choice("--mode", "MODE", among: ["sync", "async"], "How."),
        .integer("--limit", "N", 1...10, "At most N."),
    ]

    func parse(_ arguments: [String]) throws(EngineError) -> ParsedArguments {
        try ParsedArguments(arguments, options: Self.table)
    }

    func usageMessage(_ arguments: [String]) -> String? {
        do {
            _ = try parse(arguments)
            return nil
        } catch {
            return error.code == .usage ? error.message : "not a usage error: \(error.message)"
        }
    }

    @Test(arguments: [["--name", "a", "--name", "b"], ["--name=a", "--name", "a"], ["--mode", "sync", "--mode=async"],
                      ["--limit", "1", "--limit", "2"]])
    func aSingleValuedOptionGivenTwiceIsRefused(_ arguments: [String]) {
        let name = arguments[0].split(separator: "=")[0]
        #expect(usageMessage(arguments)?.contains("option \(name) given twice") == true, "\(arguments)")
    }

    @Test func aRepeatableOptionAccumulatesInOrder() throws {
        let parsed = try parse(["--from", "a", "x", "--from=b", "--from", "a"])
        #expect(parsed.values("--from") == ["a", "b", "a"])
        #expect(parsed.positionals == ["x"])
        #expect(try parse([]).values("--from").isEmpty)
    }

    @Test func aFlagGivenTwiceIsStillOneFlag() throws {
        #expect(try parse(["--step", "--step"]).flag("--step"))
        #expect(try parse([]).flag("--step") == false)
    }

    @Test func equalsAndSeparateValuesMeanTheSame() throws {
        for arguments in [["--name", "x=y"], ["--name=x=y"]] {
            #expect(try parse(arguments).value("--name") == "x=y")
        }
        // A value may start with a dash (it is the option's value, not an option).
        #expect(try parse(["--name", "--step"]).value("--name") == "--step")
        #expect(try parse(["--name="]).value("--name") == "")
    }

    @Test func unknownOptionsAreRefusedWithASuggestion() {
        #expect(usageMessage(["--nmae", "x"]) == "unknown option --nmae (did you mean --name?)")
        #expect(usageMessage(["--zzzzzzzz"]) == "unknown option --zzzzzzzz")
        #expect(usageMessage(["--step=yes"]) == "option --step takes no value")
        #expect(usageMessage(["--name"]) == "option --name needs a value")
    }

    @Test func theNameOfAnOptionThatTakesAValueIsNoValue() throws {
        #expect(usageMessage(["--name", "--limit", "3"])?.hasPrefix("option --name needs a value") == true)
        #expect(usageMessage(["--mode", "--from=a"])?.hasPrefix("option --mode needs a value") == true)
        #expect(usageMessage(["--limit", "--name", "x", "y"])?.hasPrefix("option --limit needs a value") == true)
        // A flag's name, an unknown option or an inline value is still a value.
        #expect(try parse(["--name", "--nonesuch"]).value("--name") == "--nonesuch")
        #expect(try parse(["--name=--limit", "--limit", "3"]).value("--name") == "--limit")
        #expect(try parse(["--from", "-x"]).values("--from") == ["-x"])
    }

    @Test func doubleDashEndsTheOptions() throws {
        let parsed = try parse(["--step", "--", "--name", "-", "--from"])
        #expect(parsed.positionals == ["--name", "-", "--from"])
        #expect(parsed.flag("--step"))
        #expect(parsed.value("--name") == nil)
        #expect(try parse(["-"]).positionals == ["-"])
    }

    @Test func choicesAndRangesComeFromTheDeclaration() throws {
        #expect(try parse(["--mode", "async"]).choice("--mode") == "async")
        #expect(try parse(["--limit=10"]).integer("--limit") == 10)
        #expect(throws: EngineError.self) { try parse(["--mode", "fast"]).choice("--mode") }
        #expect(throws: EngineError.self) { try parse(["--limit", "11"]).integer("--limit") }
        #expect(throws: EngineError.self) { try parse(["--limit", "x"]).integer("--limit") }
    }

    @Test func anOptionOutsideItsModeIsRefused() throws {
        let table: [Option] = [.single("--name", "N", "", modes: ["registry add"]), .single("--filter", "F", "", modes: ["ci"])]
        let parsed = try ParsedArguments(["--name", "x", "--filter", "y"], options: table)
        var refused: [String] = []
        for mode in ["ci", "registry", "registry add", "registry list"] {
            do {
                try parsed.refuseOptions(outside: mode) { "\($0.name) not in \(mode)" }
            } catch {
                refused.append(error.message)
            }
        }
        // Sorted by name: --filter comes first where both are out of place.
        #expect(refused == ["--name not in ci", "--filter not in registry", "--filter not in registry add",
                            "--filter not in registry list"])
    }

    /// The help is generated from the table: every declared option of every command (and of its
    /// subcommands) is in its help with its value name and its help line's first words.
    @Test func everyDeclaredOptionIsInItsCommandsHelp() {
        for command in CLI.commands {
            let configuration = command.configuration
            let help = configuration.help
            #expect(help.hasPrefix("Usage: omnibase-agents \(configuration.name)"))
            #expect(!configuration.options.isEmpty, "\(configuration.name) declares options")
            for option in configuration.options {
                let label = (option.short.map { "\($0), " } ?? "") + option.name + (option.valueName.map { " \($0)" } ?? "")
                #expect(help.contains("  \(label)"), "\(configuration.name) help shows \(label)")
                let firstWords = option.help.split(separator: " ").prefix(3).joined(separator: " ")
                #expect(help.contains(firstWords), "\(configuration.name) help explains \(option.name)")
                if option.isRepeatable { #expect(help.contains("repeatable")) }
            }
            for line in help.split(separator: "\n") {
                #expect(line.count <= 100, "\(configuration.name) help line within 100 columns: \(line)")
            }
        }
    }

    @Test func aGroupChoosesItsSubcommandAndRefusesAnotherOnesOptions() throws {
        #expect(try CLI.parse(RunsCommand.self, ["list", "--limit", "3"]) is RunsCommand)
        for (arguments, message) in [
            (["show", "r-1", "--limit", "3"], "option --limit belongs to 'runs list'"),
            (["lsit"], "unknown runs action 'lsit' (did you mean 'list'?); use list, show, events or prune"),
            ([], "runs needs an action: list, show RUN_ID, events RUN_ID or prune"),
        ] {
            #expect(throws: EngineError.self) { try CLI.parse(RunsCommand.self, arguments) }
            do { _ = try CLI.parse(RunsCommand.self, arguments) } catch { #expect(error.message == message) }
        }
        do { _ = try CLI.parse(AgentsCommand.self, ["status", "--auto-merge"]) } catch {
            #expect(error.message == "option --auto-merge belongs to 'agents run'")
        }
    }

    @Test func orchOptionsBelongToTheirStages() {
        let cases: [([String], String)] = [
            (["--stage", "ci", "--from", "a", "--from", "b"], "option --from given twice"),
            (["--stage", "ci", "--json", "{}"], "option --json belongs to 'orch --stage registry add'"),
            (["--stage", "registry", "list", "--to", "x"], "option --to does not apply to the registry stage"),
            (["--stage", "registry", "list", "--tags", "x"], "option --tags belongs to 'registry add'"),
            (["--stage", "pipeline", "--from", "a", "--tags", "x"], "the pipeline stage runs the components named"),
            (["--stage", "ci", "--to", "a", "--to", "b"], "--to may be given once, except for the pipeline stage"),
            (["--stage", "ci", "--run-id", "r-1"], "--run-id applies to --mode replay"),
        ]
        for (arguments, message) in cases {
            do {
                _ = try CLI.parse(OrchCommand.self, arguments)
                Issue.record("\(arguments) was accepted")
            } catch {
                #expect(error.code == .usage)
                #expect(error.message.contains(message), "\(error.message) should contain \(message)")
            }
        }
    }

    @Test func orchRepeatableOptionsAccumulate() throws {
        let pipeline = try #require(try CLI.parse(OrchCommand.self, ["--stage", "pipeline", "--from", "a", "--to", "b", "--to", "c"])
            as? OrchCommand)
        #expect(pipeline.selection.chain == ["a", "b", "c"])
        let tagged = try #require(try CLI.parse(OrchCommand.self, ["--stage", "ci", "--tags", "x,y", "--tags", "z"]) as? OrchCommand)
        #expect(tagged.selection.tags == ["x", "y", "z"])
    }
}

/// `run --from A --from B` end to end: both selections run.
@Suite("run: repeated --from and --to", .serialized, .timeLimit(.minutes(2)))
struct RepeatedSelectionTests {
    /// a -> c -> f <- d <- b, e alone.
    func plan(_ dir: TempDir) -> String {
        dir.write("p.json", planJSON([
            stepJSON("a", "true"), stepJSON("b", "true"), stepJSON("c", "true", deps: ["a"]),
            stepJSON("d", "true", deps: ["b"]), stepJSON("e", "true"), stepJSON("f", "true", deps: ["c", "d"]),
        ]))
    }

    func statuses(_ result: CLIResult) throws -> [String: String] {
        var byID: [String: String] = [:]
        for step in try result.json()["steps"]?.arrayValue ?? [] {
            byID[step["id"]?.stringValue ?? "?"] = step["status"]?.stringValue
        }
        return byID
    }

    @Test func twoFromsRunWhatIsDownstreamOfEither() async throws {
        let dir = TempDir()
        let result = await runCLI(["run", plan(dir), "--from", "a", "--from", "b", "--format", "json", "--state-dir", dir.path + "/s"],
                                  in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try statuses(result) == ["a": "succeeded", "b": "succeeded", "c": "succeeded", "d": "succeeded",
                                         "e": "skipped", "f": "succeeded"])
    }

    @Test func twoFromsAndTwoTosIntersectTheUnions() async throws {
        let dir = TempDir()
        let result = await runCLI(["run", plan(dir), "--from", "a", "--from=b", "--to", "c", "--to", "d", "--format", "json",
                                   "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try statuses(result) == ["a": "succeeded", "b": "succeeded", "c": "succeeded", "d": "succeeded",
                                         "e": "skipped", "f": "skipped"])
        // The dry run shows the same selection.
        let dry = await runCLI(["run", plan(dir), "--from", "a", "--from", "b", "--to", "c", "--to", "d", "--mode", "dry-run",
                                "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(try dry.json()["steps"]?.arrayValue?.compactMap { $0["id"]?.stringValue }.sorted() == ["a", "b", "c", "d"])
    }

    @Test func aSingleValuedOptionGivenTwiceIsAUsageError() async throws {
        let dir = TempDir()
        let result = await runCLI(["run", plan(dir), "--mode", "sync", "--mode", "async", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 2)
        #expect(result.stderr.contains("option --mode given twice"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/s"), "nothing recorded")
    }
}
