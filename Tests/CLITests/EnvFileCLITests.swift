import Foundation
import Testing
@testable import Orchestration

@Suite("run: env files end to end (SPEC §11)", .serialized, .timeLimit(.minutes(2)))
struct EnvFileCLITests {
    @Test(arguments: ["validate", "run"])
    func aMalformedLineIsLocatedInTheEnvFileAndNothingIsRecorded(_ command: String) async throws {
        let dir = TempDir()
        _ = dir.write("conf/app.env", "# settings\nGOOD=1\nBAD LINE\n")
        let plan = dir.write("p.json", planJSON([#"{"id": "a", "command": "true", "env_file": "conf/app.env"}"#]))
        var arguments = [command, plan]
        if command == "run" { arguments += ["--state-dir", dir.path + "/s"] }
        let result = await runCLI(arguments, in: dir.path)
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(result.stderr.hasPrefix("omnibase-agents: error: \(dir.path)/conf/app.env:3:4: BAD must be followed by \"=\""),
                "\(result.stderr)")
        #expect(result.stderr.contains("the env file of steps[0].env_file, \(plan):2:55)"), "\(result.stderr)")
        if command == "validate" {
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/s"), "validate creates nothing")
        } else {
            let runs = (try? FileManager.default.contentsOfDirectory(atPath: dir.path + "/s/runs")) ?? []
            #expect(runs.isEmpty, "a rejected plan is never recorded as a run")
        }
    }

    /// An env file that is a FIFO hung `validate` and `run` forever (opening it for reading waits
    /// for a writer); it is refused like a folder, with one located sentence.
    @Test(arguments: ["validate", "run"])
    func aFIFOAsEnvFileIsRefusedAtOnce(_ command: String) async throws {
        let dir = TempDir()
        #expect(mkfifo(dir.path + "/fifo.env", 0o600) == 0)
        for (name, text) in [("step.json", planJSON([#"{"id": "a", "command": "true", "env_file": "fifo.env"}"#])),
                             ("globals.json", planJSON([#"{"id": "a", "command": "true"}"#], globals: #"{"env_file": "fifo.env"}"#))] {
            let plan = dir.write(name, text)
            var arguments = [command, plan]
            if command == "run" { arguments += ["--state-dir", dir.path + "/s"] }
            let result = await runCLI(arguments, in: dir.path, timeout: .seconds(10))
            #expect(result.status == 2, "\(name): \(result.stderr)")
            #expect(result.stderr.hasSuffix("env_file: the env file \(dir.path)/fifo.env is not a regular file\n"), "\(name): \(result.stderr)")
        }
    }

    @Test func resumeAndReplayNeedNotTheEnvFile() async throws {
        let dir = TempDir()
        _ = dir.write(".env", "export GREETING='hello, \"world\"'\nDB_PASSWORD=\"pw-from-file-789\"\n")
        let plan = dir.write("p.json", planJSON([
            stepJSON("gate", "[ -f ok ]"),
            stepJSON("greet", "printf '%s|%s\\n' \"$GREETING\" \"$DB_PASSWORD\" >> greeting.txt", deps: ["gate"]),
        ], globals: #"{"env_file": ".env"}"#))
        let state = dir.path + "/s"
        let first = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(first.status == 1)
        let runID = try #require(try first.json()["run_id"]?.stringValue)
        // The env file is gone; resume takes its text from runs.db.
        try FileManager.default.removeItem(atPath: dir.path + "/.env")
        _ = dir.write("ok", "")
        let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try resumed.json().stepReport("greet")?["status"]?.stringValue == "succeeded")
        let replayed = await runCLI(["replay", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(replayed.status == 0, "\(replayed.stderr)")
        #expect(dir.read("greeting.txt") == "hello, \"world\"|pw-from-file-789\nhello, \"world\"|pw-from-file-789\n")
    }
}
