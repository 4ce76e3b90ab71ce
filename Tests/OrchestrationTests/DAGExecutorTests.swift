import Foundation
import Synchronization
import TestSupport
import Testing
@testable import Orchestration

/// Collects every event a run records.
final class EventCollector: RunObserver {
    private let events = Mutex<[RunEvent]>([])
    var all: [RunEvent] { events.withLock { $0 } }
    func record(_ batch: [RunEvent]) async throws { events.withLock { $0 += batch } }
}

/// An observer that fails, like a full disk.
struct FailingObserver: RunObserver {
    func record(_ events: [RunEvent]) async throws {
        throw EngineError(.stateFailure, "disk full")
    }
}

/// Counts closures running at once.
final class ConcurrencyGauge: Sendable {
    private let state = Mutex((running: 0, max: 0, order: [String]()))
    func enter(_ id: String) {
        state.withLock { state in
            state.running += 1
            state.max = max(state.max, state.running)
            state.order.append(id)
        }
    }
    func leave() { state.withLock { $0.running -= 1 } }
    var maximum: Int { state.withLock { $0.max } }
    var order: [String] { state.withLock { $0.order } }
}

@Suite("DAG executor", .timeLimit(.minutes(1)))
struct DAGExecutorTests {
    func execute(_ plan: Plan, clock: some Clock<Duration> = ContinuousClock(), observers: [any RunObserver] = [],
                 stops: AsyncStream<StopReason>? = nil, options: RunOptions = RunOptions()) async throws -> RunReport {
        let graph = try PlanGraph(steps: plan.steps)
        return try await DAGExecutor(plan: plan, graph: graph, options: options, observers: observers, clock: clock)
            .run(stopRequests: stops)
    }

    @Test func retryDelaysFollowTheInjectedClock() async throws {
        let clock = ManualClock()
        let starts = Mutex<[Duration]>([])
        var step = Step.closure("flaky") { context in
            starts.withLock { $0.append(clock.now.offset) }
            if context.attempt < 3 { throw EngineError(.executionFailed, "attempt \(context.attempt) fails") }
        }
        step.retry = RetryPolicy(retries: 3, delay: .seconds(1), backoff: .exponential)
        let plan = Plan(id: "P", steps: [step])
        async let report = execute(plan, clock: clock)
        try await clock.waitForSleepers(1)
        #expect(starts.withLock { $0 } == [.zero], "the retry waits for the clock")
        clock.advance(by: .milliseconds(999))
        #expect(starts.withLock { $0 }.count == 1)
        clock.advance(by: .milliseconds(1))
        try await clock.waitForSleepers(1)
        clock.advance(by: .seconds(2))
        let result = try await report
        #expect(starts.withLock { $0 } == [.zero, .seconds(1), .seconds(3)])
        #expect(result.status == .succeeded)
        #expect(result.steps[0].attempts == 3)
    }

    @Test func closureStepsRespectTheLimitAndDependencyOrder() async throws {
        var generator = SplitMix64(seed: 7)
        for round in 0..<20 {
            let gauge = ConcurrencyGauge()
            let finished = Mutex<Set<String>>([])
            let count = Int.random(in: 50...300, using: &generator)
            var steps: [Step] = []
            for index in 0..<count {
                var deps: Set<String> = []
                if index > 0 {
                    for _ in 0..<Int.random(in: 0...3, using: &generator) { deps.insert("n\(Int.random(in: 0..<index, using: &generator))") }
                }
                let depList = deps.sorted()
                steps.append(Step.closure("n\(index)", dependsOn: depList) { context in
                    let missing = finished.withLock { done in depList.filter { !done.contains($0) } }
                    #expect(missing.isEmpty, "round \(round): \(context.stepID) started before \(missing)")
                    gauge.enter(context.stepID)
                    await Task.yield()
                    gauge.leave()
                    _ = finished.withLock { $0.insert(context.stepID) }
                })
            }
            let limit = Int.random(in: 1...8, using: &generator)
            let report = try await execute(Plan(id: "R", maxConcurrency: limit, steps: steps))
            #expect(report.status == .succeeded)
            #expect(gauge.maximum <= limit)
            #expect(gauge.order.count == count)
        }
    }

    @Test func aClosureThatOverrunsItsTimeoutFailsAsTimedOut() async throws {
        var step = Step.closure("slow") { _ in try await Task.sleep(for: .seconds(60)) }
        step.timeout = .milliseconds(100)
        let report = try await execute(Plan(id: "T", steps: [step]))
        #expect(report.status == .failed)
        #expect(report.steps[0].timedOut)
        #expect(report.steps[0].error?.contains("timed out") == true)
        #expect(report.exitCode == 1)
    }

