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
@Suite(.timeLimit(.minutes(4)), .enabled(if: hardOpenFilesLimit >= 2048))
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

    /// With a hard limit too low for the plan (64 descriptors, 40 steps at once), the steps that
    /// find no descriptor wait for running ones to end: the plan runs at the width the limit
    /// allows, and every step succeeds. Before, the steps that found none were started again a few
    /// times, 20-320 ms apart, then failed ("too many open files"); and while they waited the
    /// engine held every descriptor it may open, so the thread pool's check of its workers (it
    /// opens `/proc/<tid>/stat` once a second) could crash it with SIGILL.
    @Test func aPlanWiderThanItsHardLimitAllowsRunsAtTheWidthItAllows() async throws {
        let dir = TempDir()
        let count = 40
        let trace = dir.path + "/trace"
        let steps = (0..<count).map {
            #"{"id": "s\#($0)", "command": "sh", "args": ["-c", "echo start >> \"$0\"; sleep 0.3; echo end >> \"$0\"", "\#(trace)"]}"#
        }
        let plan = dir.write("wide.json", planJSON(steps, globals: #"{"max_concurrency": \#(count)}"#))
        let result = await runProgram("sh", ["-c", "ulimit -n 64 && exec \"$0\" \"$@\"", cliPath, "run", plan,
                                             "--format", "json"],
                                      in: dir.path, environment: ["NO_COLOR": "1", "OMNIBASE_STATE_DIR": nil])
        #expect(result.status == 0, "\(result.stdout)")
        #expect(result.stderr.isEmpty)
        let report = try result.json()
        #expect(report["summary"]?["succeeded"]?.intValue == count)
        // What ran at once, from the steps' own record: more than one, fewer than the plan asked
        // (40 steps at once hold ~120 descriptors beside the engine's own).
        var running = 0, most = 0
        for line in dir.read("trace")?.split(separator: "\n") ?? [] {
            running += line == "start" ? 1 : -1
            most = max(most, running)
        }
        #expect(most > 1 && most < count, "at most \(most) at once")
    }

    /// Under a limit that fits about one step, steps started together on the thread pool wait
    /// for each other. A launch refused while another was under way on another thread found no
    /// step running (the other was counted only once started) and failed at once: 1 of 20
    /// succeeded.
    @Test(arguments: [44, 47, 50])
    func stepsStartedTogetherUnderALimitThatFitsOneWaitForEachOther(limit: Int) async throws {
        let dir = TempDir()
        let count = 12
        let steps = (0..<count).map { #"{"id": "s\#($0)", "command": "sleep", "args": ["0.05"]}"# }
        let plan = dir.write("wide.json", planJSON(steps, globals: #"{"max_concurrency": \#(count)}"#))
        let result = await runProgram("sh", ["-c", "ulimit -n \(limit) && exec \"$0\" \"$@\"", cliPath, "run", plan,
                                             "--format", "json"],
                                      in: dir.path, environment: ["NO_COLOR": "1", "OMNIBASE_STATE_DIR": nil])
        #expect(result.status == 0, "limit \(limit): \(result.stdout)")
        #expect(try result.json()["summary"]?["succeeded"]?.intValue == count)
    }

    /// At every open-files limit from 8 to 64 a one-step run either says the limit is too low, in
    /// one sentence, or runs; as the limit grows, it gets further. Before, at 21-23 the engine
    /// crashed (SIGILL in the thread pool's check of its workers, which cannot open
    /// `/proc/<tid>/stat` when the engine holds every descriptor), below that the store's failure
    /// said "report it if it persists". Then below 19 opening the state folder failed, and once
    /// (limit 14, a loaded machine) the thread pool's check came in that moment and crashed the
    /// engine after its sentence: below 32 a run now refuses to start before it opens anything.
    /// (Below 8 the Swift runtime itself may crash, before or after `main`: `--version` does at 4.)
    @Test func atEveryLowLimitARunSaysSoOrRunsAndNeverCrashes() async throws {
        let dir = TempDir()
        let plan = dir.write("one.json", planJSON([#"{"id": "a", "command": "true"}"#]))
        var stages: [Int] = []
        for limit in 8...64 {
            let state = dir.path + "/state-\(limit)"
            let result = await runProgram("sh", ["-c", "ulimit -n \(limit) && exec \"$0\" \"$@\"", cliPath, "run", plan,
                                                 "--format", "json", "--state-dir", state],
                                          in: dir.path, environment: ["NO_COLOR": "1", "OMNIBASE_STATE_DIR": nil])
            let stage: Int
            switch result.status {
            case 74 where limit < 32:
                #expect(result.stderr == "omnibase-agents: error: too few open files: this process may hold \(limit) at once "
                        + "(ulimit -n) and a run needs at least 32; raise the limit and run the command again\n",
                        "limit \(limit): \(result.stderr)")
                #expect(!FileManager.default.fileExists(atPath: state), "limit \(limit): the state folder was made")
                stage = 1
            case 1:
                #expect(result.stderr.isEmpty, "limit \(limit)")
                let error = try result.json()["steps"]?[0]?["error"]?.stringValue ?? ""
                #expect(error.hasPrefix("too many open files: the engine may hold \(limit) at once (ulimit -n)"),
                        "limit \(limit): \(error)")
                stage = 2
            default:
                #expect(result.status == 0, "limit \(limit): exit \(result.status), \(result.stderr)")
                stage = 3
            }
            stages.append(stage)
        }
        #expect(stages == stages.sorted(), "\(stages)")
        #expect(Set(stages) == [1, 2, 3], "\(stages)")
    }
}
