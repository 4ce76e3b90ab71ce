import Foundation

/// The run history in `runs.db`: runs, steps, attempts and events (SPEC §3).
///
/// The database is the source of truth; `events.jsonl` is a copy written after each commit.
/// One `RunStore` wraps one connection and, like it, belongs to one owner at a time (the store
/// writer's thread, or a command reading history).
///
/// Schema (``schemaVersion`` in `PRAGMA user_version`):
///
/// | table | one row per | notable columns |
/// | --- | --- | --- |
/// | `runs` | run | `status`, `exit_code`, `plan_snapshot` (the plan file's bytes), `variables` (JSON of `--var`), `env_files` (JSON: the env files' texts by path), engine `pid` / `start_time` / `boot_id` |
/// | `steps` | step of a run | `status`, `attempts`, `exit_code`, `signal`, `timed_out`, `error` |
/// | `attempts` | attempt | `exit_code`, `signal`, `timed_out`, `cancelled`, `engine_lost` as separate facts; `job_id` (Slurm) |
/// | `events` | event | `seq`, `ts`, `type`, `step_id`, `attempt`, `data` (JSON) |
/// | `step_outputs` | output a step wrote to `$OMNIBASE_OUTPUT` | `name`, `value` (SPEC §11) |
public final class RunStore {
    /// The schema this build reads and writes.
    ///
    /// Version 2 added `attempts.job_id`, version 3 `runs.env_files`, version 4 the
    /// `step_outputs` table, version 5 made `steps`, `attempts` and `events` `WITHOUT ROWID` and
    /// derived `runs.last_seq` (``migrationToVersion5``), version 6 dropped the index that kept a
    /// step's success to one event (``migrationToVersion6``), version 7 wrote `steps.status`'s check
    /// without an `IN` list (``migrationToVersion7``). An older database is migrated one
    /// version at a time (``migrations``) when it is opened for writing, and read as it is (no
    /// job ids, no env files, no outputs, the stored `last_seq`) when opened read-only.
    public static let schemaVersion = 7

    /// The schema version of the open database (1 only for a read-only, unmigrated one).
    public private(set) var openedVersion = RunStore.schemaVersion

    /// The connection.
    public let database: SQLiteDatabase

    /// Opens (and for read-write, creates or checks) the store of a state folder.
    /// - Throws: ``EngineError``: exit 4 for an incompatible schema, 74 for I/O or a damaged
    ///   history (run folders without a database, see ``StateDirectory/checkHistoryIntact()``),
    ///   5 for symlinks.
    public init(stateDirectory: StateDirectory, readOnly: Bool = false,
                synchronous: SQLiteDatabase.Synchronous = .full) throws(EngineError) {
        let path = stateDirectory.databasePath
        try stateDirectory.checkHistoryIntact()
        do {
            if readOnly {
                guard FileManager.default.fileExists(atPath: path) else {
                    throw EngineError(.unknownReference, "no run history in \(stateDirectory.path) (no runs.db yet)")
                }
                database = try Self.openForReading(path: path, folder: stateDirectory.path)
            } else {
                database = try SQLiteDatabase(path: path, mode: .readWrite, synchronous: synchronous)
            }
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(error)
        }
        try checkSchema(readOnly: readOnly)
    }

    /// A read-only connection; on a read-only file system (where SQLite cannot create the
    /// `-shm` file a WAL reader needs) an immutable one, which is safe because nobody can write.
    private static func openForReading(path: String, folder: String) throws -> SQLiteDatabase {
        do {
            let database = try SQLiteDatabase(path: path, mode: .readOnly)
            _ = try database.userVersion
            return database
        } catch {
            guard access(folder, W_OK) != 0 else { throw error }
            return try SQLiteDatabase(path: path, mode: .immutable)
        }
    }

    private func checkSchema(readOnly: Bool) throws(EngineError) {
        let version: Int
        var neverCreated = false
        do {
            version = try database.userVersion
            if version == Self.schemaVersion { return }
            let migratable = 1..<Self.schemaVersion
            if migratable.contains(version) && readOnly {
                openedVersion = version
                return
            }
            if migratable.contains(version) {
                let migrated = try database.write { db -> Int in
                    // Another engine may have migrated it meanwhile.
                    let found = try db.userVersion
                    guard migratable.contains(found) else { return found }
                    for from in found..<Self.schemaVersion { try db.exec(Self.migrations[from - 1]) }
                    try db.setUserVersion(Self.schemaVersion)
                    return Self.schemaVersion
                }
                if migrated == Self.schemaVersion { return }
            }
            // A database created but never given its schema (the first run stopped between the
            // two, e.g. out of descriptors or by kill -9) holds no runs: not a foreign schema.
            if version == 0 && readOnly, try database.query("SELECT count(*) FROM sqlite_master").first?.int(0) == 0 {
                neverCreated = true
            }
            if version == 0 && !readOnly {
                let created = try database.write { db -> Int in
                    // Another engine may have created it meanwhile.
                    guard try db.userVersion == 0 else { return try db.userVersion }
                    try db.exec(Self.schema)
                    try db.setUserVersion(Self.schemaVersion)
                    return Self.schemaVersion
                }
                if created == Self.schemaVersion { return }
            }
        } catch {
            throw EngineError(error)
        }
        if neverCreated {
            let folder = (database.path as NSString).deletingLastPathComponent
            throw EngineError(.unknownReference, "no run history in \(folder) (runs.db holds no runs yet)")
        }
        throw EngineError(.protocolViolation,
                          "\(database.path) has schema version \(version), this engine reads version "
                          + "\(Self.schemaVersion); use a matching omnibase-agents or a fresh --state-dir")
    }

