import Foundation
import Testing
@testable import Orchestration

/// How a Slurm job's end maps to an attempt's verdict, and the words the job script and
/// `sbatch` get (no cluster needed).
@Suite("Slurm executor: verdicts and job scripts")
struct SlurmOutcomeTests {
    @Test func onlyCompletedWithExitZeroSucceeds() {
        let ok = SlurmStepRunner.outcome(SlurmJobEnd(state: "COMPLETED", exitCode: 0), jobID: "7")
        #expect(ok.result == .succeeded && ok.jobID == "7")
        for state in ["FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "CANCELLED", "BOOT_FAIL", "DEADLINE"] {
            let outcome = SlurmStepRunner.outcome(SlurmJobEnd(state: state, exitCode: 0), jobID: "7")
            #expect(outcome.result == .failed, "\(state)")
            #expect(outcome.error?.contains("Slurm job 7 \(state)") == true, "\(outcome.error ?? "")")
        }
        let killed = SlurmStepRunner.outcome(SlurmJobEnd(state: "FAILED", signal: 9), jobID: "8")
        #expect(killed.error == "killed by signal 9 (SIGKILL); Slurm job 8 FAILED" && killed.signal == 9)
        let cancelled = SlurmStepRunner.outcome(SlurmJobEnd(state: "CANCELLED", signal: 15), jobID: "9")
        #expect(cancelled.error?.hasSuffix("CANCELLED (not by the engine)") == true)
    }

    @Test func squeuesRawWaitStatusIsDecoded() {
        #expect(SlurmJobEnd(state: "FAILED", waitStatus: 768) == SlurmJobEnd(state: "FAILED", exitCode: 3))
        #expect(SlurmJobEnd(state: "CANCELLED", waitStatus: 15) == SlurmJobEnd(state: "CANCELLED", signal: 15))
        #expect(SlurmJobEnd(state: "COMPLETED", waitStatus: 0) == SlurmJobEnd(state: "COMPLETED", exitCode: 0))
    }

