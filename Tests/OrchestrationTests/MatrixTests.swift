import Foundation
import Testing
@testable import Orchestration
@testable import Presentation

/// Loads a plan text (no file: the loader reads the bytes).
private func load(_ text: String) throws(EngineError) -> LoadedPlan {
    try PlanLoader.load(PlanSource(displayPath: "p.json", directory: "/tmp", bytes: Array(text.utf8), overrides: [:]))
}

/// A plan with one step `t` (`echo` with `args`) carrying `matrix`, then `extra` steps.
private func matrixPlan(_ matrix: String, args: String = "[]", extra: [String] = []) -> String {
    let steps = [#"{"id": "t", "command": "echo", "args": \#(args), "matrix": \#(matrix)}"#] + extra
    return #"{"plan_id": "m", "version": "1", "steps": [\#(steps.joined(separator: ", "))]}"#
}

/// Each expansion's values as `key=value` lists, in plan order.
private func combinations(_ loaded: LoadedPlan) -> [String] {
    loaded.plan.steps.compactMap { $0.matrix.map { $0.values.map { "\($0.key)=\($0.value)" }.joined(separator: " ") } }
}

@Suite("Matrices: expansion at load (SPEC §11)")
struct MatrixTests {
    @Test func twoKeysMakeFourStepsWithTheirValuesInTheIdInKeyOrder() throws {
        let loaded = try load(matrixPlan(#"{"os": ["linux", "mac"], "v": ["1", "2"]}"#, args: #"["${matrix.os}", "${matrix.v}"]"#))
        #expect(loaded.graph.ids == ["t.linux.1", "t.linux.2", "t.mac.1", "t.mac.2"])
        #expect(loaded.plan.steps.map { $0.processCommand!.arguments } == [["linux", "1"], ["linux", "2"], ["mac", "1"], ["mac", "2"]])
        #expect(loaded.plan.steps.allSatisfy { $0.matrix?.step == "t" })
        // Key order as written, not sorted.
        let reversed = try load(matrixPlan(#"{"v": [2, 1], "os": ["mac"]}"#))
        #expect(reversed.graph.ids == ["t.2.mac", "t.1.mac"])
    }

    @Test func numbersAndBooleansAreTheirJSONTextAndIdsKeepOnlyTheIdCharacters() throws {
        let loaded = try load(matrixPlan(#"{"py": [3.10, "3.12"], "debug": [true, false], "dir": ["a b/c", "ü-x", ""]}"#,
                                         args: #"["${matrix.py}|${matrix.debug}|${matrix.dir}"]"#))
        #expect(loaded.graph.ids.prefix(4) == ["t.3.10.true.a_b_c", "t.3.10.true._-x", "t.3.10.true._", "t.3.10.false.a_b_c"])
        #expect(loaded.graph.ids.last == "t.3.12.false._")
        #expect(loaded.plan.steps[0].processCommand!.arguments == ["3.10|true|a b/c"])
        #expect(loaded.plan.steps[1].processCommand!.arguments == ["3.10|true|ü-x"])
        #expect(loaded.plan.steps[2].processCommand!.arguments == ["3.10|true|"])
        #expect(loaded.plan.steps.count == 12)
    }

    @Test func matrixValuesAreInsertedVerbatimInEveryField() throws {
        let plan = #"""
            {"plan_id": "m", "version": "1", "variables": {"V": "var"}, "steps": [
             {"id": "t", "name": "check ${matrix.w} $$ ${V}", "command": "${matrix.w}", "args": ["<${matrix.w}>", "${V}", "$${matrix.w}"],
              "cwd": "sub/${matrix.w}", "env": {"W": "${matrix.w}"},
              "matrix": {"w": ["${V}", "$$HOME", "$(id)"]}}]}
            """#
        let loaded = try load(plan)
        #expect(loaded.graph.ids == ["t.__V_", "t.__HOME", "t.__id_"])
        let first = try #require(loaded.plan.steps[0].processCommand)
        #expect(first.command == "${V}")
        #expect(first.arguments == ["<${V}>", "var", "${matrix.w}"])
        #expect(first.workingDirectory == "/tmp/sub/${V}")
        #expect(first.environment["W"] == "${V}")
        // A name is not variable-substituted: only ${matrix.KEY} is replaced there.
        #expect(loaded.plan.steps[0].name == "check ${V} $$ ${V}")
        #expect(loaded.plan.steps[1].processCommand?.arguments.first == "<$$HOME>")
        #expect(loaded.plan.steps[2].processCommand?.environment["W"] == "$(id)")
    }

    @Test func dependsOnTheMatrixStepMeansEveryExpansionAndAnExpansionIdMeansThatOne() throws {
        let loaded = try load(matrixPlan(#"{"os": ["linux", "mac"]}"#, extra: [
            #"{"id": "all", "command": "true", "depends_on": ["t"]}"#,
            #"{"id": "one", "command": "true", "depends_on": ["t.mac"]}"#,
            #"{"id": "after", "command": "true", "depends_on": ["all"], "matrix": {"k": [1, 2]}}"#,
        ]))
        let steps = Dictionary(uniqueKeysWithValues: loaded.plan.steps.map { ($0.id, $0.dependsOn) })
        #expect(steps["all"] == ["t.linux", "t.mac"])
        #expect(steps["one"] == ["t.mac"])
        #expect(steps["after.1"] == ["all"] && steps["after.2"] == ["all"])
    }

    // GitHub's documentation examples ("Running variations of jobs in a workflow").

    @Test func excludeRemovesEveryCombinationThatHasAllOfAnEntrysPairs() throws {
        let loaded = try load(matrixPlan(#"""
            {"os": ["macos-latest", "windows-latest"], "version": [12, 14, 16], "environment": ["staging", "production"],
             "exclude": [{"os": "macos-latest", "version": 12, "environment": "production"},
                         {"os": "windows-latest", "version": 16}]}
            """#))
        #expect(loaded.graph.count == 9)
        #expect(!loaded.graph.ids.contains("t.macos-latest.12.production"))
        #expect(loaded.graph.ids.contains("t.macos-latest.12.staging"))
        #expect(!loaded.graph.ids.contains { $0.hasPrefix("t.windows-latest.16.") })
    }

    @Test func includeExtendsMatchingCombinationsOrAddsANewOne() throws {
        let loaded = try load(matrixPlan(#"""
            {"fruit": ["apple", "pear"], "animal": ["cat", "dog"],
             "include": [{"color": "green"}, {"color": "pink", "animal": "cat"}, {"fruit": "apple", "shape": "circle"},
                         {"fruit": "banana"}, {"fruit": "banana", "animal": "cat"}]}
            """#))
        #expect(combinations(loaded) == [
            "fruit=apple animal=cat color=pink shape=circle",
            "fruit=apple animal=dog color=green shape=circle",
            "fruit=pear animal=cat color=pink",
            "fruit=pear animal=dog color=green",
            "fruit=banana",
            "fruit=banana animal=cat",
        ])
        #expect(loaded.graph.ids == ["t.apple.cat", "t.apple.dog", "t.pear.cat", "t.pear.dog", "t.banana", "t.banana.cat"])
    }

    @Test func includeAddsAKeyToTheOneMatchingCombination() throws {
        let loaded = try load(matrixPlan(#"""
            {"os": ["windows-latest", "ubuntu-latest"], "node": [14, 16], "include": [{"os": "windows-latest", "node": 16, "npm": 6}]}
            """#))
        #expect(combinations(loaded) == ["os=windows-latest node=14", "os=windows-latest node=16 npm=6",
                                         "os=ubuntu-latest node=14", "os=ubuntu-latest node=16"])
    }

    @Test func aMatrixOfIncludeEntriesAloneHasOneCombinationPerEntry() throws {
        let loaded = try load(matrixPlan(#"""
            {"include": [{"site": "production", "datacenter": "site-a"}, {"site": "staging", "datacenter": "site-b"}]}
            """#, args: #"["${matrix.site}@${matrix.datacenter}"]"#))
        #expect(loaded.graph.ids == ["t.production.site-a", "t.staging.site-b"])
        #expect(loaded.plan.steps.map { $0.processCommand!.arguments } == [["production@site-a"], ["staging@site-b"]])
    }

    @Test func excludeThenIncludeCanAddBackARemovedCombinationAsANewOne() throws {
        let loaded = try load(matrixPlan(#"""
            {"os": ["linux", "mac"], "exclude": [{"os": "mac"}], "include": [{"os": "mac", "arm": true}]}
            """#))
        #expect(loaded.graph.ids == ["t.linux", "t.mac.true"])
    }

    /// Each bad matrix: the message's location and words (the CLI tests check exit 2 and that no
    /// run is recorded).
    @Test(arguments: [
        (#"{"os": []}"#, "1:104: steps[0].matrix.os: an empty value list"),
        (#"{"os": ["a", "b", "a"]}"#, "steps[0].matrix.os[2]: the value a is listed twice"),
        (#"{"v": [1, "1"]}"#, "steps[0].matrix.v[1]: the value 1 is listed twice"),
        (#"{"os": "linux"}"#, "steps[0].matrix.os: must be a list of values"),
        (#"{"os": [null]}"#, "steps[0].matrix.os[0]: must be a string, number or boolean, not null"),
        (#"{"os": [["a"]]}"#, "steps[0].matrix.os[0]: must be a string, number or boolean, not array"),
        (#"{"9x": ["a"]}"#, "steps[0].matrix.9x: \"9x\" is not a valid matrix key"),
        (#"{}"#, "steps[0].matrix: needs at least one KEY: [values] list or an include entry"),
        (#"["a"]"#, "steps[0].matrix: must be an object"),
        (#"{"os": ["a"], "include": ["a"]}"#, "steps[0].matrix.include[0]: must be an object of KEY: value pairs, not string"),
        (#"{"os": ["a"], "include": {"os": "a"}}"#, "steps[0].matrix.include: must be a list of objects, not object"),
        (#"{"os": ["a"], "exclude": [3]}"#, "steps[0].matrix.exclude[0]: must be an object of KEY: value pairs, not number"),
        (#"{"os": ["a"], "exclude": [{}]}"#, "steps[0].matrix.exclude[0]: an empty entry matches every combination"),
        (#"{"os": ["a"], "exclude": [{"arch": "x"}]}"#, "steps[0].matrix.exclude[0].arch: exclude names \"arch\", which is not a key"),
        (#"{"os": ["a"], "exclude": [{"os": "b"}]}"#, "steps[0].matrix.exclude[0].os: exclude names os = b, which is not among its values"),
        (#"{"os": ["a", "b"], "exclude": [{"os": "a"}, {"os": "b"}]}"#,
         "steps[0].matrix: exclude removes every combination, so step \"t\" would never run"),
    ])
    func aBadMatrixIsALocatedError(_ matrix: String, _ expected: String) throws {
        let error = #expect(throws: EngineError.self) { try load(matrixPlan(matrix)) }
        #expect(error?.code == .invalidPlan)
        #expect(error?.message.hasPrefix("p.json:1:") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "")")
    }

    @Test(arguments: [
        (#"["${matrix.osx}"]"#, #"{"os": ["a"]}"#, "unknown matrix key ${matrix.osx} in step \"t\" (did you mean ${matrix.os}?); its keys are os"),
        (#"["${matrix.extra}"]"#, #"{"os": ["a", "b"], "include": [{"os": "a", "extra": 1}]}"#,
         "${matrix.extra} has no value in the expansion \"t.b\" (its values: os=b): not every combination has extra"),
    ])
    func anUnknownMatrixKeyIsALocatedError(_ args: String, _ matrix: String, _ expected: String) throws {
        let error = #expect(throws: EngineError.self) { try load(matrixPlan(matrix, args: args)) }
        #expect(error?.message.contains("steps[0].args[0]: " + expected) == true, "\(error?.message ?? "")")
    }

    @Test func aMatrixReferenceOutsideAMatrixStepIsALocatedError() throws {
        let plain = #"{"plan_id": "m", "version": "1", "steps": [{"id": "a", "command": "echo", "env": {"X": "${matrix.os}"}}]}"#
        let error = #expect(throws: EngineError.self) { try load(plain) }
        #expect(error?.message.contains("1:88: steps[0].env.X: ${matrix.os} has no value: step \"a\" has no \"matrix\"") == true,
                "\(error?.message ?? "")")
        let global = #"{"plan_id": "m", "version": "1", "globals": {"env": {"X": "${matrix.os}"}}, "steps": [{"id": "a", "command": "true"}]}"#
        let globalError = #expect(throws: EngineError.self) { try load(global) }
        #expect(globalError?.message.contains("globals.env.X: ${matrix.os} has no value: globals are not part of a matrix step") == true,
                "\(globalError?.message ?? "")")
    }

    @Test func anExpansionIdThatAnotherStepHasIsAnErrorNamingBoth() throws {
        let clash = try #require(#expect(throws: EngineError.self) {
            try load(matrixPlan(#"{"os": ["linux", "mac"]}"#, extra: [#"{"id": "t.mac", "command": "true"}"#]))
        })
        #expect(clash.message.contains("step \"t.mac\" (steps[1], 1:") && clash.message.contains(
            "has the same id as the expansion \"t.mac\" of matrix step \"t\" (steps[0], 1:"), "\(clash.message)")
        // Two matrix steps whose expansions meet: a.b + c and a + b.c.
        let meeting = try #require(#expect(throws: EngineError.self) {
            try load(matrixPlan(#"{"x": ["1"]}"#, extra: [
                #"{"id": "a.b", "command": "true", "matrix": {"k": ["c"]}}"#,
                #"{"id": "a", "command": "true", "matrix": {"k": ["b.c"]}}"#,
            ]))
        })
        #expect(meeting.message.contains("steps[2]: the expansion \"a.b.c\" of matrix step \"a\" (steps[2]")
                && meeting.message.contains("the expansion \"a.b.c\" of matrix step \"a.b\" (steps[1]"), "\(meeting.message)")
        // A matrix step's own id taken by a step: depends_on would be ambiguous.
        let group = try #require(#expect(throws: EngineError.self) {
            try load(matrixPlan(#"{"os": ["linux"]}"#, extra: [#"{"id": "t", "command": "true"}"#]))
        })
        #expect(group.message.contains("steps[0].id: matrix step \"t\" has the id of step \"t\" (steps[1]"), "\(group.message)")
    }

    @Test func anExpansionIdOverTheLengthLimitIsAnError() throws {
        let long = String(repeating: "v", count: 199)
        let error = #expect(throws: EngineError.self) { try load(matrixPlan(#"{"k": ["\#(long)"]}"#)) }
        #expect(error?.message.contains("steps[0].matrix: the matrix expansion id \"t.vvv") == true
                && error?.message.contains("is 201 characters long; the limit is 200") == true, "\(error?.message ?? "")")
    }

    @Test(.timeLimit(.minutes(1)))
    func aHugeMatrixFailsBeforeAnyCombinationIsMade() throws {
        let values = "[" + (0..<1000).map(String.init).joined(separator: ",") + "]"
        let error = #expect(throws: EngineError.self) {
            try load(matrixPlan(#"{"a": \#(values), "b": \#(values), "c": \#(values)}"#))
        }
        #expect(error?.message.contains(
            "steps[0].matrix: the matrix makes 1000 × 1000 × 1000 = 1000000000 combinations; a plan may have at most 100000 steps") == true,
            "\(error?.message ?? "")")
        // Past Int.max: 64 keys of 2 values each overflow the count.
        let keys = (0..<64).map { #""k\#($0)": [0, 1]"# }.joined(separator: ", ")
        let overflow = #expect(throws: EngineError.self) { try load(matrixPlan("{\(keys)}")) }
        #expect(overflow?.message.contains("= more than \(Int.max) combinations") == true, "\(overflow?.message ?? "")")
    }

    @Test func expansionsCountTowardsTheStepLimitAcrossMatrices() throws {
        let values = "[" + (0..<300).map(String.init).joined(separator: ",") + "]"
        // 90,000 + 1 fit; a second 90,000 does not.
        let fits = try load(matrixPlan(#"{"a": \#(values), "b": \#(values)}"#, extra: [#"{"id": "x", "command": "true"}"#]))
        #expect(fits.graph.count == 90_001)
        let error = #expect(throws: EngineError.self) {
            try load(matrixPlan(#"{"a": \#(values), "b": \#(values)}"#,
                                extra: [#"{"id": "u", "command": "true", "matrix": {"a": \#(values), "b": \#(values)}}"#]))
        }
        #expect(error?.message.contains("steps[1].matrix: with this matrix's 90000 combinations the plan has 180000 steps; "
                                        + "a plan may have at most 100000") == true, "\(error?.message ?? "")")
    }

    @Test func graphErrorsNameTheFilesStepAndDependencyPositions() throws {
        // steps[1] comes after 3 expansions; its depends_on[1] names an unknown step.
        let error = #expect(throws: EngineError.self) {
            try load(matrixPlan(#"{"os": ["a", "b", "c"]}"#, extra: [#"{"id": "x", "command": "true", "depends_on": ["t", "nope"]}"#]))
        }
        #expect(error?.message.contains("steps[1].depends_on[1]: step \"x\" depends on unknown step \"nope\"") == true,
                "\(error?.message ?? "")")
    }

    // Presentation: the expansions are grouped under the matrix step.

    @Test func graphGroupsTheExpansionsInAClusterOrSubgraph() throws {
        let loaded = try load(matrixPlan(#"{"os": ["linux", "mac"]}"#, extra: [#"{"id": "after", "command": "true", "depends_on": ["t"]}"#]))
        let dot = GraphRenderer.render(loaded.plan, graph: loaded.graph, format: .dot)
        #expect(dot.contains("""
                subgraph "cluster_t" {
                    label="t (matrix, 2)"; style="rounded,dashed"; color="#9e9e9e";
                    "t.linux" [label="t.linux"];
                    "t.mac" [label="t.mac"];
                }
                "after" [label="after"];
            """), "\(dot)")
        let mermaid = GraphRenderer.render(loaded.plan, graph: loaded.graph, format: .mermaid)
        #expect(mermaid.contains("""
                subgraph m0["t (matrix, 2)"]
                    s0["t.linux"]
                    s1["t.mac"]
                end
                s2["after"]
            """), "\(mermaid)")
    }

    @Test func humanReportListsTheExpansionsUnderAHeading() throws {
        let loaded = try load(matrixPlan(#"{"os": ["linux", "mac"]}"#, extra: [#"{"id": "after", "command": "true", "depends_on": ["t"]}"#]))
        var builder = RunReportBuilder(runID: "r", planID: "m", stepIDs: loaded.graph.ids, traceID: "",
                                       matrices: loaded.plan.steps.map(\.matrix))
        builder.apply(RunEvent(seq: 1, runID: "r", stepID: "t.mac", attempt: 1, payload: .stepStarted))
        let text = HumanReport.render(builder.current, style: TextStyle(rich: false, width: 100))
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[1] == "  matrix t: 2 steps, 1 running, 1 pending", "\(text)")
        #expect(lines[2].hasPrefix("    ") && lines[2].contains("t.linux"), "\(text)")
        #expect(lines[3].hasPrefix("    ") && lines[3].contains("t.mac"), "\(text)")
        #expect(lines[4].hasPrefix("  ") && !lines[4].hasPrefix("    ") && lines[4].contains("after"), "\(text)")
        let json = builder.current.json
        #expect(json["steps"]?[1]?["matrix"] == .object(["step": "t", "values": .object(["os": "mac"])]))
        #expect((json["steps"]?[2]?["matrix"]).map { _ in true } == nil, "a step written as it is has no matrix key")
    }
}
