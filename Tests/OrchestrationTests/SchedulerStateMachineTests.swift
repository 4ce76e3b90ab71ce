import Testing
@testable import Orchestration

/// A plan for the state machine: steps with dependencies and policies.
struct MachineStep {
    var id: String
    var deps: [String] = []
    var retries = 0
    var delay: Double = 1
    var backoff: RetryPolicy.Backoff = .exponential
    var maxDelay: Double = 300
    var critical = true
    var onFailure: FailurePolicy = .abort
    /// An `"if"` expression.
    var condition: String?

    init(_ id: String, _ deps: [String] = [], retries: Int = 0, delay: Double = 1,
         backoff: RetryPolicy.Backoff = .exponential, maxDelay: Double = 300, critical: Bool = true,
         onFailure: FailurePolicy = .abort, if condition: String? = nil) {
        self.id = id
        self.deps = deps
        self.retries = retries
        self.delay = delay
        self.backoff = backoff
        self.maxDelay = maxDelay
        self.critical = critical
        self.onFailure = onFailure
        self.condition = condition
    }

    var step: Step {
        Step(id: id, action: .closure { _ in }, dependsOn: deps,
             retry: RetryPolicy(retries: retries, delay: .seconds(delay), backoff: backoff, maxDelay: .seconds(maxDelay)),
             critical: critical, onFailure: onFailure,
             condition: condition.map { text in
                 do { return try StepCondition(parsing: text) } catch { preconditionFailure("bad test condition \(text): \(error)") }
             })
    }
}

/// Drives the state machine like the executor does, with scripted attempt results, and records
/// everything that happened.
struct Simulation {
    var statuses: [String: StepStatus] = [:]
    var reasons: [String: SchedulerStateMachine.FinishReason] = [:]
    var attempts: [String: Int] = [:]
    var retryDelays: [String: [Duration]] = [:]
    var startOrder: [String] = []
    var runStatus: RunStatus?
    var maxRunning = 0
    var terminateRequested = false
    /// The steps whose conditions were decided, in order, with the answer.
    var decisions: [(id: String, holds: Bool)] = []
    /// `start:ID` and `end:ID` in the order they happened.
    var log: [String] = []

