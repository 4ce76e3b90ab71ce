import Foundation

extension RunSession {
    /// How `resume` closes an attempt that a dead engine left open, as its first events after the
    /// takeover (SPEC section 9: "the dead engine's jobs are cancelled or adopted, each result
    /// counted once").
    struct TakeoverClosing {
        /// What `resume` knows of the attempt.
        struct Attempt {
            /// The step.
            var step: Step
            /// The attempt number.
            var number: Int
            /// The job id recorded with its start, if any.
            var recordedJobID: String?
            /// What its executor found of it at the takeover (``StepRunner/reclaimLostAttempts(runID:killGrace:)``).
            var found: LostAttempt?
            /// Whether the store never heard of its start.
            var startUnrecorded: Bool
        }

        /// The run's `logs` folder.
        let logsFolder: String
        /// The plan's secret names, for the outputs of an adopted success.
        let secretNames: Set<String>

        /// The event that ends `attempt`:
        /// - its job ended on its own while no engine watched it: the job's result is adopted
        ///   (exit code, signal, Slurm's `TIMEOUT`, the outputs of a success; a run longer than the
        ///   step's `timeout_sec` is a timed-out attempt, as the engine would have ended it), so
        ///   a step whose job succeeded does not run again;
        /// - else "engine lost" (the job was still running and has been torn down, or nothing is
        ///   known of it), with its job id: the step runs again.
        func end(of attempt: Attempt) -> RunEvent.Payload {
            let jobID = attempt.found?.jobID ?? attempt.recordedJobID
            guard let found = attempt.found, var outcome = found.outcome else {
                var error = attempt.startUnrecorded
                    ? "engine lost before the attempt's start was recorded" : "engine lost while the attempt ran"
                if attempt.found == nil, let jobID {
                    // Its cluster no longer knows the job (a record is kept for a while after the
                    // job ends: Slurm's MinJobAge): it ended long ago, how is unknown.
                    error += "; job \(jobID) was gone from the cluster's records at the takeover, so its result is unknown"
                }
                return .stepAttemptFailed(.engineLost(error, jobID: jobID))
            }
            outcome.jobID = outcome.jobID ?? jobID
            if let timeout = attempt.step.timeout, let ranFor = found.ranFor, ranFor > timeout {
                // The engine would have ended it at its timeout: what came after does not count.
                let ended = outcome.result == .succeeded ? "succeeded" : (outcome.error ?? "failed")
                outcome.result = .failed
                outcome.timedOut = true
                outcome.error = "timed out after \(formatSeconds(timeout)): job \(jobID ?? "?") ran \(formatSeconds(ranFor)) "
                    + "while no engine watched it (it ended: \(ended))"
            }
            var end = AttemptEnd(outcome)
            guard outcome.result == .succeeded else { return .stepAttemptFailed(end) }
            let path = "\(logsFolder)/\(OutputFile.fileName(stepID: attempt.step.id, attempt: attempt.number))"
            OutputFile.makePrivate(atPath: path)
            do throws(OutputFile.Failure) {
                end.outputs = try OutputFile.read(atPath: path).map { output in
                    StepOutput(name: output.name, value: output.value,
                               isSecret: secretNames.contains(output.name) || SecretMask.isSecretName(output.name))
                }
            } catch {
                end.error = "outputs refused: \(error.message)"
                return .stepAttemptFailed(end)
            }
            return .stepSucceeded(end)
        }
    }
}
