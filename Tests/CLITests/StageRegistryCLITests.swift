import Foundation
@testable import Stages
import Testing
@testable import Orchestration

@Suite("orch --stage registry: administration, strict loading, exit codes", .serialized, .timeLimit(.minutes(2)))
struct StageRegistryCLITests {
    /// A registry already in canonical form, so a round trip must give back the same bytes.
    static let canonical = JSONValue.object([
        "version": "1",
        "components": [
            .object(["name": "lint", "type": "validator", "tags": ["pre-commit"], "command": "true"]),
            .object(["name": "build", "type": "tool", "command": "true", "idempotent": true]),
        ],
        "stages": .object(["ci": .object(["mode": "async"])]),
    ]).serialized(pretty: true) + "\n"

    @Test func addAndRemoveRoundTripAtomicallyAsCanonicalJSON() async throws {
        let dir = TempDir()
        let file = dir.write("omnibase.registry.json", Self.canonical)
        chmod(file, 0o640)

        let added = await orch(["--stage", "registry", "add", "--name", "unit", "--type", "test", "--command", "swift",
                                "--arg", "test", "--arg", "--parallel", "--tags", "test,slow", "--idempotent",
                                "--retries", "1", "--timeout-sec", "600", "--depends-on", "build",
                                "--description", "the unit tests"], in: dir)
        #expect(added.status == 0, "\(added.stderr)")
        #expect(try added.json()["added"]?.stringValue == "unit")
        let text = try #require(dir.read("omnibase.registry.json"))
        let document = try StrictJSONParser.parse(text).toValue()
        let unitEntry = try #require(document["components"]?.arrayValue?.last)
        #expect(unitEntry.objectValue?.map(\.key) == ["name", "description", "type", "tags", "command", "args", "idempotent",
                                                      "timeout_sec", "depends_on", "retries"])
        #expect(unitEntry["args"] == ["test", "--parallel"])
        #expect(text.contains("\n    {\n      \"name\": \"unit\",\n      \"description\": \"the unit tests\",\n"))
        #expect(text.contains("\n      \"timeout_sec\": 600,\n"))
        #expect(text.hasSuffix("}\n"))
        var info = stat()
        stat(file, &info)
        #expect(info.st_mode & 0o777 == 0o640, "the file keeps its permissions")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty)

        let list = await orch(["--stage", "registry", "list"], in: dir)
        #expect(try list.json()["components"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["lint", "build", "unit"])
        let inspect = await orch(["--stage", "registry", "inspect", "unit"], in: dir)
        let unit = try inspect.json()
        #expect(unit["component"]?["args"] == ["test", "--parallel"])
        #expect(unit["stages"] == ["ci", "test"])
        #expect(unit["retries"]?.intValue == 1)
        #expect(unit["breaker"]?["state"]?.stringValue == "disabled")
        let buildInfo = try await orch(["--stage", "registry", "inspect", "build"], in: dir).json()
        #expect(buildInfo["dependents"] == ["unit"])

        // It is selected, and runs, like any component.
        let dry = await orch(["--stage", "test", "--mode", "dry-run"], in: dir)
        #expect(try dry.json().stepIDs == ["build", "unit"])

        // build cannot go while unit depends on it; unit can, and the file is as before.
        let refused = await orch(["--stage", "registry", "remove", "build"], in: dir)
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("cannot remove \"build\": \"unit\" depends on it"))
        let removed = await orch(["--stage", "registry", "remove", "unit"], in: dir)
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(dir.read("omnibase.registry.json") == Self.canonical)

        // --json adds a whole component, keeping its member order.
        let json = await orch(["--stage", "registry", "add", "--json",
                               "{\"name\": \"fmt\", \"command\": \"true\", \"type\": \"tool\", \"lifecycle\": \"canary\"}"], in: dir)
        #expect(json.status == 0, "\(json.stderr)")
        #expect(dir.read("omnibase.registry.json")?.contains("\"name\": \"fmt\",\n      \"command\": \"true\",") == true)
        let again = await orch(["--stage", "registry", "remove", "fmt"], in: dir)
        #expect(again.status == 0)
        #expect(dir.read("omnibase.registry.json") == Self.canonical)
    }

    /// `registry inspect` printed a long description or tag list whole (128 and 167 columns) and
    /// a description's control characters raw (an escape sequence reached the terminal). Each
    /// line is escaped and within 100 columns, as in every human view; the JSON keeps the texts.
    @Test func inspectIsEscapedAndWithin100Columns() async throws {
        let dir = TempDir()
        let tag = String(repeating: "t", count: 120)
        let description = String(repeating: "d", count: 150) + "\\u001b[31mred\\u0007"
        dir.put("omnibase.registry.json", #"{"components": [{"name": "c", "type": "tool", "tags": [""# + tag
            + #""], "command": "true", "description": ""# + description + #""}]}"#)
        let human = await orch(["--stage", "registry", "inspect", "c", "--format", "human"], in: dir, json: false)
        #expect(human.status == 0, "\(human.stderr)")
        for line in human.stdout.split(separator: "\n") {
            #expect(displayWidth(String(line)) <= 100, "\(line.count) columns: \(line)")
            #expect(!line.contains("\u{1B}") && !line.contains("\u{07}"), "raw control character in \(line)")
        }
        let json = try await orch(["--stage", "registry", "inspect", "c"], in: dir).json()
        #expect(json["component"]?["tags"]?[0]?.stringValue == tag)
    }

    /// `registry list` printed tags raw: an escape sequence recoloured the terminal, a BEL rang,
    /// a CR/LF forged a line and U+202E reversed what followed, while `inspect` and the dry run
    /// escaped the same text. Every human view of registry text (names, descriptions, tags,
    /// commands, args, hooks, the registry's path) shows it escaped; the JSON keeps it exact.
    @Test func everyHumanViewOfRegistryTextIsEscaped() async throws {
        let dir = TempDir()
        let evil = #"x\u001b[31mRED\u0007\r\n\u202eevil"#
        let shown = #"x\e[31mRED\u{7}\r\n\u{202E}evil"#
        dir.put("omnibase.registry.json", """
            {"components": [{"name": "c", "type": "tool", "tags": ["\(evil)"], "description": "d \(evil)",
                             "command": "sh", "args": ["-c", "true", "\(evil)"], "env": {"K": "\(evil)"}}],
             "hooks": {"pre": [{"name": "h", "command": "echo", "args": ["\(evil)"]}],
                       "post": [{"name": "p", "command": "echo", "args": ["\(evil)"]}]}}
            """)
        func expectEscaped(_ result: CLIResult, lines: Int? = nil, _ what: String,
                           sourceLocation: Testing.SourceLocation = #_sourceLocation) {
            #expect(result.status == 0, "\(what): \(result.stderr)", sourceLocation: sourceLocation)
            let raw = result.stdout.unicodeScalars.filter { $0 != "\n" && TerminalText.needsEscape($0) }
            #expect(raw.isEmpty, "\(what) printed \(raw.map { String($0.value, radix: 16) }): \(result.stdout)",
                    sourceLocation: sourceLocation)
            #expect(result.stdout.contains(shown), "\(what): \(result.stdout)", sourceLocation: sourceLocation)
            if let lines {
                #expect(result.stdout.split(separator: "\n").count == lines, "\(what): \(result.stdout)", sourceLocation: sourceLocation)
            }
        }
        let human = ["--format", "human", "--no-color"]
        expectEscaped(await orch(["--stage", "registry", "list"] + human, in: dir, json: false), lines: 3, "registry list")
        expectEscaped(await orch(["--stage", "registry", "inspect", "c"] + human, in: dir, json: false), lines: 9, "inspect")
        expectEscaped(await orch(["--stage", "ci", "--mode", "dry-run"] + human, in: dir, json: false), lines: 5, "dry run")
        let list = try await orch(["--stage", "registry", "list"], in: dir).json()
        #expect(list["components"]?[0]?["tags"]?[0]?.stringValue == "x\u{1B}[31mRED\u{07}\r\n\u{202E}evil")

        // A registry's path is registry text too.
        let added = await orch(["--stage", "registry", "add", "--registry", "r\u{1B}[2J\(evil).json", "--name", "a", "--type", "tool",
                                "--command", "true"] + human, in: dir, json: false)
        #expect(added.status == 0, "\(added.stderr)")
        #expect(added.stdout == "added a to r\\e[2J\(evil).json (1 component)\n", "\(added.stdout)")
    }

    /// `registry list` left out `description`, which docs/stages.md says it shows: the human
    /// list gives it under the component's line (escaped, within the width), JSON and YAML as
    /// `description` (null when there is none).
    @Test func listShowsEachComponentsDescription() async throws {
        let dir = TempDir()
        let long = String(repeating: "word ", count: 30)
        dir.put("omnibase.registry.json", """
            {"components": [{"name": "lint", "type": "validator", "description": "Lints the sources", "command": "true"},
                            {"name": "build", "type": "tool", "command": "true"},
                            {"name": "docs", "type": "tool", "description": "\(long)", "command": "true"}]}
            """)
        let human = await orch(["--stage", "registry", "list", "--format", "human", "--no-color"], in: dir, json: false)
        #expect(human.status == 0, "\(human.stderr)")
        let lines = human.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == 6, "\(lines)")
        #expect(lines[1].hasPrefix("lint ") && lines[2] == "  Lints the sources", "\(lines)")
        #expect(lines[3].hasPrefix("build "), "no description, no line: \(lines)")
        #expect(lines[5].hasPrefix("  word word") && lines[5].hasSuffix("...") && displayWidth(lines[5]) == 100, "\(lines)")
        let json = try await orch(["--stage", "registry", "list"], in: dir).json()
        #expect(json["components"]?.arrayValue?.map { $0["description"] } == ["Lints the sources", .null, .string(long)])
        let yaml = await orch(["--stage", "registry", "list", "--format", "yaml"], in: dir, json: false)
        #expect(yaml.stdout.contains("description: \"Lints the sources\"\n"), "\(yaml.stdout)")
    }

    /// `registry list` and `inspect` printed 100-column lines on a 60-column terminal, where the
    /// dry run kept to it (but for its first line, 72 columns). Every registry view fits the
    /// terminal's width, as the other views do.
    @Test func registryViewsFitANarrowTerminal() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", """
            {"components": [{"name": "a-rather-long-component-name", "type": "validator", "command": "true",
                             "tags": ["pre-commit", "schema", "style", "another-tag", "and-another"],
                             "description": "Checks that every plan in plans/ is well-formed JSON and valid"}]}
            """)
        for arguments in [["list"], ["inspect", "a-rather-long-component-name"]].map({ ["--stage", "registry"] + $0 })
            + [["--stage", "ci", "--mode", "dry-run"]] {
            let result = await runInTerminal(["orch"] + arguments + ["--state-dir", dir.path + "/.state"], in: dir.path, columns: 60)
            #expect(result.status == 0, "\(arguments): \(result.stdout)")
            for line in result.stdout.split(whereSeparator: \.isNewline) {
                #expect(displayWidth(String(line)) <= 60, "\(arguments): \(displayWidth(String(line))) columns: \(line)")
            }
        }
    }

    @Test func addCreatesAMissingRegistryAndRejectsBadComponents() async throws {
        let dir = TempDir()
        let created = await orch(["--stage", "registry", "add", "--name", "a", "--type", "tool", "--command", "true"], in: dir)
        #expect(created.status == 0, "\(created.stderr)")
        #expect(try RegistryLoader.load(path: dir.path + "/omnibase.registry.json").registry.components.map(\.name) == ["a"])

        let duplicate = await orch(["--stage", "registry", "add", "--name", "a", "--type", "tool", "--command", "true"], in: dir)
        #expect(duplicate.status == 2)
        #expect(duplicate.stderr.contains("component \"a\" is already in"))
        let unknownDependency = await orch(["--stage", "registry", "add", "--name", "b", "--type", "tool", "--command", "true",
                                            "--depends-on", "aa"], in: dir)
        #expect(unknownDependency.status == 3)
        #expect(unknownDependency.stderr.contains("no component \"aa\" in the registry (did you mean \"a\"?)"))
        let badJSON = await orch(["--stage", "registry", "add", "--json", "{\"name\": \"c\", \"type\": \"tol\", \"command\": \"x\"}"], in: dir)
        #expect(badJSON.status == 2)
        #expect(badJSON.stderr.contains("--json:1:23: component.type: unknown value \"tol\" (did you mean \"tool\"?)"))
        let retries = await orch(["--stage", "registry", "add", "--name", "d", "--type", "tool", "--command", "x", "--retries", "2"], in: dir)
        #expect(retries.status == 2)
        #expect(retries.stderr.contains("--retries needs --idempotent"))
        #expect(try RegistryLoader.load(path: dir.path + "/omnibase.registry.json").registry.components.map(\.name) == ["a"])
    }

    /// `registry add` options that repeat a name or depend on the component itself are refused
    /// with one sentence about the option (exit 2), as the file refuses them. Before, `--env A=1
    /// --env A=2` gave an internal JSON message with a made-up location, `--depends-on c` for
    /// `c` exit 3 ("no component"), and `--tags x --tags x` was stored as ["x", "x"].
    @Test func addOptionsThatRepeatOrSelfDependAreRefusedLikeTheFile() async throws {
        let dir = TempDir()
        let registry = "{\"components\": [{\"name\": \"a\", \"type\": \"tool\", \"command\": \"true\"}]}\n"
        dir.put("omnibase.registry.json", registry)
        let add = ["--stage", "registry", "add", "--name", "c", "--type", "tool", "--command", "true"]
        let cases: [(options: [String], message: String)] = [
            (["--env", "A=1", "--env", "A=2"], "--env A is given twice"),
            (["--depends-on", "c"], "component \"c\" depends on itself"),
            (["--depends-on", "a,a"], "--depends-on a is given twice"),
            (["--tags", "x", "--tags", "x"], "--tags x is given twice"),
            (["--tags", "x,y,x"], "--tags x is given twice"),
        ]
        for (options, message) in cases {
            let result = await orch(add + options, in: dir)
            #expect(result.status == 2, "\(options): \(result.stderr)")
            #expect(result.stderr.contains(message) && result.stderr.split(separator: "\n").count == 1, "\(options): \(result.stderr)")
            #expect(!result.stderr.contains("JSON"), "\(options): \(result.stderr)")
        }
        let json = await orch(["--stage", "registry", "add", "--json",
                               "{\"name\": \"c\", \"type\": \"tool\", \"command\": \"true\", \"depends_on\": [\"c\"]}"], in: dir)
        #expect(json.status == 2)
        #expect(json.stderr.contains("--json: component \"c\" depends on itself"), "\(json.stderr)")
        #expect(dir.read("omnibase.registry.json") == registry, "nothing was added")
        // The file refuses a tag listed twice too, where it is.
        dir.put("tags.json", "{\"components\": [\n  {\"name\": \"a\", \"type\": \"tool\", \"command\": \"true\", \"tags\": [\"x\", \"x\"]}\n]}")
        let file = await orch(["--stage", "registry", "list", "--registry", "tags.json"], in: dir)
        #expect(file.status == 2)
        #expect(file.stderr == "omnibase-agents: error: tags.json:2:66: components[0].tags[1]: component \"a\" lists the tag \"x\" twice\n",
                "\(file.stderr)")
        let different = await orch(add + ["--tags", "x,y", "--env", "A=1", "--env", "B=2", "--depends-on", "a"], in: dir)
        #expect(different.status == 0, "\(different.stderr)")
    }

    @Test func unknownComponentsExit3WithASuggestion() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", Self.canonical)
        for action in ["inspect", "remove", "reset"] {
            let result = await orch(["--stage", "registry", action, "lnt"], in: dir)
            #expect(result.status == 3, "\(action)")
            #expect(result.stderr.contains("no component \"lnt\" in the registry (did you mean \"lint\"?)"), "\(result.stderr)")
            #expect(result.stdout.isEmpty)
        }
        let from = await orch(["--stage", "ci", "--from", "buld"], in: dir)
        #expect(from.status == 3)
        #expect(dir.read("omnibase.registry.json") == Self.canonical)
    }

    @Test func aMalformedRegistryExits2WithTheLocation() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", """
            {
              "components": [
                { "name": "lint", "type": "validator", "comand": "true" }
              ]
            }
            """)
        let result = await orch(["--stage", "pre-commit"], in: dir)
        #expect(result.status == 2)
        #expect(result.stderr == "omnibase-agents: error: omnibase.registry.json:3:44: components[0].comand: "
                + "unknown key \"comand\" (did you mean \"command\"?)\n")
        dir.put("bad.json", "{\"components\": [\n  {\"name\": \"a\",}\n]}")
        let syntax = await orch(["--stage", "registry", "list", "--registry", "bad.json"], in: dir)
        #expect(syntax.status == 2)
        #expect(syntax.stderr.hasPrefix("omnibase-agents: error: bad.json:2:15: invalid JSON"))
        let missing = await orch(["--stage", "test", "--registry", "none.json"], in: dir)
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("none.json: cannot read the registry"))
        // A file whose read fails names the system's reason (it was "The operation could not be
        // completed. (NSCocoaErrorDomain error 256.)").
        let unreadable = await orch(["--stage", "registry", "list", "--registry", "/proc/self/mem"], in: dir)
        #expect(unreadable.status == 2)
        #expect(unreadable.stderr == "omnibase-agents: error: /proc/self/mem: cannot read the registry: Input/output error\n")
        // A registry in a folder that does not exist is a bad argument (exit 2), not a failed
        // state folder (74, as before).
        let noFolder = await orch(["--stage", "registry", "add", "--registry", dir.path + "/nodir/r.json", "--name", "a",
                                   "--type", "tool", "--command", "true"], in: dir)
        #expect(noFolder.status == 2)
        #expect(noFolder.stderr == "omnibase-agents: error: cannot open the registry's folder \(dir.path)/nodir: "
                + "No such file or directory\n", "\(noFolder.stderr)")
        // Editing a malformed registry is refused, and the file is left alone.
        let edit = await orch(["--stage", "registry", "add", "--name", "x", "--type", "tool", "--command", "y",
                               "--registry", "bad.json"], in: dir)
        #expect(edit.status == 2)
        #expect(dir.read("bad.json") == "{\"components\": [\n  {\"name\": \"a\",}\n]}")
    }

    /// An environment name no process can receive (empty, or holding "=") got past the registry:
    /// `registry add` wrote it (exit 0), then every stage failed with a location in the generated
    /// plan (`omnibase.registry.json (stage ci):21:16: steps[0].env`, a line the registry does not
    /// have), and a hook's failed at run time as "pre hook failed" (exit 1). The registry refuses
    /// them where they are, exit 2, and `add` writes nothing.
    @Test func invalidEnvironmentNamesAreRefusedWhereTheRegistrySaysThem() async throws {
        let dir = TempDir()
        let registry = "{\"components\": [{\"name\": \"a\", \"type\": \"tool\", \"command\": \"true\"}]}\n"
        dir.put("omnibase.registry.json", registry)
        for (env, shown) in [("{\"A=B\": \"1\"}", "\"A=B\" (it holds \"=\")"), ("{\"\": \"1\"}", "an empty name")] {
            let added = await orch(["--stage", "registry", "add", "--json",
                                    "{\"name\": \"b\", \"type\": \"tool\", \"command\": \"true\", \"env\": \(env)}"], in: dir)
            #expect(added.status == 2, "\(added.stderr)")
            #expect(added.stderr == "omnibase-agents: error: --json:1:58: component.env: \(shown) is not a valid environment "
                    + "variable name\n", "\(added.stderr)")
            #expect(dir.read("omnibase.registry.json") == registry, "nothing was added")
        }

        dir.put("component.json", """
            {"components": [
              {"name": "a", "type": "tool", "command": "true",
               "env": {"OK": "1", "A=B": "1"}}
            ]}
            """)
        let stage = await orch(["--stage", "ci", "--registry", "component.json"], in: dir)
        #expect(stage.status == 2)
        #expect(stage.stderr == "omnibase-agents: error: component.json:3:23: components[0].env: \"A=B\" (it holds \"=\") "
                + "is not a valid environment variable name\n", "\(stage.stderr)")
        dir.put("hook.json", """
            {"components": [{"name": "a", "type": "tool", "command": "true"}],
             "hooks": {"pre": [{"name": "h", "command": "true", "env": {"": "1"}}]}}
            """)
        let hook = await orch(["--stage", "ci", "--registry", "hook.json"], in: dir)
        #expect(hook.status == 2)
        #expect(hook.stderr == "omnibase-agents: error: hook.json:2:61: hooks.pre[0].env: an empty name is not a valid "
                + "environment variable name\n", "\(hook.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/.state/runs"), "no run was started")
    }

    @Test func badArgumentsExit2() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", Self.canonical)
        let cases: [([String], String)] = [
            (["--stage", "pre-comit"], "unknown stage 'pre-comit' (did you mean 'pre-commit'?)"),
            ([], "orch needs --stage"),
            (["--stage", "ci", "--filter", "typ=tool"], "--filter: unknown filter key \"typ\" (did you mean \"type\"?)"),
            (["--stage", "ci", "--lifecycle", "stabel"], "unknown lifecycle 'stabel' (did you mean 'stable'?)"),
            (["--stage", "ci", "--mode", "fast"], "option --mode must be one of"),
            (["--stage", "registry", "lst"], "unknown registry action 'lst' (did you mean 'list'?)"),
            (["--stage", "registry", "list", "--mode", "sync"], "option --mode does not apply to the registry stage"),
            (["--stage", "ci", "--name", "x"], "option --name belongs to 'orch --stage registry add'"),
            (["--stage", "pipeline"], "the pipeline stage needs its components"),
            (["--stage", "test", "--tags", "nothing-has-this"], "stage test selects no component"),
            (["--stage", "pre-commit", "--max-concurrency", "2"], "--max-concurrency applies to async mode"),
        ]
        for (arguments, message) in cases {
            let result = await orch(arguments, in: dir)
            #expect(result.status == 2, "\(arguments)")
            #expect(result.stderr.contains(message), "\(result.stderr) should contain \(message)")
        }
    }

    /// `--run-id ''` exited 3 ("no run  in ..."), `--registry ''` said "error: : cannot read the
    /// registry": an empty value is a usage error that says so.
    @Test func emptyOptionValuesAreUsageErrors() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", Self.canonical)
        #expect(await orch(["--stage", "pre-commit"], in: dir).status == 0)
        let cases: [([String], String)] = [
            (["--stage", "pre-commit", "--mode", "replay", "--run-id", ""], "option --run-id needs a run id, not an empty value"),
            (["--stage", "pre-commit", "--registry", ""], "option --registry needs a file name, not an empty value"),
            (["--stage", "registry", "list", "--registry", ""], "option --registry needs a file name, not an empty value"),
        ]
        for (arguments, message) in cases {
            let result = await orch(arguments, in: dir)
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.stderr.hasPrefix("omnibase-agents: error: \(message)"), "\(result.stderr) should start with \(message)")
        }
    }

    /// `registry reset` of a component with no breaker record said it "closed the circuit
    /// breaker" and created the state folder; it says there was nothing to reset and creates nothing.
    @Test func resettingABreakerThatHasNoRecordSaysSoAndCreatesNothing() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", Self.canonical)
        let human = await orch(["--stage", "registry", "reset", "lint", "--format", "human"], in: dir, json: false)
        #expect(human.status == 0, "\(human.stderr)")
        #expect(human.stdout == "nothing to reset: lint has no circuit-breaker record (its circuit is closed)\n")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/.state"), "reset created the state folder")
        let json = try await orch(["--stage", "registry", "reset", "lint"], in: dir).json()
        #expect(json["changed"] == false)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/.state"))
        // An unknown name is still exit 3.
        #expect(await orch(["--stage", "registry", "reset", "lnt"], in: dir).status == 3)
    }

    /// A `breakers.json` written by a newer release was "corrupt ... delete it" (exit 74): it is
    /// exit 4, and the file is left as it is.
    @Test func aBreakerFileOfANewerReleaseExits4AndIsLeftAlone() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([componentJSON("lint", script: "true")],
                                                         extra: "\"breaker\": {\"failure_threshold\": 1}"))
        let newer = "{\"version\": 99, \"components\": {\"lint\": {\"whatever\": true}}}\n"
        dir.put(".state/breakers.json", newer)
        for arguments in [["--stage", "pre-commit"], ["--stage", "registry", "inspect", "lint"], ["--stage", "registry", "reset", "lint"]] {
            let result = await orch(arguments, in: dir)
            #expect(result.status == 4, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("breakers.json is version 99 of the breakers file, written by a newer release"),
                    "\(result.stderr)")
            #expect(!result.stderr.contains("delete"))
        }
        #expect(dir.read(".state/breakers.json") == newer)
    }
}