    /// Runs a plan. `outcomes[id]` lists each attempt's result (missing = succeeded).
    /// `stopAfterStarts`: request a stop once that many attempts have started.
    init(_ steps: [MachineStep], concurrency: Int = 4, outcomes: [String: [AttemptOutcome.Result]] = [:],
         initial: [SchedulerStateMachine.InitialState]? = nil, stopAfterStarts: Int? = nil,
         variables: [String: String] = [:], outputs: [String: [String: String]] = [:],
         finishOrder: (inout [Int]) -> Int = { $0.removeFirst() }) throws {
        let graph = try PlanGraph(steps: steps.map(\.step))
        var machine = SchedulerStateMachine(graph: graph, policies: steps.map { .init($0.step) },
                                            maxConcurrency: concurrency, initial: initial)
        var actions: [SchedulerStateMachine.Action] = []
        var running: [Int] = []
        var timers: [Int] = []
        var stopped = false
        machine.start(into: &actions)
        var guardCounter = 0
        while true {
            guardCounter += 1
            precondition(guardCounter < 100_000, "simulation does not terminate")
            var index = 0
            while index < actions.count {
                let action = actions[index]
                index += 1
                switch action {
                case .evaluateCondition(let step):
                    // As the executor does: decide now, answer before anything else.
                    let condition = steps[step].step.condition!
                    let (success, failure) = machine.conditionInputs(of: step)
                    let snapshot = machine
                    let holds = condition.evaluate(StepCondition.Inputs(
                        success: success, failure: failure, variable: { variables[$0] },
                        status: { id in graph.indexByID[id].map { snapshot.status(of: $0) } },
                        output: { outputs[$0]?[$1] }))
                    decisions.append((graph.ids[step], holds))
                    machine.conditionEvaluated(step, holds: holds, into: &actions)
                case .start(let step, let attempt):
                    let id = graph.ids[step]
                    // Every dependency is final (and, unless its condition awaits any outcome,
                    // lets it run) when it starts.
                    for dep in graph.dependencies[step] {
                        let status = machine.status(of: Int(dep))
                        let excluded = reasons[graph.ids[Int(dep)]] == .outsideSelection
                        let anyOutcome = steps[step].step.condition?.awaitsAnyOutcome ?? false
                        precondition(status == .succeeded || status == .failed || excluded || (anyOutcome && status.isFinal),
                                     "\(id) started before \(graph.ids[Int(dep)])")
                    }
                    attempts[id] = attempt
                    startOrder.append(id)
                    log.append("start:\(id)")
                    running.append(step)
                case .scheduleRetry(let step, _, let delay):
                    retryDelays[graph.ids[step], default: []].append(delay)
                    timers.append(step)
                case .finish(let step, let status, let reason):
                    log.append("end:\(graph.ids[step])")
                    statuses[graph.ids[step]] = status
                    reasons[graph.ids[step]] = reason
                case .terminateRunning:
                    terminateRequested = true
                case .runFinished(let status):
                    precondition(runStatus == nil, "run finished twice")
                    runStatus = status
                }
            }
            actions.removeAll()
            maxRunning = max(maxRunning, running.count)
            if runStatus != nil { break }
            if let limit = stopAfterStarts, !stopped, startOrder.count >= limit {
                stopped = true
                machine.stop(into: &actions)
                continue
            }
            if !running.isEmpty {
                let step = finishOrder(&running)
                let id = graph.ids[step]
                var result = outcomes[id].flatMap { $0.indices.contains(attempts[id]! - 1) ? $0[attempts[id]! - 1] : nil } ?? .succeeded
                if terminateRequested { result = .cancelled }
                machine.attemptFinished(step, result, into: &actions)
            } else if !timers.isEmpty {
                machine.retryTimerFired(timers.removeFirst(), into: &actions)
            } else {
                preconditionFailure("nothing running, no timer, run not finished")
            }
        }
        #expect(machine.maxRunningObserved <= concurrency)
    }
}

@Suite("Scheduler state machine (SPEC §2)")
struct SchedulerStateMachineTests {
    @Test func everyStepSucceedsInDependencyOrder() throws {
        let sim = try Simulation([MachineStep("a"), MachineStep("b", ["a"]), MachineStep("c", ["b"])])
        #expect(sim.startOrder == ["a", "b", "c"])
        #expect(sim.statuses == ["a": .succeeded, "b": .succeeded, "c": .succeeded])
        #expect(sim.runStatus == .succeeded)
    }

    @Test func aStepGetsOnePlusRetriesAttempts() throws {
        let sim = try Simulation([MachineStep("a", retries: 2)], outcomes: ["a": [.failed, .failed, .failed]])
        #expect(sim.attempts["a"] == 3)
        #expect(sim.statuses["a"] == .failed)
        #expect(sim.runStatus == .failed)
    }

    @Test func aRetryThatSucceedsEndsSucceeded() throws {
        let sim = try Simulation([MachineStep("a", retries: 3), MachineStep("b", ["a"])],
                                 outcomes: ["a": [.failed, .failed, .succeeded]])
        #expect(sim.attempts["a"] == 3)
        #expect(sim.statuses == ["a": .succeeded, "b": .succeeded])
        #expect(sim.runStatus == .succeeded)
    }

    @Test func exponentialBackoffDoublesUpToTheCap() throws {
        let sim = try Simulation([MachineStep("a", retries: 5, delay: 1.5, maxDelay: 10)],
                                 outcomes: ["a": Array(repeating: .failed, count: 6)])
        #expect(sim.retryDelays["a"] == [.seconds(1.5), .seconds(3), .seconds(6), .seconds(10), .seconds(10)])
    }

