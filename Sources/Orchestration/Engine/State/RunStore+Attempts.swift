import Foundation

extension RunStore {
    /// One row of the `attempts` table: when an attempt ran and how it ended.
    ///
    /// The ways an attempt can end are separate facts, as the table keeps them; ``outcome``
    /// folds them into the one a report shows.
    public struct AttemptRecord: Sendable, Hashable {
        /// How an attempt ended, as a report shows it.
        public enum Outcome: String, Sendable, Hashable, CaseIterable {
            /// The attempt succeeded.
            case succeeded
            /// It exited non-zero, was killed by a signal or could not start.
            case failed
            /// It exceeded its timeout.
            case timedOut = "timed-out"
            /// It was torn down because the run was stopped.
            case cancelled
            /// The engine died while it ran (recorded by `resume`).
            case engineLost = "engine-lost"
            /// No end is recorded yet: it is running, or its engine died and nobody resumed.
            case running
        }

        /// The step's id.
        public var stepID: String
        /// 1-based attempt number.
        public var attempt: Int
        /// When it started.
        public var startedAt: Date?
        /// When it ended; nil while running or when its engine died.
        public var finishedAt: Date?
        /// The process's exit code, if it exited.
        public var exitCode: Int32?
        /// The signal that ended it, if one did.
        public var signal: Int32?
        /// Whether it exceeded its timeout.
        public var timedOut: Bool
        /// Whether it was torn down by a stop of the run.
        public var cancelled: Bool
        /// Whether its engine died while it ran.
        public var engineLost: Bool
        /// true or false once its verdict is known; nil before.
        public var succeeded: Bool?
        /// Why it failed.
        public var error: String?
        /// The cluster job that ran it (Slurm); nil for local attempts.
        public var jobID: String?

        /// Creates a record (tests and in-memory reports).
        public init(stepID: String, attempt: Int, startedAt: Date?, finishedAt: Date?, exitCode: Int32? = nil,
                    signal: Int32? = nil, timedOut: Bool = false, cancelled: Bool = false, engineLost: Bool = false,
                    succeeded: Bool? = nil, error: String? = nil, jobID: String? = nil) {
            self.stepID = stepID
            self.attempt = attempt
            self.startedAt = startedAt
            self.finishedAt = finishedAt
            self.exitCode = exitCode
            self.signal = signal
            self.timedOut = timedOut
            self.cancelled = cancelled
            self.engineLost = engineLost
            self.succeeded = succeeded
            self.error = error
            self.jobID = jobID
        }

        /// The one way the attempt ended: engine lost, cancelled and timed out take precedence
        /// over a plain failure.
        public var outcome: Outcome {
            if engineLost { return .engineLost }
            if cancelled { return .cancelled }
            if timedOut { return .timedOut }
            if succeeded == true { return .succeeded }
            if succeeded == false || finishedAt != nil { return .failed }
            return .running
        }

        /// `finishedAt - startedAt`, when both are known.
        public var duration: Double? {
            guard let startedAt, let finishedAt else { return nil }
            return finishedAt.timeIntervalSince(startedAt)
        }
    }

    /// Every attempt of a run, steps in plan order, attempts in order.
    /// - Throws: ``EngineError`` (exit 74) when the database cannot be read.
    public func attempts(_ runID: String) throws(EngineError) -> [AttemptRecord] {
        let rows: [Row]
        do {
            rows = try database.query("""
                SELECT \(attemptColumns(prefix: "a."))
                FROM attempts a LEFT JOIN steps s ON s.run_id = a.run_id AND s.step_id = a.step_id
                WHERE a.run_id = ? ORDER BY s.position, a.attempt
                """, runID)
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(error)
        }
        return rows.map(AttemptRecord.init(row:))
    }

    /// The columns ``AttemptRecord/init(row:)`` reads, in its order (`job_id` since schema 2).
    package func attemptColumns(prefix: String = "") -> String {
        ["step_id", "attempt", "started_at", "finished_at", "exit_code", "signal", "timed_out", "cancelled", "engine_lost",
         "succeeded", "error"].map { prefix + $0 }.joined(separator: ", ")
            + (openedVersion >= 2 ? ", \(prefix)job_id" : ", NULL")
    }
}

extension RunStore.AttemptRecord {
    /// An attempt read from a row of ``RunStore/attemptColumns(prefix:)``.
    package init(row: Row) {
        self.init(stepID: row.string(0) ?? "", attempt: row.int(1),
                  startedAt: row.string(2).flatMap(Timestamp.parse), finishedAt: row.string(3).flatMap(Timestamp.parse),
                  exitCode: row.isNull(4) ? nil : Int32(truncatingIfNeeded: row.int(4)),
                  signal: row.isNull(5) ? nil : Int32(truncatingIfNeeded: row.int(5)),
                  timedOut: row.int(6) != 0, cancelled: row.int(7) != 0, engineLost: row.int(8) != 0,
                  succeeded: row.isNull(9) ? nil : row.int(9) != 0, error: row.string(10), jobID: row.string(11))
    }
}
