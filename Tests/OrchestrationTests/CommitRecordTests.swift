import Foundation
import Glibc
import Testing
@testable import Orchestration

/// A waiting step commits to the run's commit record (every wait at NORMAL, a chain's links at FULL),
/// the database follows in the writer's group commits, and `resume` applies what the database
/// lacks (``CommitRecord``).
@Suite("CommitRecord: the commit record a waiting step commits to", .timeLimit(.minutes(1)))
struct CommitRecordTests {
    typealias Fixture = StoreRecorderTests.Fixture

    static func recordPath(_ fixture: Fixture) -> String {
        fixture.state.path + "/" + CommitRecord.relativePath(fixture.runID)
    }

    static func statuses(_ fixture: Fixture) throws -> [String: StepStatus] {
        Dictionary(uniqueKeysWithValues: try RunStore(stateDirectory: fixture.state, readOnly: true).steps(fixture.runID)
            .map { ($0.id, $0.status) })
    }

    /// A chain's links are committed on the caller's thread without a database transaction (at
    /// `FULL` the record is synced): the writer (its window 10 minutes long here) has applied
    /// nothing when each link's wait is met; `close` applies every turn and removes the record.
    @Test(arguments: [SQLiteDatabase.Synchronous.full, .normal])
    func aTurnIsCommittedToTheRecordAndTheDatabaseFollows(synchronous: SQLiteDatabase.Synchronous) async throws {
        let fixture = try Fixture(steps: 3)
        let recorder = try StoreRecorder(stateDirectory: fixture.state, runID: fixture.runID, synchronous: synchronous,
                                         coalescing: .seconds(600))
        let turns = fixture.turns()
        for index in 1...3 {
            let last = Int64(2 * index)
            try await recorder.record(turns[2 * index - 2] + turns[2 * index - 1])
            #expect(recorder.commitIfIdle(upTo: last), "link \(index)")
            #expect(recorder.durableSeq == last)
            try await recorder.waitUntilDurable(last)
            #expect(try fixture.storedSeqs().isEmpty, "link \(index): the database was written on the caller's thread")
            // At FULL the lines are followed by the zeros reserved for the next ones.
            let lines = try String(contentsOfFile: Self.recordPath(fixture), encoding: .utf8)
                .split(separator: "\n").filter { $0.first == "{" }
            #expect(lines.count == Int(last), "link \(index): the record holds the turn when commitIfIdle returns")
        }
        #expect(recorder.recordCommitCount == 3)
        try await recorder.close()
        #expect(try fixture.storedSeqs() == Array(1...6))
        #expect(try Self.statuses(fixture).values.allSatisfy { $0 == .succeeded })
        #expect(!FileManager.default.fileExists(atPath: Self.recordPath(fixture)), "the record outlived the run's commits")
        let copied = try String(contentsOfFile: recorder.eventsPath, encoding: .utf8).split(separator: "\n")
        #expect(copied.count == 6)
    }

