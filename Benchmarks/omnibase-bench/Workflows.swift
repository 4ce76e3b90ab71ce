import Foundation
import Orchestration

/// A real workflow's task graph (WfCommons instances in `../shared/bench/workflows`).
struct Workflow {
    var name: String
    var ids: [String]
    var runtimes: [Double]
    var parents: [[Int]]

    init(path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let root = try StrictJSONParser.parse([UInt8](data), limits: .init(maxBytes: 64 << 20, maxDepth: 64)).toValue()
        name = root["name"]?.stringValue ?? (path as NSString).lastPathComponent
        let tasks = root["tasks"]?.arrayValue ?? []
        ids = tasks.map { $0["id"]?.stringValue ?? "" }
        runtimes = tasks.map { $0["runtime_s"]?.doubleValue ?? 0 }
        let index = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
        parents = tasks.map { task in (task["parents"]?.arrayValue ?? []).compactMap { $0.stringValue.flatMap { index[$0] } } }
    }

    var children: [[Int]] {
        var children = [[Int]](repeating: [], count: ids.count)
        for (child, list) in parents.enumerated() { for parent in list { children[parent].append(child) } }
        return children
    }

    /// Longest path from each task to the end, runtimes included.
    func remainingPaths(_ runtimes: [Double]) -> [Double] {
        let graph = try? PlanGraph(ids: ids, dependsOn: parents.map { $0.map { ids[$0] } })
        return graph?.remainingPathLengths(weights: runtimes) ?? runtimes
    }

    /// `max(critical path, total work / slots)`.
    func lowerBound(_ runtimes: [Double], slots: Int) -> Double {
        max(remainingPaths(runtimes).max() ?? 0, runtimes.reduce(0, +) / Double(slots))
    }

    /// The makespan of a list scheduler that always starts the ready task with the longest
    /// remaining path (ties: lower index), simulated exactly; with `priority`, the ready task
    /// with the largest of those instead (e.g. the engine's, from measured durations).
    func simulatedLongestPathFirst(_ runtimes: [Double], slots: Int, priority given: [Double]? = nil) -> Double {
        let priority = given ?? remainingPaths(runtimes)
        let children = self.children
        var unmet = parents.map(\.count)
        var ready = (0..<ids.count).filter { unmet[$0] == 0 }
        var running: [(end: Double, task: Int)] = []
        var now = 0.0
        var done = 0
        while done < ids.count {
            ready.sort { priority[$0] != priority[$1] ? priority[$0] > priority[$1] : $0 < $1 }
            while running.count < slots, !ready.isEmpty {
                let task = ready.removeFirst()
                running.append((now + runtimes[task], task))
            }
            running.sort { $0.end < $1.end }
            let (end, task) = running.removeFirst()
            now = end
            done += 1
            for child in children[task] {
                unmet[child] -= 1
                if unmet[child] == 0 { ready.append(child) }
            }
        }
        return now
    }
}

/// What one `sleep` step costs beyond its sleep when nothing else runs: spawning it (mostly the
/// dynamic loader), its exit and the wait for it, through the engine's process layer. The median
/// wall time of `count` runs of `sleep 0`, one at a time. Every tool that runs the workflow as
/// processes pays it per task; the simulation does not, unless given it (`LPF+c`).
func measuredStartCost(count: Int = 41) async -> Double {
    var samples: [Double] = []
    for _ in 0..<count {
        let start = ContinuousClock.now
        _ = await LocalProcess.run(ProcessSpec(command: "sleep", arguments: ["0"], stdoutPath: "/dev/null", stderrPath: "/dev/null"))
        samples.append(seconds(ContinuousClock.now - start))
    }
    return samples.sorted()[count / 2]
}

