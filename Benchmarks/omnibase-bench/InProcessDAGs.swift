import Foundation
import Orchestration

/// In-process DAGs of no-op closure steps through the library API: what the engine itself costs
/// per node, with the durable store off and on.
struct InProcessResult {
    var shape: Shape
    var nodes: Int
    var concurrency: Int
    var store: Bool
    var seconds: Double
    var peakRSSBytes: Int
    /// CPU time of the whole process during the run (every thread: executor, pool, writer).
    var cpuSeconds: Double
    /// CPU time of the store writer's thread (0 with the store off).
    var writerCPUSeconds: Double
    /// Transactions the store committed, and commits to the run's commit record (0 with the store
    /// off).
    var commits = 0
    var recordCommits = 0

    var nodesPerSecond: Double { Double(nodes) / seconds }
    var microsecondsPerNode: Double { seconds * 1e6 / Double(nodes) }
    var bytesPerNode: Double { Double(peakRSSBytes) / Double(nodes) }
}

/// Builds the plan of a shape with no-op closure steps.
func closurePlan(shape: Shape, nodes: Int, concurrency: Int) -> Plan {
    let deps = shape.dependencies(count: nodes)
    var steps: [Step] = []
    steps.reserveCapacity(nodes)
    for (index, list) in deps.enumerated() {
        steps.append(Step(id: "n\(index)", action: .closure { _ in }, dependsOn: list.map { "n\($0)" }))
    }
    return Plan(id: "INPROC-\(shape.rawValue)-\(nodes)", maxConcurrency: concurrency, steps: steps)
}

/// Runs one in-process scenario in this process and measures it (call in a fresh process so the
/// peak memory is this scenario's own).
func measureInProcess(shape: Shape, nodes: Int, concurrency: Int, store: Bool,
                      synchronous: SQLiteDatabase.Synchronous = .full, scratch: String) async throws -> InProcessResult {
    let plan = closurePlan(shape: shape, nodes: nodes, concurrency: concurrency)
    let graph = try PlanGraph(steps: plan.steps)
    let options = RunOptions(maxConcurrency: concurrency)
    let cpuBefore = cpuSeconds(RUSAGE_SELF)
    let start = ContinuousClock.now
    let report: RunReport
    var writerCPU = 0.0
    var commits = (all: 0, record: 0)
    if store {
        let directory = try StateDirectory(path: scratch + "/state-\(getpid())")
        let runStore = try RunStore(stateDirectory: directory)
        try runStore.createRun(RunStore.NewRun(
            runID: options.runID, planID: plan.id, traceID: options.traceID,
            source: PlanSource(displayPath: "(in-process)", directory: scratch, bytes: [], overrides: [:]),
            options: .object([]), stepIDs: graph.ids, engine: .current))
        let recorder = try StoreRecorder(stateDirectory: directory, runID: options.runID, synchronous: synchronous)
        report = try await DAGExecutor(plan: plan, graph: graph, options: options, observers: [recorder],
                                       commitGate: recorder, clock: ContinuousClock()).run()
        try await recorder.close()
        writerCPU = recorder.writerCPUTime.map(seconds) ?? 0
        commits = (recorder.commitCount, recorder.recordCommitCount)
    } else {
        report = try await DAGExecutor(plan: plan, graph: graph, options: options, clock: ContinuousClock()).run()
    }
    let elapsed = seconds(ContinuousClock.now - start)
    let cpu = cpuSeconds(RUSAGE_SELF) - cpuBefore
    guard report.status == .succeeded else { throw EngineError(.executionFailed, "in-process run failed") }
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return InProcessResult(shape: shape, nodes: nodes, concurrency: concurrency, store: store, seconds: elapsed,
                           peakRSSBytes: Int(usage.ru_maxrss) * 1024, cpuSeconds: cpu, writerCPUSeconds: writerCPU,
                           commits: commits.all, recordCommits: commits.record)
}

/// Plan validation of a large generated plan file: time and peak memory (in a fresh process).
func measureValidation(steps: Int, scratch: String) throws -> (seconds: Double, peakRSSBytes: Int) {
    let files = try DAGFiles(shape: .lattice, count: steps, folder: scratch + "/validate-\(steps)")
    let start = ContinuousClock.now
    let loaded = try PlanLoader.load(path: files.planPath)
    let elapsed = seconds(ContinuousClock.now - start)
    precondition(loaded.graph.count == steps)
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return (elapsed, Int(usage.ru_maxrss) * 1024)
}

/// The floor under the in-process figures: the same DAG run by the simplest correct scheduler a
/// Swift programmer would write by hand (Kahn's algorithm over one TaskGroup, at most
/// `concurrency` child tasks of the same no-op closure in flight), with no report, no events,
/// no retries and no priorities. Seconds for the whole DAG.
func measureBareTaskGroup(shape: Shape, nodes: Int, concurrency: Int) async -> Double {
    let deps = shape.dependencies(count: nodes)
    var successors = [[Int]](repeating: [], count: nodes)
    var waiting = [Int](repeating: 0, count: nodes)
    for (index, list) in deps.enumerated() {
        waiting[index] = list.count
        for dep in list { successors[dep].append(index) }
    }
    var ready = (0..<nodes).filter { waiting[$0] == 0 }.reversed() as [Int]
    let body: @Sendable () async throws -> Void = {}
    let start = ContinuousClock.now
    await withTaskGroup(of: Int.self) { group in
        var running = 0
        while true {
            while running < concurrency, let node = ready.popLast() {
                group.addTask { try? await body(); return node }
                running += 1
            }
            guard let done = await group.next() else { break }
            running -= 1
            for next in successors[done] {
                waiting[next] -= 1
                if waiting[next] == 0 { ready.append(next) }
            }
        }
    }
    return seconds(ContinuousClock.now - start)
}
