import Foundation
import Glibc
import Testing
@testable import Orchestration

/// `runs.db` written by the release before the Slurm executor (schema version 1), or by the one
/// before env files (version 2), the one before step outputs (version 3), or the one before the
/// `WITHOUT ROWID` step tables (version 4), or the one before the one-success index was dropped
/// (version 5), or the one before `steps.status`'s check lost its `IN` list (version 6), opens with
/// this build: migrated to version 7 (`attempts.job_id`, then `runs.env_files`, then
/// `step_outputs`, then the rebuilt `steps`, `attempts` and `events` and a derived `last_seq`,
/// then no index on `events` but the primary key, then `steps` rebuilt with its check as
/// comparisons) when opened for writing, read as it is when opened read-only.
@Suite("RunStore: schema migrations 1 -> 2 -> 3 -> 4 -> 5 -> 6 -> 7")
struct RunStoreMigrationTests {
    /// The release's schema, frozen here as it shipped (RunStore.schema at version 1).
    static let version1Schema = """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            plan_id TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending','running','succeeded','failed','cancelled')),
            exit_code INTEGER,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            trace_id TEXT NOT NULL,
            stage TEXT,
            parent_run_id TEXT,
            plan_path TEXT NOT NULL,
            plan_dir TEXT NOT NULL,
            plan_snapshot BLOB NOT NULL,
            variables TEXT NOT NULL,
            options TEXT NOT NULL,
            engine_pid INTEGER,
            engine_start_time INTEGER,
            engine_boot_id TEXT,
            last_seq INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX runs_by_created ON runs (created_at);
        CREATE TABLE steps (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            step_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending','running','succeeded','failed','skipped','cancelled')),
            attempts INTEGER NOT NULL DEFAULT 0,
            exit_code INTEGER,
            signal INTEGER,
            timed_out INTEGER NOT NULL DEFAULT 0,
            started_at TEXT,
            finished_at TEXT,
            error TEXT,
            PRIMARY KEY (run_id, step_id)
        );
        CREATE TABLE attempts (
            run_id TEXT NOT NULL,
            step_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            exit_code INTEGER,
            signal INTEGER,
            timed_out INTEGER NOT NULL DEFAULT 0,
            cancelled INTEGER NOT NULL DEFAULT 0,
            engine_lost INTEGER NOT NULL DEFAULT 0,
            succeeded INTEGER,
            error TEXT,
            PRIMARY KEY (run_id, step_id, attempt),
            FOREIGN KEY (run_id, step_id) REFERENCES steps (run_id, step_id)
        );
        CREATE TABLE events (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            seq INTEGER NOT NULL,
            ts TEXT NOT NULL,
            type TEXT NOT NULL,
            step_id TEXT,
            attempt INTEGER,
            data TEXT,
            PRIMARY KEY (run_id, seq)
        );
        -- A step's success is recorded at most once per run.
        CREATE UNIQUE INDEX one_success_per_step ON events (run_id, step_id) WHERE type = 'step_succeeded';
        """

    /// A state folder whose `runs.db` the version-1 engine wrote: one run, one step, two attempts.
    static func version1StateFolder() throws -> (path: String, state: StateDirectory) {
        var template = Array((NSTemporaryDirectory() + "omnibase-migration-XXXXXX").utf8CString)
        let path = String(cString: mkdtemp(&template)!)
        let state = try StateDirectory(path: path + "/state")
        let db = try SQLiteDatabase(path: state.databasePath, mode: .readWrite)
        try db.write { db in
            try db.exec(version1Schema)
            try db.exec("""
                INSERT INTO runs (run_id, plan_id, status, created_at, trace_id, plan_path, plan_dir, plan_snapshot, variables, options)
                VALUES ('r-old', 'p', 'failed', '2026-12-01T00:00:00.000Z', 't', 'p.json', '/tmp', X'7B7D', '{}', '{}');
                INSERT INTO steps (run_id, step_id, position, status, attempts) VALUES ('r-old', 'a', 0, 'failed', 2);
                INSERT INTO attempts (run_id, step_id, attempt, started_at, finished_at, exit_code, succeeded, error)
                VALUES ('r-old', 'a', 1, '2026-12-01T00:00:00.000Z', '2026-12-01T00:00:01.000Z', 3, 0, 'exited with code 3'),
                       ('r-old', 'a', 2, '2026-12-01T00:00:02.000Z', '2026-12-01T00:00:03.000Z', 3, 0, 'exited with code 3');
                """)
            try db.setUserVersion(1)
        }
        return (path, state)
    }