    /// What a killed engine committed to the record and the database lacks: `replay` applies it
    /// in `seq` order, once (a second replay, or lines the database has, change nothing), stops
    /// at a torn last line and at a gap, and restores the values of secret outputs, which the
    /// events show masked.
    @Test func replayAppliesWhatTheDatabaseLacksOnceInOrder() throws {
        let fixture = try Fixture(steps: 4)
        let store = try RunStore(stateDirectory: fixture.state)
        let turns = fixture.turns()  // seq 1...8: s0 started, s0 succeeded, s1 started, ...
        try store.append(Array(turns[0...1].joined()))  // the database has s0
        let outputs = [StepOutput(name: "token", value: "hunter2", isSecret: true),
                       StepOutput(name: "version", value: "1.2.3", isSecret: false)]
        var events = Array(turns[0...5].joined())
        events[3] = RunEvent(seq: 4, runID: fixture.runID, stepID: "s1", attempt: 1,
                             payload: .stepSucceeded(AttemptEnd(exitCode: 0, outputs: outputs)))
        var bytes: [UInt8] = []
        for event in events { CommitRecord.appendLine(event, to: &bytes) }
        let path = Self.recordPath(fixture)
        // seq 7 torn: written in part, no newline.
        var torn: [UInt8] = []
        CommitRecord.appendLine(turns[6][0], to: &torn)
        try Data(bytes + torn.prefix(torn.count / 2)).write(to: URL(fileURLWithPath: path))

        #expect(try CommitRecord.replay(stateDirectory: fixture.state, runID: fixture.runID, store: store) == 4)
        #expect(try fixture.storedSeqs() == Array(1...6))
        #expect(try Self.statuses(fixture) == ["s0": .succeeded, "s1": .succeeded, "s2": .succeeded, "s3": .pending])
        let stored = try store.outputs(fixture.runID)
        #expect(stored.values(named: { $0 == "token" }) == ["hunter2"], "a secret output's value was not restored")
        #expect(stored.values(named: { $0 == "version" }) == ["1.2.3"])
        let event = try #require(try store.events(fixture.runID).first { $0.seq == 4 })
        #expect(event.data?["outputs"]?["token"]?.stringValue == SecretMask.replacement, "the event shows the secret")

        // Once: nothing more the second time.
        #expect(try CommitRecord.replay(stateDirectory: fixture.state, runID: fixture.runID, store: store) == 0)
        #expect(try fixture.storedSeqs() == Array(1...6))

        // A gap (seq 8 without 7) is not applied, nor anything after it.
        var gapped = bytes
        CommitRecord.appendLine(turns[7][0], to: &gapped)
        try Data(gapped).write(to: URL(fileURLWithPath: path))
        #expect(try CommitRecord.replay(stateDirectory: fixture.state, runID: fixture.runID, store: store) == 0)
        #expect(try fixture.storedSeqs() == Array(1...6))

        // Another run's lines and garbage are passed over; what follows them in sequence is applied.
        var foreign: [UInt8] = []
        CommitRecord.appendLine(RunEvent(seq: 7, runID: "another-run", kind: .stepStarted, stepID: "s3", attempt: 1), to: &foreign)
        var next: [UInt8] = []
        CommitRecord.appendLine(turns[6][0], to: &next)
        try Data(Array("garbage\u{0}\n".utf8) + bytes + foreign + Array("{\"seq\":7}\n".utf8) + next).write(to: URL(fileURLWithPath: path))
        #expect(try CommitRecord.replay(stateDirectory: fixture.state, runID: fixture.runID, store: store) == 1)
        #expect(try fixture.storedSeqs() == Array(1...7))
    }

    /// A record that is there but cannot be read (a directory in its place) is an error (exit
    /// 74), never skipped: skipping it would lose the results it committed. A symbolic link in
    /// its place is refused (exit 5), as for every state file, and its target is not read.
    @Test func anUnreadableRecordIsAnErrorNotSkipped() throws {
        let fixture = try Fixture(steps: 1)
        let store = try RunStore(stateDirectory: fixture.state)
        let path = Self.recordPath(fixture)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        let error = #expect(throws: EngineError.self) {
            try CommitRecord.replay(stateDirectory: fixture.state, runID: fixture.runID, store: store)
        }
        #expect(error?.exitCode == 74)
        #expect(error?.message.contains(path) == true, "\(String(describing: error))")
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: fixture.path + "/plan.json")
        let refused = #expect(throws: EngineError.self) {
            try CommitRecord.replay(stateDirectory: fixture.state, runID: fixture.runID, store: store)
        }
        #expect(refused?.exitCode == 5, "\(String(describing: refused))")
        try FileManager.default.removeItem(atPath: path)
        #expect(try CommitRecord.replay(stateDirectory: fixture.state, runID: fixture.runID, store: store) == 0)
    }

    /// Once the database has failed, the run stops as for a signal so that nothing more starts:
    /// a chain's next link must not start on the strength of the record alone. Here another
    /// connection makes every insert into `events` fail; the writer's commit of the first turn
    /// fails, and then neither `commitIfIdle` nor `waitUntilDurable` says it is durable.
    @Test(arguments: [SQLiteDatabase.Synchronous.full, .normal])
    func afterTheDatabaseFailedNoWaitIsMetByTheRecord(synchronous: SQLiteDatabase.Synchronous) async throws {
        let fixture = try Fixture(steps: 2)
        let saboteur = try SQLiteDatabase(path: fixture.state.databasePath)
        try saboteur.write { try $0.exec("CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'refused'); END") }
        let recorder = try StoreRecorder(stateDirectory: fixture.state, runID: fixture.runID, synchronous: synchronous,
                                         coalescing: .zero)
        try await recorder.record(fixture.turns()[0])
        // The writer commits the turn at once (no window), and fails.
        let deadline = ContinuousClock.now + .seconds(20)
        while recorder.storeFailure == nil && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(recorder.storeFailure != nil, "the database did not fail")
        #expect(!recorder.commitIfIdle(upTo: 1), "a wait was met after the database failed")
        #expect(recorder.recordCommitCount == 0)
        await #expect(throws: EngineError.self) { try await recorder.waitUntilDurable(1) }
        await #expect(throws: EngineError.self) { try await recorder.close() }
    }
}
