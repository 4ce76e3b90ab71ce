import Testing
@testable import Orchestration

/// `"if"` in the scheduler (SPEC §11 with §2): when conditions are decided, what false does, and
/// the steps that `always()`/`failure()` start after an abort. Statuses and orders are recorded
/// by ``Simulation``, which answers the machine's questions with the real evaluator.
@Suite("Scheduler state machine: conditions")
struct SchedulerConditionTests {
    @Test func aTrueConditionRunsTheStepAfterItsDependencies() throws {
        let sim = try Simulation([MachineStep("a"), MachineStep("b", ["a"], if: "vars.DEPLOY == 'yes'")],
                                 variables: ["DEPLOY": "yes"])
        #expect(sim.startOrder == ["a", "b"])
        #expect(sim.decisions.map(\.id) == ["b"])
        #expect(sim.statuses == ["a": .succeeded, "b": .succeeded])
        #expect(sim.runStatus == .succeeded)
    }

    @Test func aFalseConditionSkipsTheStepAndItsDependentsFollowSection2() throws {
        let sim = try Simulation(
            [MachineStep("a"), MachineStep("deploy", ["a"], if: "vars.DEPLOY == 'yes'"), MachineStep("smoke", ["deploy"]),
             MachineStep("notify", ["smoke"], if: "always()"), MachineStep("other", ["a"])],
            concurrency: 1, variables: ["DEPLOY": "no"])
        #expect(sim.statuses["deploy"] == .skipped)
        #expect(sim.reasons["deploy"] == .conditionFalse)
        #expect(sim.statuses["smoke"] == .skipped)
        #expect(sim.reasons["smoke"] == .dependencyBlocked(dependency: 1))
        #expect(sim.statuses["notify"] == .succeeded, "always() runs whatever its dependency did")
        #expect(sim.statuses["other"] == .succeeded)
        #expect(sim.startOrder == ["a", "other", "notify"])
        #expect(sim.runStatus == .succeeded, "a step skipped by a false condition (and what follows from it) is no failure")
    }

    @Test func successIsImpliedWithoutFailureOrAlways() throws {
        // b's own expression holds, but its dependency failed: it is skipped by §2, never decided.
        let sim = try Simulation([MachineStep("a", onFailure: .skipDependents), MachineStep("b", ["a"], if: "'x' == 'x'")],
                                 outcomes: ["a": [.failed]])
        #expect(sim.decisions.isEmpty)
        #expect(sim.statuses["b"] == .skipped)
        #expect(sim.reasons["b"] == .dependencyBlocked(dependency: 0))
        #expect(sim.runStatus == .failed)
        // success() written out means the same.
        let written = try Simulation([MachineStep("a", onFailure: .skipDependents), MachineStep("b", ["a"], if: "success()")],
                                     outcomes: ["a": [.failed]])
        #expect(written.decisions.isEmpty)
        #expect(written.statuses["b"] == .skipped)
        // With continue, the failed dependency lets it run, and success() holds.
        let lenient = try Simulation([MachineStep("a", onFailure: .continue), MachineStep("b", ["a"], if: "success()")],
                                     outcomes: ["a": [.failed]])
        #expect(lenient.decisions.map(\.holds) == [true])
        #expect(lenient.statuses["b"] == .succeeded)
    }

    @Test func failureIsSkippedWhenEverythingSucceeded() throws {
        let sim = try Simulation([MachineStep("a"), MachineStep("b", ["a"]), MachineStep("notify", ["b"], if: "failure()")])
        #expect(sim.startOrder == ["a", "b"])
        #expect(sim.statuses["notify"] == .skipped)
        #expect(sim.reasons["notify"] == .conditionFalse)
        #expect(sim.runStatus == .succeeded, "a skipped failure notification does not fail the run")
    }