    @Test func aSlurmRunWithoutALimitAllowsSixtyFourJobsInFlight() throws {
        let step = Step.process("a", "true")
        let unset = Plan(id: "p", steps: [step])
        #expect(RunSession.maxConcurrency(RunRequest(executor: .slurm), unset) == 64)
        #expect(RunSession.maxConcurrency(RunRequest(), Plan(id: "p", steps: [step], executor: .slurm)) == 64)
        #expect(RunSession.maxConcurrency(RunRequest(), unset) == nil, "local keeps the plan's default (cores)")
        #expect(RunSession.maxConcurrency(RunRequest(maxConcurrency: 3, executor: .slurm), unset) == 3)
        #expect(RunSession.maxConcurrency(RunRequest(executor: .slurm), Plan(id: "p", maxConcurrency: 5, steps: [step])) == nil,
                "the plan's own max_concurrency stands")
    }

    @Test func aLostJobRecordIsAFailureNeverASuccess() {
        let lost = SlurmStepRunner.outcome(SlurmJobEnd(detail: "Slurm has no record of it"), jobID: "10")
        #expect(lost.result == .failed)
        #expect(lost.error?.contains("job record lost") == true)
    }

    @Test func onlyReasonsThatNeverPassMeanAJobCanNeverStart() {
        #expect(SlurmJobStates.reasonCode("ReqNodeNotAvail, UnavailableNodes:n[1-2]") == "ReqNodeNotAvail")
        #expect(SlurmJobStates.reasonCode("PartitionNodeLimit") == "PartitionNodeLimit")
        for reason in ["PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints", "InvalidAccount", "InvalidQOS",
                       "QOSMaxWallDurationPerJobLimit", "DependencyNeverSatisfied"] {
            #expect(SlurmJobStates.neverStart[reason] != nil, "\(reason)")
        }
        for reason in ["None", "Resources", "Priority", "BeginTime", "JobHeldUser", "JobHeldAdmin", "PartitionDown", "NodeDown",
                       "ReqNodeNotAvail", "QOSGrpCpuLimit", "QOSMaxJobsPerUserLimit", "AssocGrpJobsLimit", "Reservation"] {
            #expect(SlurmJobStates.neverStart[reason] == nil, "\(reason) passes")
        }
        #expect(SlurmStepRunner.neverStarts("5", reason: "BadConstraints")
                == "Slurm job 5 can never start as submitted: it waits with reason BadConstraints: "
                + "no node of its partition can satisfy what it asks for; cancelled")
    }

    @Test func resumeAdoptsAnEndedJobsResultAsThePollerWouldHaveRecordedIt() throws {
        let folder = NSTemporaryDirectory() + "omnibase-takeover-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try "said=hi\nAPI_TOKEN=t0k\n".write(toFile: folder + "/s.1.outputs", atomically: false, encoding: .utf8)
        let closing = RunSession.TakeoverClosing(logsFolder: folder, secretNames: [])
        var step = Step.process("s", "true")
        step.timeout = .seconds(10)
        func end(_ found: LostAttempt?, recorded: String? = "7") -> RunEvent.Payload {
            closing.end(of: .init(step: step, number: 1, recordedJobID: recorded, found: found, startUnrecorded: false))
        }
        let success = SlurmStepRunner.outcome(SlurmJobEnd(state: "COMPLETED", exitCode: 0), jobID: "7")
        let adopted = end(LostAttempt(stepID: "s", attempt: 1, jobID: "7", wasRunning: false, outcome: success, ranFor: .seconds(9)))
        guard case .stepSucceeded(let done?) = adopted else { Issue.record("\(adopted)"); return }
        #expect(done.jobID == "7" && done.exitCode == 0 && !done.engineLost)
        #expect(done.outputs.map { "\($0.name)=\($0.value) \($0.isSecret)" } == ["said=hi false", "API_TOKEN=t0k true"])
        // Past the step's timeout: the engine would have ended it, so it is a timed-out attempt.
        let late = end(LostAttempt(stepID: "s", attempt: 1, jobID: "7", wasRunning: false, outcome: success, ranFor: .seconds(25)))
        guard case .stepAttemptFailed(let timedOut) = late else { Issue.record("\(late)"); return }
        #expect(timedOut.timedOut && !timedOut.engineLost && timedOut.exitCode == 0)
        #expect(timedOut.error == "timed out after 10s: job 7 ran 25s while no engine watched it (it ended: succeeded)")
        // Slurm's TIMEOUT, as the poller records it.
        let limit = SlurmStepRunner.outcome(SlurmJobEnd(state: "TIMEOUT", signal: 15), jobID: "7", timeLimit: "1:00")
        guard case .stepAttemptFailed(let slurm) = end(LostAttempt(stepID: "s", attempt: 1, jobID: "7", wasRunning: false,
                                                                    outcome: limit, ranFor: .seconds(5))) else { return }
        #expect(slurm.timedOut && slurm.signal == 15)
        // Torn down at the takeover: lost; gone from Slurm's records: lost, and said so.
        guard case .stepAttemptFailed(let torn) = end(LostAttempt(stepID: "s", attempt: 1, jobID: "7", wasRunning: true)) else { return }
        #expect(torn.engineLost && torn.jobID == "7" && torn.error == "engine lost while the attempt ran")
        guard case .stepAttemptFailed(let gone) = end(nil) else { return }
        #expect(gone.engineLost && gone.jobID == "7")
        #expect(gone.error == "engine lost while the attempt ran; job 7 was gone from the cluster's records at the takeover, "
                + "so its result is unknown")
        guard case .stepAttemptFailed(let local) = end(nil, recorded: nil) else { return }
        #expect(local.engineLost && local.jobID == nil && local.error == "engine lost while the attempt ran")
        #expect(SlurmTime.duration("1:22") == .seconds(82) && SlurmTime.duration("1:02:03") == .seconds(3723))
        #expect(SlurmTime.duration("2-03:04:05") == .seconds(2 * 86_400 + 11_045) && SlurmTime.duration("UNLIMITED") == nil)
    }

    @Test func scriptWordsAreQuotedExactlyAndLogPathsEscaped() {
        #expect(SlurmStepRunner.quote("it's $HOME *") == #"'it'\''s $HOME *'"#)
        #expect(SlurmStepRunner.quote("") == "''")
        #expect(SlurmStepRunner.escapePattern("/s/100%/a.1.out") == "/s/100%%/a.1.out")
        #expect(SlurmCLI.parseJobID("123\n") == "123")
        #expect(SlurmCLI.parseJobID("124;cluster\n") == "124")
        #expect(SlurmCLI.parseJobID("Submitted batch job 5\n") == nil)
    }

    @Test func extraArgumentsTheEngineControlsAreRefused() {
        for bad in ["--output=x", "--o=x", "--job-name=x", "--parsable", "--wrap=ls", "--time=5", "--mem=1G", "-p", "x", "--", "--Qos=x"] {
            #expect(SlurmSettings.validationError(ofExtraArgument: bad) != nil, "\(bad)")
        }
        for good in ["--qos=high", "--exclusive", "--constraint=gpu", "--gres=gpu:1", "--mem-per-cpu=1G", "--nice=1"] {
            #expect(SlurmSettings.validationError(ofExtraArgument: good) == nil, "\(good)")
        }
        for good in ["30", "10:00", "1:00:00", "2-0", "2-12:00", "2-12:00:00"] { #expect(SlurmSettings.validationError(ofTime: good) == nil) }
        for bad in ["", "1h", "1:2:3:4", "-5", "1-2-3", "a-1"] { #expect(SlurmSettings.validationError(ofTime: bad) != nil, "\(bad)") }
    }
}
