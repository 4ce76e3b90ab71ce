import Foundation

extension RunStore {
    /// The steps that failed in the latest finished run of a plan, when that run failed; nil when
    /// the plan has no finished run or its latest one did not fail (``RunSession`` starts these
    /// steps first on the next run: fail fast on a re-run).
    /// - Parameter excluding: a run not to consider (the one being started).
    public func failedStepsOfLatestRun(planID: String, excluding: String? = nil) throws(EngineError) -> Set<String>? {
        let rows: [Row]
        do {
            rows = try database.query("""
                SELECT run_id, status FROM runs
                WHERE plan_id = ? AND status IN ('succeeded', 'failed', 'cancelled') AND run_id <> ?
                ORDER BY finished_at DESC, rowid DESC LIMIT 1
                """, planID, excluding ?? "")
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(error)
        }
        guard let row = rows.first, row.string(1) == RunStatus.failed.rawValue, let runID = row.string(0) else { return nil }
        return Set(try steps(runID).filter { $0.status == .failed }.map(\.id))
    }
}
