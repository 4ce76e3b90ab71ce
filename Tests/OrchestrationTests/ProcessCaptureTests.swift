import Foundation
import Glibc
import Testing

@testable import Orchestration

/// `.capture(limit:)`, `.discard` and `.file` destinations through real processes: what is kept,
/// what is cut and counted, both streams at once, output larger than a pipe buffer, and a
/// background process that keeps the pipe open after the leader exited.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct ProcessCaptureTests {
    private func spec(_ script: String, stdout: OutputDestination, stderr: OutputDestination) -> ProcessSpec {
        ProcessSpec(command: "/bin/sh", arguments: ["-c", script], stdout: stdout, stderr: stderr, timeout: .seconds(30))
    }

    @Test func bothStreamsAreCapturedSeparately() async {
        let outcome = await LocalProcess.run(spec("printf out-text; printf err-text >&2",
                                                  stdout: .capture(limit: 1024), stderr: .capture(limit: 1024)))
        #expect(outcome.succeeded)
        #expect(outcome.capturedStdout == CapturedOutput(bytes: Array("out-text".utf8)))
        #expect(outcome.capturedStderr == CapturedOutput(bytes: Array("err-text".utf8)))
        #expect(outcome.logError == nil)
    }

    @Test func theFirstBytesAreKeptAndTheRestCounted() async {
        let outcome = await LocalProcess.run(spec("printf 0123456789; printf abcdef >&2",
                                                  stdout: .capture(limit: 4), stderr: .capture(limit: 6)))
        #expect(outcome.succeeded)
        #expect(outcome.capturedStdout?.text == "0123")
        #expect(outcome.capturedStdout?.droppedBytes == 6)
        #expect(outcome.capturedStdout?.isTruncated == true)
        #expect(outcome.capturedStderr?.text == "abcdef")
        #expect(outcome.capturedStderr?.isTruncated == false)
    }

    /// 1 MiB through a 64 KiB pipe: the child would block forever if nobody read while it runs;
    /// past the limit the pump goes on reading and only counts.
    @Test func outputLargerThanThePipeBufferDoesNotBlock() async {
        let script = "head -c 1048576 /dev/zero; head -c 300000 /dev/zero >&2"
        let whole = await LocalProcess.run(spec(script, stdout: .capture(limit: 2 << 20), stderr: .capture(limit: 1000)))
        #expect(whole.succeeded)
        #expect(whole.capturedStdout?.bytes.count == 1 << 20)
        #expect(whole.capturedStdout?.bytes.allSatisfy { $0 == 0 } == true)
        #expect(whole.capturedStdout?.isTruncated == false)
        #expect(whole.capturedStderr?.bytes.count == 1000)
        #expect(whole.capturedStderr?.droppedBytes == 299_000)
    }

    /// A background process that inherited the pipe: the attempt returns after the drain window
    /// with what arrived, and what the holder writes later is not kept.
    @Test func aGrandchildHoldingThePipeDoesNotHoldTheAttempt() async throws {
        let pidFile = NSTemporaryDirectory() + "omnibase-capture-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(pidFile) }
        let clock = ContinuousClock()
        let start = clock.now
        let outcome = await LocalProcess.run(spec("echo early; (sleep 2; echo late) & echo $! > \(pidFile)",
                                                  stdout: .capture(limit: 1024), stderr: .discard))
        let elapsed = clock.now - start
        let holder = (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap {
            pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        #expect(outcome.succeeded)
        #expect(outcome.capturedStdout?.text == "early\n")
        #expect(elapsed >= OutputDrain.window, "run returned before the drain window passed")
        #expect(elapsed < .seconds(20), "run waited \(elapsed) for the background process holding its pipe")
        let holderPid = try #require(holder)
        // Let the holder write after the attempt returned: nothing changes in the outcome's copy.
        while ProcessTable.entry(pid: holderPid)?.isAlive == true {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(outcome.capturedStdout?.text == "early\n")
    }

    @Test func discardAndFileDestinationsStillWork() async throws {
        let path = NSTemporaryDirectory() + "omnibase-capture-file-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(path) }
        let outcome = await LocalProcess.run(spec("echo to-file; echo gone >&2", stdout: .file(path), stderr: .discard))
        #expect(outcome.succeeded)
        #expect(outcome.capturedStdout == nil && outcome.capturedStderr == nil)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "to-file\n")
        var legacy = spec("true", stdout: .discard, stderr: .discard)
        #expect(legacy.stdoutPath == "/dev/null")
        legacy.stderrPath = path
        #expect(legacy.stderr == .file(path))
    }

    @Test func captureWithoutThePumpFailsToStartWithASentence() async {
        let pump = OutputPump(strategy: .directFiles)
        let outcome = await LocalProcess.run(spec("true", stdout: .capture(limit: 10), stderr: .discard),
                                             monitor: .shared, pump: pump)
        #expect(outcome.termination == .failedToStart("cannot capture the stdout: the output pump is not available"))
    }
}