    @Test func fixedBackoffWaitsTheSameEveryTime() throws {
        let sim = try Simulation([MachineStep("a", retries: 3, delay: 2, backoff: .fixed)],
                                 outcomes: ["a": Array(repeating: .failed, count: 4)])
        #expect(sim.retryDelays["a"] == [.seconds(2), .seconds(2), .seconds(2)])
    }

    @Test func retryDelayFormula() {
        let policy = RetryPolicy(retries: 100, delay: .seconds(1), backoff: .exponential, maxDelay: .seconds(300))
        #expect(policy.delay(beforeRetry: 1) == .seconds(1))
        #expect(policy.delay(beforeRetry: 2) == .seconds(2))
        #expect(policy.delay(beforeRetry: 9) == .seconds(256))
        #expect(policy.delay(beforeRetry: 10) == .seconds(300))
        #expect(policy.delay(beforeRetry: 100) == .seconds(300), "no overflow for large k")
        #expect(RetryPolicy(retries: 1, delay: .zero).delay(beforeRetry: 1) == .zero)
    }

    @Test func criticalAbortCancelsEverythingNotStartedAndRunningStepsKeepTheirResult() throws {
        // a and b run together; a fails (abort, critical) while b is still running.
        let sim = try Simulation(
            [MachineStep("a"), MachineStep("b"), MachineStep("c", ["a"]), MachineStep("d", ["b"]), MachineStep("e")],
            concurrency: 2, outcomes: ["a": [.failed]])
        #expect(sim.statuses["a"] == .failed)
        #expect(sim.statuses["b"] == .succeeded, "b was running and keeps its result")
        #expect(sim.statuses["c"] == .cancelled)
        #expect(sim.statuses["d"] == .cancelled, "nothing starts after the abort, even if its dependency succeeded")
        #expect(sim.statuses["e"] == .cancelled)
        #expect(sim.reasons["e"] == .aborted(by: 0))
        #expect(sim.startOrder.sorted() == ["a", "b"])
        #expect(sim.runStatus == .failed)
    }

    @Test func aRunningStepThatFailsAfterAnAbortIsNotRetried() throws {
        let sim = try Simulation([MachineStep("a"), MachineStep("b", retries: 3)], concurrency: 2,
                                 outcomes: ["a": [.failed], "b": [.failed, .succeeded]])
        #expect(sim.attempts["b"] == 1)
        #expect(sim.statuses["b"] == .failed)
        #expect(sim.runStatus == .failed)
    }

    @Test func nonCriticalAbortActsAsSkipDependents() throws {
        let sim = try Simulation(
            [MachineStep("a", critical: false, onFailure: .abort), MachineStep("b", ["a"]), MachineStep("c", ["b"]),
             MachineStep("d")],
            concurrency: 1, outcomes: ["a": [.failed]])
        #expect(sim.statuses == ["a": .failed, "b": .skipped, "c": .skipped, "d": .succeeded])
        #expect(sim.reasons["b"] == .dependencyBlocked(dependency: 0))
        #expect(sim.reasons["c"] == .dependencyBlocked(dependency: 1))
        // b and c are critical and did not succeed.
        #expect(sim.runStatus == .failed)
    }

    @Test func nonCriticalFailureWithNonCriticalDependentsLetsTheRunSucceed() throws {
        let sim = try Simulation(
            [MachineStep("a", critical: false, onFailure: .skipDependents), MachineStep("b", ["a"], critical: false),
             MachineStep("c")],
            outcomes: ["a": [.failed]])
        #expect(sim.statuses == ["a": .failed, "b": .skipped, "c": .succeeded])
        #expect(sim.runStatus == .succeeded)
    }

