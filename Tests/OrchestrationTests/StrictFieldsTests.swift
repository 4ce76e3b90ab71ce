import Testing

@testable import Orchestration

/// The one strict field reader, with a failure type of its own: kinds, locations, wording hooks.
struct StrictFieldsTests {
    private struct Problem: StrictFieldFailure {
        var problem: FieldProblem
        init(_ problem: FieldProblem) { self.problem = problem }
    }

    private func fields(_ json: String, allowed: [String] = ["name", "retries", "timeout_sec", "env", "tags"]) throws -> StrictFields<Problem> {
        let root = try StrictJSONParser.parse(Array(json.utf8))
        return try StrictFields<Problem>(root, path: "", allowed: allowed, file: "f.json", what: "a thing")
    }

    private func problem(_ body: () throws -> Void) -> FieldProblem? {
        do { try body() } catch let error as Problem { return error.problem } catch { return nil }
        return nil
    }

    @Test func eachKindOfProblemIsLocatedAndNamed() throws {
        #expect(problem { _ = try fields("{\"nmae\": 1}") }
            == FieldProblem(.unknownKey, "f.json:1:2: nmae: unknown key \"nmae\" (did you mean \"name\"?)"))
        #expect(problem { _ = try fields("[1]") } == FieldProblem(.notAnObject, "f.json:1:1: a thing must be an object, not array"))
        let object = try fields("{\n  \"retries\": \"3\", \"timeout_sec\": -5, \"tags\": [\"a\", 2]}")
        #expect(problem { _ = try object.string("name", required: true) }
            == FieldProblem(.missingField, "f.json:1:1: missing required field \"name\""))
        #expect(problem { _ = try object.int("retries", minimum: 0) }
            == FieldProblem(.wrongType, "f.json:2:14: retries: must be an integer, not string"))
        #expect(problem { _ = try object.seconds("timeout_sec", positive: true) }
            == FieldProblem(.invalidValue, "f.json:2:34: timeout_sec: must not be negative, not -5"))
        #expect(problem { _ = try object.strings("tags") }
            == FieldProblem(.wrongType, "f.json:2:52: tags[1]: must be a string, not number"))
        #expect(try object.stringMap("env") == nil)
        #expect(try object.stringMembers("env").isEmpty)
    }
}
