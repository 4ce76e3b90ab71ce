import Foundation
import Glibc
import Testing
import Synchronization
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

    /// A new run's steps are stored pending at their plan positions, whatever the order of
    /// their ids (they are inserted in one statement, in key order).
    @Test func aNewRunsStepsArePendingAtTheirPlanPositions() throws {
        var template = Array((NSTemporaryDirectory() + "omnibase-newrun-XXXXXX").utf8CString)
        let folder = String(cString: mkdtemp(&template)!)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let ids = ["z", "a", "s10", "s9", "B", "a.b-c_d"] + (0..<3_000).map { "n\($0)" }
        let plan = "{\"plan_id\": \"p\", \"version\": \"1\", \"steps\": ["
            + ids.map { "{\"id\": \"\($0)\", \"command\": \"true\"}" }.joined(separator: ",") + "]}"
        try plan.write(toFile: folder + "/plan.json", atomically: true, encoding: .utf8)
        let loaded = try PlanLoader.load(path: folder + "/plan.json")
        let store = try RunStore(stateDirectory: StateDirectory(path: folder + "/state"))
        for runID in ["r1", "r2"] {
            try store.createRun(RunStore.NewRun(runID: runID, planID: "p", traceID: "t", source: loaded.source,
                                                options: .object([]), stepIDs: ids, engine: .current))
        }
        for runID in ["r1", "r2"] {
            let rows = try store.database.query(
                "SELECT step_id, position, status, attempts FROM steps WHERE run_id = ? ORDER BY position", runID)
            #expect(rows.map { $0.string(0) } == ids)
            #expect(rows.map { $0.int(1) } == Array(ids.indices))
            #expect(Set(rows.map { "\($0.string(2) ?? "nil") \($0.int(3))" }) == ["pending 0"])
        }
    }

    /// The writer builds each `events.jsonl` line from the texts it stored (encoded once): the
    /// line must stay exactly the event's own JSON, for events with and without data, step or
    /// attempt, and with text that needs escaping.
    @Test func anEncodedEventsLineIsTheEventsOwnJSON() {
        let events = [
            RunEvent(seq: 1, runID: "r", kind: .runStarted, data: ["plan_id": "p", "steps": 2, "max_concurrency": 1]),
            RunEvent(seq: 2, runID: "r", kind: .stepStarted, stepID: "a", attempt: 1),
            RunEvent(seq: 3, runID: "r", kind: .stepAttemptFailed, stepID: "a", attempt: 1,
                     data: ["exit_code": 3, "error": "exited with code 3: \"quoted\"\n\u{1}", "job_id": "17"]),
            RunEvent(seq: 4, runID: "r", kind: .stepRetry, stepID: "a", attempt: 1, data: ["delay_sec": 0.25]),
            RunEvent(seq: 5, runID: "r", kind: .stepSucceeded, stepID: "a", attempt: 2, data: ["exit_code": 0]),
            RunEvent(seq: 6, runID: "r", kind: .stepSkipped, stepID: "b\u{e9}", data: ["reason": "dependency \"a\" failed"]),
            RunEvent(seq: 7, runID: "r", kind: .runFinished, data: ["status": "succeeded", "exit_code": 0]),
        ]
        for event in events {
            var line: [UInt8] = []
            EncodedEvent(event).appendLine(to: &line)
            #expect(String(decoding: line, as: UTF8.self) == event.json.serialized() + "\n", "seq \(event.seq)")
        }
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

    /// The gathering window counts from the oldest queued turn: turns that queued up while a
    /// commit was held up have waited already and go in right after it, without a fresh window
    /// (a writer that is behind never pauses; before, it slept a whole window after each commit).
    /// The lock's release and the commit are timed on a thread of their own, not on the pool.
    @Test func turnsQueuedDuringACommitAreNotGatheredAgain() async throws {
        let fixture = try Fixture(steps: 2)
        let recorder = try StoreRecorder(stateDirectory: fixture.state, runID: fixture.runID, coalescing: .milliseconds(500))
        let turns = fixture.turns()
        // Another process holds the state folder's lock (taken, released and timed on a thread
        // of its own): the first commit waits for it.
        let lockPath = fixture.path + "/state/runs.db.lock"
        let locked = Mutex(false), go = DispatchSemaphore(value: 0)
        let waited = Mutex<Duration?>(nil)
        Thread {
            guard let lock = try? FileLock(path: lockPath), (try? lock.lock(timeout: .seconds(5))) != nil else { return }
            locked.withLock { $0 = true }
            go.wait()
            // The second turn is older than the window when the lock comes free.
            usleep(800_000)
            let released = ContinuousClock.now
            lock.unlock()
            while recorder.durableSeq < 2 && ContinuousClock.now - released < .seconds(5) { usleep(2_000) }
            waited.withLock { $0 = ContinuousClock.now - released }
        }.start()
        while !locked.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        try await recorder.record(turns[0])
        // A waiter ends the first turn's window at once: the writer takes it, then waits for the lock.
        let first = Task.detached { try await recorder.waitUntilDurable(1) }
        try await Task.sleep(for: .milliseconds(100))
        try await recorder.record(turns[1])
        go.signal()
        try await first.value
        while waited.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(10)) }
        let after = try #require(waited.withLock { $0 })
        #expect(after < .milliseconds(350), "the second turn was committed \(after) after the lock was free; window 0.5 s")
        try await recorder.close()
        #expect(try fixture.storedSeqs() == [1, 2])
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

    /// A wait announced with `expectWait` for a turn the writer is gathering ends the window
    /// without a waiter. (A turn recorded after its wait was announced does not wake the writer:
    /// the announced wait commits it, see the tests below; a backlog of them does.)
    @Test func anAnnouncedWaitEndsTheWindowWithoutAWaiter() async throws {
        let fixture = try Fixture(steps: 2)
        // With a 10-minute window, a commit that waited for it would run into the time limit.
        let recorder = try StoreRecorder(stateDirectory: fixture.state, runID: fixture.runID, coalescing: .seconds(600))
        let turns = fixture.turns()
        try await recorder.record(turns[0] + turns[1])
        recorder.expectWait(for: 2)
        try await Self.waitForDurable(recorder, 2)
        #expect(try fixture.storedSeqs() == [1, 2])
        // The writer is gathering the next turn when the wait is announced.
        try await recorder.record(turns[2])
        recorder.expectWait(for: 3)
        try await Self.waitForDurable(recorder, 3)
        #expect(try fixture.storedSeqs() == [1, 2, 3])
        try await recorder.close()
    }

    /// A turn recorded after an announced wait does not wake the writer; when its waiter waits
    /// instead of committing it (the writer was busy), the waiter wakes the writer: it must not
    /// wait for the gathering window (600 s here, past the time limit) or forever.
    @Test func anAnnouncedTurnWhoseWaiterWaitsIsCommittedByTheWriter() async throws {
        let fixture = try Fixture(steps: 2)
        let recorder = try StoreRecorder(stateDirectory: fixture.state, runID: fixture.runID, coalescing: .seconds(600))
        let turns = fixture.turns()
        try await recorder.record(turns[0])
        try await recorder.waitUntilDurable(1)
        // Time for the writer to go back to sleep after that commit (without it the writer
        // may still see the next turn on its way back, and the test would prove less).
        try await Task.sleep(for: .milliseconds(200))
        recorder.expectWait(for: 3)
        try await recorder.record(turns[1] + turns[2])
        let waiter = Task { try await recorder.waitUntilDurable(3) }
        // Polled with a bound (20 s: far beyond one commit), so that a waiter nobody resumes
        // fails the test instead of hanging it; `close` then commits and resumes it.
        let deadline = ContinuousClock.now + .seconds(20)
        while recorder.durableSeq < 3 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(recorder.durableSeq == 3, "the waiter did not wake the writer")
        try await recorder.close()
        try await waiter.value
        #expect(try fixture.storedSeqs() == [1, 2, 3])
        #expect(recorder.recordCommitCount == 0, "a wait at FULL is the database's (the writer's)")
    }

    /// Callers committing on their own thread race the writer, which commits unannounced turns
    /// at once (no window). As the executor does, a caller announces a wait for an earlier
    /// turn (a dependency's result), records its turn without waking the writer, and starts
    /// at once when the writer's commit in flight met the wait meanwhile: the writer must then
    /// commit that turn by itself. Every event ends up committed exactly once, in order, in
    /// the database and in `events.jsonl`, and nothing stays queued without a commit coming.
    @Test(arguments: [17, 18, 19, 20])
    func callersAndTheWriterCommitEveryTurnOnceInOrder(seed: UInt64) async throws {
        let fixture = try Fixture(steps: 300)
        let recorder = try StoreRecorder(stateDirectory: fixture.state, runID: fixture.runID, coalescing: .zero)
        var generator = SplitMix64(seed: seed)
        var previous: Int64 = 0
        for turn in fixture.turns() {
            if previous > 0 && Bool.random(using: &generator) {
                if previous > recorder.durableSeq { recorder.expectWait(for: previous) }
                try await recorder.record(turn)
                // The executor's work between recording a turn and starting its steps, during
                // which the writer's commit in flight may end.
                try await Task.sleep(for: .microseconds(Int.random(in: 0...2000, using: &generator)))
                if previous > recorder.durableSeq {
                    if !recorder.commitIfIdle(upTo: previous) { try await recorder.waitUntilDurable(previous) }
                } else {
                    // The writer's commit met the wait after the turn was queued without a
                    // wake-up: no later turn wakes it here, the writer must commit this one
                    // by itself (20 s: far beyond one commit).
                    let deadline = ContinuousClock.now + .seconds(20)
                    while recorder.durableSeq < turn.last!.seq && ContinuousClock.now < deadline { await Task.yield() }
                    #expect(recorder.durableSeq >= turn.last!.seq, "a turn left queued without a commit coming")
                }
            } else {
                try await recorder.record(turn)
            }
            previous = turn.last!.seq
        }
        // No more wake-ups come: what is still queued must be committed by the writer alone
        // (20 s: far beyond a few commits).
        let deadline = ContinuousClock.now + .seconds(20)
        while recorder.durableSeq < previous && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(recorder.durableSeq == previous, "turns left queued without a commit coming")
        try await recorder.close()
        #expect(try fixture.storedSeqs() == Array(1...previous))
        // Each line starts with its `seq`: `{"seq":17,...`.
        let seqs = try String(contentsOfFile: recorder.eventsPath, encoding: .utf8).split(separator: "\n").map { line in
            Int64(line.dropFirst(#"{"seq":"#.count).prefix { $0.isNumber }) ?? -1
        }
        #expect(seqs == Array(1...previous))
    }

    /// Polls `durableSeq` (no waiter, which would end the window by itself).
    static func waitForDurable(_ recorder: StoreRecorder, _ seq: Int64) async throws {
        while recorder.durableSeq < seq { try await Task.sleep(for: .milliseconds(5)) }
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

    /// Whether another connection (here: this test, as another process would) could take the
    /// state folder's lock right now; it is released again at once.
    static func lockIsFree(_ fixture: Fixture) throws -> Bool {
        let lock = try FileLock(path: fixture.path + "/state/runs.db.lock")
        guard try lock.tryLock() else { return false }
        lock.unlock()
        return true
    }

    /// Polls (10 s at most) until the writer holds the state folder's lock.
    static func waitForTheWritersLock(_ fixture: Fixture) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while try lockIsFree(fixture) {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(2))
        }
        return true
    }

    /// A recorder with a 60 s window whose writer wakes to a backlog: the first
    /// `eagerEvents` turns of the fixture's run, recorded at once. Returns the recorder, all the
    /// turns and the backlog.
    static func recorderGivenABacklog(_ fixture: Fixture, eagerHold: Duration) async throws
        -> (StoreRecorder, [[RunEvent]], [RunEvent]) {
        let recorder = try StoreRecorder(stateDirectory: fixture.state, runID: fixture.runID, coalescing: .seconds(60),
                                         eagerHold: eagerHold)
        let turns = fixture.turns()
        let backlog = Array(turns[0..<StoreRecorder.eagerEvents].joined())
        try await recorder.record(backlog)
        return (recorder, turns, backlog)
    }

    /// A writer that wakes to a backlog (an in-process run: hundreds of events queued during
    /// the last commit) applies it at once, in a transaction that stays open for the rest of
    /// the window: the turns recorded meanwhile join it, nothing is visible before the commit,
    /// and a waiter then commits them all in one transaction.
    @Test func aBacklogIsAppliedAtOnceAndTheWindowsTurnsJoinItsTransaction() async throws {
        let fixture = try Fixture(steps: 20)
        let (recorder, turns, _) = try await Self.recorderGivenABacklog(fixture, eagerHold: .seconds(60))
        #expect(try await Self.waitForTheWritersLock(fixture), "the backlog was not applied while the window is open")
        #expect(try fixture.storedSeqs().isEmpty, "nothing is visible before the commit")
        for turn in turns[StoreRecorder.eagerEvents...] { try await recorder.record(turn) }
        try await recorder.waitUntilDurable(Int64(turns.count))
        #expect(recorder.commitCount == 1, "the window's turns went into the backlog's transaction")
        #expect(try fixture.storedSeqs() == Array(1...Int64(turns.count)))
        #expect(try Self.lockIsFree(fixture), "the lock is released with the commit")
        try await recorder.close()
        let lines = try String(contentsOfFile: recorder.eventsPath, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == turns.count, "events.jsonl holds every committed event once")
    }

    /// A lattice's layer: a wait for the layer's results is announced at its first turn, then
    /// the rest of the layer is recorded, and only then does anybody wait. The writer applies
    /// the layer as it grows (it holds the lock, nothing is committed), turns recorded while it
    /// streams join the transaction, and the wait ends it: one commit for the whole layer.
    /// (Before: every turn after the announcement was queued without waking the writer, which
    /// then applied the whole layer after the wait, while the executor had nothing to do.)
    @Test func aBacklogBehindAnAnnouncedWaitIsAppliedBeforeTheWait() async throws {
        let fixture = try Fixture(steps: 20)
        let recorder = try StoreRecorder(stateDirectory: fixture.state, runID: fixture.runID, coalescing: .seconds(600),
                                         eagerHold: .seconds(600))
        let turns = fixture.turns()
        try await recorder.record(turns[0])
        try await recorder.waitUntilDurable(1)
        // Time for the writer to go back to sleep after that commit.
        try await Task.sleep(for: .milliseconds(200))
        recorder.expectWait(for: 2)
        let layer = 1...StoreRecorder.eagerEvents
        for index in layer { try await recorder.record(turns[index]) }
        #expect(try await Self.waitForTheWritersLock(fixture), "the layer was not applied before the wait")
        #expect(recorder.durableSeq == 1, "nothing is committed before the wait")
        for turn in turns[(layer.upperBound + 1)...] { try await recorder.record(turn) }
        try await recorder.waitUntilDurable(Int64(turns.count))
        #expect(recorder.commitCount == 2, "the layer and the turns after it went into one transaction")
        #expect(try fixture.storedSeqs() == Array(1...Int64(turns.count)))
        #expect(try Self.lockIsFree(fixture))
        try await recorder.close()
    }

    /// A burst recorded while the writer gathers a window (an in-process lattice's layer, 16
    /// events or more within a millisecond, arriving while the writer waits out the window a
    /// turn before it opened) is applied at once, in a transaction that stays open for the
    /// rest; the wait commits it all. (Before: the writer slept through the window, 10 minutes
    /// here, and applied the layer only when somebody waited.)
    @Test func aBurstRecordedWhileTheWriterGathersIsAppliedAtOnce() async throws {
        let fixture = try Fixture(steps: 20)
        let recorder = try StoreRecorder(stateDirectory: fixture.state, runID: fixture.runID, coalescing: .seconds(600),
                                         eagerHold: .seconds(600))
        let turns = fixture.turns()
        try await recorder.record(turns[0])
        // The writer wakes for it and gathers its window, without the lock.
        try await Task.sleep(for: .milliseconds(200))
        #expect(try Self.lockIsFree(fixture))
        try await recorder.record(Array(turns[1...StoreRecorder.eagerEvents].joined()))
        #expect(try await Self.waitForTheWritersLock(fixture), "the burst waited for the window")
        #expect(recorder.durableSeq == 0, "nothing is committed before the wait")
        for turn in turns[(StoreRecorder.eagerEvents + 1)...] { try await recorder.record(turn) }
        try await recorder.waitUntilDurable(Int64(turns.count))
        #expect(recorder.commitCount == 1, "the window's turn, the burst and the turns after it went into one transaction")
        #expect(try fixture.storedSeqs() == Array(1...Int64(turns.count)))
        try await recorder.close()
    }

    /// A backlog's transaction is committed `eagerHold` after it began even though nobody waits
    /// and the window (60 s here) is far from over: the state folder's lock is not held longer.
    @Test func aBacklogsTransactionIsHeldNoLongerThanItsBound() async throws {
        let fixture = try Fixture(steps: 20)
        let (recorder, _, backlog) = try await Self.recorderGivenABacklog(fixture, eagerHold: .milliseconds(200))
        // Polled without a waiter (a waiter would end the transaction by itself); 20 s: far
        // beyond the bound, short of the window.
        let deadline = ContinuousClock.now + .seconds(20)
        while recorder.durableSeq < Int64(backlog.count) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(recorder.durableSeq == Int64(backlog.count), "the transaction outlived its bound")
        #expect(try Self.lockIsFree(fixture))
        try await recorder.close()
        #expect(try fixture.storedSeqs() == Array(1...Int64(backlog.count)))
    }

    /// A writer far behind does not take everything queued into one transaction (the state
    /// folder's lock is held while it is applied): at most `maxEventsPerCommit` events, whole
    /// turns, and the rest in the next transaction at once, by the writer alone. Three turns of
    /// 9,000 events each, two of which do not fit in one transaction: three transactions
    /// (without the bound: one, or the first turn and then the two others).
    @Test(arguments: [Duration.zero, .seconds(60)])
    func aBacklogIsCommittedInBoundedTransactions(eagerHold: Duration) async throws {
        let fixture = try Fixture(steps: 13_500)
        let recorder = try StoreRecorder(stateDirectory: fixture.state, runID: fixture.runID, coalescing: .seconds(60),
                                         eagerHold: eagerHold)
        let events = Array(fixture.turns().joined())
        let size = 9_000
        #expect(size <= StoreRecorder.maxEventsPerCommit && 2 * size > StoreRecorder.maxEventsPerCommit)
        for start in stride(from: 0, to: 3 * size, by: size) { try await recorder.record(Array(events[start..<start + size])) }
        try await recorder.waitUntilDurable(Int64(3 * size))
        #expect(recorder.commitCount == 3, "\(recorder.commitCount) transactions")
        try await recorder.close()
        #expect(try fixture.storedSeqs() == Array(1...Int64(3 * size)))
        let lines = try String(contentsOfFile: recorder.eventsPath, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3 * size)
    }

    /// A turn or two do not open the window's transaction: the writer gathers them without
    /// holding the state folder's lock, which other writers (a second engine, `cancel`) need.
    @Test func aTurnOrTwoAreGatheredWithoutHoldingTheLock() async throws {
        let fixture = try Fixture(steps: 2)
        let recorder = try StoreRecorder(stateDirectory: fixture.state, runID: fixture.runID, coalescing: .seconds(60))
        let turns = fixture.turns()
        try await recorder.record(turns[0])
        try await recorder.record(turns[1])
        for _ in 0..<50 {
            #expect(try Self.lockIsFree(fixture))
            try await Task.sleep(for: .milliseconds(4))
        }
        try await recorder.waitUntilDurable(2)
        #expect(try fixture.storedSeqs() == [1, 2])
        try await recorder.close()
    }

    /// A turn the store refuses (a second result for a step that succeeded) rolls back the
    /// whole window's transaction, the backlog applied before it included: nothing of it is in
    /// the database or in `events.jsonl`, its waiter gets the failure, and so does the next
    /// `record`.
    @Test func aRefusedTurnRollsBackTheBacklogAppliedBeforeIt() async throws {
        let fixture = try Fixture(steps: 20)
        let (recorder, turns, backlog) = try await Self.recorderGivenABacklog(fixture, eagerHold: .seconds(60))
        #expect(try await Self.waitForTheWritersLock(fixture))
        let next = Int64(backlog.count + 1)
        let second = RunEvent(seq: next, runID: fixture.runID, kind: .stepSucceeded, stepID: "s0", attempt: 1,
                              data: ["exit_code": 0])
        try await recorder.record([second])
        await #expect(throws: EngineError.self) { try await recorder.waitUntilDurable(next) }
        #expect(try fixture.storedSeqs().isEmpty, "the backlog went with the refused turn")
        #expect(try Self.lockIsFree(fixture))
        await #expect(throws: EngineError.self) { try await recorder.record(turns[StoreRecorder.eagerEvents]) }
        await #expect(throws: EngineError.self) { try await recorder.close() }
        let copied = (try? String(contentsOfFile: recorder.eventsPath, encoding: .utf8)) ?? ""
        #expect(copied.isEmpty, "nothing was copied to events.jsonl")
    }
}