    @Test func aVersion1DatabaseIsMigratedWhenOpenedForWriting() throws {
        let (path, state) = try Self.version1StateFolder()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try RunStore(stateDirectory: state)
        #expect(try store.database.userVersion == RunStore.schemaVersion)
        #expect(try store.run("r-old")?.source.envFiles == [:], "an old run read no env file")
        let attempts = try store.attempts("r-old")
        #expect(attempts.map(\.attempt) == [1, 2], "the old rows are kept")
        #expect(attempts.allSatisfy { $0.jobID == nil && $0.error == "exited with code 3" })
        // The new column takes job ids from the events that end attempts.
        try store.append([RunEvent(seq: 1, runID: "r-old", kind: .stepAttemptFailed, stepID: "a", attempt: 2,
                                   data: ["exit_code": 3, "job_id": "4711"])])
        #expect(try store.attempts("r-old").last?.jobID == "4711")
        #expect(try Self.tableNames(store.database).contains("step_outputs"))
        // Opening again finds the current version and changes nothing.
        #expect(try RunStore(stateDirectory: state).database.userVersion == RunStore.schemaVersion)
    }

    @Test func aVersion1DatabaseIsReadAsItIsWhenOpenedReadOnly() throws {
        let (path, state) = try Self.version1StateFolder()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try RunStore(stateDirectory: state, readOnly: true)
        #expect(store.openedVersion == 1)
        #expect(try store.attempts("r-old").map(\.jobID) == [nil, nil])
        #expect(try SQLiteDatabase(path: state.databasePath, mode: .readOnly).userVersion == 1, "a reader never migrates")
    }

    /// A state folder at version 2: version 1 with `attempts.job_id`.
    static func version2StateFolder() throws -> (path: String, state: StateDirectory) {
        let (path, state) = try version1StateFolder()
        let db = try SQLiteDatabase(path: state.databasePath, mode: .readWrite)
        try db.write { db in
            try db.exec(RunStore.migrationToVersion2)
            try db.exec("UPDATE attempts SET job_id = '17' WHERE attempt = 2")
            try db.setUserVersion(2)
        }
        return (path, state)
    }

    @Test func aVersion2DatabaseIsMigratedToVersion3AndKeepsItsRows() throws {
        let (path, state) = try Self.version2StateFolder()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // Read-only first: read as it is, never migrated.
        let reader = try RunStore(stateDirectory: state, readOnly: true)
        #expect(reader.openedVersion == 2)
        #expect(try reader.run("r-old")?.source.envFiles == [:])
        #expect(try reader.attempts("r-old").map(\.jobID) == [nil, "17"])
        #expect(try SQLiteDatabase(path: state.databasePath, mode: .readOnly).userVersion == 2)
        // Then for writing: migrated, the rows kept, the new column written by new runs.
        let store = try RunStore(stateDirectory: state)
        #expect(try store.database.userVersion == RunStore.schemaVersion)
        #expect(try store.attempts("r-old").map(\.jobID) == [nil, "17"])
        #expect(try store.run("r-old")?.source.envFiles == [:])
        var source = PlanSource(displayPath: "p.json", directory: "/tmp", bytes: Array("{}".utf8), overrides: [:])
        source.envFiles = ["/tmp/.env": "A=1\n"]
        try store.createRun(RunStore.NewRun(runID: "r-new", planID: "p", traceID: "t", source: source, options: .object([]),
                                            stepIDs: ["a"], engine: EngineIdentity.current))
        #expect(try store.run("r-new")?.source.envFiles == ["/tmp/.env": "A=1\n"])
    }

