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
    /// next session that starts (or resumes).
    ///
    /// - Parameters:
    ///   - stateDirectory: The state folder's path.
    ///   - name: The event name (letters, digits and `_ . : -`).
    ///   - task: The task it is for, if any.
    ///   - data: The payload, if any.
    ///   - id: The event id (a new UUID by default); a repeated id is stored once.
    /// - Throws: ``StoreError`` (exit 74/5), ``OrchestratorError`` for an incompatible schema.
    public static func emit(stateDirectory: String, name: String, task: String?, data: JSONValue?,
                            id: String? = nil) throws -> Result {
        let state = try StateDirectory(path: stateDirectory)
        guard let database = try AgentDatabase.open(state, readOnly: false) else {
            throw OrchestratorError(.stateFailed, "cannot open \(state.path)/\(AgentDatabase.fileName)")
        }
        let (event, inserted) = try AgentDatabase.appendEvent(
            database, id: id ?? UUID().uuidString.lowercased(), name: name, task: task, data: data, source: "cli", session: nil)
        let delivered = WakeChannel.notify(stateDirectory: state.path)
        return Result(event: event, inserted: inserted, delivered: delivered)
    }
}
