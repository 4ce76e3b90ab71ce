import Foundation
import Orchestration

/// DAG shapes of the process benchmarks, all of `true` steps.
enum Shape: String, CaseIterable {
    /// N steps, no edges.
    case independent
    /// A chain of N steps.
    case chain
    /// sqrt(N) layers of sqrt(N) steps; each depends on 2 random steps of the previous layer.
    case lattice

    /// Dependencies of each step by index, reproducible from the seed.
    func dependencies(count: Int, seed: UInt64 = 42) -> [[Int]] {
        switch self {
        case .independent:
            return Array(repeating: [], count: count)
        case .chain:
            return (0..<count).map { $0 == 0 ? [] : [$0 - 1] }
        case .lattice:
            var generator = SplitMix64(seed: seed)
            let width = max(1, Int(Double(count).squareRoot()))
            return (0..<count).map { index in
                let layer = index / width
                guard layer > 0 else { return [] }
                let previous = (layer - 1) * width
                let a = previous + Int.random(in: 0..<width, using: &generator)
                var b = previous + Int.random(in: 0..<width, using: &generator)
                if b == a { b = previous + (a - previous + 1) % width }
                return a == b ? [a] : [a, b].sorted()
            }
        }
    }
}

/// Writes the same DAG as a plan, a build.ninja and a Makefile.
struct DAGFiles {
    let folder: String
    let planPath: String

    init(shape: Shape, count: Int, folder: String) throws {
        self.folder = folder
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let deps = shape.dependencies(count: count)
        var plan = "{\"plan_id\": \"BENCH-\(shape.rawValue)-\(count)\", \"version\": \"1\", \"steps\": [\n"
        var ninja = "rule t\n  command = true\n"
        var make = ".PHONY: all\nall:"
        for index in 0..<count { make += " s\(index)" }
        make += "\n"
        for (index, list) in deps.enumerated() {
            let depIDs = list.map { "\"s\($0)\"" }.joined(separator: ",")
            plan += "{\"id\": \"s\(index)\", \"command\": \"true\", \"depends_on\": [\(depIDs)]}"
            plan += index == count - 1 ? "\n" : ",\n"
            let inputs = list.map { "s\($0)" }.joined(separator: " ")
            ninja += "build s\(index): t" + (inputs.isEmpty ? "" : " || \(inputs)") + "\n"
            make += ".PHONY: s\(index)\ns\(index):" + (inputs.isEmpty ? "" : " \(inputs)") + "\n\t@true\n"
        }
        plan += "]}\n"
        planPath = folder + "/plan.json"
        try plan.write(toFile: planPath, atomically: true, encoding: .utf8)
        try ninja.write(toFile: folder + "/build.ninja", atomically: true, encoding: .utf8)
        try make.write(toFile: folder + "/Makefile", atomically: true, encoding: .utf8)
    }
}

/// CPU seconds (user + system) used so far by this process (`RUSAGE_SELF`, all threads) or by
/// its waited-for children and their descendants (`RUSAGE_CHILDREN`).
func cpuSeconds(_ who: __rusage_who) -> Double {
    var usage = rusage()
    getrusage(who.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// Context switches (voluntary and involuntary) of this process's threads so far.
func contextSwitches() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_nvcsw + usage.ru_nivcsw
}

/// Wall time and CPU of one measured variant.
struct Measured {
    var wall: Double
    /// CPU of the engine process itself (0 for an external tool, which is all "children").
    var engineCPU: Double
    /// CPU of the processes it ran (for a tool: the tool and everything it ran).
    var childrenCPU: Double
    /// Context switches of the engine's own threads (0 for an external tool).
    var engineSwitches = 0
}

/// Measures `body`: wall time, this process's CPU and context switches, and its children's CPU.
func measure(_ body: () async throws -> Void) async rethrows -> Measured {
    let (selfBefore, childrenBefore, switchesBefore) = (cpuSeconds(RUSAGE_SELF), cpuSeconds(RUSAGE_CHILDREN), contextSwitches())
    let start = ContinuousClock.now
    try await body()
    return Measured(wall: seconds(ContinuousClock.now - start), engineCPU: cpuSeconds(RUSAGE_SELF) - selfBefore,
                    childrenCPU: cpuSeconds(RUSAGE_CHILDREN) - childrenBefore, engineSwitches: contextSwitches() - switchesBefore)
}

/// Runs an external tool in a folder: its wall time and CPU, or nil if it is not installed.
func timeTool(_ command: String, _ arguments: [String], in folder: String) async -> Measured? {
    var succeeded = false
    let measured = await measure {
        succeeded = await LocalProcess.run(ProcessSpec(command: command, arguments: arguments, workingDirectory: folder,
                                                       stdoutPath: "/dev/null", stderrPath: "/dev/null")).succeeded
    }
    guard succeeded else { return nil }
    // The bench's own share of running the tool (one spawn) is noise; count it as the tool's.
    return Measured(wall: measured.wall, engineCPU: 0, childrenCPU: measured.childrenCPU + measured.engineCPU)
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// One process-DAG scenario: the engine with the store on and off, the spawn floor
/// (``spawnFloor(dependencies:concurrency:)``), ninja and make, side by side.
/// With `normal`, also the engine with the store at `synchronous=NORMAL` (`run --synchronous normal`).
func runProcessScenario(shape: Shape, count: Int, concurrency: Int, scratch: String,
                        tools: [String] = ["floor", "ninja", "make"], normal: Bool = false) async throws -> [String: Measured] {
    let folder = "\(scratch)/\(shape.rawValue)-\(count)-j\(concurrency)"
    try? FileManager.default.removeItem(atPath: folder)
    let files = try DAGFiles(shape: shape, count: count, folder: folder)
    let loaded = try PlanLoader.load(path: files.planPath)
    var results: [String: Measured] = [:]

    // Engine, durable store on (what `run` does).
    let session = try RunSession(stateDirectory: folder + "/state-on")
    results["engine_store_on"] = try await measure {
        let report = try await session.start(loaded, request: RunRequest(maxConcurrency: concurrency))
        guard report.status == .succeeded else { throw EngineError(.executionFailed, "benchmark run failed") }
    }

    if normal {
        let normalSession = try RunSession(stateDirectory: folder + "/state-normal", synchronous: .normal)
        results["engine_store_normal"] = try await measure {
            let report = try await normalSession.start(loaded, request: RunRequest(maxConcurrency: concurrency))
            guard report.status == .succeeded else { throw EngineError(.executionFailed, "benchmark run failed") }
        }
    }

    // Engine, store off: same executor and logs, no SQLite, no events file.
    let logs = folder + "/state-off/logs"
    try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
    results["engine_store_off"] = try await measure {
        let bare = try await DAGExecutor(plan: loaded.plan, graph: loaded.graph,
                                         options: RunOptions(maxConcurrency: concurrency, logDirectory: logs),
                                         clock: ContinuousClock()).run()
        guard bare.status == .succeeded else { throw EngineError(.executionFailed, "benchmark run failed") }
    }

    if tools.contains("floor") {
        results["floor"] = try await spawnFloor(dependencies: shape.dependencies(count: count), concurrency: concurrency)
    }
    if tools.contains("ninja") {
        results["ninja"] = await timeTool("ninja", ["-j\(concurrency)"], in: folder)
    }
    if tools.contains("make") {
        results["make"] = await timeTool("make", ["-j\(concurrency)", "-s"], in: folder)
    }
    return results
}