    @Test func skipDependentsSkipsDownstreamOnlyAndTheRestGoesOn() throws {
        let sim = try Simulation(
            [MachineStep("a", onFailure: .skipDependents), MachineStep("b", ["a"]), MachineStep("c", ["b", "d"]),
             MachineStep("d"), MachineStep("e", ["d"])],
            concurrency: 1, outcomes: ["a": [.failed]])
        #expect(sim.statuses == ["a": .failed, "b": .skipped, "c": .skipped, "d": .succeeded, "e": .succeeded])
        #expect(sim.runStatus == .failed)
    }

    @Test func continueLetsDependentsRun() throws {
        let sim = try Simulation([MachineStep("a", onFailure: .continue), MachineStep("b", ["a"])],
                                 outcomes: ["a": [.failed]])
        #expect(sim.statuses == ["a": .failed, "b": .succeeded])
        #expect(sim.runStatus == .failed, "a critical step failed")
        let lenient = try Simulation([MachineStep("a", critical: false, onFailure: .continue), MachineStep("b", ["a"])],
                                     outcomes: ["a": [.failed]])
        #expect(lenient.runStatus == .succeeded)
    }

    @Test func aSkippedOrCancelledDependencySkipsTransitively() throws {
        // x fails with skip_dependents -> y skipped -> z skipped even though z also depends on w.
        let sim = try Simulation(
            [MachineStep("x", onFailure: .skipDependents), MachineStep("w"), MachineStep("y", ["x"]),
             MachineStep("z", ["y", "w"])],
            concurrency: 1, outcomes: ["x": [.failed]])
        #expect(sim.statuses["y"] == .skipped)
        #expect(sim.statuses["z"] == .skipped)
        #expect(sim.statuses["w"] == .succeeded)
    }

    @Test func neverMoreThanTheLimitAndDependencyOrderOnRandomDAGs() throws {
        var generator = SplitMix64(seed: 42)
        for _ in 0..<300 {
            let count = Int.random(in: 1...40, using: &generator)
            var steps: [MachineStep] = []
            for index in 0..<count {
                var deps: Set<String> = []
                if index > 0 {
                    for _ in 0..<Int.random(in: 0...3, using: &generator) {
                        deps.insert("s\(Int.random(in: 0..<index, using: &generator))")
                    }
                }
                steps.append(MachineStep("s\(index)", deps.sorted()))
            }
            let limit = Int.random(in: 1...5, using: &generator)
            var order = generator
            let sim = try Simulation(steps, concurrency: limit) { running in
                running.remove(at: Int.random(in: 0..<running.count, using: &order))
            }
            #expect(sim.maxRunning <= limit)
            #expect(sim.runStatus == .succeeded)
            #expect(sim.startOrder.count == count)
        }
    }

    @Test func theLongestRemainingPathStartsFirst() throws {
        // short has nothing after it; long heads a chain of 3. One slot: long goes first even
        // though short comes first in the plan.
        let sim = try Simulation([MachineStep("short"), MachineStep("long"), MachineStep("l2", ["long"]),
                                  MachineStep("l3", ["l2"])], concurrency: 1)
        #expect(sim.startOrder.first == "long")
    }

    @Test func aStopCancelsPendingStepsAndTearsDownRunningOnes() throws {
        let sim = try Simulation([MachineStep("a"), MachineStep("b"), MachineStep("c", ["a"])], concurrency: 2,
                                 stopAfterStarts: 2)
        #expect(sim.terminateRequested)
        #expect(sim.statuses == ["a": .cancelled, "b": .cancelled, "c": .cancelled])
        #expect(sim.reasons["c"] == .interrupted)
        #expect(sim.runStatus == .cancelled)
    }

