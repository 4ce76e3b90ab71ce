import Foundation
import Orchestration

// omnibase-bench: the engine measured side by side with ninja and make on the same DAGs.
// Build in release mode: `swift run -c release omnibase-bench process --steps 10000`.

let usage = """
Usage: omnibase-bench process [--shapes independent,chain,lattice] [--steps N] [--concurrency 1,2,8]
                              [--tools floor,ninja,make|none] [--synchronous full|full,normal]
                              [--scratch DIR] [--out FILE.json]
       omnibase-bench inprocess [--shapes ...] [--nodes 10000,100000] [--concurrency 1,8,1024]
                                [--store off,on,normal] [--out FILE.json]
       omnibase-bench validate [--steps 100000] [--out FILE.json]
       omnibase-bench workflows [--dir ../shared/bench/workflows] [--slots 2,8] [--target 10]
                                [--only NAME,...] [--tools ninja,make|none] [--out FILE.json]
       omnibase-bench bus [--waiters 1,100,10000] [--out FILE.json]
       omnibase-bench slurm [--steps 200] [--concurrency 64] [--out FILE.json]
       omnibase-bench serve [--steps 5000] [--followers 0,20] [--rounds 3] [--concurrency 2] [--out FILE.json]
       omnibase-bench smoke        (every scenario once in a tiny size: CI's check that they work)

process    DAGs of `true` steps: the engine (durable store on and off) next to `ninja -jN` and
           `make -jN` on the same DAG, in one invocation; prints wall times and ratios. And the
           spawn floor: the DAG run by the least a runner can do (posix_spawn with two pipes,
           waitpid; no store, no logs), what the kernel costs on this machine.
inprocess  DAGs of no-op Swift closure steps through the library API: nodes per second,
           microseconds of engine overhead per node and peak memory per node (each size runs in a
           fresh process so its peak memory is its own); --store normal: the store at
           synchronous=NORMAL.
validate   Loading and validating a generated plan: time and peak memory.
workflows  Real workflow DAGs run as sleep steps scaled so their lower bound
           max(critical path, work / slots) is --target seconds: the engine's makespan on a first
           run (node-count priorities) and a second run (measured durations), next to the bound,
           a simulated longest-path-first list schedule, make and ninja; and the same DAG as
           in-process closure steps that sleep, with the second run's priorities (the
           scheduler without the cost of starting processes).
bus        The CI-event bus: milliseconds from publish (a durable commit) to the first and the
           last of N blocked waiters waking; then `ci emit` from another process (the
           omnibase-agents binary beside this one) to a blocked waiter here.
serve      The process benchmark's independent DAG (durable store on) while `omnibase-agents serve`
           feeds N followers of the run's page (event streams in a helper process): wall and engine
           CPU per step with and without followers, the server's CPU and memory, and the latency
           from an event's timestamp to its arrival at a follower.

slurm      N independent `true` steps with --executor local and --executor slurm (one batch job
           per step; needs a cluster, e.g. .ci/slurm-cluster start): wall time, steps per second
           and median step duration; then Slurm's own floor: N bare `sbatch` jobs, and the
           submit-to-start latency of single jobs.

Results go to Benchmarks/results/<scenario>.json unless --out says otherwise.

"""

func option(_ name: String, in arguments: [String]) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

let arguments = Array(CommandLine.arguments.dropFirst())
let scenario = arguments.first ?? ""
let scratch = option("--scratch", in: arguments) ?? NSTemporaryDirectory() + "omnibase-bench-\(getpid())"
let shapes = (option("--shapes", in: arguments) ?? "independent,chain,lattice").split(separator: ",")
    .compactMap { Shape(rawValue: String($0)) }

