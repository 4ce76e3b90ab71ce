import Foundation
import Synchronization
import Testing
@testable import Orchestration

/// A commit gate the test drives: nothing is durable until ``release()``; ``fail(_:)`` fails
/// every wait. It also records the events, and says on `waits` each time someone waits and on
/// `recorded` each batch of event types.
final class HeldCommitGate: CommitGate, RunObserver {
    private struct State {
        var released = false
        var failure: EngineError?
        var waiters: [CheckedContinuation<Void, any Error>] = []
        var events: [RunEvent] = []
    }
    private let state = Mutex(State())
    let (waits, waitsContinuation) = AsyncStream.makeStream(of: Int64.self)
    let (recorded, recordedContinuation) = AsyncStream.makeStream(of: [String].self)

    var durableSeq: Int64 { state.withLock { $0.released ? .max : 0 } }
    var events: [RunEvent] { state.withLock { $0.events } }

    func record(_ events: [RunEvent]) async throws {
        state.withLock { $0.events += events }
        recordedContinuation.yield(events.map { "\($0.stepID ?? "run") \($0.payload.kind.rawValue)" })
    }

    func waitUntilDurable(_ seq: Int64) async throws(EngineError) {
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> Result<Void, EngineError>? in
                    if let failure = state.failure { return .failure(failure) }
                    if state.released { return .success(()) }
                    state.waiters.append(continuation)
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) } else { waitsContinuation.yield(seq) }
            }
        } catch {
            throw error as? EngineError ?? EngineError(.stateFailure, "\(error)")
        }
    }

    func release() { finish(nil) }
    func fail(_ error: EngineError) { finish(error) }

    private func finish(_ failure: EngineError?) {
        let waiters = state.withLock { state in
            if let failure { state.failure = failure } else { state.released = true }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters {
            if let failure { waiter.resume(throwing: failure) } else { waiter.resume() }
        }
    }
}

/// The steps that ran, in order.
final class RanSteps: Sendable {
    private let ran = Mutex<[String]>([])
    func add(_ id: String) { ran.withLock { $0.append(id) } }
    var all: [String] { ran.withLock { $0 } }
}

@Suite("Starts wait for durability", .timeLimit(.minutes(1)))
struct DurableStartTests {
    /// `a -> b -> c`: the gate holds `a`'s result back.
    func chain(_ ran: RanSteps, holdB: Bool = false) -> Plan {
        Plan(id: "P", maxConcurrency: 2, steps: [
            .closure("a") { _ in ran.add("a") },
            .closure("b", dependsOn: ["a"]) { _ in
                ran.add("b")
                if holdB { try await Task.sleep(for: .seconds(60)) }
            },
            .closure("c", dependsOn: ["b"]) { _ in ran.add("c") },
        ])
    }

    func run(_ plan: Plan, gate: HeldCommitGate, stops: AsyncStream<StopReason>? = nil) async throws -> RunReport {
        try await DAGExecutor(plan: plan, graph: try PlanGraph(steps: plan.steps), options: RunOptions(),
                              observers: [gate], commitGate: gate, clock: ContinuousClock()).run(stopRequests: stops)
    }

    @Test func aDependentRunsOnlyOnceItsDependencysResultIsDurable() async throws {
        let ran = RanSteps()
        let gate = HeldCommitGate()
        async let report = run(chain(ran), gate: gate)
        var waits = gate.waits.makeAsyncIterator()
        let seq = await waits.next()
        let succeededA = gate.events.first { $0.stepID == "a" && $0.payload.kind == .stepSucceeded }?.seq
        #expect(seq != nil && seq == succeededA, "b waits for a's success to be durable")
        #expect(ran.all == ["a"], "b does not run before that")
        gate.release()
        let final = try await report
        #expect(final.status == .succeeded)
        #expect(ran.all == ["a", "b", "c"])
    }

    @Test func aStopWhileADependentWaitsForDurabilityCancelsItWithoutRunningIt() async throws {
        let ran = RanSteps()
        let gate = HeldCommitGate()
        let (stops, stop) = AsyncStream.makeStream(of: StopReason.self)
        async let report = run(chain(ran, holdB: true), gate: gate, stops: stops)
        var waits = gate.waits.makeAsyncIterator()
        _ = await waits.next()
        stop.yield(.interrupt)
        // The stop is taken when c (not started) is recorded cancelled; b still waits.
        for await batch in gate.recorded where batch.contains("c step_cancelled") { break }
        gate.release()
        let final = try await report
        #expect(final.status == .cancelled)
        #expect(ran.all == ["a"], "b never ran")
        #expect(final.steps.first { $0.id == "b" }?.status == .cancelled)
    }

    @Test func aStoreFailureWhileADependentWaitsStopsTheRunWithoutRunningIt() async throws {
        let ran = RanSteps()
        let gate = HeldCommitGate()
        async let report = run(chain(ran), gate: gate)
        var waits = gate.waits.makeAsyncIterator()
        _ = await waits.next()
        gate.fail(EngineError(.stateFailure, "disk full"))
        do {
            _ = try await report
            Issue.record("the run reports the store's failure")
        } catch {
            #expect("\(error)".contains("disk full"))
        }
        #expect(ran.all == ["a"], "b never ran")
        let types = gate.events.filter { $0.stepID == "b" || $0.stepID == "c" }.map { "\($0.stepID ?? "") \($0.payload.kind.rawValue)" }
        #expect(types.contains("c step_cancelled") && !types.contains("b step_succeeded"))
    }
}
