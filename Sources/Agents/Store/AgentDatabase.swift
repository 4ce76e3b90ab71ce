import Foundation
import Orchestration

/// The schema and the statements of `agents.db`, the agents' own SQLite file in the state
/// folder (the plan engine's `runs.db` is not touched).
///
/// Tables: `sessions`, `roles`, `tasks`, `iterations`, `events`, `milestones` (see the README's
/// state section and `docs/agents.md`). Every function takes the connection it works on, so the
/// ``AgentStore`` actor, the read-only ``SessionSnapshot`` and `ci emit` share one definition.
/// Writes go through `SQLiteDatabase.write`, which holds `agents.db.lock` across processes.
enum AgentDatabase {
    /// The schema this build reads and writes (`PRAGMA user_version`).
    static let schemaVersion = 1
    /// The database's file name in the state folder.
    static let fileName = "agents.db"

    static let schema = """
    CREATE TABLE IF NOT EXISTS sessions (
        session_id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        project_dir TEXT NOT NULL,
        repo TEXT NOT NULL,
        sandbox TEXT NOT NULL,
        integration_branch TEXT NOT NULL,
        config TEXT NOT NULL,
        plan BLOB NOT NULL,
        status TEXT NOT NULL,
        engine_pid INTEGER,
        started_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE TABLE IF NOT EXISTS roles (
        session_id TEXT NOT NULL REFERENCES sessions(session_id),
        role TEXT NOT NULL,
        max_parallel INTEGER NOT NULL,
        agent TEXT NOT NULL,
        PRIMARY KEY (session_id, role)
    );
    CREATE TABLE IF NOT EXISTS tasks (
        session_id TEXT NOT NULL REFERENCES sessions(session_id),
        task_id TEXT NOT NULL,
        role TEXT NOT NULL,
        title TEXT NOT NULL,
        milestone TEXT NOT NULL,
        position INTEGER NOT NULL,
        state TEXT NOT NULL,
        phase TEXT,
        iteration INTEGER NOT NULL DEFAULT 0,
        budget_used INTEGER NOT NULL DEFAULT 0,
        unchanged_streak INTEGER NOT NULL DEFAULT 0,
        fingerprint TEXT,
        branch TEXT NOT NULL,
        worktree TEXT NOT NULL,
        worktree_ready INTEGER NOT NULL DEFAULT 0,
        awaiting TEXT,
        event_cursor INTEGER NOT NULL DEFAULT 0,
        ci_status TEXT,
        ci_run_id TEXT,
        ci_log TEXT,
        reason TEXT,
        started_at TEXT,
        finished_at TEXT,
        PRIMARY KEY (session_id, task_id)
    );
    CREATE TABLE IF NOT EXISTS iterations (
        session_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        iteration INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        outcome TEXT,
        exit_code INTEGER,
        detail TEXT,
        stdout_log TEXT,
        stderr_log TEXT,
        engine_pid INTEGER,
        PRIMARY KEY (session_id, task_id, iteration)
    );
    CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        session_id TEXT,
        name TEXT NOT NULL,
        task_id TEXT,
        data TEXT,
        source TEXT NOT NULL,
        ts TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS events_by_session ON events(session_id, seq);
    CREATE TABLE IF NOT EXISTS milestones (
        session_id TEXT NOT NULL REFERENCES sessions(session_id),
        milestone_id TEXT NOT NULL,
        title TEXT NOT NULL,
        position INTEGER NOT NULL,
        tasks TEXT NOT NULL,
        state TEXT NOT NULL,
        merge TEXT,
        pull_request TEXT,
        conflicts TEXT,
        reason TEXT,
        PRIMARY KEY (session_id, milestone_id)
    );
    """

    // MARK: - Opening