/// Group commit writes a step that started and succeeded within one transaction as its final
/// rows at once. Whatever the split of a real run's events into transactions, the tables must
/// end up exactly as when every event is its own transaction.
@Suite("RunStore: batched events leave the same rows", .timeLimit(.minutes(1)))
struct RunStoreBatchingTests {
    static let plan = """
    {"plan_id": "BATCHES", "version": "1", "globals": {"max_concurrency": 3},
     "steps": [
      {"id": "a", "command": "true"},
      {"id": "b", "command": "sh", "args": ["-c", "exit 0"], "depends_on": ["a"]},
      {"id": "flaky", "command": "sh", "args": ["-c", "[ \\"$OMNIBASE_ATTEMPT\\" -ge 3 ] || exit 3"],
       "retries": 3, "retry_delay_sec": 0.01},
      {"id": "slow", "command": "sleep", "args": ["5"], "timeout_sec": 0.2, "critical": false, "on_failure": "continue"},
      {"id": "after-slow", "command": "true", "depends_on": ["slow"]},
      {"id": "optional", "command": "sh", "args": ["-c", "echo oops >&2; exit 1"], "critical": false,
       "on_failure": "skip_dependents"},
      {"id": "needs-optional", "command": "true", "depends_on": ["optional"], "critical": false},
      {"id": "z", "command": "true", "depends_on": ["b", "flaky"]}
     ]}
    """