    @Test func aVersion3DatabaseGainsTheOutputsTableAndKeepsItsRows() throws {
        let (path, state) = try Self.version2StateFolder()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let db = try SQLiteDatabase(path: state.databasePath, mode: .readWrite)
        try db.write { db in
            try db.exec(RunStore.migrationToVersion3)
            try db.exec("UPDATE runs SET env_files = '{\"/tmp/.env\":\"B=2\\n\"}'")
            try db.setUserVersion(3)
        }
        let reader = try RunStore(stateDirectory: state, readOnly: true)
        #expect(reader.openedVersion == 3)
        #expect(try !Self.tableNames(reader.database).contains("step_outputs"), "a reader never migrates")
        let store = try RunStore(stateDirectory: state)
        #expect(try store.database.userVersion == RunStore.schemaVersion)
        #expect(try Self.tableNames(store.database).contains("step_outputs"))
        #expect(try store.run("r-old")?.source.envFiles == ["/tmp/.env": "B=2\n"])
        #expect(try store.attempts("r-old").map(\.jobID) == [nil, "17"])
    }

    /// A state folder at version 4: version 3 with env files, `step_outputs` and events, as the
    /// version-4 engine wrote them (`runs.last_seq` updated with every commit, the step's row
    /// `succeeded` with its `step_succeeded` event).
    static func version4StateFolder() throws -> (path: String, state: StateDirectory) {
        let (path, state) = try version2StateFolder()
        let db = try SQLiteDatabase(path: state.databasePath, mode: .readWrite)
        try db.write { db in
            try db.exec(RunStore.migrationToVersion3)
            try db.exec(RunStore.migrationToVersion4)
            try db.exec("""
                UPDATE runs SET env_files = '{"/tmp/.env":"B=2\\n"}', last_seq = 3;
                UPDATE steps SET status = 'succeeded' WHERE run_id = 'r-old' AND step_id = 'a';
                INSERT INTO events (run_id, seq, ts, type, step_id, attempt, data) VALUES
                    ('r-old', 1, '2026-12-01T00:00:00.000Z', 'run_started', NULL, NULL, '{"plan_id":"p","steps":1,"max_concurrency":1}'),
                    ('r-old', 2, '2026-12-01T00:00:00.000Z', 'step_started', 'a', 1, NULL),
                    ('r-old', 3, '2026-12-01T00:00:01.000Z', 'step_succeeded', 'a', 1, '{"exit_code":0}');
                INSERT INTO step_outputs (run_id, step_id, name, value) VALUES ('r-old', 'a', 'version', '1.2.3');
                """)
            try db.setUserVersion(4)
        }
        return (path, state)
    }