    @Test func aStopRequestCancelsRunningAndPendingSteps() async throws {
        let started = Mutex(0)
        let steps = [
            Step.closure("a") { _ in
                started.withLock { $0 += 1 }
                try await Task.sleep(for: .seconds(60))
            },
            Step.closure("b", dependsOn: ["a"]) { _ in },
        ]
        let (stops, continuation) = AsyncStream.makeStream(of: StopReason.self)
        let collector = EventCollector()
        async let report = execute(Plan(id: "S", steps: steps), observers: [collector], stops: stops)
        while started.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(1)) }
        continuation.yield(.terminate)
        let result = try await report
        #expect(result.status == .cancelled)
        #expect(result.exitCode == 143)
        #expect(result.steps.map(\.status) == [.cancelled, .cancelled])
        #expect(collector.all.last?.kind == .runFinished)
    }

    @Test func eventsAreNumberedAndTheLastOneFinishesTheRun() async throws {
        let collector = EventCollector()
        var failing = Step.closure("b") { _ in throw EngineError(.executionFailed, "no") }
        failing.retry = RetryPolicy(retries: 1)
        let plan = Plan(id: "E", steps: [Step.closure("a") { _ in }, failing, Step.closure("c", dependsOn: ["b"]) { _ in }])
        let report = try await execute(plan, observers: [collector])
        let events = collector.all
        #expect(events.map(\.seq) == Array(1...Int64(events.count)))
        #expect(events.first?.kind == .runStarted)
        #expect(events.last?.kind == .runFinished)
        let kinds = events.filter { $0.stepID == "b" }.map(\.kind)
        #expect(kinds == [.stepStarted, .stepAttemptFailed, .stepRetry, .stepStarted, .stepAttemptFailed, .stepFailed])
        #expect(report.steps[2].status == .cancelled)
        #expect(report.steps[1].attempts == 2)
    }

    @Test func aFailingObserverStopsTheRunWithAStateError() async throws {
        let plan = Plan(id: "O", steps: [Step.closure("a") { _ in }])
        await #expect(throws: EngineError(.stateFailure, "")) {
            _ = try await execute(plan, observers: [FailingObserver()])
        }
    }
}

/// `"if"` through the real executor (closure steps, real events): the executor answers the state
/// machine's questions with the plan's variables and the statuses of the moment.
@Suite("DAG executor: conditions", .timeLimit(.minutes(1)))
struct DAGExecutorConditionTests {
    static func step(_ id: String, _ deps: [String] = [], if text: String? = nil, gauge: ConcurrencyGauge,
                     fails: Bool = false) throws -> Step {
        var step = Step.closure(id, dependsOn: deps) { _ in
            gauge.enter(id)
            gauge.leave()
            if fails { throw EngineError(.executionFailed, "\(id) fails") }
        }
        step.condition = try text.map { try StepCondition(parsing: $0) }
        return step
    }

    @Test func cleanupRunsAfterAnAbortAndFalseConditionsAreRecordedAsSuch() async throws {
        let gauge = ConcurrencyGauge()
        let plan = Plan(id: "cond", variables: ["ENV": "staging"], maxConcurrency: 1, steps: [
            try Self.step("build", gauge: gauge, fails: true),
            try Self.step("deploy", ["build"], if: "vars.ENV == 'prod'", gauge: gauge),
            try Self.step("cleanup", ["deploy"], if: "always() && steps.build.status == 'failed'", gauge: gauge),
            try Self.step("prod-only", [], if: "vars.ENV == 'prod'", gauge: gauge),
        ])
        let events = EventCollector()
        let report = try await DAGExecutor(plan: plan, observers: [events]).run()
        #expect(report.status == .failed)
        #expect(report.exitCode == 1)
        #expect(report.steps.map(\.status) == [.failed, .cancelled, .succeeded, .skipped])
        #expect(report.steps.map(\.condition) == [nil, "vars.ENV == 'prod'", "always() && steps.build.status == 'failed'",
                                                  "vars.ENV == 'prod'"])
        #expect(gauge.order == ["build", "cleanup"])
        let skips = events.all.filter { if case .stepSkipped = $0.payload { true } else { false } }
        #expect(skips.map(\.stepID) == ["prod-only"])
        #expect(skips.map(\.payload.reason) == ["condition false"])
    }

    @Test func aPlanBuiltInCodeHasItsConditionsCheckedToo() throws {
        let gauge = ConcurrencyGauge()
        let plan = Plan(id: "cond", steps: [
            try Self.step("a", gauge: gauge), try Self.step("b", gauge: gauge),
            try Self.step("c", ["a"], if: "steps.b.status == 'failed'", gauge: gauge),
        ])
        #expect(throws: EngineError.self) { try LoadedPlan(plan) }
        do {
            _ = try LoadedPlan(plan)
        } catch {
            #expect(error.code == .invalidPlan)
            #expect(error.message.contains("step \"c\": column 1 of the condition: step \"b\" is not a dependency of step \"c\""))
        }
    }
}
