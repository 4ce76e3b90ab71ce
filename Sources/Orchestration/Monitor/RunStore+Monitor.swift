import Orchestration
import Presentation
import MonitorHTTP
import Foundation

extension RunStore {
    /// A run's row without its plan snapshot and variables: what the monitor lists and watches.
    package struct RunRow: Sendable, Hashable {
        package var runID: String
        package var planID: String
        package var status: RunStatus
        package var createdAt: String
        package var startedAt: String?
        package var finishedAt: String?
        package var stage: String?
        package var engine: EngineIdentity?
        /// The last event's `seq` (0 before the first).
        package var lastSeq: Int64

        /// Not finished, and its engine still runs (as ``RunRecord/isLive``).
        package var isLive: Bool { !status.isFinal && (engine?.isAlive ?? false) }
    }

    /// What the runs list can be narrowed to.
    package struct RunFilter: Sendable, Hashable {
        package var status: RunStatus?
        package var planID: String?
        package var limit: Int

        package init(status: RunStatus? = nil, planID: String? = nil, limit: Int = 100) {
            self.status = status
            self.planID = planID
            self.limit = limit
        }
    }

    private var rowColumns: String {
        """
        run_id, plan_id, status, created_at, started_at, finished_at, stage, engine_pid, engine_start_time, engine_boot_id, \(lastSeqColumn)
        """
    }

    private static func runRow(_ row: Row) -> RunRow {
        RunRow(runID: row.string(0) ?? "", planID: row.string(1) ?? "",
               status: RunStatus(rawValue: row.string(2) ?? "") ?? .pending, createdAt: row.string(3) ?? "",
               startedAt: row.string(4), finishedAt: row.string(5), stage: row.string(6),
               engine: row.isNull(7) ? nil : EngineIdentity(pid: Int32(row.int(7)), startTime: row.int64(8), bootID: row.string(9) ?? ""),
               lastSeq: row.int64(10))
    }

    /// Runs newest first (the `runs_by_created` index), narrowed by a filter.
    package func runRows(_ filter: RunFilter) throws(EngineError) -> [RunRow] {
        try monitorRead { db in
            var sql = "SELECT \(rowColumns) FROM runs"
            var conditions: [String] = []
            var bindings: [(any SQLiteBindable)?] = []
            if let status = filter.status {
                conditions.append("status = ?")
                bindings.append(status.rawValue)
            }
            if let plan = filter.planID {
                conditions.append("plan_id = ?")
                bindings.append(plan)
            }
            if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
            sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
            bindings.append(filter.limit)
            let statement = try db.prepare(sql)
            try statement.bind(bindings)
            return try statement.rows().map(Self.runRow)
        }
    }

    /// One run's row (primary key), or nil.
    package func runRow(_ runID: String) throws(EngineError) -> RunRow? {
        try monitorRead { db in
            try db.cachedStatement("SELECT \(rowColumns) FROM runs WHERE run_id = ?").rowsBinding(runID).first.map(Self.runRow)
        }
    }

    /// The plan ids that have runs, sorted (for the list's filter).
    package func planIDs(limit: Int = 200) throws(EngineError) -> [String] {
        try monitorRead { db in
            try db.query("SELECT DISTINCT plan_id FROM runs ORDER BY plan_id LIMIT ?", limit).compactMap { $0.string(0) }
        }
    }

    /// The attempts of some steps of a run (primary-key lookups), by step id.
    package func attempts(_ runID: String, steps: Set<String>) throws(EngineError) -> [String: [AttemptRecord]] {
        try monitorRead { db in
            let statement = try db.cachedStatement("""
                SELECT \(attemptColumns()) FROM attempts WHERE run_id = ? AND step_id = ? ORDER BY attempt
                """)
            var result: [String: [AttemptRecord]] = [:]
            for step in steps {
                result[step] = try statement.rowsBinding(runID, step).map(AttemptRecord.init(row:))
            }
            return result
        }
    }

    /// SQLite's `PRAGMA data_version`: it changes when another connection commits, so a reader
    /// learns that something was written without reading any table.
    package func dataVersion() throws(EngineError) -> Int64 {
        try monitorRead { db in try db.query("PRAGMA data_version").first?.int64(0) ?? 0 }
    }

    private func monitorRead<T>(_ body: (SQLiteDatabase) throws -> T) throws(EngineError) -> T {
        do { return try body(database) } catch let error as EngineError { throw error } catch { throw EngineError(error) }
    }
}

extension Statement {
    /// Binds values, returns every row, and resets the statement for its next use.
    fileprivate func rowsBinding(_ values: (any SQLiteBindable)?...) throws -> [Row] {
        reset()
        clearBindings()
        try bind(values)
        defer { reset() }
        return try rows()
    }
}
