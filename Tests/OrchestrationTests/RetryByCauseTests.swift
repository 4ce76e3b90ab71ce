import Foundation
import Testing
@testable import Orchestration

/// Drives the state machine with one step per entry, each attempt's result and refusal scripted,
/// and records every action (no processes, no clock).
private struct RetryDriver {
    var finishes: [String: (StepStatus, SchedulerStateMachine.FinishReason)] = [:]
    var attempts: [String: Int] = [:]
    var delays: [String: [Duration]] = [:]
    var order: [String] = []

    /// `script[id]`: each attempt's result and refusal (missing = succeeded).
    init(_ steps: [Step], script: [String: [(AttemptOutcome.Result, String?)]], retryBudget: Int? = nil,
         jitterSeed: UInt64 = 0) throws {
        let graph = try PlanGraph(steps: steps)
        var machine = SchedulerStateMachine(graph: graph, policies: steps.map { .init($0) }, maxConcurrency: 1,
                                            retryBudget: retryBudget, jitterSeed: jitterSeed)
        var actions: [SchedulerStateMachine.Action] = []
        var running: [Int] = []
        var timers: [Int] = []
        machine.start(into: &actions)
        while true {
            for action in actions {
                switch action {
                case .start(let step, let attempt):
                    attempts[graph.ids[step]] = attempt
                    order.append("\(graph.ids[step]).\(attempt)")
                    running.append(step)
                case .scheduleRetry(let step, _, let delay):
                    delays[graph.ids[step], default: []].append(delay)
                    timers.append(step)
                case .finish(let step, let status, let reason):
                    finishes[graph.ids[step]] = (status, reason)
                case .terminateRunning, .runFinished:
                    break
                case .evaluateCondition:
                    Issue.record("these plans have no conditions")
                }
            }
            actions.removeAll()
            if machine.isFinished { break }
            if !running.isEmpty {
                let step = running.removeFirst()
                let id = graph.ids[step]
                let entries = script[id] ?? []
                let index = attempts[id]! - 1
                let (result, refusal) = entries.indices.contains(index) ? entries[index] : (.succeeded, nil)
                machine.attemptFinished(step, result, refusal: refusal, into: &actions)
            } else {
                machine.retryTimerFired(timers.removeFirst(), into: &actions)
            }
        }
    }
}

private func step(_ id: String, _ deps: [String] = [], retries: Int, delay: Double = 1, jitter: Bool = false,
                  critical: Bool = true, onFailure: FailurePolicy = .abort) -> Step {
    Step(id: id, action: .closure { _ in }, dependsOn: deps,
         retry: RetryPolicy(retries: retries, delay: .seconds(delay), backoff: .exponential, jitter: jitter),
         critical: critical, onFailure: onFailure)
}

@Suite("Retries by cause: the state machine's rules (SPEC §11)")
struct RetryRuleTests {
    @Test func aRefusedFailureIsFinalAtOnceWhateverRetriesAreLeft() throws {
        let run = try RetryDriver([step("a", retries: 5), step("b", ["a"], retries: 0)],
                                  script: ["a": [(.failed, "not retried: exit code 3 is not in retry_on.exit_codes")]])
        #expect(run.order == ["a.1"])
        #expect(run.delays["a"] == nil)
        #expect(run.finishes["a"]?.0 == .failed)
        #expect(run.finishes["a"]?.1 == .notRetried("not retried: exit code 3 is not in retry_on.exit_codes"))
        #expect(run.finishes["b"]?.0 == .cancelled)
    }

    @Test func retryableFailuresAreRetriedUntilARefusedOne() throws {
        let run = try RetryDriver([step("a", retries: 5)],
                                  script: ["a": [(.failed, nil), (.failed, nil), (.failed, "not retried: no")]])
        #expect(run.order == ["a.1", "a.2", "a.3"])
        #expect(run.delays["a"] == [.seconds(1), .seconds(2)])
        #expect(run.finishes["a"]?.1 == .notRetried("not retried: no"))
    }

    @Test func theRetryBudgetCapsTheRetriesOfTheWholeRun() throws {
        // Two independent flaky steps, 3 retries each, share a budget of 2: one retry each,
        // then their next failures are final.
        let run = try RetryDriver([step("a", retries: 3, critical: false), step("b", retries: 3, critical: false)],
                                  script: ["a": [(.failed, nil), (.failed, nil), (.failed, nil)],
                                           "b": [(.failed, nil), (.failed, nil)]],
                                  retryBudget: 2)
        #expect(run.order == ["a.1", "b.1", "a.2", "b.2"])
        #expect(run.finishes["a"]?.0 == .failed)
        #expect(run.finishes["a"]?.1 == .retryBudgetExhausted(2))
        #expect(run.finishes["b"]?.1 == .retryBudgetExhausted(2))
        #expect(run.delays["a"] == [.seconds(1)])
        #expect(run.delays["b"] == [.seconds(1)])
    }

