import Foundation
import Testing
@testable import Orchestration

/// Issue 11, items 4, 5 and 9: output is never dropped silently, a failed step's output is never
/// read whole into memory, and secrets never reach what the engine writes for people.
@Suite("Output safety: lost logs, bounded snapshots, masked secrets", .serialized, .timeLimit(.minutes(5)))
struct OutputSafetyTests {
    // MARK: - Item 4: step output dropped without a word

    @Test func aStepIDOverTheLimitIsRefusedAtLoadWithItsLocation() async throws {
        let dir = TempDir()
        let limit = 200
        let tooLong = String(repeating: "a", count: limit + 1)
        let plan = dir.write("p.json", planJSON([stepJSON("ok", "true"), stepJSON(tooLong, "echo hi")]))
        for command in ["validate", "run"] {
            let result = await runCLI([command, plan, "--state-dir", dir.path + "/s"], in: dir.path)
            #expect(result.status == 2, "\(command)")
            #expect(result.stderr.contains("p.json:3:8: steps[1].id:"), "\(result.stderr)")
            #expect(result.stderr.contains("201 characters long; the limit is 200"), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1)
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/s/runs.db"), "nothing was recorded")
        // The longest id allowed gets its logs whatever the attempt number's width.
        #expect(limit + ".\(Int.max).out".utf8.count <= Int(NAME_MAX))
        let longest = String(repeating: "b", count: limit)
        let fits = dir.write("fits.json", planJSON([stepJSON(longest, "echo logged")]))
        let ran = await runCLI(["run", fits, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(ran.status == 0, "\(ran.stderr)")
        let runID = try #require(try ran.json()["run_id"]?.stringValue)
        #expect(dir.read("s/runs/\(runID)/logs/\(longest).1.out") == "logged\n")
    }

    @Test func aLogThatCannotBeWrittenFailsTheAttemptWithTheReason() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        // The step puts a symbolic link where its own stdout log is about to be created, then
        // prints: the engine refuses to follow the link, so that output cannot be stored.
        let script = "ln -s \(dir.path)/target \"$S/runs/$OMNIBASE_RUN_ID/logs/$OMNIBASE_STEP_ID.$OMNIBASE_ATTEMPT.out\"; "
            + "echo lost-output; echo kept >&2"
        let plan = dir.write("p.json", planJSON([stepJSON("linked", script, extra: "\"env\": {\"S\": \"\(state)\"}"),
                                                 stepJSON("after", "true", deps: ["linked"])]))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(result.status == 1, "a lost log is not a success: \(result.stdout) \(result.stderr)")
        let report = try result.json()
        let runID = try #require(report["run_id"]?.stringValue)
        let step = try #require(report.stepReport("linked"))
        #expect(step["status"]?.stringValue == "failed")
        #expect(step["exit_code"]?.intValue == 0, "the process itself succeeded")
        let logPath = "\(state)/runs/\(runID)/logs/linked.1.out"
        let reason = "cannot create the stdout log \(logPath): Too many levels of symbolic links"
        #expect(step["error"]?.stringValue == reason)
        #expect(report.stepReport("after")?["status"]?.stringValue == "cancelled")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/target"), "the link was not followed")
        #expect(dir.read("s/runs/\(runID)/logs/linked.1.err") == "kept\n")
        // The reason is in the events and in `runs show`.
        let events = await runCLI(["runs", "events", runID, "--format", "json", "--state-dir", state], in: dir.path)
        let failed = events.stdout.split(separator: "\n").compactMap { try? StrictJSONParser.parse(Array($0.utf8)).toValue() }
            .filter { $0["type"]?.stringValue == "step_attempt_failed" }
        #expect(failed.count == 1)
        #expect(failed.first?["data"]?["error"]?.stringValue == reason)
        let shown = await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(try shown.json().stepReport("linked")?["error"]?.stringValue == reason)
    }
}
