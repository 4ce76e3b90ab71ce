import Agents
import Foundation
import Orchestration

/// `ci emit EVENT [--task ID] [--data JSON] [--id ID]`: publish a CI event to the agents' bus.
struct CIEmitCommand: CLICommand {
    static let configuration = CommandConfiguration(
        name: "ci", abstract: "Publish a CI event to the agents' bus: ci emit EVENT [--task ID] [--data JSON].",
        sections: [CommonOptions.section],
        epilogue: """
        The state folder must already hold an agents project ('agents run' has used it), and a
        --task must be one of its latest session's tasks.

        Exit codes: 0 stored (also for a duplicate id), 2 bad arguments or no agents project in the
        state folder, 3 unknown task, 74 state folder failed.
        """,
        subcommands: [Emit.self])

    let action: any CLICommand

    init(parsing arguments: ParsedArguments) throws(EngineError) { action = try CLI.subcommand(of: Self.self, arguments) }
    func validate() throws(EngineError) { try action.validate() }
    func run() async throws(EngineError) -> Int32 { try await action.run() }
}

extension CIEmitCommand {
    /// `ci emit EVENT`.
    struct Emit: CLICommand {
        static let configuration = CommandConfiguration(
            name: "emit", arguments: "EVENT", abstract: "Store a CI event and wake the running 'agents run'.",
            discussion: """
            Stores EVENT in the state folder's agents.db, then wakes the running 'agents run' (if any), which \
            delivers it to the tasks waiting for it within a second. With no session running, the next \
            'agents run' (or --resume) sees it. Events with the same --id are stored once.
            """,
            sections: [OptionSection("Options:", [
                .single("--task", "ID", "The task the event is for (a blocked task wakes on any event for it)."),
                .single("--data", "JSON", "A JSON payload (given to the woken agent as CI_EVENT_DATA)."),
                .single("--id", "ID", "The event id, for de-duplication (default: a new UUID)."),
            ])])

        let event: String
        let task: String?
        let data: JSONValue?
        let id: String?
        let common: CommonOptions

        init(parsing arguments: ParsedArguments) throws(EngineError) {
            event = try arguments.positionals(count: 1) { $0.isEmpty ? "ci emit needs an event name" : "ci emit takes one event name" }[0]
            guard ProjectPlanLoader.isValidEventName(event) else {
                throw usage("\"\(event)\" is not a valid event name (a letter or digit, then letters, digits and _ . : -)")
            }
            task = arguments.value("--task")
            if let task, !ProjectPlanLoader.isValidID(task) {
                throw usage("--task \"\(task)\" \(ProjectPlanLoader.invalidIDReason(task))")
            }
            if let text = arguments.value("--data") {
                do {
                    data = try StrictJSONParser.parse(Array(text.utf8)).toValue()
                } catch {
                    throw usage("--data is not valid JSON: \(error.message) at \(error.location)")
                }
            } else {
                data = nil
            }
            id = arguments.value("--id")
            if let id, id.isEmpty || id.count > 200 { throw usage("--id must be 1 to 200 characters") }
            common = try CommonOptions(arguments)
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
}
