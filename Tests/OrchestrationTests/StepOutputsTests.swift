import Foundation
import Glibc
import Synchronization
import Testing
@testable import Orchestration

/// Step outputs below the CLI (SPEC section 11): the outputs file's format, output references
/// in plan strings, the codec's masking, the store's rows, closure steps and plans built in code.
@Suite("Step outputs: format, references, store, closure steps", .serialized, .timeLimit(.minutes(2)))
struct StepOutputsTests {
    private static func tempDirectory() -> String {
        var template = Array((NSTemporaryDirectory() + "omnibase-outputs-test-XXXXXX").utf8CString)
        return String(cString: mkdtemp(&template)!)
    }

    private static func parse(_ text: String) throws(OutputFile.Failure) -> [String] {
        try OutputFile.parse(Array(text.utf8)).map { "\($0.name)=\($0.value)" }
    }

    /// GitHub's output-file format: `NAME=VALUE`, `NAME<<DELIM` blocks, whichever of `=` and
    /// `<<` comes first decides, empty lines between entries ignored, the last write wins in the
    /// place the name first appeared.
    @Test func theOutputsFileFormat() throws {
        #expect(try Self.parse("") == [])
        #expect(try Self.parse("a=1\n\nb=x=y\na=3") == ["a=3", "b=x=y"])
        #expect(try Self.parse("a=<<x\nb<<E=F\nline=1\n\nE=F\n") == ["a=<<x", "b=line=1\n"])
        #expect(try Self.parse("v<<EOF\nEOF\n") == ["v="])
        #expect(try Self.parse("v<<EOF\n\n\nEOF") == ["v=\n"])
        #expect(try Self.parse("_x=\u{e9}t\u{e9} \"q\" '$HOME' ${y}\r\n") == ["_x=\u{e9}t\u{e9} \"q\" '$HOME' ${y}\r"])
        let failures: [(String, String)] = [
            ("a=1\njust text\n", "$OMNIBASE_OUTPUT line 2 is neither NAME=VALUE nor NAME<<DELIMITER"),
            ("v<<EOF\nno end\nEOF \n", "$OMNIBASE_OUTPUT line 1: the block v<<EOF has no closing line EOF"),
            ("v<<\nx\n", "$OMNIBASE_OUTPUT line 1: v<< needs a delimiter (NAME<<DELIMITER)"),
            ("=1\n", "$OMNIBASE_OUTPUT line 1: \"\" is not a valid output name"),
            ("a.b=1\n", "$OMNIBASE_OUTPUT line 1: \"a.b\" is not a valid output name"),
            ("a=1\u{0}\n", "$OMNIBASE_OUTPUT holds a NUL byte"),
        ]
        for (text, message) in failures {
            #expect(throws: OutputFile.Failure.self, "\(text)") { try Self.parse(text) }
            do { _ = try Self.parse(text) } catch { #expect(error.message.hasPrefix(message), "\(error.message)") }
        }
        #expect(throws: OutputFile.Failure.self) { try OutputFile.parse([0x61, 0x3D, 0xFF, 0x0A]) }
        #expect(throws: OutputFile.Failure.self) {
            try OutputFile.parse(Array("v=".utf8) + [UInt8](repeating: 0x61, count: OutputFile.maxBytes - 1))
        }
        #expect(try OutputFile.parse(Array("v=".utf8) + [UInt8](repeating: 0x61, count: OutputFile.maxBytes - 2)).first?.value.count
                == OutputFile.maxBytes - 2, "exactly 1 MiB is allowed")
    }

    /// References are kept for the attempt's start; everything else is substituted at load, in
    /// one pass: `$${steps...}` and a variable whose value looks like a reference stay text.
    @Test func referencesAreKeptAndOnlyReferences() throws {
        var referenced: Set<String> = []
        let variables = ["x": "${steps.a.outputs.v}", "n": "1"]
        #expect(try OutputTemplate.parse("plain ${n} $$ ${x}", variables: variables, referenced: &referenced) == nil)
        #expect(try OutputTemplate.parse("$${steps.a.outputs.v}", variables: variables, referenced: &referenced) == nil)
        let template = try #require(try OutputTemplate.parse("<${n}:${steps.build.v2.outputs.version}$$${x}>",
                                                            variables: variables, referenced: &referenced))
        #expect(template.parts == [.text("<1:"), .output(.init(step: "build.v2", name: "version")), .text("$${steps.a.outputs.v}>")])
        #expect(template.placeholder == "<1:${steps.build.v2.outputs.version}$${steps.a.outputs.v}>")
        #expect(try template.resolve { _ in "${n} $(x)" }.get() == "<1:${n} $(x)$${steps.a.outputs.v}>", "values are not expanded")
        #expect(template.resolve { _ in nil } == .failure(.init(reference: .init(step: "build.v2", name: "version"))))
        for bad in ["${steps.a}", "${steps.a.outputs.}", "${steps..outputs.v}", "${steps.a.outputs.v-1}", "${steps.-a.outputs.v}"] {
            #expect(throws: VariableSubstitution.Failure.malformedReference(bad), "\(bad)") {
                try OutputTemplate.parse("x \(bad)", variables: variables, referenced: &referenced)
            }
        }
        #expect(throws: VariableSubstitution.Failure.unknownVariable("nope")) {
            try OutputTemplate.parse("${nope}${steps.a.outputs.v}", variables: variables, referenced: &referenced)
        }
    }

    /// A secret output's value never reaches the events' JSON; a plain one does, in order.
    @Test func theCodecMasksSecretOutputs() throws {
        let end = AttemptEnd(exitCode: 0, outputs: [
            StepOutput(name: "version", value: "1.2.0"), StepOutput(name: "db_password", value: "hunter2-xyz"),
            StepOutput(name: "listed", value: "in-globals-secrets", isSecret: true),
        ])
        let json = try #require(RunEvent.Payload.stepSucceeded(end).json)
        #expect(json["outputs"] == ["version": "1.2.0", "db_password": "***", "listed": "***"])
        #expect(!json.serialized().contains("hunter2") && !json.serialized().contains("in-globals"))
        let back = RunEvent.Payload(kind: .stepSucceeded, json: try StrictJSONParser.parse(Array(json.serialized().utf8)).toValue())
        #expect(back == .stepSucceeded(AttemptEnd(exitCode: 0, outputs: end.outputs.map(\.shown))))
        #expect(back.attemptEnd?.outputs.map(\.isSecret) == [false, true, true])
        #expect(RunEvent.Payload.stepSucceeded(AttemptEnd(exitCode: 0)).json?["outputs"] == nil)
    }

    /// The rows of `step_outputs` are written with the success (both ways the store applies a
    /// success: started and succeeded in one batch, and in separate ones), values verbatim; the
    /// events table holds the masked JSON.
    @Test func theStoreKeepsOutputsWithTheSuccess() throws {
        let dir = Self.tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let state = try StateDirectory(path: dir + "/state")
        let store = try RunStore(stateDirectory: state)
        try store.createRun(RunStore.NewRun(runID: "r", planID: "p", traceID: "t", source: .inCode(planID: "p"),
                                            options: .object([]), stepIDs: ["a", "b"], engine: .current))
        let outputs = [StepOutput(name: "API_TOKEN", value: "tok-123456"), StepOutput(name: "v", value: "x\ny")]
        func event(_ seq: Int64, _ step: String, _ payload: RunEvent.Payload) -> RunEvent {
            RunEvent(seq: seq, runID: "r", stepID: step, attempt: 1, payload: payload)
        }
        try store.append([event(1, "a", .stepStarted), event(2, "a", .stepSucceeded(AttemptEnd(exitCode: 0, outputs: outputs)))])
        try store.append([event(3, "b", .stepStarted)])
        try store.append([event(4, "b", .stepSucceeded(AttemptEnd(exitCode: 0, outputs: [StepOutput(name: "w", value: "")])))])
        let read = try store.outputs("r")
        #expect(read.outputs(of: "a") == ["API_TOKEN": "tok-123456", "v": "x\ny"])
        #expect(read.outputs(of: "b") == ["w": ""])
        let data = try store.database.query("SELECT data FROM events WHERE run_id = 'r' AND type = 'step_succeeded'")
            .compactMap { $0.string(0) }
        #expect(data.count == 2)
        #expect(!data.joined().contains("tok-123456"))
        #expect(try store.report("r")?.steps.first?.outputs == [StepOutput(name: "API_TOKEN", value: "***"), StepOutput(name: "v", value: "x\ny")])
    }

    /// A closure that never asks for its outputs path has no outputs file: the engine neither
    /// checks nor reads one (no system call per closure step), so even a file planted at that
    /// path (here malformed) is not its outputs; one that asks is checked and read as before.
    @Test func aClosureThatNeverAsksForItsOutputsPathHasNoOutputsFile() async throws {
        let plan = Plan(id: "quiet", steps: [
            .closure("plant") { context in
                let folder = (try #require(context.outputPath) as NSString).deletingLastPathComponent
                try "not an output\n".write(toFile: folder + "/quiet.1.outputs", atomically: false, encoding: .utf8)
                try "not an output\n".write(toFile: folder + "/asks.1.outputs", atomically: false, encoding: .utf8)
            },
            .closure("quiet", dependsOn: ["plant"]) { _ in },
            .closure("asks", dependsOn: ["plant"]) { context in _ = context.outputPath },
        ])
        let report = try await DAGExecutor(plan: plan).run()
        #expect(report.steps.map(\.status) == [.succeeded, .succeeded, .failed])
        #expect(report.steps[1].outputs.isEmpty)
        #expect(report.steps[2].error?.hasPrefix("outputs refused:") == true, "\(report.steps[2])")
    }

    /// A closure step writes outputs through its context (any value, verbatim); a process step
    /// uses them through bindings built in code, a closure reads them from its context; the
    /// outputs files of a run without a state folder live in a temporary folder that goes with
    /// the run. A closure that writes a malformed file fails like a process would.
    @Test func closureStepsWriteAndReadOutputs() async throws {
        let dir = Self.tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let value = "a \"b\" $c ${d}\nOMNIBASE_EOF\nlast"
        let seenPath = Mutex<String?>(nil)
        let read = Mutex<String?>(nil)
        let bindings = OutputBindings(arguments: [3: OutputTemplate(parts: [.output(.init(step: "make", name: "v"))])])
        let plan = Plan(id: "closures", steps: [
            .closure("make") { context in
                seenPath.withLock { $0 = context.outputPath }
                try context.writeOutput("v", "first")
                try context.writeOutput("v", value)
            },
            Step(id: "print", action: .process(ProcessCommand(
                command: "sh", arguments: ["-c", "printf '%s' \"$1\" > \(dir)/got", "sh", "${steps.make.outputs.v}"],
                outputBindings: bindings)), dependsOn: ["make"]),
            .closure("read", dependsOn: ["print"]) { context in
                read.withLock { $0 = context.outputs.value(step: "make", name: "v") }
            },
            Step(id: "bad", action: .closure { context in
                try "oops\n".write(toFile: try #require(context.outputPath), atomically: false, encoding: .utf8)
            }, critical: false),
        ])
        let report = try await DAGExecutor(plan: plan).run()
        #expect(report.steps.map(\.status) == [.succeeded, .succeeded, .succeeded, .failed])
        #expect(report.steps[0].outputs == [StepOutput(name: "v", value: value)])
        #expect(try String(contentsOfFile: dir + "/got", encoding: .utf8) == value, "\(report.steps[1])")
        #expect(read.withLock { $0 } == value)
        #expect(report.steps[3].error == "outputs refused: $OMNIBASE_OUTPUT line 1 is neither NAME=VALUE nor NAME<<DELIMITER")
        let path = try #require(seenPath.withLock { $0 })
        #expect(path.hasSuffix("/make.1.outputs"))
        #expect(!FileManager.default.fileExists(atPath: (path as NSString).deletingLastPathComponent), "the temporary folder is gone")
        #expect(throws: OutputFile.Failure.self) { try StepContext(runID: "r", stepID: "s", attempt: 1).writeOutput("v", "x") }
    }

    /// The outputs path is fresh: the step creates the file when it writes (an attempt that
    /// writes none leaves none), and something already at the path fails the attempt.
    @Test func theOutputsPathIsFreshAndCreatedOnlyByAWrite() async throws {
        let dir = Self.tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        symlink(dir + "/elsewhere", dir + "/planted.1.outputs")
        let plan = Plan(id: "fresh", steps: [
            .process("quiet", "true"),
            .process("writes", "sh", ["-c", "echo v=1 >> \"$OMNIBASE_OUTPUT\""]),
            Step(id: "planted", action: .process(ProcessCommand(command: "sh", arguments: ["-c", "touch \(dir)/ran"])),
                 critical: false),
        ])
        let report = try await DAGExecutor(plan: plan, options: RunOptions(logDirectory: dir)).run()
        #expect(report.steps.map(\.status) == [.succeeded, .succeeded, .failed])
        #expect(!FileManager.default.fileExists(atPath: dir + "/quiet.1.outputs"))
        #expect(try String(contentsOfFile: dir + "/writes.1.outputs", encoding: .utf8) == "v=1\n")
        #expect(report.steps[2].error == "its outputs file \(dir)/planted.1.outputs exists before the attempt started")
        #expect(!FileManager.default.fileExists(atPath: dir + "/ran"), "nothing started")
        #expect(!FileManager.default.fileExists(atPath: dir + "/elsewhere"))
    }

    /// A plan built in code is checked like a plan file: a reference to a step it does not
    /// depend on is refused (exit 2) before anything runs.
    @Test func outputsFilesAreOwnerOnlyWhateverTheStepsUmask() throws {
        let folder = NSTemporaryDirectory() + "omnibase-private-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        func mode(_ path: String) -> mode_t {
            var info = stat()
            return lstat(path, &info) == 0 ? info.st_mode & 0o7777 : 0
        }
        // What a file system without ACLs leaves: the step's own mode, mended afterwards.
        let shared = folder + "/a.1.outputs"
        close(open(shared, O_WRONLY | O_CREAT, 0o644))
        chmod(shared, 0o644)
        OutputFile.makePrivate(atPath: shared)
        #expect(mode(shared) == 0o600)
        symlink(shared, folder + "/b.1.outputs")
        chmod(shared, 0o644)
        OutputFile.makePrivate(atPath: folder + "/b.1.outputs")
        #expect(mode(shared) == 0o644, "a symbolic link is not followed")
        OutputFile.makePrivate(atPath: folder + "/none.1.outputs")
        // With the folder's default ACL, a file created under umask 022 is 0600 from the start.
        try #require(OutputFile.makeNewFilesPrivate(inFolder: folder), "this test's file system keeps ACLs")
        let old = umask(0o022)
        close(open(folder + "/c.1.outputs", O_WRONLY | O_CREAT, 0o666))
        umask(old)
        #expect(mode(folder + "/c.1.outputs") == 0o600)
    }

    @Test func aPlanBuiltInCodeIsCheckedLikeAFile() throws {
        let bindings = OutputBindings(environment: ["V": OutputTemplate(parts: [.output(.init(step: "b", name: "v"))])])
        let plan = Plan(id: "code", steps: [
            .closure("a") { _ in }, .closure("b") { _ in },
            Step(id: "c", action: .process(ProcessCommand(command: "true", outputBindings: bindings)), dependsOn: ["a"]),
        ])
        do {
            _ = try LoadedPlan(plan)
            Issue.record("a reference to a step that is not a dependency was accepted")
        } catch {
            #expect(error.exitCode == 2)
            #expect(error.message == "plan code (built in code): step \"c\" uses ${steps.b.outputs.v}, but \"b\" is not among "
                    + "its dependencies (add it to depends_on, directly or through a step it depends on)")
        }
    }

    /// The dependency check follows transitive dependencies, and a 100,000-step chain whose
    /// every step uses the first one's output is checked with one walk.
    @Test func theReferenceCheckIsTransitiveAndLinear() throws {
        let count = 100_000
        let ids = (0..<count).map { "s\($0)" }
        let graph = try PlanGraph(ids: ids, dependsOn: ids.indices.map { $0 == 0 ? [] : [ids[$0 - 1]] })
        let reference = OutputTemplate.Reference(step: "s0", name: "v")
        let references = (1..<count).map { (step: $0, reference: reference) }
        #expect(graph.firstOutputReferenceIssue(references) == nil)
        let backwards = [(step: 5, reference: OutputTemplate.Reference(step: "s9", name: "v"))]
        #expect(graph.firstOutputReferenceIssue(references + backwards)?.issue == .notADependency)
        #expect(graph.firstOutputReferenceIssue(references + backwards)?.position == references.count)
    }
}