    /// The schema of a new database (version 7).
    ///
    /// A step's rows are written in as few b-trees as possible: `steps`, `attempts` and `events`
    /// are `WITHOUT ROWID` tables clustered on their primary key (one b-tree each, no separate
    /// key index), without foreign-key clauses (the writer creates a run's row and its steps
    /// before any event, in its own transaction), and a run's last `seq` is read from `events`
    /// (``lastSeqColumn``) instead of being updated in `runs` at every commit. That a step's
    /// success is recorded at most once per run is checked on the `steps` row a result updates
    /// anyway (``WriteStatements/checkNotSucceededBefore(_:runID:stepID:)``), not by an index on
    /// `events`: such an index took a b-tree insert on a page of its own, in step-id order, for
    /// every step.
    static let schema = """
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
        env_files TEXT
    );
    CREATE INDEX runs_by_created ON runs (created_at);
    """ + stepTables + migrationToVersion4

    /// `steps`, `attempts` and `events` as version 7 has them (see ``schema``).
    static let stepTables = stepsTable(statusCheck: stepStatusCheck) + attemptsAndEventsTables

    /// The values `steps.status` may take, as comparisons joined by `OR`. SQLite evaluates a
    /// `CHECK (status IN (...))` of more than two values by building a temporary b-tree of the
    /// list, and in a constraint it builds it again for every row written: an ephemeral table
    /// opened, six inserts and closed at every `UPDATE steps` (one or two per step).
    static let stepStatusCheck = ["pending", "running", "succeeded", "failed", "skipped", "cancelled"]
        .map { "status = '\($0)'" }.joined(separator: " OR ")

    /// The `steps` table of versions 5 and 6 (`IN` list) and 7 (``stepStatusCheck``).
    static func stepsTable(statusCheck: String) -> String {
        """
        CREATE TABLE steps (
            run_id TEXT NOT NULL,
            step_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (\(statusCheck)),
            attempts INTEGER NOT NULL DEFAULT 0,
            exit_code INTEGER,
            signal INTEGER,
            timed_out INTEGER NOT NULL DEFAULT 0,
            started_at TEXT,
            finished_at TEXT,
            error TEXT,
            PRIMARY KEY (run_id, step_id)
        ) WITHOUT ROWID;

        """
    }

    /// `attempts` and `events` as versions 5 to 7 have them.
    static let attemptsAndEventsTables = """
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
        job_id TEXT,
        PRIMARY KEY (run_id, step_id, attempt)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        ts TEXT NOT NULL,
        type TEXT NOT NULL,
        step_id TEXT,
        attempt INTEGER,
        data TEXT,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;

    """

    /// Version 1 to 2: the cluster job id of an attempt.
    static let migrationToVersion2 = "ALTER TABLE attempts ADD COLUMN job_id TEXT;"

    /// Version 2 to 3: the env files a run's plan read (NULL for older runs: they had none).
    static let migrationToVersion3 = "ALTER TABLE runs ADD COLUMN env_files TEXT;"

    /// Version 3 to 4: the outputs a step wrote to `$OMNIBASE_OUTPUT` (SPEC §11), one row per
    /// name, kept for the step's succeeded attempt (resume keeps them with the step).
    static let migrationToVersion4 = """
    CREATE TABLE step_outputs (
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, step_id, name)
    ) WITHOUT ROWID;
    """

    /// Version 4 to 5: `steps`, `attempts` and `events` rebuilt as `WITHOUT ROWID` tables
    /// without foreign keys, their rows copied; `runs.last_seq` dropped (derived from `events`).
    /// `runs` and `step_outputs` keep their rows as they are.
    static let migrationToVersion5 = """
    ALTER TABLE steps RENAME TO steps_v4;
    ALTER TABLE attempts RENAME TO attempts_v4;
    ALTER TABLE events RENAME TO events_v4;
    DROP INDEX one_success_per_step;
    """ + stepsTable(statusCheck: "status IN ('pending','running','succeeded','failed','skipped','cancelled')")
        + attemptsAndEventsTables + """
    CREATE UNIQUE INDEX one_success_per_step ON events (run_id, step_id) WHERE type = 'step_succeeded';
    INSERT INTO steps SELECT run_id, step_id, position, status, attempts, exit_code, signal, timed_out, started_at,
                             finished_at, error FROM steps_v4;
    INSERT INTO attempts SELECT run_id, step_id, attempt, started_at, finished_at, exit_code, signal, timed_out, cancelled,
                                engine_lost, succeeded, error, job_id FROM attempts_v4;
    INSERT INTO events SELECT run_id, seq, ts, type, step_id, attempt, data FROM events_v4;
    DROP TABLE events_v4;
    DROP TABLE attempts_v4;
    DROP TABLE steps_v4;
    ALTER TABLE runs DROP COLUMN last_seq;
    """

