import Testing
@testable import Orchestration

/// `--from` / `--to` selections (SPEC §4), each repeatable: the union of what is downstream of
/// the `--from`s, intersected with the union of what is upstream of the `--to`s.
@Suite struct PlanSelectionTests {
    /// a -> c -> f <- d <- b, e alone.
    let graph: PlanGraph = {
        let steps = [
            Step.closure("a") { _ in }, Step.closure("b") { _ in }, Step.closure("c", dependsOn: ["a"]) { _ in },
            Step.closure("d", dependsOn: ["b"]) { _ in }, Step.closure("e") { _ in },
            Step.closure("f", dependsOn: ["c", "d"]) { _ in },
        ]
        return try! PlanGraph(steps: steps)
    }()

    func selected(from: [String], to: [String]) throws(EngineError) -> [String]? {
        try graph.initialStates(from: from, to: to).map { states in
            graph.ids.enumerated().filter { states[$0.offset] == .pending }.map(\.element)
        }
    }

    @Test func repeatedBoundsSelectTheUnions() throws {
        #expect(try selected(from: [], to: []) == nil)
        #expect(try selected(from: ["a"], to: []) == ["a", "c", "f"])
        #expect(try selected(from: ["a", "b"], to: []) == ["a", "b", "c", "d", "f"])
        #expect(try selected(from: [], to: ["c", "d"]) == ["a", "b", "c", "d"])
        #expect(try selected(from: ["a", "b"], to: ["c", "d"]) == ["a", "b", "c", "d"])
        #expect(try selected(from: ["a"], to: ["c", "d"]) == ["a", "c"])
        #expect(try selected(from: ["a", "e"], to: ["e"]) == ["e"])
    }

    @Test func anEmptySelectionAndAnUnknownIdAreRefused() {
        do {
            _ = try selected(from: ["c", "d"], to: ["a"])
            Issue.record("an empty selection was accepted")
        } catch {
            #expect(error.code == .usage)
            #expect(error.message == "--from c --from d and --to a select no step: a is not downstream of c or d")
        }
        do {
            _ = try selected(from: ["a", "zz"], to: [])
            Issue.record("an unknown id was accepted")
        } catch {
            #expect(error.code == .unknownReference)
            #expect(error.message.contains("--from names unknown step \"zz\""))
        }
    }

    /// The request is stored with the run for resume and replay: arrays now, one string (or
    /// null) for runs stored before.
    @Test func theRequestRoundTripsAndReadsTheOlderShape() {
        let request = RunRequest(from: ["a", "b"], to: ["f"])
        #expect(RunRequest(json: request.json, stage: nil) == request)
        let older: JSONValue = .object(["from": .string("a"), "to": .null, "labels": .object([])])
        let read = RunRequest(json: older, stage: nil)
        #expect(read.from == ["a"])
        #expect(read.to == [])
    }
}