    /// Opens `agents.db` of a state folder, creating the schema on first use.
    ///
    /// - Parameters:
    ///   - stateDirectory: The state folder.
    ///   - readOnly: Open for reading only (`agents status`); the file must exist.
    /// - Returns: The connection, or nil when `readOnly` and there is no `agents.db` yet.
    /// - Throws: ``StoreError`` (exit 74, 5), ``OrchestratorError`` for an incompatible schema (exit 4).
    static func open(_ stateDirectory: StateDirectory, readOnly: Bool) throws -> SQLiteDatabase? {
        let path = stateDirectory.path + "/" + fileName
        for suffix in ["", "-wal", "-shm", ".lock"] {
            var info = stat()
            if lstat(path + suffix, &info) == 0, info.st_mode & S_IFMT == S_IFLNK {
                throw StoreError(.symlinkRefused, message: "The state file '\(path + suffix)' is a symbolic link; remove it.",
                                 detail: "refusing to follow a symbolic link in the state folder", path: path + suffix)
            }
        }
        let database: SQLiteDatabase
        if readOnly {
            guard FileManager.default.fileExists(atPath: path) else { return nil }
            database = try SQLiteDatabase(path: path, mode: .readOnly)
        } else {
            database = try SQLiteDatabase(path: path, mode: .readWrite)
        }
        let version = try database.userVersion
        if version == schemaVersion { return database }
        if version == 0 && !readOnly {
            try database.write { db in
                guard try db.userVersion == 0 else { return }
                try db.exec(schema)
                try db.setUserVersion(schemaVersion)
            }
            if try database.userVersion == schemaVersion { return database }
        }
        if version == 0 && readOnly { return nil }
        throw OrchestratorError(.stateFailed,
            "\(path) has schema version \(try database.userVersion), this build reads version \(schemaVersion); use a matching omnibase-agents or another --state-dir",
            exitCode: 4)
    }

    // MARK: - Sessions

    static func insertSession(_ db: SQLiteDatabase, _ session: SessionRecord, roles: [RoleSpec], tasks: [TaskRecord],
                              milestones: [MilestoneRecord]) throws {
        try db.write { db in
            try db.run("""
                INSERT INTO sessions (session_id, project, project_dir, repo, sandbox, integration_branch, config, plan,
                                      status, engine_pid, started_at, finished_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)
                """, session.id, session.project, session.projectDirectory, session.repository, session.sandbox,
                session.integrationBranch, session.config.serialized(), session.plan, session.status.rawValue,
                session.enginePID, session.startedAt)
            for role in roles {
                let agent: JSONValue = .object([
                    "command": .string(role.agent.command),
                    "args": .array(role.agent.arguments.map { .string($0) }),
                ])
                try db.run("INSERT INTO roles (session_id, role, max_parallel, agent) VALUES (?, ?, ?, ?)",
                           session.id, role.name, role.maxParallel, agent.serialized())
            }
            for task in tasks { try insertTask(db, session.id, task) }
            for milestone in milestones {
                try db.run("""
                    INSERT INTO milestones (session_id, milestone_id, title, position, tasks, state)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """, session.id, milestone.id, milestone.title, milestone.position,
                    JSONValue.array(milestone.tasks.map { .string($0) }).serialized(), milestone.state.rawValue)
            }
            // Events published while no session was running are this session's.
            try db.run("UPDATE events SET session_id = ? WHERE session_id IS NULL", session.id)
        }
    }