    @Test func failureRunsWhenATransitiveDependencyFailed() throws {
        // a fails, b is skipped because of it: notify's only dependency was skipped, not failed,
        // but a failure upstream is what failure() is for.
        let sim = try Simulation(
            [MachineStep("a", onFailure: .skipDependents), MachineStep("b", ["a"]), MachineStep("notify", ["b"], if: "failure()")],
            outcomes: ["a": [.failed]])
        #expect(sim.statuses == ["a": .failed, "b": .skipped, "notify": .succeeded])
        #expect(sim.startOrder == ["a", "notify"])
        #expect(sim.runStatus == .failed)
    }

    @Test func alwaysRunsAfterACriticalAbortOnceEverythingUpstreamEnded() throws {
        // a and b run together; a fails (critical, abort) while b runs. c (after a) and d (after
        // b) are cancelled; cleanup depends on c and d, so it is decided only when b, upstream of
        // d, has ended too; e, unrelated and plain, is cancelled.
        let sim = try Simulation(
            [MachineStep("a"), MachineStep("b"), MachineStep("c", ["a"]), MachineStep("d", ["b"]),
             MachineStep("cleanup", ["c", "d"], if: "always()"), MachineStep("e"), MachineStep("after", ["cleanup"])],
            concurrency: 2, outcomes: ["a": [.failed]])
        #expect(sim.statuses["a"] == .failed)
        #expect(sim.statuses["c"] == .cancelled)
        #expect(sim.statuses["d"] == .cancelled)
        #expect(sim.statuses["e"] == .cancelled)
        #expect(sim.statuses["after"] == .cancelled, "a plain step after the cleanup is cancelled by the abort")
        #expect(sim.statuses["b"] == .succeeded)
        #expect(sim.statuses["cleanup"] == .succeeded)
        #expect(sim.startOrder == ["a", "b", "cleanup"])
        let bEnded = try #require(sim.log.firstIndex(of: "end:b"))
        let cleanupStarted = try #require(sim.log.firstIndex(of: "start:cleanup"))
        #expect(bEnded < cleanupStarted, "cleanup waits for what still ran upstream")
        #expect(sim.runStatus == .failed, "the run stays failed: its critical step failed")
    }

    @Test func failureRunsAfterAnAbortAndAnAlwaysStepKeepsItsRetries() throws {
        let sim = try Simulation(
            [MachineStep("a"), MachineStep("b", ["a"]), MachineStep("notify", ["b"], if: "failure()"),
             MachineStep("cleanup", ["b"], retries: 2, if: "always()")],
            concurrency: 1, outcomes: ["a": [.failed], "cleanup": [.failed, .succeeded]])
        #expect(sim.statuses == ["a": .failed, "b": .cancelled, "notify": .succeeded, "cleanup": .succeeded])
        #expect(sim.attempts["cleanup"] == 2, "a step started after the abort is retried as usual")
        #expect(sim.runStatus == .failed)
    }

    @Test func aStopCancelsPendingAlwaysSteps() throws {
        let sim = try Simulation([MachineStep("a"), MachineStep("cleanup", ["a"], if: "always()")], stopAfterStarts: 1)
        #expect(sim.statuses == ["a": .cancelled, "cleanup": .cancelled])
        #expect(sim.reasons["cleanup"] == .interrupted)
        #expect(sim.startOrder == ["a"])
        #expect(sim.runStatus == .cancelled)
    }

    @Test func statusesAndOutputsOfDependenciesAreRead() throws {
        let sim = try Simulation(
            [MachineStep("a", onFailure: .skipDependents), MachineStep("b", ["a"]), MachineStep("w"),
             MachineStep("report", ["b", "w"], if: "always() && steps.b.status == 'skipped' && steps.a.status != 'succeeded'"),
             MachineStep("full", ["w"], if: "steps.w.outputs.kind == 'full' && steps.w.outputs.missing == ''"),
             MachineStep("partial", ["w"], if: "steps.w.outputs.kind == 'partial'")],
            concurrency: 1, outcomes: ["a": [.failed]], outputs: ["w": ["kind": "full"]])
        #expect(sim.statuses["report"] == .succeeded)
        #expect(sim.statuses["full"] == .succeeded, "a missing output reads as ''")
        #expect(sim.statuses["partial"] == .skipped)
        #expect(sim.reasons["partial"] == .conditionFalse)
    }

