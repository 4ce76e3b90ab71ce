import Foundation
import Testing
@testable import Agents
import Orchestration

/// The Ralph loop's decision rules, the completion promise and the scheduler, without processes.
@Suite("Loop rules: verdicts, completion promises, scheduling", .tags(.unit))
struct LoopRulesTests {
    func observe(exit: Int32? = 0, check: Bool? = nil, promise: Bool? = nil, budget: Int = 1, max: Int = 5,
                 streak: Int = 0, stallAfter: Int = 3) -> IterationVerdict {
        IterationVerdict.decide(.init(exitStatus: exit, checkPassed: check, promiseFound: promise, budgetUsed: budget,
                                      maxRetries: max, unchangedStreak: streak, stallAfter: stallAfter))
    }

    @Test func exit42IsBlockedWhateverElseHappened() {
        #expect(observe(exit: 42, check: true) == .blocked)
        #expect(observe(exit: 42, promise: true, budget: 5, max: 5) == .blocked)
    }

    @Test func checkAndPromiseMustAgree() {
        #expect(observe(check: true) == .done)
        #expect(observe(promise: true) == .done)
        #expect(observe(check: true, promise: true) == .done)
        #expect(observe(check: true, promise: false).name == "not_yet")
        #expect(observe(check: false, promise: true).name == "not_yet")
    }

    @Test func completionOnTheLastAllowedIterationCounts() {
        #expect(observe(check: true, budget: 3, max: 3) == .done)
        #expect(observe(check: false, budget: 3, max: 3).name == "failed")
        #expect(observe(check: false, budget: 2, max: 3).name == "not_yet")
    }

    @Test func stallNeedsTheStreak() {
        #expect(observe(check: false, streak: 3, stallAfter: 3).name == "stalled")
        #expect(observe(check: false, streak: 2, stallAfter: 3).name == "not_yet")
        #expect(observe(check: false, streak: 9, stallAfter: 0).name == "not_yet", "stall_after 0 turns it off")
        #expect(observe(check: true, streak: 9, stallAfter: 3) == .done, "done wins over a stall")
    }

    @Test func promiseMustBeAloneOnItsLine() {
        #expect(CompletionPromise.isPresent("DONE", in: "working...\n<promise>DONE</promise>\n"))
        #expect(CompletionPromise.isPresent("DONE", in: "  <promise>DONE</promise>\r\n"))
        #expect(!CompletionPromise.isPresent("DONE", in: "I will print <promise>DONE</promise> when I am done.\n"))
        #expect(!CompletionPromise.isPresent("DONE", in: "Done: <promise>DONE</promise>"))
        #expect(!CompletionPromise.isPresent("DONE", in: "<promise>done</promise>"))
        #expect(!CompletionPromise.isPresent("DONE", in: "<promise>DONE</promise>."))
        #expect(CompletionPromise.isPresent("SHIPPED", in: "<promise>SHIPPED</promise>"))
    }