    /// The rows of the tables the events change (the run's `created_at` is left out: each copy
    /// is created at its own time).
    static func tables(_ store: RunStore) throws -> [String: [Row]] {
        let db = store.database
        return [
            "runs": try db.query("SELECT run_id, status, exit_code, started_at, finished_at, \(store.lastSeqColumn) FROM runs"),
            "steps": try db.query("SELECT * FROM steps ORDER BY run_id, step_id"),
            "attempts": try db.query("SELECT * FROM attempts ORDER BY run_id, step_id, attempt"),
            "events": try db.query("SELECT * FROM events ORDER BY run_id, seq"),
        ]
    }

    @Test func anySplitIntoTransactionsGivesTheRowsOfOneEventPerTransaction() async throws {
        var template = Array((NSTemporaryDirectory() + "omnibase-batches-XXXXXX").utf8CString)
        let folder = String(cString: mkdtemp(&template)!)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Self.plan.write(toFile: folder + "/plan.json", atomically: true, encoding: .utf8)
        let loaded = try PlanLoader.load(path: folder + "/plan.json")
        let session = try RunSession(stateDirectory: folder + "/recorded")
        let report = try await session.start(loaded)
        #expect(report.status == .succeeded)
        let recorded = try RunStore(stateDirectory: session.stateDirectory, readOnly: true)
        let events = try recorded.events(report.runID)
        #expect(Set(events.map(\.kind)).isSuperset(of: [.stepStarted, .stepSucceeded, .stepAttemptFailed, .stepRetry,
                                                         .stepFailed, .stepSkipped, .runFinished]))

        func replay(into name: String, _ batches: [[RunEvent]]) throws -> [String: [Row]] {
            let store = try RunStore(stateDirectory: StateDirectory(path: folder + "/" + name))
            try store.createRun(RunStore.NewRun(runID: report.runID, planID: loaded.plan.id, traceID: "t", source: loaded.source,
                                                options: .object([]), stepIDs: loaded.graph.ids, engine: .current))
            for group in batches { try store.append(batches: [group]) }
            return try Self.tables(store)
        }
        let reference = try replay(into: "one-per-transaction", events.map { [$0] })
        #expect(reference["attempts"]?.count == 9, "a, b, 3 flaky, slow, after-slow, optional, z: \(reference["attempts"] ?? [])")

        #expect(try replay(into: "one-transaction", [events]) == reference)
        var generator = SplitMix64(seed: 7)
        for split in 0..<20 {
            var batches: [[RunEvent]] = []
            var rest = events[...]
            while !rest.isEmpty {
                let size = Int.random(in: 1...max(1, rest.count), using: &generator)
                batches.append(Array(rest.prefix(size)))
                rest = rest.dropFirst(size)
            }
            #expect(try replay(into: "split-\(split)", batches) == reference, "split \(batches.map(\.count))")
        }
        // And what the engine itself wrote, through the recorder's gathering.
        let written = try Self.tables(recorded)
        #expect(written["steps"] == reference["steps"])
        #expect(written["attempts"] == reference["attempts"])
        #expect(written["events"] == reference["events"])
    }

    /// Many attempts that start and succeed within one transaction (each written as its final
    /// rows at once), with other events among them, job ids, a retried step and interleaved
    /// starts, give the rows of one event per transaction.
    @Test func manyStartedAndSucceededAttemptsGiveTheRowsOfOneEventPerTransaction() throws {
        var template = Array((NSTemporaryDirectory() + "omnibase-pairs-XXXXXX").utf8CString)
        let folder = String(cString: mkdtemp(&template)!)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let runID = "run-pairs"
        let steps = (0..<150).map { "s\($0)" }
        var events: [RunEvent] = []
        func add(_ kind: RunEvent.Kind, _ step: String? = nil, attempt: Int? = nil, data: JSONValue? = nil) {
            events.append(RunEvent(seq: Int64(events.count + 1), runID: runID, kind: kind, stepID: step, attempt: attempt, data: data))
        }
        add(.runStarted, data: ["plan_id": "p", "steps": 150, "max_concurrency": 4])
        var generator = SplitMix64(seed: 11)
        var open: [String] = []
        func finish(_ done: String) {
            let number = Int(done.dropFirst())!
            if number % 17 == 5 {
                add(.stepAttemptFailed, done, attempt: 1, data: ["exit_code": 3])
                add(.stepRetry, done, attempt: 1, data: ["delay_sec": 0])
                add(.stepStarted, done, attempt: 2)
                add(.stepSucceeded, done, attempt: 2, data: ["exit_code": 0])
            } else if number % 9 == 4 {
                add(.stepSucceeded, done, attempt: 1, data: ["exit_code": 0, "job_id": .string("job-\(number)")])
            } else {
                add(.stepSucceeded, done, attempt: 1, data: ["exit_code": 0])
            }
        }
        for (index, step) in steps.enumerated() {
            add(.stepStarted, step, attempt: 1)
            open.append(step)
            // Up to three steps run at once; each ends in a random order.
            while open.count > Int.random(in: 0...2, using: &generator) {
                finish(open.remove(at: Int.random(in: 0..<open.count, using: &generator)))
            }
            if index == 60 { add(.stepSkipped, "never-started", data: ["reason": "test"]) }
        }
        open.forEach(finish)
        add(.runFinished, data: ["status": "succeeded", "exit_code": 0])

        func replay(into name: String, _ batches: [[RunEvent]]) throws -> [String: [Row]] {
            let store = try RunStore(stateDirectory: StateDirectory(path: folder + "/" + name))
            var source = PlanSource(displayPath: "p.json", directory: folder, bytes: Array("{}".utf8), overrides: [:])
            source.envFiles = [:]
            try store.createRun(RunStore.NewRun(runID: runID, planID: "p", traceID: "t", source: source,
                                                options: .object([]), stepIDs: steps + ["never-started"], engine: .current))
            for group in batches { try store.append(batches: [group]) }
            return try Self.tables(store)
        }
        let reference = try replay(into: "one-per-transaction", events.map { [$0] })
        let attempts = try #require(reference["attempts"])
        #expect(attempts.count == 150 + steps.indices.filter { $0 % 17 == 5 }.count)
        #expect(attempts.filter { $0.string(12)?.hasPrefix("job-") == true }.count == steps.indices.filter { $0 % 9 == 4 && $0 % 17 != 5 }.count)
        #expect(try replay(into: "one-transaction", [events]) == reference)
        for split in 0..<10 {
            var batches: [[RunEvent]] = []
            var rest = events[...]
            while !rest.isEmpty {
                let size = Int.random(in: 1...max(1, min(rest.count, 120)), using: &generator)
                batches.append(Array(rest.prefix(size)))
                rest = rest.dropFirst(size)
            }
            #expect(try replay(into: "split-\(split)", batches) == reference, "split \(batches.map(\.count))")
        }
    }
}