    @Test func aSkipWithAnotherCauseStillFailsTheRun() throws {
        // c is skipped; one of its dependencies was skipped by its condition, but the other failed:
        // c's skip is not only the plan's choice, so the run fails (c is critical).
        let sim = try Simulation(
            [MachineStep("b", if: "'1' == '2'"), MachineStep("x", critical: false, onFailure: .skipDependents),
             MachineStep("c", ["b", "x"])],
            concurrency: 1, outcomes: ["x": [.failed]])
        #expect(sim.statuses == ["b": .skipped, "x": .failed, "c": .skipped])
        #expect(sim.runStatus == .failed)
    }

    @Test func conditionsOfStepsWithoutDependenciesAreDecidedAtStart() throws {
        let sim = try Simulation([MachineStep("only", if: "vars.X == 'it''s'")], variables: ["X": "it's"])
        #expect(sim.decisions.map(\.holds) == [true])
        #expect(sim.statuses == ["only": .succeeded])
        let not = try Simulation([MachineStep("only", if: "!(vars.X == 'y')")], variables: ["X": "y"])
        #expect(not.statuses == ["only": .skipped])
        #expect(not.runStatus == .succeeded)
    }

    @Test func onRandomDAGsAlwaysStepsRunAfterAllTheirAncestorsAndAreNeverCancelledWithoutAStop() throws {
        var generator = SplitMix64(seed: 7)
        let conditions: [String?] = [nil, nil, nil, "always()", "failure()", "success()", "!failure()",
                                     "vars.X == 'x'", "vars.X == 'y'"]
        let policies: [FailurePolicy] = [.abort, .continue, .skipDependents]
        for _ in 0..<300 {
            let count = Int.random(in: 1...25, using: &generator)
            var steps: [MachineStep] = []
            var outcomes: [String: [AttemptOutcome.Result]] = [:]
            for index in 0..<count {
                var deps: Set<String> = []
                if index > 0 {
                    for _ in 0..<Int.random(in: 0...3, using: &generator) {
                        deps.insert("s\(Int.random(in: 0..<index, using: &generator))")
                    }
                }
                let condition = conditions[Int.random(in: 0..<conditions.count, using: &generator)]
                steps.append(MachineStep("s\(index)", deps.sorted(), retries: Int.random(in: 0...1, using: &generator),
                                         critical: Bool.random(using: &generator),
                                         onFailure: policies[Int.random(in: 0..<3, using: &generator)], if: condition))
                if Int.random(in: 0..<4, using: &generator) == 0 { outcomes["s\(index)"] = [.failed, .failed] }
            }
            var order = generator
            let sim = try Simulation(steps, concurrency: Int.random(in: 1...4, using: &generator), outcomes: outcomes,
                                     variables: ["X": "x"]) { running in
                running.remove(at: Int.random(in: 0..<running.count, using: &order))
            }
            #expect(sim.runStatus != nil)
            #expect(sim.statuses.count == count)
            let graph = try PlanGraph(steps: steps.map(\.step))
            for (index, step) in steps.enumerated() where step.step.condition?.awaitsAnyOutcome == true {
                #expect(sim.statuses[step.id] != .cancelled, "only a stop cancels \(step.id)")
                if step.condition == "always()" {
                    #expect(sim.statuses[step.id] == .succeeded || sim.statuses[step.id] == .failed)
                }
                guard let started = sim.log.firstIndex(of: "start:\(step.id)") else { continue }
                for other in 0..<count where graph.isTransitiveDependency(other, of: index) {
                    let ended = sim.log.firstIndex(of: "end:s\(other)")
                    #expect(ended.map { $0 < started } == true, "\(step.id) started before s\(other) ended")
                }
            }
            for (id, holds) in sim.decisions where !holds {
                #expect(sim.statuses[id] == .skipped && sim.reasons[id] == .conditionFalse)
            }
        }
    }
}