    @Test func aStopDuringARetryWaitCancelsTheStepAndItsTimerIsIgnored() throws {
        let graph = try PlanGraph(steps: [MachineStep("a", retries: 2).step])
        var machine = SchedulerStateMachine(graph: graph, policies: [.init(MachineStep("a", retries: 2).step)],
                                            maxConcurrency: 1)
        var actions: [SchedulerStateMachine.Action] = []
        machine.start(into: &actions)
        #expect(actions == [.start(step: 0, attempt: 1)])
        actions.removeAll()
        machine.attemptFinished(0, .failed, into: &actions)
        #expect(actions == [.scheduleRetry(step: 0, attempt: 2, delay: .seconds(1))])
        actions.removeAll()
        machine.stop(into: &actions)
        #expect(actions == [.finish(step: 0, status: .cancelled, reason: .interrupted), .runFinished(.cancelled)])
        actions.removeAll()
        machine.retryTimerFired(0, into: &actions)
        #expect(actions.isEmpty)
    }

    @Test func excludedStepsAreSkippedSatisfyDependentsAndDoNotCount() throws {
        let sim = try Simulation([MachineStep("a"), MachineStep("b", ["a"]), MachineStep("c", ["b"])],
                                 initial: [.excluded, .pending, .excluded])
        #expect(sim.statuses == ["a": .skipped, "b": .succeeded, "c": .skipped])
        #expect(sim.reasons["a"] == .outsideSelection)
        #expect(sim.startOrder == ["b"])
        #expect(sim.runStatus == .succeeded)
    }

    /// Steps the caller keeps out (a stage's open circuit breakers) end skipped with its reason,
    /// skip their dependents (a cleanup with `always()` still runs) and count in the run's status.
    @Test func notStartedStepsAreSkippedWithTheirReasonSkipTheirDependentsAndCount() throws {
        let steps = [MachineStep("a"), MachineStep("b", ["a"]), MachineStep("c"), MachineStep("d", ["b"], if: "always()")]
        let sim = try Simulation(steps, initial: [.notStarted(reason: "circuit open"), .pending, .pending, .pending])
        #expect(sim.statuses == ["a": .skipped, "b": .skipped, "c": .succeeded, "d": .succeeded])
        #expect(sim.reasons["a"] == .notStarted("circuit open"))
        #expect(sim.reasons["b"] == .dependencyBlocked(dependency: 0))
        #expect(sim.startOrder == ["c", "d"])
        #expect(sim.runStatus == .failed, "a critical step that did not run fails the run")
        let optional = try Simulation([MachineStep("a", critical: false), MachineStep("c")],
                                      initial: [.notStarted(reason: "circuit open"), .pending])
        #expect(optional.runStatus == .succeeded)
        // Outside the --from/--to selection wins: such a step is not the run's to judge.
        let outside = try Simulation([MachineStep("a"), MachineStep("b", ["a"])], initial: [.excluded, .pending])
        #expect(outside.runStatus == .succeeded)
    }

    @Test func alreadySucceededStepsAreNotRunAgain() throws {
        let sim = try Simulation([MachineStep("a"), MachineStep("b", ["a"])], initial: [.alreadySucceeded, .pending])
        #expect(sim.startOrder == ["b"])
        #expect(sim.statuses["a"] == nil, "no new event for a step finished in an earlier session")
        #expect(sim.runStatus == .succeeded)
    }

    @Test func aRunWithNothingLeftToDoFinishesAtStart() throws {
        let sim = try Simulation([MachineStep("a")], initial: [.alreadySucceeded])
        #expect(sim.runStatus == .succeeded)
        #expect(sim.startOrder.isEmpty)
    }

    @Test func anAttemptFinishingForAStepThatIsNotRunningIsABug() async {
        await #expect(processExitsWith: .failure) {
            let graph = try PlanGraph(steps: [Step.closure("a") { _ in }])
            var machine = SchedulerStateMachine(graph: graph, policies: [.init(Step.closure("a") { _ in })], maxConcurrency: 1)
            var actions: [SchedulerStateMachine.Action] = []
            machine.attemptFinished(0, .succeeded, into: &actions)
        }
    }
}