    /// The log file is matched as it is read, with the same rules as a text (it was read whole
    /// into memory): the same answers, a tag after a line of 1 MiB, a tag on the last line
    /// without a newline, no tag inside a long line.
    @Test func promiseInAFileFollowsTheSameRules() throws {
        let cases = ["working...\n<promise>DONE</promise>\n", "  <promise>DONE</promise>\r\n",
                     "I will print <promise>DONE</promise> when I am done.\n", "Done: <promise>DONE</promise>",
                     "<promise>done</promise>", "<promise>DONE</promise>.", "<promise>DONE</promise>", "",
                     String(repeating: "x", count: 1 << 20) + "\n\t<promise>DONE</promise> \n",
                     String(repeating: "x", count: 1 << 20) + "<promise>DONE</promise>\n",
                     "<promise>DONE</promise>" + String(repeating: " ", count: 100_000) + "x\n"]
        let path = NSTemporaryDirectory() + "promise-\(UUID().uuidString)"
        defer { unlink(path) }
        for text in cases {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            #expect(CompletionPromise.isPresent("DONE", inFile: path) == CompletionPromise.isPresent("DONE", in: text),
                    "\(text.prefix(40).debugDescription)... (\(text.utf8.count) bytes)")
        }
        #expect(!CompletionPromise.isPresent("DONE", inFile: path + ".missing"))
    }

    @Test func waitConditionNeedsEveryNameOrAnEventForTheTask() {
        func event(_ seq: Int64, _ name: String, task: String? = nil, source: String = "cli") -> CIEvent {
            CIEvent(seq: seq, id: "\(seq)", name: name, task: task, data: nil, source: source, timestamp: "")
        }
        let both = BusWaitCondition(task: "T", names: ["a", "b"])
        #expect(both.match([event(1, "a")]) == nil)
        #expect(both.match([event(1, "a"), event(2, "b")])?.map(\.seq) == [1, 2])
        #expect(both.match([event(1, "a", task: "other"), event(2, "b")]) == nil, "an event for another task does not count")
        #expect(both.match([event(1, "anything", task: "T")])?.map(\.seq) == [1], "any event for the task counts")
        #expect(both.match([event(1, "ci.failed", task: "T", source: CIEventBus.engineSource)]) == nil,
                "the engine's own CI reports do not wake the task")
        let any = BusWaitCondition(task: "T", names: [])
        #expect(any.match([event(1, "a")]) == nil)
        #expect(any.match([event(1, "a", task: "T")]) != nil)
    }

    @Test func schedulerStartsReadyTasksWithinCapacityAndNeverStartsDependentsOfFailures() throws {
        let text = """
        {"project": "p", "roles": {"r": {"agent": {"command": "x"}, "max_parallel": 1}, "s": {"agent": {"command": "x"}, "max_parallel": 2}},
         "milestones": [{"id": "M", "tasks": ["A", "B", "C", "D"]}],
         "tasks": [{"id": "A", "role": "r"}, {"id": "B", "role": "r"}, {"id": "C", "role": "s", "depends_on": ["A"]},
                   {"id": "D", "role": "s", "depends_on": ["C"]}]}
        """
        let plan = try ProjectPlanLoader.load(bytes: Array(text.utf8), displayPath: "plan.json", directory: "/p")
        var scheduler = ProjectScheduler(plan: plan, states: [:], autoSpawn: true)
        #expect(scheduler.takeStartable() == [0], "role r has one slot")
        #expect(scheduler.takeStartable() == [])
        scheduler.finished(0, .failed("budget"))
        #expect(scheduler.takeStartable() == [1], "B takes the freed slot; C can never start")
        #expect(scheduler.unreachableReason(2) == "its dependency A failed")
        #expect(scheduler.unreachableReason(3) == "its dependency C cannot start (its dependency A failed)")
        #expect(!scheduler.isSettled)
        scheduler.finished(1, .done)
        #expect(scheduler.takeStartable() == [])
        #expect(scheduler.isSettled)
        do {
            try scheduler.request(2)
            Issue.record("C can never start")
        } catch {
            #expect(error.code == .notReady)
        }
    }

    @Test func schedulerRestartsInterruptedTasksFirstAndHonoursSpawnRequests() throws {
        let text = """
        {"project": "p", "roles": {"r": {"agent": {"command": "x"}, "max_parallel": 1}},
         "milestones": [{"id": "M", "tasks": ["A", "B"]}], "tasks": [{"id": "A", "role": "r"}, {"id": "B", "role": "r"}]}
        """
        let plan = try ProjectPlanLoader.load(bytes: Array(text.utf8), displayPath: "plan.json", directory: "/p")
        var resumed = ProjectScheduler(plan: plan, states: ["A": .pending, "B": .blocked], autoSpawn: true)
        #expect(resumed.takeStartable() == [1], "the task that was blocked when the engine died goes first")
        var manual = ProjectScheduler(plan: plan, states: [:], autoSpawn: false)
        #expect(manual.takeStartable() == [])
        try manual.request(1)
        #expect(manual.takeStartable() == [1])
        try manual.request(0)
        #expect(manual.takeStartable() == [], "requested, but the role's one slot is taken")
        #expect(throws: AgentSpawnError.self) { try manual.request(1) }
        manual.finished(1, .failed("x"))
        #expect(manual.takeStartable() == [0])
    }

    @Test func aBlockedTaskGivesItsSlotBackAndTakesTheNextOneWhenWoken() throws {
        let text = """
        {"project": "p", "roles": {"r": {"agent": {"command": "x"}, "max_parallel": 1}},
         "milestones": [{"id": "M", "tasks": ["A", "B", "C"]}],
         "tasks": [{"id": "A", "role": "r"}, {"id": "B", "role": "r"}, {"id": "C", "role": "r"}]}
        """
        let plan = try ProjectPlanLoader.load(bytes: Array(text.utf8), displayPath: "plan.json", directory: "/p")
        var scheduler = ProjectScheduler(plan: plan, states: [:], autoSpawn: true)
        #expect(scheduler.takeStartable() == [0])
        scheduler.park(0)
        #expect(scheduler.takeStartable() == [1], "A waits on the bus: B takes its slot")
        #expect(!scheduler.isSettled, "a parked task still runs")
        let gotSlot = scheduler.reclaim(0)
        #expect(!gotSlot, "A is woken while B holds the slot: it waits")
        scheduler.finished(1, .done)
        let granted = scheduler.grantReclaimed()
        #expect(granted == [0], "the freed slot goes to the woken task...")
        #expect(scheduler.takeStartable() == [], "...not to C")
        scheduler.park(0)
        #expect(scheduler.takeStartable() == [2])
        let again = scheduler.reclaim(0)
        #expect(!again)
        scheduler.finished(0, .interrupted)
        let none = scheduler.grantReclaimed()
        #expect(none.isEmpty, "a task that ended while parked wants no slot")
        #expect(scheduler.runningPerRole["r"] == 1, "C alone holds the slot")
        scheduler.finished(2, .done)
        #expect(scheduler.runningPerRole["r"] == 0)
        #expect(scheduler.takeStartable() == [0], "A, interrupted, starts again")
    }

    @Test func schedulerActionsSettleReportUnreachableOnceAndFinishAfterTheTracker() throws {
        let text = """
        {"project": "p", "roles": {"r": {"agent": {"command": "x"}, "max_parallel": 2}},
         "milestones": [{"id": "M", "tasks": ["A", "B", "C"]}],
         "tasks": [{"id": "A", "role": "r"}, {"id": "B", "role": "r", "depends_on": ["A"]}, {"id": "C", "role": "r"}]}
        """
        let plan = try ProjectPlanLoader.load(bytes: Array(text.utf8), displayPath: "plan.json", directory: "/p")
        var rules = ProjectScheduler(plan: plan, states: [:], autoSpawn: true)
        #expect(rules.advance() == [.start(0), .start(2)])
        #expect(rules.taskFinished(0, .failed("budget")) == [.settle(0, .failed, reason: "budget")])
        #expect(rules.advance() == [], "C still runs")
        #expect(rules.taskFinished(2, .interrupted) == [], "an interrupted task settles nothing...")
        #expect(rules.advance() == [.start(2)], "...and starts again")
        #expect(rules.taskFinished(2, .done) == [.settle(2, .done, reason: nil)])
        #expect(rules.advance() == [.settle(1, nil, reason: "its dependency A failed")], "reported once the project settles")
        rules.settlementProcessed()
        rules.settlementProcessed()
        #expect(rules.advance() == [], "one settlement is still with the tracker")
        rules.settlementProcessed()
        #expect(rules.advance() == [.finish])
    }

    @Test func schedulerActionsStopCancelsOnceGrantsWokenTasksAndFinishesWhenNothingRuns() throws {
        let text = """
        {"project": "p", "roles": {"r": {"agent": {"command": "x"}, "max_parallel": 1}},
         "milestones": [{"id": "M", "tasks": ["A", "B"]}], "tasks": [{"id": "A", "role": "r"}, {"id": "B", "role": "r"}]}
        """
        let plan = try ProjectPlanLoader.load(bytes: Array(text.utf8), displayPath: "plan.json", directory: "/p")
        var rules = ProjectScheduler(plan: plan, states: [:], autoSpawn: true)
        #expect(rules.advance() == [.start(0)])
        rules.park(0)
        #expect(rules.advance() == [.start(1)], "A waits on the bus: B takes its slot")
        #expect(rules.reclaimRequested(0) == [], "woken while B holds the slot: A waits")
        #expect(rules.stopRequested() == [.cancelAll])
        #expect(rules.stopRequested() == [], "a second stop changes nothing")
        #expect(rules.reclaimRequested(1) == [.grant(1)], "stopping: a woken task goes on at once")
        do {
            try rules.request(1)
            Issue.record("no spawn while stopping")
        } catch {
            #expect(error.code == .notRunning)
        }
        #expect(rules.advance() == [], "A and B still run")
        #expect(rules.taskFinished(0, .interrupted) == [])
        #expect(rules.taskFinished(1, .interrupted) == [])
        #expect(rules.advance() == [.finish])
    }
}
