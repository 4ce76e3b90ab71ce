import Foundation
import Glibc
import Testing
@testable import Orchestration

// Issue 11, items 6 and 7: a dropped session (SIGHUP) and SIGQUIT stop a run like SIGTERM, and a
// stop or a timeout also ends the processes a step moved out of its group (`setsid`).

/// The status of a run's row in `runs.db`.
func storedRunStatus(_ state: String, _ runID: String) throws -> String? {
    let db = try SQLiteDatabase(path: state + "/runs.db", mode: .readOnly)
    return try db.query("SELECT status FROM runs WHERE run_id = ?", runID).first?.string(0)
}

/// The pid written (with a newline) by a step into `path`.
func pidFile(_ path: String) async throws -> Int32 {
    try #require(Int32(try await waitForFile(path).trimmingCharacters(in: .whitespacesAndNewlines)))
}

@Suite(.serialized) struct StopTeardownTests {
    @Test func sighupCancelsTheRunLikeSigtermAndTheRunResumes() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        _ = dir.write("hold", "")
        let env = "\"env\": {\"D\": \"\(dir.path)\"}"
        let plan = dir.write("p.json", planJSON([
            stepJSON("long", "echo $PPID > \"$D/engine.pid\"; sleep 100 & echo $$$$ > \"$D/leader.pid\"; "
                     + "if [ -e \"$D/hold\" ]; then wait; fi", extra: env),
            stepJSON("deaf", "trap '' HUP TERM INT; echo $$$$ > \"$D/deaf.pid\"; "
                     + "while [ -e \"$D/hold\" ]; do sleep 0.1; done", extra: env),
            stepJSON("after", "true", deps: ["long"]),
        ], globals: "{\"kill_grace_sec\": 0.5, \"max_concurrency\": 2}"))
        async let run = runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        let engine = try await pidFile(dir.path + "/engine.pid")
        let leader = try await pidFile(dir.path + "/leader.pid")
        let deaf = try await pidFile(dir.path + "/deaf.pid")
        kill(engine, SIGHUP)
        let result = await run
        #expect(result.status == 129, "\(result.stderr)")
        let report = try result.json()
        let runID = try #require(report["run_id"]?.stringValue)
        #expect(report["status"]?.stringValue == "cancelled")
        #expect(report["exit_code"]?.intValue == 129)
        #expect(report.stepReport("long")?["status"]?.stringValue == "cancelled")
        #expect(report.stepReport("deaf")?["status"]?.stringValue == "cancelled")
        #expect(try storedRunStatus(state, runID) == "cancelled")
        #expect(liveMembers(ofGroup: leader).isEmpty, "a step of the hung-up engine survived")
        #expect(liveMembers(ofGroup: deaf).isEmpty, "the step that ignores SIGHUP and SIGTERM survived")
        #expect(OrphanReaper.groups(ofRun: runID).isEmpty)

        try FileManager.default.removeItem(atPath: dir.path + "/hold")
        let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try resumed.json()["status"]?.stringValue == "succeeded")
        #expect(try storedRunStatus(state, runID) == "succeeded")
    }
}
