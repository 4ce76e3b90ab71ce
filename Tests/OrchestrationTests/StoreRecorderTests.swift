import Foundation
import Glibc
import Testing
@testable import Orchestration

/// The store writer's group commit: turns that nobody waits for are gathered into few
/// transactions, and a durability waiter or `close` never waits for the gathering window.
@Suite("StoreRecorder: group commit", .timeLimit(.minutes(1)))
struct StoreRecorderTests {
    /// A state folder with one run of `count` steps created in it.
    final class Fixture {
        let path: String
        let state: StateDirectory
        let runID = "run-recorder-test"
        let steps: [String]

        init(steps count: Int) throws {
            var template = Array((NSTemporaryDirectory() + "omnibase-recorder-XXXXXX").utf8CString)
            path = String(cString: mkdtemp(&template)!)
            state = try StateDirectory(path: path + "/state")
            steps = (0..<count).map { "s\($0)" }
            let plan = "{\"plan_id\": \"p\", \"version\": \"1\", \"steps\": ["
                + steps.map { "{\"id\": \"\($0)\", \"command\": \"true\"}" }.joined(separator: ",") + "]}"
            try plan.write(toFile: path + "/plan.json", atomically: true, encoding: .utf8)
            let loaded = try PlanLoader.load(path: path + "/plan.json")
            let store = try RunStore(stateDirectory: state)
            try store.createRun(RunStore.NewRun(runID: runID, planID: "p", traceID: "t", source: loaded.source,
                                                options: .object([]), stepIDs: steps, engine: .current))
            _ = try state.ensureSubdirectory("runs/\(runID)")
        }

        deinit { try? FileManager.default.removeItem(atPath: path) }

        /// The scheduler turns of a run where every step starts, then succeeds: 2 turns per step.
        func turns() -> [[RunEvent]] {
            var seq: Int64 = 0
            func event(_ kind: RunEvent.Kind, _ step: String) -> RunEvent {
                seq += 1
                return RunEvent(seq: seq, runID: runID, kind: kind, stepID: step, attempt: 1,
                                data: kind == .stepSucceeded ? ["exit_code": 0] : nil)
            }
            return steps.flatMap { [[event(.stepStarted, $0)], [event(.stepSucceeded, $0)]] }
        }

        func storedSeqs() throws -> [Int64] { try RunStore(stateDirectory: state, readOnly: true).events(runID).map(\.seq) }
    }

    @Test func turnsNobodyWaitsForAreGatheredIntoFewTransactions() async throws {
        let fixture = try Fixture(steps: 100)
        // A window far longer than the test takes: every turn lands in it.
        let recorder = try StoreRecorder(stateDirectory: fixture.state, runID: fixture.runID, coalescing: .seconds(30))
        let turns = fixture.turns()
        for turn in turns { try await recorder.record(turn) }
        try await recorder.close()
        #expect(recorder.commitCount <= 2, "\(turns.count) turns took \(recorder.commitCount) transactions")
        #expect(try fixture.storedSeqs() == Array(1...Int64(turns.count)))
        let lines = try String(contentsOfFile: recorder.eventsPath, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == turns.count, "events.jsonl holds every committed event once")
    }

    @Test func aDurabilityWaiterEndsTheWindowAtOnce() async throws {
        let fixture = try Fixture(steps: 3)
        // With a 60 s window, a waiter that had to wait for it would run into the time limit.
        let recorder = try StoreRecorder(stateDirectory: fixture.state, runID: fixture.runID, coalescing: .seconds(60))
        let turns = fixture.turns()
        try await recorder.record(turns[0])
        try await recorder.record(turns[1])
        try await recorder.waitUntilDurable(2)
        #expect(recorder.durableSeq >= 2)
        #expect(try fixture.storedSeqs().prefix(2) == [1, 2], "durable means in the database")
        // Again, once the writer is gathering: record, then wait.
        try await recorder.record(turns[2])
        try await recorder.waitUntilDurable(3)
        #expect(try fixture.storedSeqs() == [1, 2, 3])
        try await recorder.close()
    }

    @Test func withoutAWindowEveryWakeCommits() async throws {
        let fixture = try Fixture(steps: 5)
        let recorder = try StoreRecorder(stateDirectory: fixture.state, runID: fixture.runID, coalescing: .zero)
        for (index, turn) in fixture.turns().enumerated() {
            try await recorder.record(turn)
            try await recorder.waitUntilDurable(Int64(index + 1))
        }
        #expect(recorder.commitCount == 10, "one transaction per awaited turn")
        try await recorder.close()
        #expect(try fixture.storedSeqs() == Array(1...10))
    }
}
