import Foundation
import Synchronization
import Testing
@testable import Orchestration

/// Notes, for each turn it records, whether it ran on the process loop's thread: a user's
/// observer, which may block, so never there.
class UserThreadNotingObserver: RunObserver, @unchecked Sendable {
    // @unchecked: the only stored state is the Mutex, which is Sendable; the class is not final
    // only so that ThreadNotingObserver can add a conformance.
    private let onLoop = Mutex<[Bool]>([])
    var turns: [Bool] { onLoop.withLock { $0 } }
    func record(_ events: [RunEvent]) async throws {
        let here = ProcessLoop.shared?.isCurrentThread ?? false
        onLoop.withLock { $0.append(here) }
    }
}

/// The same as an observer of this package that never blocks: it records where the scheduler runs.
final class ThreadNotingObserver: UserThreadNotingObserver, LoopSafeObserver, @unchecked Sendable {}

/// A runner of a library user: it may block its thread, so its runs stay off the loop.
final class UserRunner: StepRunner {
    let base = LocalStepRunner()
    let onLoop = Mutex<[Bool]>([])
    func run(_ step: Step, context: AttemptContext) async -> AttemptOutcome {
        let here = ProcessLoop.shared?.isCurrentThread ?? false
        onLoop.withLock { $0.append(here) }
        return await base.run(step, context: context)
    }
}

/// An observer that blocks its thread (a terminal paused with ^S, a pipe nobody reads) for
/// `seconds` when it sees the first step succeed.
final class BlockingObserver: RunObserver {
    let seconds: UInt32
    private let blocked = Mutex(false)
    init(seconds: UInt32) { self.seconds = seconds }
    func record(_ events: [RunEvent]) async throws {
        guard events.contains(where: { $0.kind == .stepSucceeded }),
              blocked.withLock({ was in defer { was = true }; return !was }) else { return }
        sleep(seconds)
    }
}

