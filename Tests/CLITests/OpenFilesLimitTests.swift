import Foundation
import Glibc
import Testing

/// The hard limit of open files of this test process, which the CLI it starts inherits.
private let hardOpenFilesLimit: rlim_t = {
    var limit = rlimit()
    getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    return limit.rlim_max
}()

/// A run wider than the soft limit of open files the engine was started with. Each running step
/// holds two pipes and a pidfd, so at the common default of 1,024 about 300 steps could run at
/// once and the rest failed with "Too many open files". The engine raises its own soft limit to
/// the hard one (as Go's runtime does); its steps get the limit it was started with.
@Suite(.timeLimit(.minutes(1)), .enabled(if: hardOpenFilesLimit >= 2048))
struct OpenFilesLimitTests {
    @Test func aRunWiderThanItsSoftLimitOfOpenFilesSucceedsAndItsStepsGetThatLimit() async throws {
        let dir = TempDir()
        let count = 80
        // 80 steps alive at once need ~240 descriptors; the engine starts with a soft limit of 128.
        let steps = (0..<count).map { index in
            #"{"id": "s\#(index)", "command": "sh", "args": ["-c", "ulimit -Sn > \"$0\"; sleep 1", "\#(dir.path)/limit.\#(index)"]}"#
        }
        let plan = dir.write("wide.json", planJSON(steps, globals: #"{"max_concurrency": \#(count)}"#))
        let result = await runProgram("sh", ["-c", "ulimit -S -n 128 && exec \"$0\" \"$@\"", cliPath, "run", plan,
                                             "--format", "json"],
                                      in: dir.path, environment: ["NO_COLOR": "1", "OMNIBASE_STATE_DIR": nil])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try result.json()
        #expect(report["status"]?.stringValue == "succeeded")
        for index in 0..<count {
            #expect(dir.read("limit.\(index)") == "128\n", "step s\(index)")
        }
    }

    /// With a hard limit too low for the plan (64 descriptors, 40 steps of 3 s at once), the steps
    /// that find no descriptor are started again a few times as others end (a spawn that failed
    /// for want of descriptors started nothing), then fail with one sentence naming the limit.
    /// Before, each failed at once with "cannot open the stdout log ...: Too many open files";
    /// and a retry found the log file its failed try had created in its way ("File exists").
    @Test func stepsThatFindNoDescriptorFailWithTheLimitAndNothingInTheirWay() async throws {
        let dir = TempDir()
        let count = 40
        let steps = (0..<count).map { #"{"id": "s\#($0)", "command": "sleep", "args": ["3"]}"# }
        let plan = dir.write("wide.json", planJSON(steps, globals: #"{"max_concurrency": \#(count)}"#))
        let result = await runProgram("sh", ["-c", "ulimit -n 64 && exec \"$0\" \"$@\"", cliPath, "run", plan,
                                             "--format", "json"],
                                      in: dir.path, environment: ["NO_COLOR": "1", "OMNIBASE_STATE_DIR": nil])
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.isEmpty)
        let report = try result.json()
        var succeeded = 0
        for step in report["steps"]?.arrayValue ?? [] {
            if step["status"]?.stringValue == "succeeded" {
                succeeded += 1
                continue
            }
            #expect(step["error"]?.stringValue == "too many open files: the engine may hold 64 at once (ulimit -n) and "
                    + "each running step holds up to 5; lower max_concurrency or raise the limit")
        }
        #expect(succeeded > 0)
    }
}