    /// Version 5 to 6: the unique index on a run's `step_succeeded` events dropped; the writer
    /// refuses a second success on the step's row instead (see ``schema``). Rows unchanged.
    static let migrationToVersion6 = "DROP INDEX IF EXISTS one_success_per_step;"

    /// Version 6 to 7: `steps` rebuilt with its status check as comparisons (``stepStatusCheck``)
    /// instead of an `IN` list, its rows copied. The other tables are unchanged.
    static let migrationToVersion7 = """
    ALTER TABLE steps RENAME TO steps_v6;
    """ + stepsTable(statusCheck: stepStatusCheck) + """
    INSERT INTO steps SELECT run_id, step_id, position, status, attempts, exit_code, signal, timed_out, started_at,
                             finished_at, error FROM steps_v6;
    DROP TABLE steps_v6;
    """

    /// `migrations[v - 1]` takes a database from version `v` to `v + 1`.
    static let migrations = [migrationToVersion2, migrationToVersion3, migrationToVersion4, migrationToVersion5,
                             migrationToVersion6, migrationToVersion7]

    // MARK: - Writing

    /// A new run's row and its steps, all `pending`.
    public struct NewRun: Sendable {
        public var runID: String
        public var planID: String
        public var traceID: String
        public var stage: String?
        public var parentRunID: String?
        public var source: PlanSource
        public var options: JSONValue
        public var stepIDs: [String]
        public var engine: EngineIdentity

        /// Creates a run description.
        public init(runID: String, planID: String, traceID: String, stage: String? = nil, parentRunID: String? = nil,
                    source: PlanSource, options: JSONValue, stepIDs: [String], engine: EngineIdentity) {
            self.runID = runID
            self.planID = planID
            self.traceID = traceID
            self.stage = stage
            self.parentRunID = parentRunID
            self.source = source
            self.options = options
            self.stepIDs = stepIDs
            self.engine = engine
        }
    }

    /// The key of the withheld secrets' checks in a run's `variables` (``PlanSource/secretChecks``).
    static let secretChecksKey = "#secret_checks"

    /// A run's `variables` column: the overrides; a withheld secret as null (its name kept, its
    /// value never written); the values' checks under a key no variable can have (an engine that
    /// predates them takes it for a variable no plan uses).
    static func variables(of source: PlanSource) -> JSONValue {
        var members = source.overrides.map { JSONValue.Member($0.key, .string($0.value)) }
        members += source.withheldSecrets.map { JSONValue.Member($0, .null) }
        if !source.secretChecks.isEmpty {
            members.append(JSONValue.Member(secretChecksKey, .object(source.secretChecks.sorted { $0.key < $1.key }
                .map { JSONValue.Member($0.key, .array($0.value.map { .string($0) })) })))
        }
        return .object(members.sorted { $0.key < $1.key })
    }

    /// Records the checks of the secret values a `resume` runs with (``PlanSource/secretChecks``).
    public func updateSecretChecks(runID: String, source: PlanSource) throws(EngineError) {
        try write { db in
            try db.cachedStatement("UPDATE runs SET variables = ? WHERE run_id = ?")
                .run(Self.variables(of: source).serialized(), runID)
        }
    }