/// A temp folder and a step that notes when it started and when a TERM reached it: how long
/// after its start its timeout really ended it.
struct TermTrap: ~Copyable {
    let folder: String
    init() throws {
        var template = Array("/tmp/omnibase-loop-test.XXXXXX".utf8CString)
        folder = String(cString: try #require(mkdtemp(&template)))
    }
    deinit { try? FileManager.default.removeItem(atPath: folder) }

    /// A step that waits 30 s unless terminated.
    func step(_ id: String, timeout: Duration) -> Step {
        let script = "date +%s.%N > \(folder)/started; trap 'date +%s.%N > \(folder)/terminated; exit 143' TERM; "
            + "sleep 30 & wait"
        var step = Step.process(id, "sh", ["-c", script])
        step.timeout = timeout
        return step
    }

    /// Seconds from the step's start to its TERM.
    func waited() throws -> Double {
        func time(_ name: String) throws -> Double {
            let text = try String(contentsOfFile: "\(folder)/\(name)", encoding: .utf8)
            return try #require(Double(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        return try time("terminated") - time("started")
    }
}

/// The earliest of the times noted, from any thread.
final class EarliestTime: Sendable {
    private let value = Mutex<Double?>(nil)
    func note(_ time: Double) { value.withLock { $0 = min($0 ?? time, time) } }
    var earliest: Double? { value.withLock { $0 } }
}

@Suite("Process loop as the executor of process runs", .timeLimit(.minutes(1)))
struct ProcessLoopExecutorTests {
    /// Seconds since the epoch, as `date +%s.%N` prints them in a step.
    static func realtime() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    func run(_ plan: Plan, runner: any StepRunner = LocalStepRunner(), observers: [any RunObserver]) async throws -> RunReport {
        try await DAGExecutor(plan: plan, graph: PlanGraph(steps: plan.steps), options: RunOptions(), runner: runner,
                              observers: observers, clock: ContinuousClock()).run()
    }

    @Test func aRunOfProcessesRunsItsSchedulerAndObserversOnTheLoopThread() async throws {
        let loop = try #require(ProcessLoop.shared)
        #expect(!loop.isCurrentThread, "the test itself runs elsewhere")
        let steps = (0..<20).map { index in
            Step.process("s\(index)", "true", dependsOn: index >= 10 ? ["s\(index - 10)"] : [])
        }
        let observer = ThreadNotingObserver(), user = UserThreadNotingObserver()
        let slots = DAGExecutor<ContinuousClock>.loopSlotLimit
        let report: RunReport = try await run(Plan(id: "P", maxConcurrency: slots, steps: steps), observers: [observer, user])
        #expect(report.steps.allSatisfy { $0.status == .succeeded })
        #expect(!observer.turns.isEmpty)
        #expect(observer.turns.allSatisfy { $0 }, "every turn was recorded on the loop thread")
        #expect(user.turns.count == observer.turns.count && user.turns.allSatisfy { !$0 },
                "a user's observer may block: never on the loop")
        #expect(!loop.isCurrentThread, "the caller is back on its own executor")
    }

    @Test func aRunWithMoreSlotsThanTheLoopServesStaysOffIt() async throws {
        let slots = DAGExecutor<ContinuousClock>.loopSlotLimit
        #expect(slots >= 1 && slots <= min(ProcessInfo.processInfo.activeProcessorCount, 4))
        let steps = (0..<10).map { Step.process("s\($0)", "true") }
        let observer = ThreadNotingObserver()
        let report = try await run(Plan(id: "P", maxConcurrency: slots + 1, steps: steps), observers: [observer])
        #expect(report.steps.allSatisfy { $0.status == .succeeded })
        #expect(!observer.turns.isEmpty && observer.turns.allSatisfy { !$0 })
        // The same run with the concurrency given at run time (`--max-concurrency`) at the limit.
        let within = ThreadNotingObserver()
        _ = try await DAGExecutor(plan: Plan(id: "P", maxConcurrency: 64, steps: steps), graph: PlanGraph(steps: steps),
                                  options: RunOptions(maxConcurrency: slots), observers: [within],
                                  clock: ContinuousClock()).run()
        #expect(!within.turns.isEmpty && within.turns.allSatisfy { $0 })
    }

    @Test func aRunWithAClosureStepStaysOffTheLoop() async throws {
        let closureOnLoop = Mutex<Bool?>(nil)
        let steps = [
            Step.process("p", "true"),
            Step.closure("c", dependsOn: ["p"]) { _ in
                closureOnLoop.withLock { $0 = ProcessLoop.shared?.isCurrentThread ?? false }
            },
        ]
        let observer = ThreadNotingObserver()
        let report = try await run(Plan(id: "P", steps: steps), observers: [observer])
        #expect(report.steps.allSatisfy { $0.status == .succeeded })
        #expect(closureOnLoop.withLock { $0 } == false, "a closure may compute for long: never on the loop")
        #expect(observer.turns.allSatisfy { !$0 })
    }

    @Test func aUserRunnerStaysOffTheLoop() async throws {
        let runner = UserRunner()
        let observer = ThreadNotingObserver()
        let steps = (0..<5).map { Step.process("s\($0)", "true") }
        let report = try await run(Plan(id: "P", steps: steps), runner: runner, observers: [observer])
        #expect(report.steps.allSatisfy { $0.status == .succeeded })
        #expect(runner.onLoop.withLock { $0 } == Array(repeating: false, count: 5))
        #expect(observer.turns.allSatisfy { !$0 })
    }

    /// An observer that blocks does not stop the loop from ending a step at its timeout: the
    /// step's TERM trap runs at its timeout, not when the observer lets go.
    @Test func aBlockedObserverDoesNotDelayATimeout() async throws {
        let trap = try TermTrap()
        let step = trap.step("slow", timeout: .milliseconds(500))
        // A quick step beside it succeeds while it runs: the observer blocks on that turn.
        let quick = Step.process("quick", "sh", ["-c", "while [ ! -e \(trap.folder)/started ]; do sleep 0.01; done"])
        let report = try await run(Plan(id: "P", maxConcurrency: 2, steps: [step, quick]),
                                   observers: [BlockingObserver(seconds: 4)])
        let slow = try #require(report.steps.first { $0.id == "slow" })
        #expect(slow.status == .failed && slow.timedOut)
        let waited = try trap.waited()
        #expect(waited >= 0.4 && waited < 2.5, "terminated \(waited) s after it started, its timeout 0.5 s")
    }

    /// A timeout's TERM is sent by the loop thread, not from a thread of the global pool: with
    /// every pool thread blocked (a library user's blocking work), a step still gets its TERM at
    /// its timeout, in a run on the loop and in a run that stays on the pool (more slots than
    /// the loop serves), where the attempt's task itself must wait for a pool thread to go on.
    /// So is the KILL at the end of the grace: a step on the pool that ignores TERM dies at its
    /// timeout plus its grace (~0.5 s), not when a pool thread comes free to run its teardown
    /// (~1.2 s before). One test, so that the suite's pool is blocked once.
    @Test func aTimeoutDoesNotWaitForABlockedPool() async throws {
        let onLoop = try TermTrap(), onPool = try TermTrap(), stubborn = try TermTrap()
        let loopObserver = ThreadNotingObserver(), poolObserver = ThreadNotingObserver()
        async let loopReport = run(Plan(id: "L", maxConcurrency: 1, steps: [onLoop.step("slow", timeout: .milliseconds(200))]),
                                   observers: [loopObserver])
        async let poolReport = run(Plan(id: "P", maxConcurrency: DAGExecutor<ContinuousClock>.loopSlotLimit + 1,
                                        steps: [onPool.step("slow", timeout: .milliseconds(200))]),
                                   observers: [poolObserver])
        var ignoring = Step.process("stubborn", "sh", ["-c", "trap '' TERM; echo $$ > \(stubborn.folder)/pid; "
                                                       + "date +%s.%N > \(stubborn.folder)/now; mv \(stubborn.folder)/now \(stubborn.folder)/started; sleep 30"])
        ignoring.timeout = .milliseconds(200)
        async let killReport = run(Plan(id: "K", maxConcurrency: DAGExecutor<ContinuousClock>.loopSlotLimit + 1,
                                        killGrace: .milliseconds(300), steps: [ignoring]), observers: [])
        // Once the steps run, every thread of the pool (one per core) blocks for 1.2 s. (A bound
        // on readiness only: a loaded machine took over 10 s to start the three.)
        let deadline = ContinuousClock.now + .seconds(60)
        for folder in [onLoop.folder, onPool.folder, stubborn.folder] {
            while !FileManager.default.fileExists(atPath: folder + "/started") {
                try #require(ContinuousClock.now < deadline, "a step never started")
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        let leader = try #require(Int32(try String(contentsOfFile: stubborn.folder + "/pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        let startedAt = try #require(Double(try String(contentsOfFile: stubborn.folder + "/started", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        // Watched from a thread of its own: the leader is dead once it is a zombie (the task that
        // reaps it needs a pool thread) or gone. Its own deadline, counted from now: on a loaded
        // machine the steps may start late, and the watch must not end before the kill can come
        // (CI, under load: the steps started ~10 s late and the watch had already given up).
        let watchDeadline = ContinuousClock.now + .seconds(60)
        let diedAt = Mutex<Double?>(nil)
        Thread {
            while ContinuousClock.now < watchDeadline {
                if ProcessTable.entry(pid: leader)?.isAlive != true {
                    diedAt.withLock { $0 = Self.realtime() }
                    return
                }
                usleep(5_000)
            }
        }.start()
        // When the first pool thread came free: a KILL sent by a task would come after it.
        let poolFreedAt = EarliestTime()
        for _ in 0..<ProcessInfo.processInfo.activeProcessorCount + 1 {
            Task.detached {
                usleep(1_200_000)
                poolFreedAt.note(Self.realtime())
            }
        }
        let (loopRun, poolRun, killRun) = try await (loopReport, poolReport, killReport)
        let killed = try #require(killRun.steps.first)
        #expect(killed.status == .failed && killed.timedOut, "\(killed)")
        while diedAt.withLock({ $0 }) == nil && ContinuousClock.now < watchDeadline { try await Task.sleep(for: .milliseconds(10)) }
        let dead = try #require(diedAt.withLock { $0 }, "the step that ignores TERM never died")
        let freed = try #require(poolFreedAt.earliest)
        // Its timeout and grace end at ~0.5 s; a loaded machine may delay the loop a little, but
        // only a KILL sent by the loop comes before the pool is free again.
        #expect(dead - startedAt >= 0.4 && dead < freed,
                "killed \(dead - startedAt) s after it started, the pool free again at \(freed - startedAt) s; timeout 0.2 s, grace 0.3 s")
        #expect(!loopObserver.turns.isEmpty && loopObserver.turns.allSatisfy { $0 }, "the first run was on the loop")
        #expect(poolObserver.turns.allSatisfy { !$0 }, "the second run was on the pool")
        func check(_ report: RunReport, _ trap: borrowing TermTrap) throws {
            let slow = try #require(report.steps.first)
            #expect(slow.status == .failed && slow.timedOut, "\(report.planID): \(slow)")
            let waited = try trap.waited()
            #expect(waited >= 0.15 && waited < 0.9, "\(report.planID): terminated \(waited) s after it started, its timeout 0.2 s")
        }
        try check(loopRun, onLoop)
        try check(poolRun, onPool)
    }

    /// An attempt that reaches its wait only after its timeout has passed (a loaded machine)
    /// terminates the group at once, and the loop still sends the KILL when the grace ends, with
    /// no task doing anything more. Found by CI: under load, the blocked-pool test above saw such
    /// a step killed only when a pool thread came free.
    @Test func aTimeoutFoundPastStillGetsTheLoopsKill() async throws {
        let trap = try TermTrap()
        let spec = ProcessSpec(command: "sh", arguments: ["-c", "trap '' TERM; touch \(trap.folder)/started; sleep 30"],
                               stdoutPath: "/dev/null", stderrPath: "/dev/null")
        let child = try ProcessLauncher.launch(spec, monitor: .shared, pump: .shared).get()
        defer {
            ProcessGroup(leader: child.pid).send(SIGKILL)
            _ = child.reap()
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while !FileManager.default.fileExists(atPath: trap.folder + "/started") {
            try #require(ContinuousClock.now < deadline, "the step never started")
            try await Task.sleep(for: .milliseconds(5))
        }
        let started = ContinuousClock.now
        let timedOut = await child.exit.wait(until: started - .seconds(1), terminating: child.pid,
                                             killAfter: .milliseconds(300))
        #expect(timedOut == .deadlinePassed)
        #expect(child.exit.terminationSent != nil, "terminated at once")
        // Nothing else is done here: the loop kills the group by itself.
        let ended = await child.exit.wait(until: started + .seconds(5))
        #expect(ended == .exited, "the step that ignores TERM was never killed")
        // Not before the grace (when this task resumes depends on the pool, which other tests
        // of the suite may hold: only the order is checked, not how soon).
        #expect(ContinuousClock.now - started >= .milliseconds(250), "killed before the grace ended")
    }

    /// A chain's next link is committed on the loop thread when the store's writer is idle; that
    /// commit must not wait for another process holding the state folder's lock (a `cancel`, a
    /// `prune`, a second engine), or every step the loop serves waits with it: here another
    /// run's timeout, in another state folder, while the lock of the chain's folder is held.
    @Test func aCommitOnTheLoopDoesNotWaitForAnotherProcesssLock() async throws {
        let trap = try TermTrap()
        let folder = trap.folder
        let chainSession = try RunSession(stateDirectory: folder + "/a")
        let timeoutSession = try RunSession(stateDirectory: folder + "/b")
        let chain = Plan(id: "A", maxConcurrency: 1, steps: [
            Step.process("first", "sleep", ["1"]),
            Step.process("second", "true", dependsOn: ["first"]),
        ])
        let slow = trap.step("slow", timeout: .seconds(1))
        async let chainReport = chainSession.start(chain)
        // The first link's start is committed (the writer gathers for 50 ms), then the lock is
        // taken as another process would, and held past the first link's end: by a thread of its
        // own, so that it is released 2.5 s later however busy the cooperative pool is (CI, under
        // load: a pool task that slept 2.5 s resumed after the engine's 5 s wait for the lock).
        try await Task.sleep(for: .milliseconds(400))
        let lockPath = folder + "/a/runs.db.lock"
        // nil until the thread has the lock; then "" or why it could not take it.
        let held = Mutex<String?>(nil)
        Thread {
            do {
                let lock = try FileLock(path: lockPath)
                try lock.lock(timeout: .seconds(5))
                held.withLock { $0 = "" }
                usleep(2_500_000)
                lock.unlock()
            } catch {
                held.withLock { $0 = "\(error)" }
            }
        }.start()
        while held.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(2)) }
        let failure = try #require(held.withLock { $0 })
        try #require(failure.isEmpty, "the lock could not be taken: \(failure)")
        async let timeoutReport = timeoutSession.start(Plan(id: "B", maxConcurrency: 1, steps: [slow]))
        let (a, b) = try await (chainReport, timeoutReport)
        #expect(a.status == .succeeded, "the chain went on once the lock was free")
        let slowReport = try #require(b.steps.first)
        #expect(slowReport.status == .failed && slowReport.timedOut)
        let waited = try trap.waited()
        #expect(waited >= 0.9 && waited < 2.0, "terminated \(waited) s after it started, its timeout 1 s")
    }

    @Test func jobsEnqueuedFromOtherThreadsWakeTheSleepingLoop() async throws {
        let loop = try #require(ProcessLoop.shared)
        // Rounds of tasks started from the global pool while the loop sleeps (nothing else runs):
        // each must be woken by its enqueue, or the time limit ends the test.
        for _ in 0..<20 {
            let onLoop = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<50 {
                    group.addTask(executorPreference: loop) { loop.isCurrentThread }
                }
                var all: [Bool] = []
                for try await here in group { all.append(here) }
                return all
            }
            #expect(onLoop == Array(repeating: true, count: 50))
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    @Test func aTimeoutStillEndsAStepWhileTheSchedulerLivesOnTheLoop() async throws {
        var slow = Step.process("slow", "sleep", ["300"])
        slow.timeout = .milliseconds(300)
        let steps = [slow] + (0..<10).map { Step.process("q\($0)", "true") }
        let started = ContinuousClock.now
        let report = try await run(Plan(id: "P", maxConcurrency: 2, steps: steps), observers: [])
        let slowReport = try #require(report.steps.first { $0.id == "slow" })
        #expect(slowReport.status == .failed && slowReport.timedOut)
        #expect(report.steps.filter { $0.id.hasPrefix("q") }.allSatisfy { $0.status == .succeeded })
        // Far from the sleep's 300 s, whatever the machine's load (a loaded full suite took 21.8 s).
        #expect(ContinuousClock.now - started < .seconds(120), "the 300 s sleep was cut short")
    }
}
