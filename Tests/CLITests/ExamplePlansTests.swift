import Foundation
import Testing
@testable import Orchestration

/// The example plans in `plans/` that run anywhere, run as they are (from the package's folder,
/// the history in a temporary state folder).
@Suite("plans/: the example plans run", .serialized, .timeLimit(.minutes(2)))
struct ExamplePlansTests {
    static let plans = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("plans").path

    @Test func outputsAndRetriesRunsAsDocumented() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let result = await runCLI(["run", Self.plans + "/outputs-and-retries.json", "--format", "json", "--state-dir", state],
                                  in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        let report = try result.json()
        #expect(report["status"]?.stringValue == "succeeded")
        #expect(report.stepReport("fetch")?["attempts"]?.intValue == 2)
        #expect(report.stepReport("fetch")?["status"]?.stringValue == "succeeded")
        #expect(report.stepReport("lint")?["attempts"]?.intValue == 1)
        #expect(report.stepReport("lint")?["error"]?.stringValue
                == "exited with code 3 (not retried: exit code 3 is not in retry_on.exit_codes)")
        #expect(report.stepReport("build")?["status"]?.stringValue == "succeeded")
        // Conditions: lint failed, so its report runs; publish is off, so it is skipped (the run
        // still succeeds); cleanup runs whatever publish did.
        #expect(report.stepReport("lint-report")?["status"]?.stringValue == "succeeded")
        #expect(report.stepReport("publish")?["status"]?.stringValue == "skipped")
        #expect(report.stepReport("publish")?["error"]?.stringValue == "condition false")
        #expect(report.stepReport("cleanup")?["status"]?.stringValue == "succeeded")
        let runID = try #require(report["run_id"]?.stringValue)
        let build = try String(contentsOfFile: "\(state)/runs/\(runID)/logs/build.1.out", encoding: .utf8)
        #expect(build == "building omnibase-demo in release mode\nbuilt \"$APP_NAME\" (the $ is data, never expanded)\n"
                + "packaging [omnibase-demo 1.4.2.tar.gz]\nfrom https://mirror.example.org/pkg\nattempt 2\n")
        #expect(report.stepReport("fetch")?["outputs"]
                == ["artifact": "omnibase-demo 1.4.2.tar.gz", "notes": "from https://mirror.example.org/pkg\nattempt 2"])
        let fetch = try String(contentsOfFile: "\(state)/runs/\(runID)/logs/fetch.2.out", encoding: .utf8)
        #expect(fetch == "fetched from https://mirror.example.org/pkg\n")
        // The matrix: 2 × 2 minus one excluded, each expansion a step of its own.
        let ids = report["steps"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
        #expect(ids.filter { $0.hasPrefix("package.") } == ["package.x86_64.tar", "package.x86_64.zip", "package.arm64.tar"])
        let package = try String(contentsOfFile: "\(state)/runs/\(runID)/logs/package.arm64.tar.1.out", encoding: .utf8)
        #expect(package == "omnibase-demo-arm64.tar\n")
        // publish (skipped by its condition, so it has no start) was decided after every
        // expansion ended: cleanup, after publish, starts after them all.
        let cleanup = try #require(report.stepReport("cleanup")?["started_at"]?.stringValue)
        for id in ids where id.hasPrefix("package.") {
            #expect(try #require(report.stepReport(id)?["finished_at"]?.stringValue) <= cleanup)
        }
    }
}