    /// Records a new run (one transaction).
    public func createRun(_ run: NewRun) throws(EngineError) {
        let overrides = Self.variables(of: run.source)
        let envFiles: JSONValue = .object((run.source.envFiles ?? [:]).sorted { $0.key < $1.key }
            .map { JSONValue.Member($0.key, .string($0.value)) })
        try write { db in
            try db.cachedStatement("""
                INSERT INTO runs (run_id, plan_id, status, created_at, trace_id, stage, parent_run_id, plan_path, plan_dir,
                                  plan_snapshot, variables, options, engine_pid, engine_start_time, engine_boot_id, env_files)
                VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).run(run.runID, run.planID, Timestamp.rfc3339(Date()), run.traceID, run.stage, run.parentRunID,
                         run.source.displayPath, run.source.directory, run.source.bytes, overrides.serialized(),
                         run.options.serialized(), run.engine.pid, run.engine.startTime, run.engine.bootID,
                         envFiles.serialized())
            // One statement for every step (SQLite's json_each walks the ids): a prepared insert
            // per step cost ~4 us each in bindings and steps, 40 ms before a 10,000-step run
            // started; in key order, so each row lands on the page of the row before it.
            try db.cachedStatement(Self.insertPendingSteps)
                .execute(run.runID, JSONValue.array(run.stepIDs.map { .string($0) }).serialized())
        }
    }

    /// Inserts a run's steps (`?1` the run id, `?2` a JSON array of step ids in plan order),
    /// each `pending` at its position.
    private static let insertPendingSteps = """
        INSERT INTO steps (run_id, step_id, position, status)
        SELECT ?1, value, key, 'pending' FROM json_each(?2) ORDER BY value
        """

    /// Replaces a run's stored options (`resume --executor` changes the executor it keeps).
    public func updateOptions(runID: String, options: JSONValue) throws(EngineError) {
        try write { db in
            try db.cachedStatement("UPDATE runs SET options = ? WHERE run_id = ?").run(options.serialized(), runID)
        }
    }

    /// Records that an engine (this one) holds the run now.
    public func claim(runID: String, engine: EngineIdentity) throws(EngineError) {
        try write { db in
            try db.cachedStatement("UPDATE runs SET engine_pid = ?, engine_start_time = ?, engine_boot_id = ? WHERE run_id = ?")
                .run(engine.pid, engine.startTime, engine.bootID, runID)
        }
    }

    /// Records one scheduler turn's events and what they change, in one transaction.
    public func append(_ events: [RunEvent]) throws(EngineError) {
        try append(encoded: events.map(EncodedEvent.init))
    }

    /// Records several batches (of possibly different runs) in one transaction: group commit.
    ///
    /// Consecutive events of one run are applied together, so a step that started and finished
    /// within the transaction costs one row write per table, not two.
    public func append(batches: [[RunEvent]]) throws(EngineError) {
        try append(encoded: batches.joined().map(EncodedEvent.init))
    }

    /// Records events already encoded (the store writer encodes each event once, for this
    /// transaction and for `events.jsonl`), in one transaction.
    func append(encoded events: [EncodedEvent]) throws(EngineError) {
        guard !events.isEmpty else { return }
        try write { db in try apply(events, db) }
    }

    /// Records, in one transaction, every batch `next` hands over, applied as it comes, and
    /// commits once `next` returns nil: the store writer applies a window's turns while it
    /// gathers them, so that only the commit is left when somebody waits for them.
    func append(streaming next: () -> [EncodedEvent]?) throws(EngineError) {
        try write { db in
            while let events = next() {
                if !events.isEmpty { try apply(events, db) }
            }
        }
    }

    /// Makes every commit so far durable on disk, whatever the connection's `synchronous`: a
    /// checkpoint syncs the write-ahead log before it copies it.
    func syncLog() throws(EngineError) {
        do { _ = try database.checkpoint(.passive) } catch { throw EngineError(error) }
    }

    private func apply(_ events: [EncodedEvent], _ db: SQLiteDatabase) throws {
        let statements = try writeStatements(db)
        var start = 0
        while start < events.count {
            let runID = events[start].event.runID
            var end = start + 1
            while end < events.count && events[end].event.runID == runID { end += 1 }
            try Self.apply(events[start..<end], runID: runID, statements)
            start = end
        }
    }

    private func write(_ body: (SQLiteDatabase) throws -> Void) throws(EngineError) {
        do { try database.write(body) } catch { throw EngineError(error) }
    }

    /// The compiled statements of the write path, made once per connection.
    private var preparedWrites: WriteStatements?

    private func writeStatements(_ db: SQLiteDatabase) throws -> WriteStatements {
        if let preparedWrites { return preparedWrites }
        let statements = try WriteStatements(db)
        preparedWrites = statements
        return statements
    }

    /// Attempts that start and succeed within `events`, with nothing else about their step in
    /// between: for each index of a `step_started` event, the index of its `step_succeeded`
    /// event (nil elsewhere).
    private static func startedAndSucceeded(_ events: ArraySlice<EncodedEvent>) -> [Int?] {
        var openStart: [String: (index: Int, attempt: Int?)] = [:]
        var pairs = [Int?](repeating: nil, count: events.count)
        let base = events.startIndex
        // Fields are read in place: binding `events[index]` to a name copies the whole event
        // (a retain and a release for each of its strings), for every event of the commit.
        for index in events.indices {
            guard let stepID = events[index].event.stepID else { continue }
            let kind = events[index].event.kind
            let attempt = events[index].event.attempt
            if kind == .stepSucceeded, let start = openStart[stepID], start.attempt == attempt {
                pairs[start.index - base] = index
            }
            if kind == .stepStarted {
                openStart[stepID] = (index, attempt)
            } else {
                openStart[stepID] = nil
            }
        }
        return pairs
    }

    private static func apply(_ events: ArraySlice<EncodedEvent>, runID: String, _ sql: WriteStatements) throws {
        // A step that started and succeeded in this transaction gets its final rows at once.
        let pairs = startedAndSucceeded(events)
        var written = [Bool](repeating: false, count: events.count)
        let base = events.startIndex
        try insertEvents(events, runID: runID, sql)
        for index in events.indices {
            if written[index - base] { continue }
            if let finishIndex = pairs[index - base] {
                try applyStartedAndSucceeded(start: events[index], finish: events[finishIndex], runID: runID, sql)
                written[finishIndex - base] = true
                continue
            }
            let event = events[index].event
            let ts = events[index].timestamp
            let end = event.payload.attemptEnd
            let exitCode = end?.exitCode
            let signal = end?.signal
            let timedOut = end?.timedOut ?? false
            switch event.payload {
            case .runStarted, .runResumed:
                try sql.runStarted.execute(ts, runID)
            case .runFinished(let finish):
                try sql.runFinished.execute(finish.status.rawValue, finish.exitCode, ts, runID)
            case .stepStarted:
                let attempt = event.attempt ?? 1
                try sql.stepStarted.execute(attempt, ts, runID, event.stepID)
                try sql.insertAttempt.execute(runID, event.stepID, attempt, ts)
            case .stepAttemptFailed:
                let lost = end?.engineLost ?? false
                try sql.attemptFailed.execute(ts, exitCode, signal, timedOut, lost, end?.error, runID, event.stepID, event.attempt)
                // No attempt of the step runs now: its retry, its end or (after a takeover) a
                // later session decides what comes next.
                try sql.stepPending.execute(runID, event.stepID)
            case .stepSubmitted:
                break  // recordJobID below
            case .stepRetry:
                try sql.stepPending.execute(runID, event.stepID)
            case .stepSucceeded, .stepFailed:
                let succeeded = event.kind == .stepSucceeded
                try sql.stepFinished.execute(succeeded ? "succeeded" : "failed", exitCode, signal, timedOut, ts, end?.error,
                                         runID, event.stepID)
                try sql.checkNotSucceededBefore(sql.stepFinished, runID: runID, stepID: event.stepID)
                try sql.attemptFinished.execute(ts, exitCode, signal, timedOut, succeeded, end?.error,
                                            runID, event.stepID, event.attempt)
                try recordOutputs(of: event, runID: runID, sql)
            case .stepSkipped(let reason):
                try sql.stepSkipped.execute(reason, runID, event.stepID)
            case .stepCancelled(let reason, _):
                try sql.stepCancelled.execute(reason, exitCode, signal, ts, runID, event.stepID)
                if let attempt = event.attempt {
                    try sql.attemptCancelled.execute(ts, exitCode, signal, runID, event.stepID, attempt)
                }
            }
            try recordJobID(of: event, runID: runID, sql)
        }
    }

    /// The `events` rows of `events`, several rows per statement: a statement's own cost
    /// (resetting, binding, stepping, opening its cursor) is paid per chunk, not per event.
    private static func insertEvents(_ events: ArraySlice<EncodedEvent>, runID: String, _ sql: WriteStatements) throws {
        var rest = events
        for (rows, statement) in sql.insertEvents {
            while rest.count >= rows {
                // Every parameter is bound below, its texts into the statement's own memory.
                var textBytes = 0
                for index in rest.startIndex..<rest.startIndex + rows {
                    textBytes += runID.utf8.count + rest[index].timestamp.utf8.count
                        + rest[index].event.kind.rawValue.utf8.count + (rest[index].event.stepID?.utf8.count ?? 0)
                        + (rest[index].data?.utf8.count ?? 0)
                }
                statement.beginBindings(textBytes: textBytes)
                defer { statement.reset() }
                var column = 0
                func bind<Value: SQLiteBindable>(_ value: Value) throws {
                    column += 1
                    try statement.bindOwned(value, at: column)
                }
                for index in rest.startIndex..<rest.startIndex + rows {
                    try bind(runID)
                    try bind(rest[index].event.seq)
                    try bind(rest[index].timestamp)
                    try bind(rest[index].event.kind.rawValue)
                    try bind(rest[index].event.stepID)
                    try bind(rest[index].event.attempt.map { Int64($0) })
                    try bind(rest[index].data)
                }
                while try statement.step() {}
                rest = rest.dropFirst(rows)
            }
        }
    }

    /// An attempt's cluster job id, from the `job_id` of an event that ends it.
    private static func recordJobID(of event: RunEvent, runID: String, _ sql: WriteStatements) throws {
        guard let jobID = event.payload.jobID, let attempt = event.attempt else { return }
        try sql.attemptJobID.execute(jobID, runID, event.stepID, attempt)
    }

    /// The outputs of a `step_succeeded` event, in `step_outputs`: in the transaction that records
    /// the success, values verbatim (secret ones too: the steps that use them need them, and
    /// `resume` reads them back; the events hold them masked).
    private static func recordOutputs(of event: RunEvent, runID: String, _ sql: WriteStatements) throws {
        guard case .stepSucceeded(let end?) = event.payload, !end.outputs.isEmpty, let stepID = event.stepID else { return }
        for output in end.outputs { try sql.insertOutput.execute(runID, stepID, output.name, output.value) }
    }

    /// The rows `step_started` followed by `step_succeeded` of the same attempt leave, written
    /// once: exactly what applying the two events one after the other gives (with the success's
    /// job id and outputs).
    private static func applyStartedAndSucceeded(start: borrowing EncodedEvent, finish: borrowing EncodedEvent, runID: String,
                                                 _ sql: WriteStatements) throws {
        let attempt = start.event.attempt ?? 1
        let end = finish.event.payload.attemptEnd
        let exitCode = end?.exitCode
        let signal = end?.signal
        let timedOut = end?.timedOut ?? false
        let error = end?.error
        try sql.stepStartedAndSucceeded.execute(attempt, start.timestamp, exitCode, signal, timedOut, finish.timestamp, error,
                                                runID, start.event.stepID)
        try sql.checkNotSucceededBefore(sql.stepStartedAndSucceeded, runID: runID, stepID: start.event.stepID)
        try sql.insertSucceededAttempt.execute(runID, start.event.stepID, attempt, start.timestamp, finish.timestamp, exitCode,
                                               signal, timedOut, error)
        try recordJobID(of: finish.event, runID: runID, sql)
        try recordOutputs(of: finish.event, runID: runID, sql)
    }

    /// The statements ``apply(_:runID:_:)`` runs, compiled once per connection (looked up by
    /// field, not by hashing their text at every use).
    private final class WriteStatements {
        /// After `update`, which ends a step unless it already `succeeded`: throws when it changed
        /// nothing because the step had succeeded before, so the transaction (with the second
        /// result's event) is rolled back. A step's result, once a success, is never recorded
        /// again in the run: neither a second success nor a failure after it.
        func checkNotSucceededBefore(_ update: Statement, runID: String, stepID: String?) throws {
            guard update.changes == 0, let stepID else { return }
            stepStatus.reset()
            try stepStatus.bind(runID, at: 1)
            try stepStatus.bind(stepID, at: 2)
            defer { stepStatus.reset() }
            guard try stepStatus.step(), stepStatus.string(0) == "succeeded" else { return }
            throw EngineError(.stateFailure, "step \(stepID) of run \(runID) is already recorded as succeeded; a second "
                              + "result was refused")
        }

        /// Inserts of 32, 8, 2 and 1 events at once, largest first.
        let insertEvents: [(rows: Int, statement: Statement)]
        let runStarted: Statement
        let runFinished: Statement
        let stepStarted: Statement
        let insertAttempt: Statement
        let attemptFailed: Statement
        let stepPending: Statement
        let stepFinished: Statement
        let attemptFinished: Statement
        let stepSkipped: Statement
        let stepCancelled: Statement
        let attemptCancelled: Statement
        let attemptJobID: Statement
        let stepStartedAndSucceeded: Statement
        let insertSucceededAttempt: Statement
        let insertOutput: Statement
        let stepStatus: Statement

        init(_ db: SQLiteDatabase) throws {
            stepStatus = try db.prepare("SELECT status FROM steps WHERE run_id = ? AND step_id = ?")
            insertOutput = try db.prepare("INSERT OR REPLACE INTO step_outputs (run_id, step_id, name, value) VALUES (?, ?, ?, ?)")
            insertEvents = try [32, 8, 2, 1].map { rows in
                let values = Array(repeating: "(?, ?, ?, ?, ?, ?, ?)", count: rows).joined(separator: ", ")
                return (rows, try db.prepare("INSERT INTO events (run_id, seq, ts, type, step_id, attempt, data) VALUES \(values)"))
            }
            runStarted = try db.prepare("""
                UPDATE runs SET status = 'running', started_at = coalesce(started_at, ?), finished_at = NULL, exit_code = NULL
                WHERE run_id = ?
                """)
            runFinished = try db.prepare("UPDATE runs SET status = ?, exit_code = ?, finished_at = ? WHERE run_id = ?")
            stepStarted = try db.prepare("""
                UPDATE steps SET status = 'running', attempts = ?, started_at = coalesce(started_at, ?), finished_at = NULL,
                                 error = NULL WHERE run_id = ? AND step_id = ?
                """)
            insertAttempt = try db.prepare("INSERT INTO attempts (run_id, step_id, attempt, started_at) VALUES (?, ?, ?, ?)")
            attemptFailed = try db.prepare("""
                UPDATE attempts SET finished_at = ?, exit_code = ?, signal = ?, timed_out = ?, engine_lost = ?, succeeded = 0, error = ?
                WHERE run_id = ? AND step_id = ? AND attempt = ?
                """)
            stepPending = try db.prepare("UPDATE steps SET status = 'pending' WHERE run_id = ? AND step_id = ?")
            stepFinished = try db.prepare("""
                UPDATE steps SET status = ?, exit_code = ?, signal = ?, timed_out = ?, finished_at = ?, error = ?
                WHERE run_id = ? AND step_id = ? AND status != 'succeeded'
                """)
            attemptFinished = try db.prepare("""
                UPDATE attempts SET finished_at = coalesce(finished_at, ?), exit_code = coalesce(exit_code, ?),
                       signal = coalesce(signal, ?), timed_out = max(timed_out, ?), succeeded = ?, error = coalesce(error, ?)
                WHERE run_id = ? AND step_id = ? AND attempt = ?
                """)
            stepSkipped = try db.prepare("UPDATE steps SET status = 'skipped', error = ? WHERE run_id = ? AND step_id = ?")
            stepCancelled = try db.prepare("""
                UPDATE steps SET status = 'cancelled', error = ?, exit_code = coalesce(?, exit_code), signal = coalesce(?, signal),
                       finished_at = CASE WHEN started_at IS NULL THEN NULL ELSE ? END
                WHERE run_id = ? AND step_id = ?
                """)
            attemptCancelled = try db.prepare("""
                UPDATE attempts SET finished_at = coalesce(finished_at, ?), exit_code = coalesce(exit_code, ?),
                       signal = coalesce(signal, ?), cancelled = 1, succeeded = 0
                WHERE run_id = ? AND step_id = ? AND attempt = ? AND finished_at IS NULL
                """)
            attemptJobID = try db.prepare("UPDATE attempts SET job_id = ? WHERE run_id = ? AND step_id = ? AND attempt = ?")
            stepStartedAndSucceeded = try db.prepare("""
                UPDATE steps SET status = 'succeeded', attempts = ?, started_at = coalesce(started_at, ?), exit_code = ?, signal = ?,
                                 timed_out = ?, finished_at = ?, error = ?
                WHERE run_id = ? AND step_id = ? AND status != 'succeeded'
                """)
            insertSucceededAttempt = try db.prepare("""
                INSERT INTO attempts (run_id, step_id, attempt, started_at, finished_at, exit_code, signal, timed_out, succeeded, error)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
                """)
        }
    }

    // MARK: - Reading

    /// A run's row.
    public struct RunRecord: Sendable {
        public var runID: String
        public var planID: String
        public var status: RunStatus
        public var exitCode: Int32?
        public var createdAt: String
        public var startedAt: String?
        public var finishedAt: String?
        public var traceID: String
        public var stage: String?
        public var parentRunID: String?
        public var source: PlanSource
        public var options: JSONValue
        public var engine: EngineIdentity?
        public var lastSeq: Int64

        /// Not finished, and the engine that holds it is still running. A run that is not
        /// finished and not live was left by a killed engine (or one that could no longer write
        /// its state) and waits for `resume`.
        public var isLive: Bool { !status.isFinal && (engine?.isAlive ?? false) }

        /// Refuses a run that has not finished as the source of a replay, which re-executes a
        /// finished run (SPEC §4): a live one is still going, one whose engine is gone waits for
        /// `resume`.
        /// - Throws: ``EngineError`` (exit 2) naming what to do instead.
        package func requireFinishedForReplay() throws(EngineError) {
            guard !status.isFinal else { return }
            if isLive, let engine {
                throw EngineError(.usage, "run \(runID) is still running (engine \(engine)); wait for it to end or stop it "
                                  + "before replaying it")
            }
            throw EngineError(.usage, "run \(runID) did not finish and its engine is gone; continue it with "
                              + "'omnibase-agents resume \(runID)'")
        }
    }

    /// The columns ``runRecord(_:)`` reads (`env_files` as NULL from a database read unmigrated).
    private var runColumns: String {
        """
        run_id, plan_id, status, exit_code, created_at, started_at, finished_at, trace_id, stage, parent_run_id,
        plan_path, plan_dir, plan_snapshot, variables, options, engine_pid, engine_start_time, engine_boot_id, \(lastSeqColumn),
        \(openedVersion >= 3 ? "env_files" : "NULL")
        """
    }

    /// The expression of a `runs` row's last event `seq` (0 before the first): the stored
    /// `last_seq` before version 5, the largest `seq` of its events since (one primary-key seek).
    package var lastSeqColumn: String {
        openedVersion >= 5 ? "(SELECT coalesce(max(seq), 0) FROM events WHERE events.run_id = runs.run_id)" : "last_seq"
    }

    private static func runRecord(_ row: Row) -> RunRecord {
        var overrides: [String: String] = [:]
        var withheld: [String] = []
        var checks: [String: [String]] = [:]
        if let text = row.string(13), let value = try? StrictJSONParser.parse(Array(text.utf8)).toValue(),
           case .object(let members) = value {
            for member in members {
                if member.key == secretChecksKey {
                    for check in member.value.objectValue ?? [] {
                        checks[check.key] = check.value.arrayValue?.compactMap(\.stringValue)
                    }
                } else if member.value == .null {
                    withheld.append(member.key)
                } else {
                    overrides[member.key] = member.value.stringValue ?? ""
                }
            }
        }
        var envFiles: [String: String] = [:]
        if let text = row.string(19), let value = try? StrictJSONParser.parse(Array(text.utf8)).toValue(),
           case .object(let members) = value {
            for member in members { envFiles[member.key] = member.value.stringValue ?? "" }
        }
        let options = row.string(14).flatMap { try? StrictJSONParser.parse(Array($0.utf8)).toValue() } ?? .object([])
        let engine = row.isNull(15) ? nil : EngineIdentity(pid: Int32(row.int(15)), startTime: row.int64(16),
                                                          bootID: row.string(17) ?? "")
        return RunRecord(
            runID: row.string(0) ?? "", planID: row.string(1) ?? "",
            status: RunStatus(rawValue: row.string(2) ?? "") ?? .pending,
            exitCode: row.isNull(3) ? nil : Int32(row.int(3)), createdAt: row.string(4) ?? "",
            startedAt: row.string(5), finishedAt: row.string(6), traceID: row.string(7) ?? "", stage: row.string(8),
            parentRunID: row.string(9),
            source: PlanSource(displayPath: row.string(10) ?? "", directory: row.string(11) ?? "",
                               bytes: row.blob(12) ?? [], overrides: overrides,
                               withheldSecrets: withheld.sorted(), secretChecks: checks, envFiles: envFiles),
            options: options, engine: engine, lastSeq: row.int64(18))
    }

    /// One run, or nil.
    public func run(_ runID: String) throws(EngineError) -> RunRecord? {
        try read { db in
            try db.query("SELECT \(runColumns) FROM runs WHERE run_id = ?", runID).first.map(Self.runRecord)
        }
    }

    /// Runs, newest first, optionally of one status.
    public func runs(status: RunStatus? = nil, limit: Int = 1000) throws(EngineError) -> [RunRecord] {
        try read { db in
            if let status {
                return try db.query("SELECT \(runColumns) FROM runs WHERE status = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
                                    status.rawValue, limit).map(Self.runRecord)
            }
            return try db.query("SELECT \(runColumns) FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?", limit)
                .map(Self.runRecord)
        }
    }

    /// A run's step rows in plan order: (id, status, attempts).
    public func steps(_ runID: String) throws(EngineError) -> [(id: String, status: StepStatus, attempts: Int)] {
        try read { db in
            try db.query("SELECT step_id, status, attempts FROM steps WHERE run_id = ? ORDER BY position", runID).map {
                (id: $0.string(0) ?? "", status: StepStatus(rawValue: $0.string(1) ?? "") ?? .pending, attempts: $0.int(2))
            }
        }
    }

    /// A run's events in order, after `seq`.
    public func events(_ runID: String, after seq: Int64 = 0) throws(EngineError) -> [RunEvent] {
        try read { db in
            try db.query("SELECT seq, ts, type, step_id, attempt, data FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
                         runID, seq).map { row in
                RunEvent(seq: row.int64(0), timestamp: Timestamp.parse(row.string(1) ?? "") ?? Date(timeIntervalSince1970: 0),
                         runID: runID, kind: RunEvent.Kind(rawValue: row.string(2) ?? "") ?? .runStarted,
                         stepID: row.string(3), attempt: row.isNull(4) ? nil : row.int(4),
                         data: row.string(5).flatMap { try? StrictJSONParser.parse(Array($0.utf8)).toValue() })
            }
        }
    }

    /// The outputs of a run's succeeded steps (``StepOutputs``), values verbatim, secret ones too:
    /// what `resume` gives the steps that use them. Empty for a database read before version 4.
    public func outputs(_ runID: String) throws(EngineError) -> StepOutputs {
        guard openedVersion >= 4 else { return StepOutputs() }
        return try read { db in
            var byStep: [String: [String: String]] = [:]
            for row in try db.query("SELECT step_id, name, value FROM step_outputs WHERE run_id = ?", runID) {
                byStep[row.string(0) ?? "", default: [:]][row.string(1) ?? ""] = row.string(2) ?? ""
            }
            return StepOutputs(byStep)
        }
    }

    /// Attempts whose end was never recorded (the engine died while they ran).
    public func unfinishedAttempts(_ runID: String) throws(EngineError) -> [(stepID: String, attempt: Int)] {
        try read { db in
            try db.query("SELECT step_id, attempt FROM attempts WHERE run_id = ? AND finished_at IS NULL ORDER BY step_id",
                         runID).map { (stepID: $0.string(0) ?? "", attempt: $0.int(1)) }
        }
    }

    /// The attempt numbers recorded for each step of a run.
    public func attemptNumbers(_ runID: String) throws(EngineError) -> [String: Set<Int>] {
        try read { db in
            var numbers: [String: Set<Int>] = [:]
            for row in try db.query("SELECT step_id, attempt FROM attempts WHERE run_id = ?", runID) {
                numbers[row.string(0) ?? "", default: []].insert(row.int(1))
            }
            return numbers
        }
    }

    /// The report of a stored run, folded from its events exactly as a live run's is.
    public func report(_ runID: String) throws(EngineError) -> RunReport? {
        guard let record = try run(runID) else { return nil }
        let stepIDs = try steps(runID).map(\.id)
        var builder = RunReportBuilder(runID: runID, planID: record.planID, stepIDs: stepIDs, traceID: record.traceID)
        let conditions = record.source.conditionTexts
        if !conditions.isEmpty { builder.setConditions(stepIDs.map { conditions[$0] }) }
        for event in try events(runID) { builder.apply(event) }
        var report = builder.current
        report.stage = record.stage
        if !record.status.isFinal { report.status = record.status }
        return report
    }

    /// Durations (seconds) of recent successful attempts per step of a plan, newest first.
    public func successfulDurations(planID: String, limitRuns: Int = 10) throws(EngineError) -> [String: [Double]] {
        try read { db in
            let rows = try db.query("""
                SELECT a.step_id, a.started_at, a.finished_at FROM attempts a JOIN runs r ON r.run_id = a.run_id
                WHERE r.plan_id = ? AND a.succeeded = 1 AND r.run_id IN
                      (SELECT run_id FROM runs WHERE plan_id = ? ORDER BY created_at DESC LIMIT ?)
                ORDER BY r.created_at DESC
                """, planID, planID, limitRuns)
            var result: [String: [Double]] = [:]
            for row in rows {
                guard let id = row.string(0), let start = row.string(1).flatMap(Timestamp.parse),
                      let end = row.string(2).flatMap(Timestamp.parse) else { continue }
                result[id, default: []].append(end.timeIntervalSince(start))
            }
            return result
        }
    }

    private func read<T>(_ body: (SQLiteDatabase) throws -> T) throws(EngineError) -> T {
        do { return try body(database) } catch let error as EngineError { throw error } catch { throw EngineError(error) }
    }
}
