import Foundation
import Orchestration

/// The durable state of one agents session in `<state>/agents.db`: its roles, tasks, iterations,
/// awaited events, bus events and milestones.
///
/// The actor owns one read-write connection (a connection is not `Sendable`; see
/// `SQLiteDatabase`). Every write is one transaction under the cross-process `agents.db.lock`,
/// so `ci emit` in another process and `agents status` readers never see half a change. The
/// plan engine's `runs.db` schema is untouched: CI runs of tasks are ordinary runs there.
///
/// - Important: SQLite calls block the calling thread for the length of a commit (an `fsync`).
///   The orchestrator writes a handful of rows per iteration, so this stays far below the
///   cost of the agent processes themselves.
public actor AgentStore {
    /// The state folder.
    public let stateDirectory: StateDirectory
    private let database: SQLiteDatabase
    /// The session this store works on, once created or attached.
    public private(set) var sessionID: String?

    /// Opens (creating) `agents.db` in a state folder.
    ///
    /// - Parameter stateDirectory: The state folder.
    /// - Throws: ``StoreError`` (exit 74/5) or ``OrchestratorError`` for an incompatible schema.
    public init(stateDirectory: StateDirectory) throws {
        self.stateDirectory = stateDirectory
        guard let database = try AgentDatabase.open(stateDirectory, readOnly: false) else {
            throw OrchestratorError(.stateFailed, "cannot open \(stateDirectory.path)/\(AgentDatabase.fileName)")
        }
        self.database = database
    }

    private var session: String {
        guard let sessionID else { preconditionFailure("AgentStore used before a session was created or attached") }
        return sessionID
    }

    // MARK: - Sessions

    /// Stores a new session with its roles, tasks and milestones, and attaches to it.
    ///
    /// Events published while no session was running become this session's.
    public func createSession(_ record: SessionRecord, roles: [RoleSpec], tasks: [TaskRecord],
                              milestones: [MilestoneRecord]) throws {
        try AgentDatabase.insertSession(database, record, roles: roles, tasks: tasks, milestones: milestones)
        sessionID = record.id
    }

    /// Attaches to an existing session (for `--resume`).
    public func attach(_ id: String) { sessionID = id }

    /// The session `id`, or the latest one (of a project folder when given).
    public func session(id: String? = nil, projectDirectory: String? = nil) throws -> SessionRecord? {
        try AgentDatabase.session(database, id: id ?? sessionID, projectDirectory: projectDirectory)
    }

    /// Records the session's status and the engine working on it.
    public func setStatus(_ status: SessionRecord.Status, enginePID: Int? = nil) throws {
        try AgentDatabase.setSessionStatus(database, session, status, enginePID: enginePID)
    }

    // MARK: - Tasks

    /// Every task of the session, in plan order.
    public func tasks() throws -> [TaskRecord] { try AgentDatabase.tasks(database, session: session) }

    /// One task.
    public func task(_ id: String) throws -> TaskRecord? { try AgentDatabase.task(database, session: session, id: id) }

    /// Changes one task in one transaction and returns it as stored.
    @discardableResult
    public func updateTask(_ id: String, _ change: (inout TaskRecord) -> Void) throws -> TaskRecord {
        let session = self.session
        return try database.write { db in try Self.changeTask(id, session: session, in: db, change) }
    }

    /// Loads a task of the session, applies `change` and saves it (inside the caller's
    /// transaction).
    private static func changeTask(_ id: String, session: String, in db: SQLiteDatabase,
                                   _ change: (inout TaskRecord) -> Void) throws -> TaskRecord {
        guard var record = try AgentDatabase.task(db, session: session, id: id) else {
            throw OrchestratorError(.stateFailed, "task \(id) is missing from session \(session) in agents.db")
        }
        change(&record)
        try AgentDatabase.saveTask(db, session: session, record)
        return record
    }

    /// Records that an iteration started (and the task's new iteration number) in one transaction.
    public func beginIteration(task id: String, iteration: Int, stdout: String, stderr: String,
                               _ change: (inout TaskRecord) -> Void) throws -> TaskRecord {
        let session = self.session
        return try database.write { db in
            let record = try Self.changeTask(id, session: session, in: db, change)
            try AgentDatabase.beginIteration(db, session: session, task: id, iteration: iteration, stdout: stdout, stderr: stderr)
            return record
        }
    }

    /// Records how an iteration ended, and the task's new state, in one transaction.
    @discardableResult
    public func endIteration(task id: String, iteration: Int, outcome: String, exitCode: Int32?, detail: String?,
                             _ change: (inout TaskRecord) -> Void) throws -> TaskRecord {
        let session = self.session
        return try database.write { db in
            let record = try Self.changeTask(id, session: session, in: db, change)
            try AgentDatabase.endIteration(db, session: session, task: id, iteration: iteration, outcome: outcome,
                                           exitCode: exitCode, detail: detail)
            return record
        }
    }

    /// Records the iterations a killed engine left unfinished as `engine_lost` (on `--resume`).
    /// - Returns: How many there were.
    @discardableResult
    public func closeLostIterations() throws -> Int { try AgentDatabase.closeLostIterations(database, session: session) }

    /// Every iteration of the session (for reports and tests).
    public func iterations() throws -> [JSONValue] { try AgentDatabase.iterations(database, session: session) }

    // MARK: - Events

    /// Stores an event of this session unless its id is already stored.
    /// - Returns: The stored event and whether it was new.
    public func appendEvent(id: String, name: String, task: String?, data: JSONValue?,
                            source: String) throws -> (CIEvent, inserted: Bool) {
        try AgentDatabase.appendEvent(database, id: id, name: name, task: task, data: data, source: source, session: session)
    }

    /// The session's events after `seq`, in order.
    public func events(after seq: Int64) throws -> [CIEvent] {
        try AgentDatabase.events(database, session: session, after: seq)
    }

    /// Adopts events that were published while no session ran (e.g. between a crash and
    /// `--resume`, when the crashed session was not marked running), and returns the session's
    /// events after `seq`.
    public func adoptAndFetchEvents(after seq: Int64) throws -> [CIEvent] {
        let session = self.session
        let unowned = try AgentDatabase.unownedEvents(database, after: 0)
        if !unowned.isEmpty {
            try database.write { db in try db.run("UPDATE events SET session_id = ? WHERE session_id IS NULL", session) }
        }
        return try AgentDatabase.events(database, session: session, after: seq)
    }

    // MARK: - Milestones

    /// Every milestone of the session, in plan order.
    public func milestones() throws -> [MilestoneRecord] { try AgentDatabase.milestones(database, session: session) }

    /// Stores a milestone's new state.
    public func saveMilestone(_ milestone: MilestoneRecord) throws {
        try AgentDatabase.saveMilestone(database, session: session, milestone)
    }

    // MARK: - Status

    /// The session's status as `agents status` reports it.
    /// - Parameter live: Whether an engine works on the session now.
    public func status(live: Bool) throws -> ProjectStatus {
        guard let record = try AgentDatabase.session(database, id: session) else {
            throw OrchestratorError(.noSession, "session \(session) is missing from agents.db")
        }
        return try ProjectStatus.read(database, session: record, live: live)
    }
}
