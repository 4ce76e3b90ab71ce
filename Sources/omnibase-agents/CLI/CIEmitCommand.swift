import Agents
import Foundation
import Orchestration

/// `ci emit EVENT [--task ID] [--data JSON] [--id ID]`: publish a CI event to the agents' bus.
struct CIEmitCommand: CLICommand {
    static let name = "ci"
    static let abstract = "Publish a CI event to the agents' bus: ci emit EVENT [--task ID] [--data JSON]."
    static let help = """
    Usage: omnibase-agents ci emit EVENT [--task ID] [--data JSON] [--id ID]

    Stores EVENT in the state folder's agents.db, then wakes the running 'agents run' (if any),
    which delivers it to the tasks waiting for it within a second. With no session running, the
    next 'agents run' (or --resume) sees it. Events with the same --id are stored once.

    Options:
      --task ID    The task the event is for (a blocked task wakes on any event for it).
      --data JSON  A JSON payload (given to the woken agent as CI_EVENT_DATA).
      --id ID      The event id, for de-duplication (default: a new UUID).
    \(CommonOptions.help)

    The state folder must already hold an agents project ('agents run' has used it), and a
    --task must be one of its latest session's tasks.

    Exit codes: 0 stored (also for a duplicate id), 2 bad arguments or no agents project in the
    state folder, 3 unknown task, 74 state folder failed.

    """

    let event: String
    let task: String?
    let data: JSONValue?
    let id: String?
    let common: CommonOptions

    init(arguments: [String]) throws(EngineError) {
        let scanner = try ArgumentScanner(arguments, valueOptions: CommonOptions.valueOptions.union(["--task", "--data", "--id"]),
                                          flags: CommonOptions.flags)
        var positionals = scanner.remainingPositionals
        guard let action = positionals.first else { throw usage("ci needs an action: emit EVENT") }
        positionals.removeFirst()
        guard action == "emit" else {
            let hint = Suggestion.closest(to: action, among: ["emit"]).map { " (did you mean '\($0)'?)" } ?? ""
            throw usage("unknown ci action '\(action)'\(hint); use emit")
        }
        guard positionals.count == 1 else {
            throw usage(positionals.isEmpty ? "ci emit needs an event name" : "ci emit takes one event name")
        }
        event = positionals[0]
        guard ProjectPlanLoader.isValidEventName(event) else {
            throw usage("\"\(event)\" is not a valid event name (a letter or digit, then letters, digits and _ . : -)")
        }
        task = scanner.value("--task")
        if let task, !ProjectPlanLoader.isValidID(task) { throw usage("--task \"\(task)\" is not a valid task id") }
        if let text = scanner.value("--data") {
            do {
                data = try StrictJSONParser.parse(Array(text.utf8)).toValue()
            } catch {
                throw usage("--data is not valid JSON: \(error.message) at \(error.location)")
            }
        } else {
            data = nil
        }
        id = scanner.value("--id")
        if let id, id.isEmpty || id.count > 200 { throw usage("--id must be 1 to 200 characters") }
        common = try CommonOptions(scanner)
    }

    func run() async throws(EngineError) -> Int32 {
        let result: CIEventEmitter.Result
        do {
            result = try CIEventEmitter.emit(stateDirectory: common.stateDirectory, name: event, task: task, data: data, id: id)
        } catch {
            throw AgentsErrorMapping.engineError(error)
        }
        let json: JSONValue = .object([
            "event": result.event.json,
            "duplicate": .bool(!result.inserted),
            "delivered": .bool(result.delivered),
        ])
        common.emit(json: json) {
            var line = result.inserted ? "Published \(event) (#\(result.event.seq))" : "Already published: \(event) (#\(result.event.seq), same id)"
            if let task { line += " for \(task)" }
            line += result.delivered ? "; the running agents session was woken.\n" : "; no agents session is running, the next one will see it.\n"
            return line
        }
        return 0
    }
}