func format(_ value: Double?) -> String { value.map { String(format: "%8.2f", $0) } ?? "       -" }
func ratio(_ a: Double?, _ b: Double?, digits: Int = 2) -> String {
    guard let a, let b, b > 0 else { return "     -" }
    return String(format: "%5.\(digits)fx", a / b)
}
func machine() -> String {
    "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB"
}
func writeResults(_ name: String, _ rows: [JSONValue]) throws {
    let out = option("--out", in: arguments) ?? "Benchmarks/results/\(name).json"
    let document: JSONValue = .object([
        "scenario": .string(name), "date": .string(Timestamp.rfc3339(Date())), "machine": .string(machine()),
        "results": .array(rows),
    ])
    try FileManager.default.createDirectory(atPath: (out as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try document.serialized(pretty: true).write(toFile: out, atomically: true, encoding: .utf8)
    print("results written to \(out)")
}

// A failure is one sentence on stderr and an exit code, never a crash with a backtrace.
do {
    switch scenario {
    case "process":
        try await processScenario()
    case "inprocess":
        try await inProcessScenario()
    case "inprocess-one":
        // A single in-process measurement, run by `inprocess` in a fresh process; prints one JSON line.
        let shape = Shape(rawValue: option("--shape", in: arguments) ?? "independent") ?? .independent
        let result = try await measureInProcess(shape: shape, nodes: Int(option("--nodes", in: arguments) ?? "10000") ?? 10000,
                                                concurrency: Int(option("--concurrency", in: arguments) ?? "8") ?? 8,
                                                store: ["on", "normal"].contains(option("--store", in: arguments)),
                                                synchronous: option("--store", in: arguments) == "normal" ? .normal : .full,
                                                scratch: scratch)
        // The hand-written TaskGroup floor on the same DAG, after the engine, in the same process.
        let bare = await measureBareTaskGroup(shape: shape, nodes: result.nodes, concurrency: result.concurrency)
        print(JSONValue.object(["seconds": .double(result.seconds), "peak_rss": .int(result.peakRSSBytes),
                                "cpu_seconds": .double(result.cpuSeconds), "writer_cpu_seconds": .double(result.writerCPUSeconds),
                                "commits": .int(result.commits), "record_commits": .int(result.recordCommits),
                                "bare_seconds": .double(bare)]).serialized())
        try? FileManager.default.removeItem(atPath: scratch)
    case "validate-one":
        let result = try measureValidation(steps: Int(option("--steps", in: arguments) ?? "100000") ?? 100_000, scratch: scratch)
        print(JSONValue.object(["seconds": .double(result.seconds), "peak_rss": .int(result.peakRSSBytes)]).serialized())
        try? FileManager.default.removeItem(atPath: scratch)
    case "validate":
        try await validateScenario()
    case "workflows":
        try await workflowScenario()
    case "bus":
        try await busScenario()
    case "slurm":
        try await slurmScenario()
    case "serve":
        try await serveScenario()
    case "serve-follower":
        followerMain()
    case "smoke":
        try await smokeScenario()
    default:
        FileHandle.standardError.write(Data(usage.utf8))
        exit(arguments.contains("--help") || arguments.contains("-h") ? 0 : 2)
    }
} catch {
    let failure = EngineError(error)
    FileHandle.standardError.write(Data("omnibase-bench: \(failure.message)\n".utf8))
    exit(failure.exitCode)
}

func processScenario() async throws {
    let steps = Int(option("--steps", in: arguments) ?? "10000") ?? 10000
    let levels = (option("--concurrency", in: arguments) ?? "2").split(separator: ",").compactMap { Int($0) }
    let tools = (option("--tools", in: arguments) ?? "floor,ninja,make").split(separator: ",").map(String.init)
    let normal = (option("--synchronous", in: arguments) ?? "full").split(separator: ",").contains("normal")
    print("shape        steps   -j  store on  store off     ninja      make  on/ninja  off/ninja  on/make"
          + "   CPU us/step: engine on  off  steps(on)  ninja+steps   switches/step: on  off")
    var rows: [JSONValue] = []
    for shape in shapes {
        for concurrency in levels {
            let r = try await runProcessScenario(shape: shape, count: steps, concurrency: concurrency, scratch: scratch,
                                                 tools: tools, normal: normal)
            let (on, off, ninja, make) = (r["engine_store_on"], r["engine_store_off"], r["ninja"], r["make"])
            func perStep(_ value: Double?) -> String { value.map { String(format: "%6.0f", $0 * 1e6 / Double(steps)) } ?? "     -" }
            print("\(shape.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) \(String(format: "%6d", steps)) "
                  + "\(String(format: "%4d", concurrency)) \(format(on?.wall))  \(format(off?.wall)) "
                  + "\(format(ninja?.wall))  \(format(make?.wall))    \(ratio(on?.wall, ninja?.wall))     "
                  + "\(ratio(off?.wall, ninja?.wall))   \(ratio(on?.wall, make?.wall))"
                  + "             \(perStep(on?.engineCPU)) \(perStep(off?.engineCPU))     \(perStep(on?.childrenCPU))"
                  + "       \(perStep(ninja?.childrenCPU))"
                  + String(format: "             %5.1f %5.1f", Double(on?.engineSwitches ?? 0) / Double(steps),
                           Double(off?.engineSwitches ?? 0) / Double(steps)))
            if let floor = r["floor"] {
                print("  spawn floor (posix_spawn, two pipes, waitpid; nothing else): \(format(floor.wall)), "
                      + "floor/ninja \(ratio(floor.wall, ninja?.wall)), on/floor \(ratio(on?.wall, floor.wall)), "
                      + "off/floor \(ratio(off?.wall, floor.wall)), its CPU \(perStep(floor.engineCPU)) us/step")
            }
            if let normal = r["engine_store_normal"] {
                print("  the same with synchronous=NORMAL: store on \(format(normal.wall)), on/ninja \(ratio(normal.wall, ninja?.wall)), "
                      + "engine CPU \(perStep(normal.engineCPU)) us/step, "
                      + String(format: "%.1f switches/step", Double(normal.engineSwitches) / Double(steps)))
            }
            func cpu(_ m: Measured?) -> JSONValue {
                guard let m else { return .null }
                return .object(["engine_sec": .double(m.engineCPU), "children_sec": .double(m.childrenCPU),
                                "engine_context_switches": .int(m.engineSwitches)])
            }
            rows.append(.object([
                "shape": .string(shape.rawValue), "steps": .int(steps), "concurrency": .int(concurrency),
                "engine_store_on_sec": on.map { .double($0.wall) } ?? .null,
                "engine_store_off_sec": off.map { .double($0.wall) } ?? .null,
                "ninja_sec": ninja.map { .double($0.wall) } ?? .null,
                "make_sec": make.map { .double($0.wall) } ?? .null,
                "floor_sec": r["floor"].map { .double($0.wall) } ?? .null,
                "engine_store_normal_sec": r["engine_store_normal"].map { .double($0.wall) } ?? .null,
                "cpu": .object(["engine_store_on": cpu(on), "engine_store_off": cpu(off), "ninja": cpu(ninja), "make": cpu(make),
                                "engine_store_normal": cpu(r["engine_store_normal"]), "floor": cpu(r["floor"])]),
            ]))
        }
    }
    try? FileManager.default.removeItem(atPath: scratch)
    try writeResults("process", rows)
}

/// Runs this executable again with other arguments and parses its one-line JSON answer.
func runSelf(_ extra: [String]) async throws -> JSONValue {
    let out = NSTemporaryDirectory() + "omnibase-bench-\(UUID().uuidString).json"
    defer { try? FileManager.default.removeItem(atPath: out) }
    let outcome = await LocalProcess.run(ProcessSpec(command: CommandLine.arguments[0], arguments: extra,
                                                     stdoutPath: out, stderrPath: "/dev/null"))
    guard outcome.succeeded, let data = FileManager.default.contents(atPath: out) else {
        throw EngineError(.executionFailed, "benchmark child \(extra.joined(separator: " ")) failed: \(outcome.termination)")
    }
    return try StrictJSONParser.parse([UInt8](data)).toValue()
}

func inProcessScenario() async throws {
    let sizes = (option("--nodes", in: arguments) ?? "10000,100000").split(separator: ",").compactMap { Int($0) }
    let levels = (option("--concurrency", in: arguments) ?? "1,8,1024").split(separator: ",").compactMap { Int($0) }
    let stores = (option("--store", in: arguments) ?? "off,on").split(separator: ",").map(String.init)
    print("shape          nodes     -j  store   seconds   nodes/s   us/node  bytes/node   bare us/node  overhead us/node"
          + "  cpu us/node  writer us/node")
    var rows: [JSONValue] = []
    for shape in shapes {
        for nodes in sizes {
            for concurrency in levels {
                for store in stores {
                    let answer = try await runSelf(["inprocess-one", "--shape", shape.rawValue, "--nodes", String(nodes),
                                                    "--concurrency", String(concurrency), "--store", store])
                    let seconds = answer["seconds"]?.doubleValue ?? 0
                    let rss = answer["peak_rss"]?.intValue ?? 0
                    let bare = answer["bare_seconds"]?.doubleValue ?? 0
                    let cpu = answer["cpu_seconds"]?.doubleValue ?? 0
                    let writerCPU = answer["writer_cpu_seconds"]?.doubleValue ?? 0
                    print("\(shape.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) \(String(format: "%8d", nodes)) "
                          + "\(String(format: "%6d", concurrency))  \(store.padding(toLength: 4, withPad: " ", startingAt: 0)) "
                          + String(format: "%9.3f %9.0f %9.2f %11.0f", seconds, Double(nodes) / seconds,
                                   seconds * 1e6 / Double(nodes), Double(rss) / Double(nodes))
                          + String(format: "   %12.2f  %16.2f", bare * 1e6 / Double(nodes), (seconds - bare) * 1e6 / Double(nodes))
                          + String(format: "  %11.2f  %14.2f", cpu * 1e6 / Double(nodes), writerCPU * 1e6 / Double(nodes)))
                    rows.append(.object([
                        "shape": .string(shape.rawValue), "nodes": .int(nodes), "concurrency": .int(concurrency),
                        "store": .string(store), "seconds": .double(seconds),
                        "us_per_node": .double(seconds * 1e6 / Double(nodes)),
                        "peak_rss_bytes": .int(rss), "bytes_per_node": .double(Double(rss) / Double(nodes)),
                        "bare_taskgroup_us_per_node": .double(bare * 1e6 / Double(nodes)),
                        "overhead_us_per_node": .double((seconds - bare) * 1e6 / Double(nodes)),
                        "cpu_us_per_node": .double(cpu * 1e6 / Double(nodes)),
                        "writer_cpu_us_per_node": .double(writerCPU * 1e6 / Double(nodes)),
                        "commits": .int(answer["commits"]?.intValue ?? 0),
                    ]))
                }
            }
        }
    }
    try writeResults("inprocess", rows)
}

func validateScenario() async throws {
    let steps = Int(option("--steps", in: arguments) ?? "100000") ?? 100_000
    let answer = try await runSelf(["validate-one", "--steps", String(steps)])
    let seconds = answer["seconds"]?.doubleValue ?? 0
    let rss = answer["peak_rss"]?.intValue ?? 0
    print(String(format: "validate %d steps: %.3f s, peak memory %.1f MB", steps, seconds, Double(rss) / 1e6))
    try writeResults("validate", [.object(["steps": .int(steps), "seconds": .double(seconds), "peak_rss_bytes": .int(rss)])])
}

func workflowScenario() async throws {
    let folder = option("--dir", in: arguments) ?? "../shared/bench/workflows"
    let slotsList = (option("--slots", in: arguments) ?? "2,8").split(separator: ",").compactMap { Int($0) }
    let target = Double(option("--target", in: arguments) ?? "10") ?? 10
    let only = option("--only", in: arguments)?.split(separator: ",").map(String.init)
    let tools = (option("--tools", in: arguments) ?? "ninja,make").split(separator: ",").map(String.init)
    let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
        .filter { file in file.hasSuffix(".json") && (only?.contains { file.contains($0) } ?? true) }.sorted()
    guard !files.isEmpty else { throw EngineError(.usage, "no workflow files in \(folder)") }
    print("workflow                          tasks slots   bound     LPF   LPF+c  engine1  engine2  in-proc   ninja    make"
          + "  e2/LPF  e2/(LPF+c)  e2/bound  in-proc/LPF  ninja/LPF  make/LPF   c ms")
    var rows: [JSONValue] = []
    for file in files {
        for slots in slotsList {
            let row = try await runWorkflowScenario(path: folder + "/" + file, slots: slots, target: target, scratch: scratch,
                                                 tools: tools)
            rows.append(row)
            let name = String((row["workflow"]?.stringValue ?? file).prefix(32))
            let values = ["lower_bound_sec", "simulated_lpf_sec", "simulated_lpf_with_cost_sec", "engine_first_sec",
                          "engine_second_sec", "engine_in_process_sec", "ninja_sec", "make_sec"].map { row[$0]?.doubleValue }
            print(name.padding(toLength: 32, withPad: " ", startingAt: 0)
                  + String(format: " %6d %5d", row["tasks"]?.intValue ?? 0, slots)
                  + values.map { format($0) }.joined()
                  + "  " + ratio(values[4], values[1], digits: 3) + "       " + ratio(values[4], values[2], digits: 3)
                  + "   " + ratio(values[4], values[0])
                  + "       " + ratio(values[5], values[1], digits: 3) + "     " + ratio(values[6], values[1])
                  + "    " + ratio(values[7], values[1])
                  + String(format: "  %5.2f", (row["start_cost_sec"]?.doubleValue ?? 0) * 1000)
                  + "  " + format(row["simulated_engine_priorities_with_cost_sec"]?.doubleValue))
        }
    }
    try? FileManager.default.removeItem(atPath: scratch)
    try writeResults("workflows", rows)
}

func busScenario() async throws {
    let counts = (option("--waiters", in: arguments) ?? "1,100,10000").split(separator: ",").compactMap { Int($0) }
    print("waiters   first wake (ms)   last wake (ms)")
    var rows: [JSONValue] = []
    for count in counts {
        let (first, last) = try await measureBusLatency(waiters: count, scratch: scratch)
        print(String(format: "%7d   %15.3f   %14.3f", count, first * 1000, last * 1000))
        rows.append(.object(["waiters": .int(count), "first_wake_ms": .double(first * 1000), "last_wake_ms": .double(last * 1000)]))
    }
    if let cli = siblingCLI() {
        let (fromStored, fromSpawn) = try await measureCrossProcessWake(cli: cli, rounds: 9, scratch: scratch)
        print(String(format: "ci emit from another process, median of 9: stored -> waiter running %.1f ms "
                     + "(millisecond timestamps); emitter started -> waiter running %.1f ms", fromStored * 1000, fromSpawn * 1000))
        rows.append(.object(["cross_process_stored_to_wake_ms": .double(fromStored * 1000),
                             "cross_process_spawn_to_wake_ms": .double(fromSpawn * 1000)]))
    } else {
        print("ci emit from another process: skipped (build omnibase-agents in the same configuration first)")
    }
    try? FileManager.default.removeItem(atPath: scratch)
    try writeResults("bus", rows)
}

/// Every scenario once, tiny: proves the harness works (CI runs this; real numbers come from
/// full runs by hand).
func smokeScenario() async throws {
    let folder = scratch + "/smoke"
    for shape in Shape.allCases {
        let r = try await runProcessScenario(shape: shape, count: 20, concurrency: 2, scratch: folder)
        print("process \(shape.rawValue) 20 steps: store on \(format(r["engine_store_on"]?.wall))s, off \(format(r["engine_store_off"]?.wall))s, "
              + "floor \(format(r["floor"]?.wall))s, ninja \(format(r["ninja"]?.wall))s, make \(format(r["make"]?.wall))s")
        // The floor ran the whole DAG, or the smoke fails.
        guard r["floor"] != nil else { throw EngineError(.executionFailed, "the spawn floor did not run") }
    }
    for store in [false, true] {
        let r = try await measureInProcess(shape: .lattice, nodes: 400, concurrency: 8, store: store, scratch: folder)
        print(String(format: "inprocess lattice 400 nodes, store %@: %.2f us/node", store ? "on" : "off", r.microsecondsPerNode))
    }
    let validation = try measureValidation(steps: 500, scratch: folder)
    print(String(format: "validate 500 steps: %.3f s", validation.seconds))
    let workflows = option("--dir", in: arguments) ?? "../shared/bench/workflows"
    if let file = ((try? FileManager.default.contentsOfDirectory(atPath: workflows)) ?? []).filter({ $0.hasSuffix(".json") }).sorted().first {
        let row = try await runWorkflowScenario(path: workflows + "/" + file, slots: 2, target: 0.2, scratch: folder)
        print("workflow \(row["workflow"]?.stringValue ?? file): engine \(format(row["engine_second_sec"]?.doubleValue))s, "
              + "bound \(format(row["lower_bound_sec"]?.doubleValue))s, simulated \(format(row["simulated_lpf_sec"]?.doubleValue))s")
    } else {
        print("workflow: no files in \(workflows), skipped")
    }
    let (first, last) = try await measureBusLatency(waiters: 10, scratch: folder)
    print(String(format: "bus 10 waiters: first %.3f ms, last %.3f ms", first * 1000, last * 1000))
    if let cli = siblingCLI() {
        let (fromStored, _) = try await measureCrossProcessWake(cli: cli, rounds: 1, scratch: folder)
        print(String(format: "bus ci emit from another process: %.1f ms", fromStored * 1000))
    }
    if hasSbatch() {
        let m = try await measureSlurm(steps: 5, concurrency: 4, latencySamples: 1, scratch: folder)
        print(String(format: "slurm 5 steps: local %.2fs, slurm %.2fs, submit-to-start %.3fs", m.localSeconds, m.slurmSeconds,
                     m.submitToStartMedian))
    } else {
        print("slurm: no sbatch on the PATH, skipped")
    }
    if let cli = siblingCLI() {
        let rounds = try await runServeScenario(cli: cli, steps: 20, followerCounts: [0, 2], rounds: 1, concurrency: 2,
                                                scratch: folder)
        let parts = rounds.map { round in
            "\(round.followers) followers \(format(round.measured.wall))s, \(round.latencies.count) events received"
        }
        print("serve 20 steps: " + parts.joined(separator: "; "))
    }
    try? FileManager.default.removeItem(atPath: scratch)
    print("smoke: every scenario ran")
}
