import Foundation
import Synchronization
import Testing
@testable import Orchestration

/// Notes, for each turn it records, whether it ran on the process loop's thread.
final class ThreadNotingObserver: RunObserver {
    private let onLoop = Mutex<[Bool]>([])
    var turns: [Bool] { onLoop.withLock { $0 } }
    func record(_ events: [RunEvent]) async throws {
        let here = ProcessLoop.shared?.isCurrentThread ?? false
        onLoop.withLock { $0.append(here) }
    }
}

/// A runner of a library user: it may block its thread, so its runs stay off the loop.
final class UserRunner: StepRunner {
    let base = LocalStepRunner()
    let onLoop = Mutex<[Bool]>([])
    func run(_ step: Step, context: AttemptContext) async -> AttemptOutcome {
        let here = ProcessLoop.shared?.isCurrentThread ?? false
        onLoop.withLock { $0.append(here) }
        return await base.run(step, context: context)
    }
}

@Suite("Process loop as the executor of process runs", .timeLimit(.minutes(1)))
struct ProcessLoopExecutorTests {
    func run(_ plan: Plan, runner: any StepRunner = LocalStepRunner(), observers: [any RunObserver]) async throws -> RunReport {
        try await DAGExecutor(plan: plan, graph: PlanGraph(steps: plan.steps), options: RunOptions(), runner: runner,
                              observers: observers, clock: ContinuousClock()).run()
    }

    @Test func aRunOfProcessesRunsItsSchedulerAndObserversOnTheLoopThread() async throws {
        let loop = try #require(ProcessLoop.shared)
        #expect(!loop.isCurrentThread, "the test itself runs elsewhere")
        let steps = (0..<20).map { index in
            Step.process("s\(index)", "true", dependsOn: index >= 10 ? ["s\(index - 10)"] : [])
        }
        let observer = ThreadNotingObserver()
        let slots = DAGExecutor<ContinuousClock>.loopSlotLimit
        let report: RunReport = try await run(Plan(id: "P", maxConcurrency: slots, steps: steps), observers: [observer])
        #expect(report.steps.allSatisfy { $0.status == .succeeded })
        #expect(!observer.turns.isEmpty)
        #expect(observer.turns.allSatisfy { $0 }, "every turn was recorded on the loop thread")
        #expect(!loop.isCurrentThread, "the caller is back on its own executor")
    }

    @Test func aRunWithMoreSlotsThanTheLoopServesStaysOffIt() async throws {
        let slots = DAGExecutor<ContinuousClock>.loopSlotLimit
        #expect(slots >= 1 && slots <= min(ProcessInfo.processInfo.activeProcessorCount, 4))
        let steps = (0..<10).map { Step.process("s\($0)", "true") }
        let observer = ThreadNotingObserver()
        let report = try await run(Plan(id: "P", maxConcurrency: slots + 1, steps: steps), observers: [observer])
        #expect(report.steps.allSatisfy { $0.status == .succeeded })
        #expect(!observer.turns.isEmpty && observer.turns.allSatisfy { !$0 })
        // The same run with the concurrency given at run time (`--max-concurrency`) at the limit.
        let within = ThreadNotingObserver()
        _ = try await DAGExecutor(plan: Plan(id: "P", maxConcurrency: 64, steps: steps), graph: PlanGraph(steps: steps),
                                  options: RunOptions(maxConcurrency: slots), observers: [within],
                                  clock: ContinuousClock()).run()
        #expect(!within.turns.isEmpty && within.turns.allSatisfy { $0 })
    }

    @Test func aRunWithAClosureStepStaysOffTheLoop() async throws {
        let closureOnLoop = Mutex<Bool?>(nil)
        let steps = [
            Step.process("p", "true"),
            Step.closure("c", dependsOn: ["p"]) { _ in
                closureOnLoop.withLock { $0 = ProcessLoop.shared?.isCurrentThread ?? false }
            },
        ]
        let observer = ThreadNotingObserver()
        let report = try await run(Plan(id: "P", steps: steps), observers: [observer])
        #expect(report.steps.allSatisfy { $0.status == .succeeded })
        #expect(closureOnLoop.withLock { $0 } == false, "a closure may compute for long: never on the loop")
        #expect(observer.turns.allSatisfy { !$0 })
    }

    @Test func aUserRunnerStaysOffTheLoop() async throws {
        let runner = UserRunner()
        let observer = ThreadNotingObserver()
        let steps = (0..<5).map { Step.process("s\($0)", "true") }
        let report = try await run(Plan(id: "P", steps: steps), runner: runner, observers: [observer])
        #expect(report.steps.allSatisfy { $0.status == .succeeded })
        #expect(runner.onLoop.withLock { $0 } == Array(repeating: false, count: 5))
        #expect(observer.turns.allSatisfy { !$0 })
    }

    @Test func jobsEnqueuedFromOtherThreadsWakeTheSleepingLoop() async throws {
        let loop = try #require(ProcessLoop.shared)
        // Rounds of tasks started from the global pool while the loop sleeps (nothing else runs):
        // each must be woken by its enqueue, or the time limit ends the test.
        for _ in 0..<20 {
            let onLoop = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<50 {
                    group.addTask(executorPreference: loop) { loop.isCurrentThread }
                }
                var all: [Bool] = []
                for try await here in group { all.append(here) }
                return all
            }
            #expect(onLoop == Array(repeating: true, count: 50))
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    @Test func aTimeoutStillEndsAStepWhileTheSchedulerLivesOnTheLoop() async throws {
        var slow = Step.process("slow", "sleep", ["30"])
        slow.timeout = .milliseconds(300)
        let steps = [slow] + (0..<10).map { Step.process("q\($0)", "true") }
        let started = ContinuousClock.now
        let report = try await run(Plan(id: "P", maxConcurrency: 2, steps: steps), observers: [])
        let slowReport = try #require(report.steps.first { $0.id == "slow" })
        #expect(slowReport.status == .failed && slowReport.timedOut)
        #expect(report.steps.filter { $0.id.hasPrefix("q") }.allSatisfy { $0.status == .succeeded })
        #expect(ContinuousClock.now - started < .seconds(20), "the 30 s sleep was cut short")
    }
}