    @Test func aZeroBudgetRetriesNothingAndAStepOutOfRetriesIsNotCharged() throws {
        let none = try RetryDriver([step("a", retries: 3)], script: ["a": [(.failed, nil)]], retryBudget: 0)
        #expect(none.order == ["a.1"])
        #expect(none.finishes["a"]?.1 == .retryBudgetExhausted(0))
        // A step that used its own retries ends as before: "attempted", not "budget exhausted".
        let own = try RetryDriver([step("a", retries: 1)], script: ["a": [(.failed, nil), (.failed, nil)]], retryBudget: 5)
        #expect(own.order == ["a.1", "a.2"])
        #expect(own.finishes["a"]?.1 == .attempted)
    }

    @Test func jitteredDelaysAreWithinTheirBoundsAndFollowTheSeed() throws {
        let failures: [(AttemptOutcome.Result, String?)] = Array(repeating: (.failed, nil), count: 8)
        let steps = [step("a", retries: 7, delay: 10, jitter: true)]
        let first = try RetryDriver(steps, script: ["a": failures], jitterSeed: SplitMix64.seed(runID: "r-1"))
        let again = try RetryDriver(steps, script: ["a": failures], jitterSeed: SplitMix64.seed(runID: "r-1"))
        let other = try RetryDriver(steps, script: ["a": failures], jitterSeed: SplitMix64.seed(runID: "r-2"))
        let delays = try #require(first.delays["a"])
        #expect(delays.count == 7)
        let policy = steps[0].retry
        for (k, delay) in delays.enumerated() {
            #expect(delay >= .zero && delay <= policy.delay(beforeRetry: k + 1))
        }
        #expect(again.delays["a"] == delays, "the same run id gives the same delays")
        #expect(other.delays["a"] != delays, "another run id gives other delays")
        // Not all at either end: the draws are spread.
        #expect(Set(delays).count > 1)
    }

    @Test func theSeedOfARunIDIsStable() {
        // FNV-1a 64 of "" and of "a": fixed values, so a seed never depends on the process.
        #expect(SplitMix64.seed(runID: "") == 0xCBF2_9CE4_8422_2325)
        #expect(SplitMix64.seed(runID: "a") == 0xAF63_DC4C_8601_EC8C)
    }
}

@Suite("Retries by cause: matching a failed attempt (SPEC §11)")
struct RetryConditionTests {
    let condition = RetryCondition(exitCodes: [75, 137], stderrMatches: ["connection reset"], timeout: true)

    @Test func anExitCodeInTheListIsRetried() {
        #expect(condition.refusal(for: AttemptOutcome(result: .failed, exitCode: 75)) { [] } == nil)
    }

    @Test func aTimeoutIsRetriedOnlyWithTimeoutTrue() {
        let timedOut = AttemptOutcome(result: .failed, signal: 15, timedOut: true)
        #expect(condition.refusal(for: timedOut) { [] } == nil)
        let strict = RetryCondition(exitCodes: [75])
        #expect(strict.refusal(for: timedOut) { [] } == "not retried: it timed out and retry_on.timeout is not true")
    }

    @Test func aStderrSubstringIsRetried() {
        let tail = Array("curl: (56) Recv failure: connection reset by peer\n".utf8)
        #expect(condition.refusal(for: AttemptOutcome(result: .failed, exitCode: 56)) { tail } == nil)
    }

    @Test func anythingElseIsRefusedWithTheReason() {
        let refusal = condition.refusal(for: AttemptOutcome(result: .failed, exitCode: 3)) { Array("disk full\n".utf8) }
        #expect(refusal == "not retried: exit code 3 is not in retry_on.exit_codes; "
                + "no retry_on.stderr_matches entry is in the last 64 KiB of its stderr")
        let signalled = RetryCondition(exitCodes: [75]).refusal(for: AttemptOutcome(result: .failed, signal: 9)) { [] }
        #expect(signalled == "not retried: it was killed by signal 9, so no exit code matched retry_on.exit_codes")
    }

    @Test func stderrIsReadOnlyWhenNothingElseMatched() {
        var reads = 0
        _ = condition.refusal(for: AttemptOutcome(result: .failed, exitCode: 137)) { reads += 1; return [] }
        #expect(reads == 0)
        _ = condition.refusal(for: AttemptOutcome(result: .failed, exitCode: 1)) { reads += 1; return [] }
        #expect(reads == 1)
    }

    @Test func onlyTheLast64KiBOfALogAreRead() throws {
        let dir = NSTemporaryDirectory() + "omnibase-tail-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/a.1.err"
        // "early" is 200 KiB before the end, "late" at the very end.
        var bytes = Array("early match\n".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 200 * 1024)
        bytes += Array("\nlate match\n".utf8)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let tail = AttemptLog.tail(atPath: path, maxBytes: RetryCondition.stderrWindow)
        #expect(tail.count == RetryCondition.stderrWindow)
        #expect(tail.suffix(11) == ArraySlice("late match\n".utf8))
        let early = RetryCondition(stderrMatches: ["early match"])
        let late = RetryCondition(stderrMatches: ["late match"])
        let failed = AttemptOutcome(result: .failed, exitCode: 1)
        #expect(early.refusal(for: failed) { tail } != nil)
        #expect(late.refusal(for: failed) { tail } == nil)
        #expect(AttemptLog.tail(atPath: dir + "/missing.err", maxBytes: 10).isEmpty)
        #expect(AttemptLog.tail(atPath: "/dev/null", maxBytes: 10).isEmpty)
    }
}