/// Runs a workflow as sleep steps scaled so that its lower bound at `slots` is `target` seconds:
/// the engine twice (no history, then with the first run's measured durations), make and ninja.
func runWorkflowScenario(path: String, slots: Int, target: Double, scratch: String,
                         tools: [String] = ["ninja", "make"]) async throws -> JSONValue {
    let workflow = try Workflow(path: path)
    let scale = target / max(workflow.lowerBound(workflow.runtimes, slots: slots), 1e-9)
    let scaled = workflow.runtimes.map { $0 * scale }
    let folder = "\(scratch)/wf-\(workflow.name)-\(slots)"
    try? FileManager.default.removeItem(atPath: folder)
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    // Step ids are the task ids; every task sleeps its scaled runtime.
    var plan: [JSONValue] = []
    var ninja = "rule sleep\n  command = sleep $secs\n"
    var make = ".PHONY: all\nall:"
    for index in workflow.ids.indices { make += " t\(index)" }
    make += "\n"
    for (index, id) in workflow.ids.enumerated() {
        let seconds = String(format: "%.4f", scaled[index])
        plan.append(.object(["id": .string(id), "command": "sleep", "args": [.string(seconds)],
                             "depends_on": .array(workflow.parents[index].map { .string(workflow.ids[$0]) })]))
        let inputs = workflow.parents[index].map { "t\($0)" }.joined(separator: " ")
        ninja += "build t\(index): sleep" + (inputs.isEmpty ? "" : " || \(inputs)") + "\n  secs = \(seconds)\n"
        make += ".PHONY: t\(index)\nt\(index):" + (inputs.isEmpty ? "" : " \(inputs)") + "\n\t@sleep \(seconds)\n"
    }
    let document: JSONValue = .object(["plan_id": .string("WF-\(workflow.name)"), "version": "1", "steps": .array(plan)])
    let planPath = folder + "/plan.json"
    try document.serialized().write(toFile: planPath, atomically: true, encoding: .utf8)
    try ninja.write(toFile: folder + "/build.ninja", atomically: true, encoding: .utf8)
    try make.write(toFile: folder + "/Makefile", atomically: true, encoding: .utf8)

    let loaded = try PlanLoader.load(path: planPath)
    let session = try RunSession(stateDirectory: folder + "/state")
    var engine: [Double] = []
    for _ in 0..<2 {
        let start = ContinuousClock.now
        let report = try await session.start(loaded, request: RunRequest(maxConcurrency: slots))
        engine.append(seconds(ContinuousClock.now - start))
        guard report.status == .succeeded else { throw EngineError(.executionFailed, "workflow run failed") }
    }
    let bound = workflow.lowerBound(scaled, slots: slots)
    let simulated = workflow.simulatedLongestPathFirst(scaled, slots: slots)
    // The same list schedule when every task also pays the measured cost of starting a process.
    let startCost = await measuredStartCost()
    let simulatedWithCost = workflow.simulatedLongestPathFirst(scaled.map { $0 + startCost }, slots: slots)
    // The scheduler alone: the same DAG as closure steps that sleep their scaled runtime, in this
    // process, with the priorities the engine chose from the history of the runs above. No exec,
    // no loader, no store: what is left over the simulation is the scheduling itself.
    let priorities = session.priorities(for: loaded)
    let simulatedEnginePriorities = workflow.simulatedLongestPathFirst(scaled.map { $0 + startCost }, slots: slots,
                                                                       priority: priorities)
    var closureSteps: [Step] = []
    for (index, id) in workflow.ids.enumerated() {
        let duration = Duration.nanoseconds(Int64(scaled[index] * 1e9))
        closureSteps.append(Step(id: id, action: .closure { _ in
            let clock = ContinuousClock()
            try await clock.sleep(until: clock.now.advanced(by: duration), tolerance: .zero)
        }, dependsOn: workflow.parents[index].map { workflow.ids[$0] }))
    }
    let closurePlan = Plan(id: "WF-CLOSURE-\(workflow.name)", maxConcurrency: slots, steps: closureSteps)
    var closureOptions = RunOptions(maxConcurrency: slots)
    closureOptions.priorities = priorities
    let closureStart = ContinuousClock.now
    let closureReport = try await DAGExecutor(plan: closurePlan, graph: try PlanGraph(steps: closureSteps), options: closureOptions,
                                              clock: ContinuousClock()).run()
    let closureTime = seconds(ContinuousClock.now - closureStart)
    guard closureReport.status == .succeeded else { throw EngineError(.executionFailed, "in-process workflow run failed") }
    let ninjaTime = tools.contains("ninja") ? await timeTool("ninja", ["-j\(slots)"], in: folder)?.wall : nil
    let makeTime = tools.contains("make") ? await timeTool("make", ["-j\(slots)", "-s"], in: folder)?.wall : nil
    return .object([
        "workflow": .string(workflow.name), "tasks": .int(workflow.ids.count), "slots": .int(slots),
        "lower_bound_sec": .double(bound), "simulated_lpf_sec": .double(simulated),
        "start_cost_sec": .double(startCost), "simulated_lpf_with_cost_sec": .double(simulatedWithCost),
        "simulated_engine_priorities_with_cost_sec": .double(simulatedEnginePriorities),
        "engine_first_sec": .double(engine[0]), "engine_second_sec": .double(engine[1]),
        "engine_in_process_sec": .double(closureTime),
        "ninja_sec": ninjaTime.map { .double($0) } ?? .null, "make_sec": makeTime.map { .double($0) } ?? .null,
    ])
}
