import Foundation
import Glibc
import Testing
@testable import Monitor
@testable import Orchestration

/// `serve` against a hostile tester's findings: clients that pipeline and never read, an engine
/// that dies under the runs list, a wildcard address, a live run's exit code, a missing state
/// folder, the server's own refusals under `/api`, and numbers spelled another way.
extension ServeTests {
    /// A run that is still going has no exit code yet: its page and `report --html` show "-",
    /// as its JSON says null. Before, both showed 0.
    @Test func aLiveRunShowsNoExitCode() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = Self.gatedPlan(dir, steps: ["a"])
        let path = dir.path
        async let run = runCLI(["run", plan, "--format", "json", "--state-dir", state], in: path, timeout: .seconds(120))
        _ = try await waitForFile(dir.path + "/a.running", seconds: 30)
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state], dir: dir)
        let runs = try StrictJSONParser.parse(Array(try HTTPClient.get(port: server.port, path: "/api/runs").body.utf8)).toValue()
        let runID = try #require(runs["runs"]?.arrayValue?.first?["run_id"]?.stringValue)
        let shown = try StrictJSONParser.parse(Array(try HTTPClient.get(port: server.port, path: "/api/runs/\(runID)").body.utf8)).toValue()
        #expect(shown["exit_code"] == .null)
        let page = try HTTPClient.get(port: server.port, path: "/runs/\(runID)").body
        #expect(page.contains("<dt>Exit code</dt><dd>-</dd>"), "the run page of a live run")
        let report = dir.path + "/live.html"
        #expect(await runCLI(["report", runID, "--html", report, "--state-dir", state], in: path).status == 0)
        #expect(try String(contentsOfFile: report, encoding: .utf8).contains("<dt>Exit code</dt><dd>-</dd>"), "report --html")

        _ = FileManager.default.createFile(atPath: dir.path + "/a.go", contents: nil)
        #expect(await run.status == 0)
        #expect(try HTTPClient.get(port: server.port, path: "/runs/\(runID)").body.contains("<dt>Exit code</dt><dd>0</dd>"))
        #expect(try await server.stop() == 143)
    }

    /// Numbers are plain digits: `--listen 127.0.0.1:+0` is exit 2 (before, it listened on port
    /// 0; `:+80` bound port 80), and `after`, `Last-Event-ID` and `limit` with a sign or a leading
    /// zero are 400 (before, `+10` and `00010` meant 10).
    @Test func numbersArePlainDigits() async throws {
        let dir = TempDir()
        let (state, runID) = try await Self.finishedRun(dir)
        for bad in ["127.0.0.1:+0", "127.0.0.1:07070", "127.0.0.1: 7070", "[::1]:+0"] {
            let result = await runCLI(["serve", "--listen", bad, "--state-dir", state], in: dir.path, timeout: .seconds(10))
            #expect(result.status == 2, "--listen \(bad): \(result.stderr)")
            #expect(result.stderr.contains("--listen needs ADDR:PORT with a port from 0 to 65535"), "--listen \(bad)")
            #expect(result.stdout.isEmpty, "--listen \(bad)")
        }
        let server = try await ServeProcess.start(["--listen", "127.0.0.1:0", "--state-dir", state], dir: dir)
        for bad in ["+10", "00010", "010", "+0", "00"] {
            #expect(try Self.head(port: server.port, "/runs/\(runID)/events", headers: ["Last-Event-ID: \(bad)"]).status == 400,
                    "Last-Event-ID: \(bad)")
            let escaped = bad.replacingOccurrences(of: "+", with: "%2B")
            #expect(try Self.head(port: server.port, "/runs/\(runID)/events?after=\(escaped)").status == 400, "after=\(bad)")
            #expect(try HTTPClient.get(port: server.port, path: "/api/runs/\(runID)/events?after=\(escaped)").status == 400,
                    "after=\(bad)")
            #expect(try HTTPClient.get(port: server.port, path: "/api/runs?limit=\(escaped)").status == 400, "limit=\(bad)")
        }
        // Plain numbers keep working, 0 included.
        #expect(try Self.head(port: server.port, "/runs/\(runID)/events", headers: ["Last-Event-ID: 0"]).status == 200)
        let after = try HTTPClient.get(port: server.port, path: "/api/runs/\(runID)/events?after=10")
        #expect(after.status == 200)
        #expect(try HTTPClient.get(port: server.port, path: "/api/runs?limit=10").status == 200)
        #expect(try await server.stop() == 143)
    }
}
