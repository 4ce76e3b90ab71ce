import Testing

@testable import Orchestration

/// The engine's coded errors share one shape: code, message, exit code, description.
struct CodedErrorTests {
    private func shape(_ error: any CodedError) -> (String, Int32, String) {
        (error.message, error.exitCode, error.description)
    }

    @Test func engineAndStoreErrorsShareTheShape() {
        let plan = shape(EngineError(.invalidPlan, "p.json:1:1: bad"))
        #expect(plan == ("p.json:1:1: bad", 2, "p.json:1:1: bad"))
        #expect(shape(EngineError(.interrupted, "stopped", exitCode: 143)).1 == 143)
        let store = StoreError(.incompatibleSchema, message: "old schema", path: "/s/runs.db")
        #expect(shape(store) == ("old schema", 4, "old schema (path: /s/runs.db)"))
        #expect(shape(StoreError(.busy, message: "held")) == ("held", 74, "held"))
    }
}
