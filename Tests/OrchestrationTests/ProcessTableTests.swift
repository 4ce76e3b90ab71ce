import Foundation
import Glibc
import Testing

@testable import Orchestration

/// The one `/proc` reader: stat lines with awkward command names, and live reads of this process.
struct ProcessTableTests {
    private func parse(_ line: String) -> ProcessTable.Entry? {
        ProcessTable.parse(stat: Array(line.utf8)[...])
    }

    @Test func commandNamesWithParenthesesAndSpacesEndAtTheLastParenthesis() throws {
        let line = "4242 (a) (b c) S 17 4242 4240 34816 4242 4194560 120 0 0 0 1 2 0 0 20 0 1 0 987654321 8192 200 "
            + "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
        let entry = try #require(parse(line))
        #expect(entry.pid == 4242)
        #expect(entry.command == "a) (b c")
        #expect(entry.state == UInt8(ascii: "S"))
        #expect(entry.parent == 17)
        #expect(entry.group == 4242)
        #expect(entry.session == 4240)
        #expect(entry.startTime == 987_654_321)
        #expect(entry.isAlive)
    }

    @Test func aZombieWithAnEmptyishNameAndACutLine() throws {
        let zombie = try #require(parse("7 ( ) Z 1 7 7 0 -1"))
        #expect(zombie.command == " ")
        #expect(!zombie.isAlive)
        #expect(zombie.startTime == nil)
        #expect(parse("7 (x) Z 1") == nil)
        #expect(parse("7 no parentheses Z 1 7 7") == nil)
        #expect(parse("x (y) S 1 2 3") == nil)
    }

    @Test func liveReadsAgreeWithTheKernel() throws {
        let own = try #require(ProcessTable.entry(pid: getpid()))
        #expect(own.parent == getppid())
        #expect(own.group == getpgrp())
        #expect(own.session == getsid(0))
        #expect(own.startTime != nil && own.startTime == EngineIdentity.current.startTime)
        let environ = try #require(ProcessTable.environment(of: getpid()))
        let path = try #require(ProcessInfo.processInfo.environment["PATH"])
        #expect(environ.contains { $0.elementsEqual("PATH=\(path)".utf8) })
    }
}

/// The one signal-name table, as every view shows it.
struct SignalNameTests {
    @Test func namesAndFallback() {
        #expect(SignalName.describe(SIGKILL) == "SIGKILL")
        #expect(SignalName.describe(SIGUSR2) == "SIGUSR2")
        #expect(SignalName.describe(42) == "signal 42")
        #expect(SignalName.name(for: 42) == nil)
        #expect(ProcessOutcome.Termination.signaled(SIGTERM).description == "killed by signal 15 (SIGTERM)")
        #expect(ProcessOutcome.Termination.signaled(42).description == "killed by signal 42")
        #expect(StopReason.hangup.signalName == "SIGHUP")
    }
}
