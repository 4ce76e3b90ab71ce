import Foundation
import Testing
@testable import Orchestration

/// A step's result is recorded at most once per run (README, "The promise"). Since schema
/// version 6 the `steps` row that a result updates refuses a second one after a success; before,
/// a unique index on the `events` table refused a second success only (a failure recorded after
/// a success went in). The transaction that holds the second result is rolled back whole: none
/// of its events or rows are written.
@Suite("RunStore: one success per step")
struct RunStoreOneSuccessTests {
    typealias Fixture = StoreRecorderTests.Fixture

    /// Every row of the run, to compare before and after a refused transaction.
    static func rows(_ fixture: Fixture) throws -> [String] {
        let store = try RunStore(stateDirectory: fixture.state, readOnly: true)
        var rows: [String] = []
        for table in ["events", "steps", "attempts"] {
            for row in try store.database.query("SELECT * FROM \(table) WHERE run_id = '\(fixture.runID)'") {
                rows.append(table + ": " + (0..<row.count).map { row.string($0) ?? "NULL" }.joined(separator: "|"))
            }
        }
        return rows
    }

    static func event(_ fixture: Fixture, _ seq: Int64, _ kind: RunEvent.Kind, _ step: String, attempt: Int) -> RunEvent {
        RunEvent(seq: seq, runID: fixture.runID, kind: kind, stepID: step, attempt: attempt,
                 data: kind == .stepStarted ? nil : ["exit_code": kind == .stepSucceeded ? 0 : 1])
    }

    @Test func aSecondResultAfterASuccessIsRefusedAndWritesNothing() throws {
        let fixture = try Fixture(steps: 2)
        let store = try RunStore(stateDirectory: fixture.state)
        // s0 succeeds as a pair (one transaction), s1 in two transactions.
        try store.append([Self.event(fixture, 1, .stepStarted, "s0", attempt: 1), Self.event(fixture, 2, .stepSucceeded, "s0", attempt: 1)])
        try store.append([Self.event(fixture, 3, .stepStarted, "s1", attempt: 1)])
        try store.append([Self.event(fixture, 4, .stepSucceeded, "s1", attempt: 1)])
        let before = try Self.rows(fixture)
        for step in ["s0", "s1"] {
            // A second success alone, as a pair with a new attempt's start, and a failure behind
            // an event that is fine by itself.
            let second: [[RunEvent]] = [
                [Self.event(fixture, 5, .stepSucceeded, step, attempt: 1)],
                [Self.event(fixture, 5, .stepStarted, step, attempt: 2), Self.event(fixture, 6, .stepSucceeded, step, attempt: 2)],
                [Self.event(fixture, 5, .stepRetry, "s9", attempt: 1), Self.event(fixture, 6, .stepFailed, step, attempt: 1)],
            ]
            for events in second {
                #expect(throws: EngineError.self, "\(step): \(events.map(\.kind))") { try store.append(events) }
                #expect(try Self.rows(fixture) == before, "\(step): \(events.map(\.kind)) left rows behind")
            }
        }
    }

    @Test func aSecondSuccessInTheSameTransactionIsRefusedAndWritesNothing() throws {
        let fixture = try Fixture(steps: 1)
        let store = try RunStore(stateDirectory: fixture.state)
        let before = try Self.rows(fixture)
        #expect(throws: EngineError.self) {
            try store.append([Self.event(fixture, 1, .stepStarted, "s0", attempt: 1), Self.event(fixture, 2, .stepSucceeded, "s0", attempt: 1),
                              Self.event(fixture, 3, .stepStarted, "s0", attempt: 2), Self.event(fixture, 4, .stepSucceeded, "s0", attempt: 2)])
        }
        #expect(try Self.rows(fixture) == before)
        // The same events without the second success go in.
        try store.append([Self.event(fixture, 1, .stepStarted, "s0", attempt: 1), Self.event(fixture, 2, .stepSucceeded, "s0", attempt: 1)])
        #expect(try store.steps(fixture.runID).map(\.status) == [.succeeded])
    }
}