    @Test func aVersion4DatabaseGetsTheVersion6TablesAndKeepsEveryRow() throws {
        let (path, state) = try Self.version4StateFolder()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // Read-only first: read as it is (the stored last_seq), never migrated.
        let reader = try RunStore(stateDirectory: state, readOnly: true)
        #expect(reader.openedVersion == 4)
        #expect(try reader.run("r-old")?.lastSeq == 3)
        #expect(try reader.events("r-old").map(\.seq) == [1, 2, 3])
        #expect(try reader.attempts("r-old").map(\.jobID) == [nil, "17"])
        #expect(try SQLiteDatabase(path: state.databasePath, mode: .readOnly).userVersion == 4, "a reader never migrates")

        let store = try RunStore(stateDirectory: state)
        #expect(try store.database.userVersion == RunStore.schemaVersion)
        #expect(try store.database.integrityCheck() == "ok")
        let withoutRowID = try store.database.query("""
            SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%WITHOUT ROWID%' ORDER BY name
            """).compactMap { $0.string(0) }
        #expect(withoutRowID == ["attempts", "events", "step_outputs", "steps"])
        #expect(try Self.tableNames(store.database).isDisjoint(with: ["steps_v4", "attempts_v4", "events_v4"]))
        let columns = try store.database.query("PRAGMA table_info(runs)").compactMap { $0.string(1) }
        #expect(!columns.contains("last_seq"), "derived from events since version 5")
        // Every row kept: the run, its step, attempts, events and outputs.
        let run = try store.run("r-old")
        #expect(run?.lastSeq == 3)
        #expect(run?.source.envFiles == ["/tmp/.env": "B=2\n"])
        #expect(try store.steps("r-old").map(\.id) == ["a"])
        #expect(try store.attempts("r-old").map(\.jobID) == [nil, "17"])
        #expect(try store.events("r-old").map(\.kind) == [.runStarted, .stepStarted, .stepSucceeded])
        #expect(try store.database.query("SELECT name, value FROM step_outputs WHERE run_id = 'r-old'")
            .map { "\($0.string(0) ?? "")=\($0.string(1) ?? "")" } == ["version=1.2.3"])
        // The one-success rule holds on the rebuilt tables.
        #expect(throws: EngineError.self) {
            try store.append([RunEvent(seq: 4, runID: "r-old", kind: .stepSucceeded, stepID: "a", attempt: 2, data: nil)])
        }
        // New events land after the old ones and the last seq follows them.
        try store.append([RunEvent(seq: 4, runID: "r-old", kind: .runFinished, data: ["status": "succeeded", "exit_code": 0])])
        #expect(try store.run("r-old")?.lastSeq == 4)
    }

    /// A state folder at version 5: version 4 migrated as the version-5 engine did it, with its
    /// unique index on a run's `step_succeeded` events.
    static func version5StateFolder() throws -> (path: String, state: StateDirectory) {
        let (path, state) = try version4StateFolder()
        let db = try SQLiteDatabase(path: state.databasePath, mode: .readWrite)
        try db.write { db in
            try db.exec(RunStore.migrationToVersion5)
            try db.setUserVersion(5)
        }
        return (path, state)
    }

    /// Every row of the step tables and the run's outputs, in key order.
    static func stepRows(_ db: SQLiteDatabase) throws -> [Row] {
        try ["steps", "attempts", "events", "step_outputs"].flatMap { try db.query("SELECT * FROM \($0) ORDER BY 1, 2, 3") }
    }

    @Test func aVersion5DatabaseLosesTheOneSuccessIndexAndKeepsEveryRow() throws {
        let (path, state) = try Self.version5StateFolder()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let indexes = "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'one_success_per_step'"
        let reader = try RunStore(stateDirectory: state, readOnly: true)
        #expect(reader.openedVersion == 5)
        #expect(try reader.database.query(indexes).count == 1)
        let rowsBefore = try Self.stepRows(reader.database)
        #expect(rowsBefore.count == 1 + 2 + 3 + 1)

        let store = try RunStore(stateDirectory: state)
        #expect(try store.database.userVersion == RunStore.schemaVersion)
        #expect(try store.database.integrityCheck() == "ok")
        #expect(try store.database.query(indexes).isEmpty)
        #expect(try Self.stepRows(store.database) == rowsBefore)
        // The rule the index kept holds on the step's row.
        #expect(throws: EngineError.self) {
            try store.append([RunEvent(seq: 4, runID: "r-old", kind: .stepSucceeded, stepID: "a", attempt: 2, data: nil)])
        }
        #expect(try Self.stepRows(store.database) == rowsBefore)
        // Opening again finds the current version and changes nothing.
        #expect(try RunStore(stateDirectory: state).database.userVersion == RunStore.schemaVersion)
        #expect(try Self.stepRows(store.database) == rowsBefore)
    }

    /// A state folder at version 6: version 5 without the one-success index, its `steps` table
    /// still checking `status` against an `IN` list.
    static func version6StateFolder() throws -> (path: String, state: StateDirectory) {
        let (path, state) = try version5StateFolder()
        let db = try SQLiteDatabase(path: state.databasePath, mode: .readWrite)
        try db.write { db in
            try db.exec(RunStore.migrationToVersion6)
            try db.setUserVersion(6)
        }
        return (path, state)
    }

    static func stepsTableSQL(_ db: SQLiteDatabase) throws -> String {
        try db.query("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'steps'").first?.string(0) ?? ""
    }

    @Test func aVersion6DatabaseGetsTheStepsCheckWithoutAnInListAndKeepsEveryRow() throws {
        let (path, state) = try Self.version6StateFolder()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let reader = try RunStore(stateDirectory: state, readOnly: true)
        #expect(reader.openedVersion == 6)
        #expect(try Self.stepsTableSQL(reader.database).contains("status IN ("))
        let rowsBefore = try Self.stepRows(reader.database)
        #expect(rowsBefore.count == 1 + 2 + 3 + 1)
        let tablesBefore = try Self.tableNames(reader.database)

        let store = try RunStore(stateDirectory: state)
        #expect(try store.database.userVersion == 7)
        #expect(try store.database.integrityCheck() == "ok")
        #expect(try Self.stepRows(store.database) == rowsBefore)
        #expect(try Self.tableNames(store.database) == tablesBefore, "steps_v6 dropped, nothing else changed")
        let sql = try Self.stepsTableSQL(store.database)
        #expect(!sql.contains(" IN ("))
        #expect(sql.contains("WITHOUT ROWID"))
        // The check still refuses a status outside the list, and allows each one in it.
        #expect(throws: (any Error).self) {
            try store.database.write { db in
                try db.exec("UPDATE steps SET status = 'done' WHERE run_id = 'r-old' AND step_id = 'a'")
            }
        }
        #expect(try Self.stepRows(store.database) == rowsBefore)
        for status in ["pending", "running", "succeeded", "failed", "skipped", "cancelled"] {
            try store.database.write { db in
                try db.exec("INSERT INTO steps (run_id, step_id, position, status) VALUES ('r-new', '\(status)', 0, '\(status)')")
            }
        }
        #expect(try RunStore(stateDirectory: state).database.userVersion == 7)
    }

    /// What SQLite runs for each statement the store writer prepares for a step: no temporary
    /// b-tree (a version-6 `steps` table built one of its status list at every row written).
    @Test func theWritersStepStatementsOpenNoTemporaryTable() throws {
        let path = NSTemporaryDirectory() + "runstore-plan-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try RunStore(stateDirectory: StateDirectory(path: path))
        let statements = [
            "UPDATE steps SET status = 'running', attempts = 1 WHERE run_id = 'r' AND step_id = 's'",
            "UPDATE steps SET status = ?, exit_code = 0 WHERE run_id = 'r' AND step_id = 's' AND status != 'succeeded'",
            "UPDATE steps SET status = 'pending' WHERE run_id = 'r' AND step_id = 's'",
            "INSERT INTO steps (run_id, step_id, position, status) VALUES ('r', 't', 1, 'pending')",
        ]
        for sql in statements {
            // (EXPLAIN of a write counts as one: it runs under the lock, writing nothing.)
            let opcodes = try store.database.write { db in try db.query("EXPLAIN " + sql).compactMap { $0.string(1) } }
            #expect(opcodes.contains("IdxInsert"), "a program that writes the row: \(sql)")
            #expect(!opcodes.contains("OpenEphemeral"), "\(sql)")
        }
    }

    static func tableNames(_ db: SQLiteDatabase) throws -> Set<String> {
        Set(try db.query("SELECT name FROM sqlite_master WHERE type = 'table'").compactMap { $0.string(0) })
    }

    @Test func aNewerDatabaseIsStillRefused() throws {
        let (path, state) = try Self.version1StateFolder()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let db = try SQLiteDatabase(path: state.databasePath, mode: .readWrite)
        try db.write { try $0.setUserVersion(RunStore.schemaVersion + 1) }
        #expect(throws: EngineError.self) { try RunStore(stateDirectory: state) }
    }
}
