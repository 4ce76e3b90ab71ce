import Testing
@testable import Orchestration

/// The gate a launch that found no descriptor waits at: it is woken by a running child's
/// release, never left waiting when no child runs, and lets go when its task is cancelled.
@Suite(.timeLimit(.minutes(1)))
struct DescriptorGateTests {
    @Test func withNoChildRunningThereIsNothingToWaitFor() async {
        let gate = DescriptorGate()
        #expect(await gate.waitForRelease(after: gate.releases) == false)
    }

    @Test func aReleaseWakesTheOldestWaiterAndTheLastWakesAll() async {
        let gate = DescriptorGate()
        gate.enter()
        gate.enter()
        let seen = gate.releases
        let order = Recorder()
        let first = Task { let waited = await gate.waitForRelease(after: seen); await order.add("first"); return waited }
        await gate.waitersReach(1)
        let second = Task { let waited = await gate.waitForRelease(after: seen); await order.add("second"); return waited }
        await gate.waitersReach(2)
        gate.leave()
        #expect(await first.value)
        #expect(await order.names == ["first"])
        gate.leave() // the last child: every waiter goes, none would be woken otherwise
        #expect(await second.value)
        #expect(await order.names == ["first", "second"])
    }

    /// A release between the refusal and the wait is not missed.
    @Test func aReleaseBeforeTheWaitEndsItAtOnce() async {
        let gate = DescriptorGate()
        gate.enter()
        gate.enter()
        let seen = gate.releases
        gate.leave()
        #expect(await gate.waitForRelease(after: seen))
    }

    @Test func cancellingAWaitingTaskEndsItsWait() async {
        let gate = DescriptorGate()
        gate.enter()
        let waiting = Task { await gate.waitForRelease(after: gate.releases) }
        await gate.waitersReach(1)
        waiting.cancel()
        #expect(await waiting.value)
        #expect(gate.waiting == 0)
        gate.leave()
    }
}

private actor Recorder {
    var names: [String] = []
    func add(_ name: String) { names.append(name) }
}

extension DescriptorGate {
    /// Waits (by yielding) until `count` launches wait at the gate.
    fileprivate func waitersReach(_ count: Int) async {
        while waiting < count { await Task.yield() }
    }
}
