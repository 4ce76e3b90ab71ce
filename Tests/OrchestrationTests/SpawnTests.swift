import COmnibaseShims
import Foundation
import Glibc
import Testing

@testable import Orchestration

/// The spawn does not suspend the calling thread (the engine's process loop) until the child has
/// executed: what that changes for the child's group, for a child that cannot execute, and for
/// the spawn's memory.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct SpawnTests {
    /// With a vfork-style spawn the launching thread got its child back only after the exec; now
    /// it goes on at once. Observed as children that had not executed yet when the launch
    /// returned (the exec takes ~100 us, the return a few): with the old spawn, none ever.
    @Test func theLaunchReturnsBeforeTheChildHasExecuted() async throws {
        let scratch = try Scratch()
        var notYetExecuted = 0
        for _ in 0..<20 {
            guard case .success(let child) = ProcessLauncher.launch(scratch.spec("/bin/true"), monitor: .shared,
                                                                         pump: .shared)
            else {
                Issue.record("the launch failed")
                return
            }
            if let spawn = child.spawn, !spawn.hasExecuted { notYetExecuted += 1 }
            _ = await child.exit.wait(until: nil, terminating: child.pid, killAfter: .seconds(1))
            let (termination, notExecuted) = child.reap()
            #expect(termination == .exited(0) && notExecuted == 0)
            _ = await child.settleOutput()
        }
        #expect(notYetExecuted > 0)
    }

    /// A teardown that comes right after the spawn, before the child can have reached its own
    /// `setpgid`, still finds the child's group: the parent creates it too. Without that the
    /// SIGTERM went nowhere and the child lived until the SIGKILL after the grace.
    @Test func aTimeoutRightAfterTheSpawnTerminatesTheChild() async throws {
        let scratch = try Scratch()
        for _ in 0..<10 {
            var spec = scratch.spec("/bin/sleep", ["30"])
            spec.timeout = .zero
            spec.killGrace = .seconds(3)
            let outcome = await LocalProcess.run(spec)
            #expect(outcome.timedOut)
            #expect(outcome.termination == .signaled(SIGTERM))
            #expect(outcome.survivors == 0)
        }
    }

    /// A child that cannot execute (its `#!` interpreter is missing: known only at the exec)
    /// reports why; the outcome is a failure to start, without a pid, and nothing was logged.
    @Test func aChildThatCannotExecuteIsAFailureToStart() async throws {
        let scratch = try Scratch()
        let script = try scratch.write("script", "#!/nonexistent/interpreter\n", mode: 0o755)
        for _ in 0..<3 {
            let outcome = await LocalProcess.run(scratch.spec(script))
            #expect(outcome.termination == .failedToStart("the interpreter named on the #! line of \(script) was not found"))
            #expect(outcome.pid == nil)
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.path("out")))
    }

    /// A script still open for writing cannot be executed (ETXTBSY, found at the exec): the
    /// child is started again after a short pause, and runs once the writer has closed it.
    @Test func aScriptBusyBeingWrittenRunsOnceTheWriterClosesIt() async throws {
        let scratch = try Scratch()
        let script = try scratch.write("script", "#!/bin/sh\necho ran\n", mode: 0o755)
        let writer = open(script, O_WRONLY)
        #expect(writer >= 0)
        let closer = Task {
            try? await Task.sleep(for: .milliseconds(30))
            close(writer)
        }
        let outcome = await LocalProcess.run(scratch.spec(script))
        await closer.value
        #expect(outcome.termination == .exited(0))
        #expect(try scratch.read("out") == "ran\n")
    }

    /// The same with the logs opened before the spawn (no pump, as when the engine has no
    /// descriptor left for a pipe) and created exclusively, as the engine's attempts do: the
    /// logs the first try created, which its child never wrote, are removed before the retry.
    /// Before, the retry failed with "cannot open the stdout log ...: File exists".
    @Test func aBusyScriptIsRetriedWithLogsOpenedBeforeTheSpawn() async throws {
        let scratch = try Scratch()
        let script = try scratch.write("script", "#!/bin/sh\necho ran\n", mode: 0o755)
        let writer = open(script, O_WRONLY)
        #expect(writer >= 0)
        let closer = Task {
            try? await Task.sleep(for: .milliseconds(30))
            close(writer)
        }
        var spec = scratch.spec(script)
        spec.keepsExistingLogs = true
        let outcome = await LocalProcess.run(spec, monitor: .shared, pump: OutputPump(strategy: .directFiles))
        await closer.value
        #expect(outcome.termination == .exited(0))
        #expect(try scratch.read("out") == "ran\n")
    }

    /// One that stays busy fails to start with the reason, after the retries.
    @Test func aScriptThatStaysBusyFailsToStart() async throws {
        let scratch = try Scratch()
        let script = try scratch.write("script", "#!/bin/sh\necho ran\n", mode: 0o755)
        let writer = open(script, O_WRONLY)
        #expect(writer >= 0)
        defer { close(writer) }
        let outcome = await LocalProcess.run(scratch.spec(script))
        guard case .failedToStart(let reason) = outcome.termination else {
            Issue.record("expected a failure to start, got \(outcome.termination)")
            return
        }
        #expect(reason.hasPrefix("cannot start \(script): "), "\(reason)")
        #expect(reason.contains("busy"), "\(reason)")
    }

    /// The spawn's memory (the child's stack and its copies of argv and the environment) goes
    /// back to a pool when the child is reaped: many spawns one after another map no more.
    @Test func theSpawnsMemoryIsReused() async throws {
        let scratch = try Scratch()
        _ = await LocalProcess.run(scratch.spec("/bin/true"))
        let before = omni_spawn_blocks_mapped()
        for _ in 0..<50 {
            #expect(await LocalProcess.run(scratch.spec("/bin/true")).termination == .exited(0))
        }
        // Other suites may spawn at the same time: a few more blocks, not one per spawn.
        #expect(omni_spawn_blocks_mapped() - before < 10)
    }

    /// A burst of children starting at once maps a block for each (a block is held until its
    /// child is reaped); once they are reaped, at most 16 stay mapped for reuse. Before, every
    /// block of the largest burst stayed for the engine's life (~10 KiB resident each).
    @Test func aBurstsMemoryIsGivenBackBeyondWhatIsKept() async throws {
        let scratch = try Scratch()
        // Every child waits for the gate file, so that all 64 are alive at once.
        let gate = scratch.path("gate")
        let waiter = scratch.spec("/bin/sh", ["-c", "while [ ! -e \"$0\" ]; do sleep 0.02; done", gate])
        let outcomes = await withTaskGroup(of: ProcessOutcome.self) { group in
            for _ in 0..<64 {
                group.addTask { await LocalProcess.run(waiter) }
            }
            try? await Task.sleep(for: .milliseconds(300))
            #expect(FileManager.default.createFile(atPath: gate, contents: nil))
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.count == 64 && outcomes.allSatisfy { $0.termination == .exited(0) })
        #expect(omni_spawn_free_blocks() <= 16)
    }

    /// Arguments too long for the kernel fail at the exec (E2BIG), with the reason; the large
    /// block they were copied into is unmapped, not kept in the pool.
    @Test func argumentsTooLongForTheKernelFailToStartAndTheirMemoryIsUnmapped() async throws {
        let scratch = try Scratch()
        let chunk = String(repeating: "x", count: 100_000)
        let tooLong = await LocalProcess.run(scratch.spec("/bin/true", Array(repeating: chunk, count: 60)))
        #expect(tooLong.termination == .failedToStart("argument list and environment too long for /bin/true"))
        let long = await LocalProcess.run(scratch.spec("/bin/sh", ["-c", "echo $#", "sh"] + Array(repeating: chunk, count: 5)))
        #expect(long.termination == .exited(0))
        #expect(try scratch.read("out") == "5\n")
        #expect(omni_spawn_largest_free_block() <= 256 * 1024)
    }
}
