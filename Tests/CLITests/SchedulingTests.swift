import Foundation
import Testing
@testable import Orchestration

@Suite("History-informed scheduling", .serialized, .timeLimit(.minutes(2)))
struct SchedulingTests {
    /// The order steps started in, from a run's events.
    func startOrder(_ runID: String, state: String, in dir: String) async throws -> [String] {
        let result = await runCLI(["runs", "events", runID, "--format", "jsonl", "--state-dir", state], in: dir)
        return try result.stdout.split(separator: "\n").compactMap { line in
            let event = try StrictJSONParser.parse(Array(line.utf8)).toValue()
            return event["type"]?.stringValue == "step_started" ? event["step_id"]?.stringValue : nil
        }
    }

    @Test func measuredDurationsDecideTheOrderOnTheSecondRun() async throws {
        let dir = TempDir()
        // By node count "head" goes first (two steps behind it); by measured time "long" does.
        let plan = dir.write("p.json", planJSON([
            stepJSON("head", "sleep 0.01"), stepJSON("tail", "sleep 0.01", deps: ["head"]), stepJSON("long", "sleep 0.4"),
        ], globals: "{\"max_concurrency\": 1}", id: "SCHED"))
        let state = dir.path + "/s"
        let first = try await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path).json()
        #expect(try await startOrder(first["run_id"]!.stringValue!, state: state, in: dir.path).first == "head")
        let second = await runCLI(["run", plan, "--mode", "profile", "--format", "json", "--state-dir", state], in: dir.path)
        let report = try second.json()
        #expect(try await startOrder(report["run_id"]!.stringValue!, state: state, in: dir.path).first == "long")
        let priorities = report["profile"]?["steps"]?.arrayValue?.reduce(into: [String: Double]()) {
            $0[$1["id"]?.stringValue ?? ""] = $1["priority"]?.doubleValue
        } ?? [:]
        #expect((priorities["long"] ?? 0) > (priorities["head"] ?? 0), "profile shows the measured priorities: \(priorities)")
    }
}