    private static func insertTask(_ db: SQLiteDatabase, _ session: String, _ task: TaskRecord) throws {
        try db.run("""
            INSERT INTO tasks (session_id, task_id, role, title, milestone, position, state, branch, worktree)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, session, task.id, task.role, task.title, task.milestone, task.position, task.state.rawValue,
            task.branch, task.worktree)
    }

    static let sessionColumns = """
        session_id, project, project_dir, repo, sandbox, integration_branch, config, plan, status, engine_pid,
        started_at, finished_at
        """

    static func session(from row: Row) -> SessionRecord {
        SessionRecord(
            id: row.string(0) ?? "", project: row.string(1) ?? "", projectDirectory: row.string(2) ?? "",
            repository: row.string(3) ?? "", sandbox: row.string(4) ?? "", integrationBranch: row.string(5) ?? "",
            config: parse(row.string(6)) ?? .object([]), plan: row.blob(7) ?? [],
            status: SessionRecord.Status(rawValue: row.string(8) ?? "") ?? .failed,
            enginePID: row.isNull(9) ? nil : row.int(9), startedAt: row.string(10) ?? "", finishedAt: row.string(11))
    }

    /// The session `id`, or the latest one (of `projectDirectory` when given).
    static func session(_ db: SQLiteDatabase, id: String?, projectDirectory: String? = nil) throws -> SessionRecord? {
        let rows: [Row]
        if let id {
            rows = try db.query("SELECT \(sessionColumns) FROM sessions WHERE session_id = ?", id)
        } else if let projectDirectory {
            rows = try db.query("SELECT \(sessionColumns) FROM sessions WHERE project_dir = ? ORDER BY started_at DESC, rowid DESC LIMIT 1",
                                projectDirectory)
        } else {
            rows = try db.query("SELECT \(sessionColumns) FROM sessions ORDER BY started_at DESC, rowid DESC LIMIT 1")
        }
        return rows.first.map(session(from:))
    }

    static func setSessionStatus(_ db: SQLiteDatabase, _ id: String, _ status: SessionRecord.Status, enginePID: Int?) throws {
        let finished: String? = status == .running ? nil : Timestamp.rfc3339(Date())
        try db.write { db in
            try db.run("UPDATE sessions SET status = ?, engine_pid = COALESCE(?, engine_pid), finished_at = ? WHERE session_id = ?",
                       status.rawValue, enginePID, finished, id)
        }
    }

    // MARK: - Tasks

    static let taskColumns = """
        task_id, role, title, milestone, position, state, phase, iteration, budget_used, unchanged_streak, fingerprint,
        branch, worktree, worktree_ready, awaiting, event_cursor, ci_status, ci_run_id, ci_log, reason, started_at,
        finished_at
        """

    static func task(from row: Row) -> TaskRecord {
        TaskRecord(
            id: row.string(0) ?? "", role: row.string(1) ?? "", title: row.string(2) ?? "", milestone: row.string(3) ?? "",
            position: row.int(4), state: TaskState(rawValue: row.string(5) ?? "") ?? .pending,
            phase: row.string(6).flatMap(TaskRecord.Phase.init(rawValue:)), iteration: row.int(7), budgetUsed: row.int(8),
            unchangedStreak: row.int(9), fingerprint: row.string(10), branch: row.string(11) ?? "",
            worktree: row.string(12) ?? "", worktreeReady: row.int(13) != 0,
            awaiting: parse(row.string(14))?.arrayValue?.compactMap(\.stringValue), eventCursor: row.int64(15),
            ciStatus: row.string(16), ciRunID: row.string(17), ciLog: row.string(18), reason: row.string(19),
            startedAt: row.string(20), finishedAt: row.string(21))
    }

    static func tasks(_ db: SQLiteDatabase, session: String) throws -> [TaskRecord] {
        try db.query("SELECT \(taskColumns) FROM tasks WHERE session_id = ? ORDER BY position", session).map(task(from:))
    }

    static func task(_ db: SQLiteDatabase, session: String, id: String) throws -> TaskRecord? {
        try db.query("SELECT \(taskColumns) FROM tasks WHERE session_id = ? AND task_id = ?", session, id).first.map(task(from:))
    }

    static func saveTask(_ db: SQLiteDatabase, session: String, _ task: TaskRecord) throws {
        let awaiting = task.awaiting.map { JSONValue.array($0.map { .string($0) }).serialized() }
        try db.run("""
            UPDATE tasks SET state = ?, phase = ?, iteration = ?, budget_used = ?, unchanged_streak = ?, fingerprint = ?,
                             worktree_ready = ?, awaiting = ?, event_cursor = ?, ci_status = ?, ci_run_id = ?, ci_log = ?,
                             reason = ?, started_at = ?, finished_at = ?
            WHERE session_id = ? AND task_id = ?
            """, task.state.rawValue, task.phase?.rawValue, task.iteration, task.budgetUsed, task.unchangedStreak,
            task.fingerprint, task.worktreeReady, awaiting, task.eventCursor, task.ciStatus, task.ciRunID, task.ciLog,
            task.reason, task.startedAt, task.finishedAt, session, task.id)
    }

    // MARK: - Iterations

    static func beginIteration(_ db: SQLiteDatabase, session: String, task: String, iteration: Int, stdout: String,
                               stderr: String) throws {
        try db.run("""
            INSERT OR REPLACE INTO iterations (session_id, task_id, iteration, started_at, stdout_log, stderr_log, engine_pid)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """, session, task, iteration, Timestamp.rfc3339(Date()), stdout, stderr, Int(getpid()))
    }

    static func endIteration(_ db: SQLiteDatabase, session: String, task: String, iteration: Int, outcome: String,
                             exitCode: Int32?, detail: String?) throws {
        try db.run("""
            UPDATE iterations SET finished_at = ?, outcome = ?, exit_code = ?, detail = ?
            WHERE session_id = ? AND task_id = ? AND iteration = ?
            """, Timestamp.rfc3339(Date()), outcome, exitCode.map { Int($0) }, detail, session, task, iteration)
    }

    /// Closes the iterations that an engine started and never ended (it was killed): their
    /// outcome becomes `engine_lost`. Returns how many there were.
    static func closeLostIterations(_ db: SQLiteDatabase, session: String) throws -> Int {
        try db.write { db in
            let lost = try db.query("SELECT COUNT(*) FROM iterations WHERE session_id = ? AND finished_at IS NULL", session)
                .first?.int(0) ?? 0
            guard lost > 0 else { return 0 }
            try db.run("""
                UPDATE iterations SET finished_at = ?, outcome = 'engine_lost',
                    detail = 'the engine (pid ' || COALESCE(engine_pid, '?') || ') ended before this iteration did'
                WHERE session_id = ? AND finished_at IS NULL
                """, Timestamp.rfc3339(Date()), session)
            return lost
        }
    }

    /// When each blocked task of a session blocked: the end of its last iteration (the one that
    /// exited 42), by task id.
    static func blockedSince(_ db: SQLiteDatabase, session: String) throws -> [String: String] {
        var since: [String: String] = [:]
        for row in try db.query("""
            SELECT t.task_id, i.finished_at FROM tasks t JOIN iterations i
              ON i.session_id = t.session_id AND i.task_id = t.task_id AND i.iteration = t.iteration
            WHERE t.session_id = ? AND t.state = ?
            """, session, TaskState.blocked.rawValue) {
            if let task = row.string(0), let finished = row.string(1) { since[task] = finished }
        }
        return since
    }

    /// Every iteration of a session: `(task, iteration, outcome, exit_code, engine_pid)`.
    static func iterations(_ db: SQLiteDatabase, session: String) throws -> [JSONValue] {
        try db.query("""
            SELECT task_id, iteration, outcome, exit_code, detail, started_at, finished_at, engine_pid
            FROM iterations WHERE session_id = ? ORDER BY started_at, task_id, iteration
            """, session).map { row in
            .object([
                "task": .string(row.string(0) ?? ""),
                "iteration": .int(row.int(1)),
                "outcome": row.string(2).map { .string($0) } ?? .null,
                "exit_code": row.isNull(3) ? .null : .int(row.int(3)),
                "detail": row.string(4).map { .string($0) } ?? .null,
                "started_at": row.string(5).map { .string($0) } ?? .null,
                "finished_at": row.string(6).map { .string($0) } ?? .null,
                "engine_pid": row.isNull(7) ? .null : .int(row.int(7)),
            ])
        }
    }

    // MARK: - Events

    /// Stores an event unless one with the same id exists.
    ///
    /// The event belongs to `session` when given, else to the latest running session, else to
    /// none (the next session adopts it).
    /// - Returns: The stored event, and whether it was new (false: a duplicate of the stored one).
    static func appendEvent(_ db: SQLiteDatabase, id: String, name: String, task: String?, data: JSONValue?, source: String,
                            session: String?) throws -> (CIEvent, inserted: Bool) {
        try db.write { db in
            if let existing = try db.query("SELECT \(eventColumns) FROM events WHERE event_id = ?", id).first {
                return (event(from: existing), false)
            }
            let owner: String?
            if let session {
                owner = session
            } else {
                owner = try db.query("SELECT session_id FROM sessions WHERE status = 'running' ORDER BY started_at DESC, rowid DESC LIMIT 1")
                    .first?.string(0)
            }
            let timestamp = Timestamp.rfc3339(Date())
            try db.run("INSERT INTO events (event_id, session_id, name, task_id, data, source, ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       id, owner, name, task, data?.serialized(), source, timestamp)
            let stored = CIEvent(seq: db.lastInsertRowID, id: id, name: name, task: task, data: data, source: source,
                                 timestamp: timestamp)
            return (stored, true)
        }
    }

    static let eventColumns = "seq, event_id, name, task_id, data, source, ts"

    static func event(from row: Row) -> CIEvent {
        CIEvent(seq: row.int64(0), id: row.string(1) ?? "", name: row.string(2) ?? "", task: row.string(3),
                data: parse(row.string(4)), source: row.string(5) ?? "", timestamp: row.string(6) ?? "")
    }

    /// The session's events after `seq`, in order.
    static func events(_ db: SQLiteDatabase, session: String, after seq: Int64) throws -> [CIEvent] {
        try db.query("SELECT \(eventColumns) FROM events WHERE session_id = ? AND seq > ? ORDER BY seq", session, seq)
            .map(event(from:))
    }

    /// Events with no session after `seq` (published while no session ran), in order.
    static func unownedEvents(_ db: SQLiteDatabase, after seq: Int64) throws -> [CIEvent] {
        try db.query("SELECT \(eventColumns) FROM events WHERE session_id IS NULL AND seq > ? ORDER BY seq", seq)
            .map(event(from:))
    }

    // MARK: - Milestones

    static let milestoneColumns = "milestone_id, title, position, tasks, state, merge, pull_request, conflicts, reason"

    static func milestone(from row: Row) -> MilestoneRecord {
        MilestoneRecord(
            id: row.string(0) ?? "", title: row.string(1) ?? "", position: row.int(2),
            tasks: parse(row.string(3))?.arrayValue?.compactMap(\.stringValue) ?? [],
            state: MilestoneState(rawValue: row.string(4) ?? "") ?? .pending, merge: parse(row.string(5)),
            pullRequest: parse(row.string(6)), conflicts: parse(row.string(7))?.arrayValue?.compactMap(\.stringValue) ?? [],
            reason: row.string(8))
    }

    static func milestones(_ db: SQLiteDatabase, session: String) throws -> [MilestoneRecord] {
        try db.query("SELECT \(milestoneColumns) FROM milestones WHERE session_id = ? ORDER BY position", session)
            .map(milestone(from:))
    }

    static func saveMilestone(_ db: SQLiteDatabase, session: String, _ milestone: MilestoneRecord) throws {
        try db.write { db in
            try db.run("""
                UPDATE milestones SET state = ?, merge = ?, pull_request = ?, conflicts = ?, reason = ?
                WHERE session_id = ? AND milestone_id = ?
                """, milestone.state.rawValue, milestone.merge?.serialized(), milestone.pullRequest?.serialized(),
                JSONValue.array(milestone.conflicts.map { .string($0) }).serialized(), milestone.reason, session, milestone.id)
        }
    }

    // MARK: - Helpers

    static func parse(_ text: String?) -> JSONValue? {
        guard let text, !text.isEmpty else { return nil }
        return try? StrictJSONParser.parse(Array(text.utf8)).toValue()
    }
}
