import Foundation
import Orchestration

// omnibase-bench: the engine measured side by side with ninja and make on the same DAGs.
// Build in release mode: `swift run -c release omnibase-bench process --steps 10000`.

let usage = """
Usage: omnibase-bench process [--shapes independent,chain,lattice] [--steps N] [--concurrency 1,2,8]
                              [--scratch DIR] [--out FILE.json]

Runs each DAG of `true` steps with the engine (durable store on and off), `ninja -jN` and
`make -jN` in one invocation and prints wall times and ratios (engine / ninja). Results are also
written as JSON (default: Benchmarks/results/process.json).

"""

func option(_ name: String, in arguments: [String]) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.first == "process" else {
    FileHandle.standardError.write(Data(usage.utf8))
    exit(arguments.contains("--help") || arguments.contains("-h") ? 0 : 2)
}
let shapes = (option("--shapes", in: arguments) ?? "independent,chain,lattice").split(separator: ",")
    .compactMap { Shape(rawValue: String($0)) }
let steps = Int(option("--steps", in: arguments) ?? "10000") ?? 10000
let levels = (option("--concurrency", in: arguments) ?? "2").split(separator: ",").compactMap { Int($0) }
let scratch = option("--scratch", in: arguments) ?? NSTemporaryDirectory() + "omnibase-bench-\(getpid())"
let out = option("--out", in: arguments) ?? "Benchmarks/results/process.json"

func format(_ value: Double?) -> String { value.map { String(format: "%8.2f", $0) } ?? "       -" }
func ratio(_ a: Double?, _ b: Double?) -> String {
    guard let a, let b, b > 0 else { return "     -" }
    return String(format: "%5.2fx", a / b)
}

print("shape        steps   -j  store on  store off     ninja      make  on/ninja  off/ninja  on/make")
var rows: [JSONValue] = []
for shape in shapes {
    for concurrency in levels {
        let r = try await runProcessScenario(shape: shape, count: steps, concurrency: concurrency, scratch: scratch)
        print("\(shape.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) \(String(format: "%6d", steps)) "
              + "\(String(format: "%4d", concurrency)) \(format(r["engine_store_on"]))  \(format(r["engine_store_off"])) "
              + "\(format(r["ninja"]))  \(format(r["make"]))    \(ratio(r["engine_store_on"], r["ninja"]))     "
              + "\(ratio(r["engine_store_off"], r["ninja"]))   \(ratio(r["engine_store_on"], r["make"]))")
        rows.append(.object([
            "shape": .string(shape.rawValue), "steps": .int(steps), "concurrency": .int(concurrency),
            "engine_store_on_sec": r["engine_store_on"].map { .double($0) } ?? .null,
            "engine_store_off_sec": r["engine_store_off"].map { .double($0) } ?? .null,
            "ninja_sec": r["ninja"].map { .double($0) } ?? .null,
            "make_sec": r["make"].map { .double($0) } ?? .null,
        ]))
    }
}
try? FileManager.default.removeItem(atPath: scratch)
let document: JSONValue = .object([
    "scenario": "process",
    "date": .string(Timestamp.rfc3339(Date())),
    "machine": .string("\(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB"),
    "results": .array(rows),
])
try FileManager.default.createDirectory(atPath: (out as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
try document.serialized(pretty: true).write(toFile: out, atomically: true, encoding: .utf8)
print("results written to \(out)")
