import Foundation
import Glibc
import Testing
@testable import Orchestration

// Issue 11, items 8, 10 and 12: bad input refused before anything is written, text from a plan
// or a step escaped in human output, a long cycle cut short, a report that cannot be written.

/// Runs the CLI through `sh -c` so its stdout can be redirected (`>&-`, `>/dev/full`).
private func runCLIRedirected(_ redirection: String, _ arguments: [String], in directory: String) async -> CLIResult {
    await runProgram("sh", ["-c", "exec \"$0\" \"$@\" \(redirection)", cliPath] + arguments, in: directory,
                     environment: ["NO_COLOR": "1", "OMNIBASE_STATE_DIR": nil])
}

@Suite(.serialized) struct HardeningTests {
    // MARK: Item 12

    @Test func aCycleThroughAHundredThousandStepsIsPrintedCutInTheMiddle() async throws {
        let dir = TempDir()
        let count = 100_000
        var steps: [String] = []
        steps.reserveCapacity(count)
        for index in 0..<count {
            steps.append("{\"id\": \"s\(index)\", \"command\": \"true\", \"depends_on\": [\"s\((index + 1) % count)\"]}")
        }
        let plan = dir.write("p.json", planJSON(steps))
        let result = await runCLI(["validate", plan], in: dir.path, timeout: .seconds(120))
        #expect(result.status == 2, "\(result.stderr.prefix(300))")
        #expect(result.stderr.utf8.count < 1_000, "the message is \(result.stderr.utf8.count) bytes")
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(result.stderr.contains("dependency cycle: "))
        #expect(result.stderr.contains(" -> ... (99,991 more) ... -> "), "\(result.stderr)")
        // The path still starts and ends on the same step.
        let path = try #require(result.stderr.components(separatedBy: "dependency cycle: ").last?
            .components(separatedBy: " (each step").first)
        let ids = path.components(separatedBy: " -> ").filter { !$0.hasPrefix("...") }
        #expect(ids.count == 10 && ids.first == ids.last, "\(path)")

        let short = dir.write("short.json", planJSON([
            stepJSON("a", "true", deps: ["b"]), stepJSON("b", "true", deps: ["c"]), stepJSON("c", "true", deps: ["a"]),
        ]))
        let shortResult = await runCLI(["validate", short], in: dir.path)
        #expect(shortResult.stderr.contains("a -> b -> c -> a"), "\(shortResult.stderr)")
    }

    @Test(arguments: [(">&-", "Bad file descriptor"), (">/dev/full", "No space left on device")])
    func aReportThatCannotBeWrittenIsExit74(redirection: String, reason: String) async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = dir.write("p.json", planJSON([stepJSON("a", "echo hello")]))
        for arguments in [["run", plan, "--state-dir", state], ["run", plan, "--state-dir", state, "--format", "human"],
                          ["runs", "list", "--state-dir", state]] {
            let result = await runCLIRedirected(redirection, arguments, in: dir.path)
            #expect(result.status == 74, "\(arguments): \(result.stderr)")
            // Human runs show progress lines on stderr first; the error is the last line.
            let last = result.stderr.split(separator: "\n").last.map(String.init) ?? ""
            #expect(last.hasPrefix("omnibase-agents: error: cannot write the output to stdout"), "\(result.stderr)")
            #expect(last.contains(reason), "\(result.stderr)")
            #expect(!result.stderr.contains("error:") || result.stderr.components(separatedBy: "error:").count == 2)
        }
        // The runs themselves are recorded whole: the report went nowhere else (no file took
        // the closed stdout's descriptor).
        let listed = await runCLI(["runs", "list", "--state-dir", state, "--format", "json"], in: dir.path)
        #expect(listed.status == 0, "\(listed.stderr)")
        let runs = try listed.json()["runs"]?.arrayValue ?? []
        #expect(runs.count == 2)
        #expect(runs.allSatisfy { $0["status"]?.stringValue == "succeeded" })
        let db = try SQLiteDatabase(path: state + "/runs.db", mode: .readOnly)
        #expect(try db.integrityCheck() == "ok")
    }
}
