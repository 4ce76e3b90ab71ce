import Foundation
import Orchestration
import Presentation

/// `graph PLAN.json` or `graph --run RUN_ID`: the DAG as Graphviz DOT or a Mermaid flowchart.
struct GraphCommand: CLICommand {
    static let configuration = CommandConfiguration(
        name: "graph", arguments: "PLAN.json | --run RUN_ID",
        abstract: "Print a plan's DAG (or a run's, coloured by status) as DOT or Mermaid.",
        discussion: """
        Prints the DAG with an edge from each dependency to its dependent; a node's label is the step's name \
        when it has one, its id otherwise; a matrix step's expansions are drawn in one cluster (DOT) or subgraph \
        (Mermaid). With --run, draws the plan snapshot stored with the run and colours \
        each node by the step's final status: succeeded green, failed red, skipped grey, cancelled orange, \
        pending white.
        """,
        sections: [
            OptionSection("Options:", [
                .choice("--format", among: GraphRenderer.Format.allCases.map(\.rawValue),
                        "Graphviz DOT (default) or a Mermaid flowchart."),
                .repeatable("--var", "NAME=VALUE", "Override a plan variable (repeatable; not with --run)."),
                .single("--run", "RUN_ID", "Draw a stored run instead of a plan file."),
                CommonOptions.stateDirectory,
                CommonOptions.noColor,
            ]),
        ],
        epilogue: """
        Example: omnibase-agents graph plan.json | dot -Tsvg > plan.svg

        Exit codes: 0, 2 bad plan or arguments, 3 unknown run.
        """)

    enum Source {
        case plan(path: String, variables: [String: String])
        case run(id: String, stateDirectory: String)
    }

    let source: Source
    let format: GraphRenderer.Format

    init(parsing arguments: ParsedArguments) throws(EngineError) {
        format = try arguments.choice("--format").flatMap(GraphRenderer.Format.init(rawValue:)) ?? .dot
        let positionals = arguments.positionals
        if let runID = arguments.value("--run") {
            guard positionals.isEmpty else { throw usage("graph takes a plan file or --run RUN_ID, not both") }
            guard arguments.values("--var").isEmpty else {
                throw usage("--var does not apply to --run: the run's stored variables are used")
            }
            source = .run(id: runID, stateDirectory: try arguments.stateDirectory())
        } else {
            guard positionals.count == 1 else {
                throw usage(positionals.isEmpty ? "graph needs a plan file or --run RUN_ID"
                            : "graph takes one plan file, got \(positionals.count) arguments")
            }
            _ = try arguments.stateDirectory()
            source = .plan(path: positionals[0], variables: try arguments.variables())
        }
    }

    func run() async throws(EngineError) -> Int32 {
        switch source {
        case .plan(let path, let variables):
            let loaded = try PlanLoader.load(path: path, overrides: variables, refusingUnusedOverrides: true)
            StandardStreams.print(GraphRenderer.render(loaded.plan, graph: loaded.graph, format: format), terminator: "")
        case .run(let runID, let stateDirectory):
            let directory: StateDirectory
            do { directory = try StateDirectory(path: stateDirectory, creating: false) } catch { throw EngineError(error) }
            let store = try RunStore(stateDirectory: directory, readOnly: true)
            guard let record = try store.run(runID) else {
                throw EngineError(.unknownReference, "no run \(runID) in \(stateDirectory)")
            }
            // A withheld secret's placeholder lets the snapshot load; the graph needs no value.
            let loaded = try PlanLoader.load(record.source.withPlaceholders())
            var statusByID: [String: StepStatus] = [:]
            for step in try store.steps(runID) { statusByID[step.id] = step.status }
            let statuses = loaded.graph.ids.map { statusByID[$0] ?? .pending }
            StandardStreams.print(GraphRenderer.render(loaded.plan, graph: loaded.graph, format: format, statuses: statuses, runID: runID),
                  terminator: "")
        }
        return 0
    }
}
