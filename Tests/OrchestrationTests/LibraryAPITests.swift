import Foundation
import Glibc
import Synchronization
import Testing
@testable import Orchestration

/// What a library user builds on: plans made in code (durable runs, resume and replay with the
/// plan given again), an executor that validates its own DAG, and typed events with one codec.
@Suite("Library API: in-code plans, typed events", .timeLimit(.minutes(1)))
struct LibraryAPITests {
    private static func tempDirectory() -> String {
        var template = Array((NSTemporaryDirectory() + "omnibase-library-XXXXXX").utf8CString)
        return String(cString: mkdtemp(&template)!)
    }

    @Test func anExecutorBuildsAndValidatesItsOwnGraph() async throws {
        let order = Mutex<[String]>([])
        let plan = Plan(id: "in-code", maxConcurrency: 2, steps: [
            .closure("b", dependsOn: ["a"]) { _ in order.withLock { $0.append("b") } },
            .closure("a") { _ in order.withLock { $0.append("a") } },
        ])
        let report = try await DAGExecutor(plan: plan).run()
        #expect(report.status == .succeeded)
        #expect(order.withLock { $0 } == ["a", "b"])

        let cyclic = Plan(id: "cyclic", steps: [.closure("x", dependsOn: ["y"]) { _ in }, .closure("y", dependsOn: ["x"]) { _ in }])
        do {
            _ = try DAGExecutor(plan: cyclic)
            Issue.record("a cycle was accepted")
        } catch {
            #expect(error.exitCode == 2)
            #expect(error.message.contains("x -> y -> x") || error.message.contains("y -> x -> y"), "\(error.message)")
        }
    }

    @Test func aPlanBuiltInCodeRunsDurablyAndResumesWithTheSamePlan() async throws {
        let dir = Self.tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let session = try RunSession(stateDirectory: dir + "/state")
        let marker = dir + "/fixed"
        let ran = Mutex<[String]>([])
        let plan = Plan(id: "nightly", steps: [
            .closure("fetch") { _ in ran.withLock { $0.append("fetch") } },
            .closure("build", dependsOn: ["fetch"]) { _ in
                ran.withLock { $0.append("build") }
                guard FileManager.default.fileExists(atPath: marker) else { throw CocoaError(.fileNoSuchFile) }
            },
        ])
        let first = try await session.start(plan)
        #expect(first.status == .failed)
        let store = try RunStore(stateDirectory: session.stateDirectory, readOnly: true)
        let record = try #require(try store.run(first.runID))
        #expect(record.planID == "nightly")
        #expect(record.source.isInCode)

        // Without the plan there is nothing to continue from: one sentence, exit 2, nothing run.
        do {
            _ = try await session.resume(runID: first.runID)
            Issue.record("resume without the in-code plan went on")
        } catch {
            #expect(error.exitCode == 2)
            #expect(error.message.contains("built in code"))
        }
        #expect(ran.withLock { $0 } == ["fetch", "build"])

        #expect(FileManager.default.createFile(atPath: marker, contents: nil))
        let resumed = try await session.resume(runID: first.runID, plan: plan)
        #expect(resumed.status == .succeeded)
        #expect(ran.withLock { $0 } == ["fetch", "build", "build"], "the succeeded step is kept")
        #expect(resumed.steps.map(\.attempts) == [1, 2])

        let replayed = try await session.replay(runID: first.runID, plan: plan)
        #expect(replayed.status == .succeeded)
        #expect(replayed.runID != first.runID)
    }

