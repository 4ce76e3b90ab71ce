import Foundation
import Orchestration

/// Publishes a bus event from outside the engine (`ci emit`): commits it to `agents.db`, then
/// wakes the running `agents run`, if any, through the ``WakeChannel``.
public enum CIEventEmitter {
    /// What an emit did.
    public struct Result: Sendable {
        /// The stored event (the earlier one when the id was a duplicate).
        public var event: CIEvent
        /// Whether the event was new (false: its id was already stored; nothing was changed).
        public var inserted: Bool
        /// Whether a running engine was woken.
        public var delivered: Bool
    }

    /// Stores an event and wakes the engine.
    ///
    /// The event belongs to the latest running session of the state folder; with none, to the
    /// next session that starts (or resumes). The state folder must already hold an agents
    /// project (its `agents.db`): a mistyped folder is refused, never created. An event `task`
    /// must be one of the latest session's tasks.
    ///
    /// - Parameters:
    ///   - stateDirectory: The state folder's path.
    ///   - name: The event name (letters, digits and `_ . : -`).
    ///   - task: The task it is for, if any.
    ///   - data: The payload, if any.
    ///   - id: The event id (a new UUID by default); a repeated id is stored once.
    /// - Throws: ``StoreError`` (exit 74/5), ``OrchestratorError`` for an incompatible schema
    ///   (exit 4), a folder that holds no agents project (exit 2) or an unknown task (exit 3).
    public static func emit(stateDirectory: String, name: String, task: String?, data: JSONValue?,
                            id: String? = nil) throws -> Result {
        guard FileManager.default.fileExists(atPath: stateDirectory + "/" + AgentDatabase.fileName) else {
            throw OrchestratorError(.invalidConfiguration,
                "\(stateDirectory) holds no agents project (no \(AgentDatabase.fileName)); check --state-dir, "
                + "or start 'agents run' with this state folder first")
        }
        let state = try StateDirectory(path: stateDirectory)
        guard let database = try AgentDatabase.open(state, readOnly: false) else {
            throw OrchestratorError(.stateFailed, "cannot open \(state.path)/\(AgentDatabase.fileName)")
        }
        if let task { try checkTask(task, in: database, stateDirectory: state.path) }
        let (event, inserted) = try AgentDatabase.appendEvent(
            database, id: id ?? UUID().uuidString.lowercased(), name: name, task: task, data: data, source: "cli", session: nil)
        let delivered = WakeChannel.notify(stateDirectory: state.path)
        return Result(event: event, inserted: inserted, delivered: delivered)
    }

    /// Refuses (exit 3) a task that the state folder's latest session does not have.
    private static func checkTask(_ task: String, in database: SQLiteDatabase, stateDirectory: String) throws {
        guard let session = try AgentDatabase.session(database, id: nil) else {
            throw OrchestratorError(.invalidConfiguration,
                "no task \"\(task)\" in \(stateDirectory): no agents session has run there yet", exitCode: 3)
        }
        let known = try AgentDatabase.tasks(database, session: session.id).map(\.id)
        guard known.contains(task) else {
            let hint = Suggestion.closest(to: task, among: known).map { " (did you mean \"\($0)\"?)" } ?? ""
            throw OrchestratorError(.invalidConfiguration,
                "no task \"\(task)\" in the project of \(stateDirectory) (session \(session.id))\(hint)", exitCode: 3)
        }
    }
}