    /// Every payload goes through the one codec and comes back equal, and the keys it writes are
    /// the ones SPEC §3 readers know.
    @Test func everyPayloadRoundTripsThroughTheCodec() throws {
        let end = AttemptEnd(exitCode: 3, signal: nil, timedOut: true, error: "timed out after 1s")
        let payloads: [RunEvent.Payload] = [
            .runStarted(RunStart(planID: "p", steps: 3, maxConcurrency: 2)),
            .runResumed(RunStart(planID: "p", steps: 3, maxConcurrency: 1)),
            .stepStarted,
            .stepAttemptFailed(end),
            .stepAttemptFailed(.engineLost("engine lost while the attempt ran")),
            .stepRetry(delaySeconds: 0.25),
            .stepSucceeded(AttemptEnd(exitCode: 0)),
            .stepFailed(end),
            .stepSkipped(reason: "dependency \"a\" failed"),
            .stepCancelled(reason: "run interrupted by SIGINT", attempt: AttemptEnd(signal: 15)),
            .stepCancelled(reason: "run aborted", attempt: nil),
            .runFinished(RunEnd(status: .failed, exitCode: 1, total: 3, succeeded: 1, failed: 1, skipped: 1)),
        ]
        for payload in payloads {
            let stored = payload.json.map { $0.serialized() }
            let parsed = try stored.map { try StrictJSONParser.parse(Array($0.utf8)).toValue() }
            var expected = payload
            // A cancelled attempt's error is the step's reason; the codec does not repeat it.
            if case .stepCancelled(let reason, var attempt?) = payload { attempt.error = nil; expected = .stepCancelled(reason: reason, attempt: attempt) }
            #expect(RunEvent.Payload(kind: payload.kind, json: parsed) == expected, "\(payload)")
        }
        #expect(RunEvent.Payload.stepAttemptFailed(end).json
                == ["exit_code": 3, "signal": .null, "timed_out": true, "error": "timed out after 1s"])
        #expect(RunEvent.Payload.stepAttemptFailed(.engineLost("lost")).json
                == ["exit_code": .null, "signal": .null, "timed_out": false, "engine_lost": true, "error": "lost"])
        #expect(RunEvent.Payload.stepStarted.json == nil)
    }

    /// A runner configured once on the session serves start, resume and replay alike, and a
    /// resume asks it to reclaim what a dead engine left.
    @Test func theSessionsRunnerServesEveryRunAndReclaimsOnResume() async throws {
        final class Recording: StepRunner, Sendable {
            let base = LocalStepRunner()
            let log = Mutex<[String]>([])
            func run(_ step: Step, context: AttemptContext) async -> AttemptOutcome {
                log.withLock { $0.append("run \(step.id) #\(context.attempt)") }
                return await base.run(step, context: context)
            }
            func reclaimLostAttempts(runID: String) async -> [LostAttempt] {
                log.withLock { $0.append("reclaim") }
                return await base.reclaimLostAttempts(runID: runID)
            }
        }
        let dir = Self.tempDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let recording = Recording()
        let session = try RunSession(stateDirectory: dir + "/state", runner: recording)
        let marker = dir + "/fixed"
        let plan = Plan(id: "seam", steps: [
            .closure("a") { _ in guard FileManager.default.fileExists(atPath: marker) else { throw CocoaError(.fileNoSuchFile) } },
        ])
        let first = try await session.start(plan)
        #expect(first.status == .failed)
        #expect(FileManager.default.createFile(atPath: marker, contents: nil))
        let resumed = try await session.resume(runID: first.runID, plan: plan)
        #expect(resumed.status == .succeeded)
        _ = try await session.replay(runID: first.runID, plan: plan)
        #expect(recording.log.withLock { $0 } == ["run a #1", "reclaim", "run a #2", "run a #1"])
    }

    @Test func attemptLogNamesRoundTripAndStepIDsMayHoldDots() {
        let log = AttemptLog(stepID: "build.linux-x86_64", attempt: 12, stream: .stderr)
        #expect(log.fileName == "build.linux-x86_64.12.err")
        #expect(log.relativePath(runID: "r-1") == "runs/r-1/logs/build.linux-x86_64.12.err")
        #expect(AttemptLog(fileName: log.fileName) == log)
        #expect(AttemptLog(fileName: "build.3.sh") == nil)
        #expect(AttemptLog(fileName: "build.0.out") == nil)
        #expect(AttemptLog(fileName: ".3.out") == nil)
        #expect(AttemptLog(fileName: "starts") == nil)
    }
}
