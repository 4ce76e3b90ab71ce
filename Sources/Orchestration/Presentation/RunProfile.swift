import Foundation
import Synchronization
import Orchestration

/// Where a run's time went (`--mode profile`): per-step wall time, attempts and scheduling
/// priority, the critical path computed from the DAG and the measured durations, how busy the
/// slots were, and the engine's own cost.
///
/// The critical path is the chain of dependent steps whose durations add up to the most: the
/// least time the run could have taken with unlimited slots. It is not the chain that happened
/// to finish last: a step that waited for a slot finishes late without being on it.
public struct RunProfile: Sendable {
    /// One step's timings.
    public struct StepTiming: Sendable {
        /// The step id.
        public var id: String
        /// From its first attempt's start to its final status, in seconds.
        public var wall: Double
        /// Attempts started.
        public var attempts: Int
        /// Seconds between the moment the step could start (its dependencies were done and a slot
        /// was free) and its first attempt's start: the engine's own reaction time.
        public var dispatchOverhead: Double
        /// The scheduling priority the engine used (larger starts first among ready steps).
        public var priority: Double
        /// Seconds from the run's start to the step's first attempt.
        public var startOffset: Double
        /// Seconds its attempts held a slot (retry waits excluded).
        public var busy: Double
    }

    /// One matrix step's expansions, together.
    public struct MatrixTiming: Sendable {
        /// The matrix step's id as written.
        public var step: String
        /// Its expansions in the plan.
        public var expansions: Int
        /// Those that ran.
        public var ran: Int
        /// The sum of their wall times, in seconds.
        public var wallTotal: Double
        /// The slowest expansion's wall time, in seconds.
        public var wallMax: Double
        /// The slowest expansion's id.
        public var slowest: String?
        /// Their attempts.
        public var attempts: Int
    }

    /// Steps that ran, in plan order.
    public var steps: [StepTiming]
    /// Each matrix step's expansions, in plan order (empty without matrices).
    public var matrices: [MatrixTiming] = []
    /// The longest chain of dependent steps by measured duration, first to last.
    public var criticalPath: [String]
    /// The sum of the critical path's step durations, in seconds.
    public var criticalPathSeconds: Double
    /// The wall time of the run, in seconds.
    public var makespan: Double
    /// Sum, mean and maximum of the dispatch overheads, in seconds.
    public var overheadTotal: Double
    /// Mean dispatch overhead.
    public var overheadMean: Double
    /// Worst dispatch overhead.
    public var overheadMax: Double
    /// The concurrency limit (slots).
    public var slots: Int
    /// Slot-seconds during which an attempt ran.
    public var busySlotSeconds: Double
    /// Slot-seconds during which a slot was free: `slots` × makespan − busy.
    public var idleSlotSeconds: Double
    /// Seconds of the run spent with exactly `n` attempts running, for n = 0...slots (index n).
    public var timeAtConcurrency: [Double]
    /// The mean number of busy slots in each of ``timelineBuckets`` equal slices of the run.
    public var busyOverTime: [Double]
    /// The engine process's own CPU time per attempt (scheduling, spawning, storing), when measured.
    public var engineCPUPerAttempt: Double?
    /// Mean and maximum seconds from an event's time to its delivery to the profile (the store
    /// commits first), when delivery times were recorded.
    public var deliveryMean: Double?
    /// See ``deliveryMean``.
    public var deliveryMax: Double?

    /// Slices of ``busyOverTime``.
    public static let timelineBuckets = 40

    /// Collects a run's events with the moment each reached it, for a profile.
    public final class Recorder: RunObserver, LoopSafeObserver {
        private let state = Mutex<[(RunEvent, Date)]>([])

        /// Creates an empty recorder.
        public init() {}

        /// The events so far, in order.
        public var events: [RunEvent] { state.withLock { $0.map(\.0) } }
        /// When each event arrived, in the same order.
        public var arrivals: [Date] { state.withLock { $0.map(\.1) } }

        public func record(_ events: [RunEvent]) async throws {
            let now = Date()
            state.withLock { $0 += events.map { ($0, now) } }
        }
    }

    /// Computes the profile from a run's events (full precision) and its graph.
    /// - Parameters:
    ///   - priorities: the priorities the run was scheduled with (nil: node counts).
    ///   - arrivals: when each event reached the observer (``Recorder``), for the delivery latency.
    ///   - engineCPUSeconds: the engine process's CPU time over the run (`getrusage(RUSAGE_SELF)`).
    ///   - matrixGroups: the matrix step each step is an expansion of, by step index (``Step/matrix``),
    ///     to total the expansions; empty: none.
    public init(events: [RunEvent], graph: PlanGraph, priorities: [Double]? = nil, arrivals: [Date]? = nil,
                engineCPUSeconds: Double? = nil, matrixGroups: [String?] = []) {
        let priority = priorities ?? graph.remainingPathLengths()
        var firstStart: [Int: Date] = [:]
        var finish: [Int: Date] = [:]
        var attempts: [Int: Int] = [:]
        var finishTimes: [Date] = []
        var runStart: Date?
        var runEnd: Date?
        var slots = 1
        // Attempt intervals: start, end.
        var open: [Int: Date] = [:]
        var intervals: [(Int, Date, Date)] = []
        for event in events {
            switch event.payload {
            case .runStarted(let start), .runResumed(let start):
                runStart = runStart ?? event.timestamp
                slots = max(1, start.maxConcurrency)
            case .runFinished: runEnd = event.timestamp
            default: break
            }
            guard let id = event.stepID, let index = graph.indexByID[id] else { continue }
            switch event.kind {
            case .stepStarted:
                if firstStart[index] == nil { firstStart[index] = event.timestamp }
                attempts[index, default: 0] += 1
                open[index] = event.timestamp
            case .stepSucceeded, .stepFailed, .stepCancelled:
                if firstStart[index] != nil { finish[index] = event.timestamp }
                finishTimes.append(event.timestamp)
                if let began = open.removeValue(forKey: index) { intervals.append((index, began, event.timestamp)) }
            case .stepAttemptFailed:
                finishTimes.append(event.timestamp)
                if let began = open.removeValue(forKey: index) { intervals.append((index, began, event.timestamp)) }
            default:
                break
            }
        }
        finishTimes.sort()
        let origin = runStart ?? firstStart.values.min() ?? Date()
        let end = runEnd ?? finish.values.max() ?? origin
        for (index, began) in open { intervals.append((index, began, max(began, end))) }
        var busyByStep: [Int: Double] = [:]
        for (index, began, ended) in intervals { busyByStep[index, default: 0] += max(0, ended.timeIntervalSince(began)) }

        var timings: [StepTiming] = []
        var overheads: [Double] = []
        var wall = [Double](repeating: 0, count: graph.count)
        for index in 0..<graph.count {
            guard let start = firstStart[index] else { continue }
            var ready = origin
            for dep in graph.dependencies[index] {
                if let done = finish[Int(dep)], done > ready { ready = done }
            }
            // The last event before the start that could have freed a slot.
            var enabled = ready
            if let last = Self.lastTime(in: finishTimes, atOrBefore: start), last > enabled { enabled = last }
            let overhead = max(0, start.timeIntervalSince(enabled))
            overheads.append(overhead)
            wall[index] = max(0, (finish[index] ?? start).timeIntervalSince(start))
            timings.append(StepTiming(id: graph.ids[index], wall: wall[index], attempts: attempts[index] ?? 0,
                                      dispatchOverhead: overhead, priority: priority[index],
                                      startOffset: max(0, start.timeIntervalSince(origin)), busy: busyByStep[index] ?? 0))
        }
        // Longest path by measured duration (steps that did not run weigh nothing).
        var best = [Double](repeating: 0, count: graph.count)
        var via = [Int?](repeating: nil, count: graph.count)
        for node in graph.topologicalOrder {
            var longest = 0.0
            for dep in graph.dependencies[node].map(Int.init) where firstStart[dep] != nil && (via[node] == nil || best[dep] > longest) {
                longest = best[dep]
                via[node] = dep
            }
            best[node] = longest + wall[node]
        }
        var path: [String] = []
        if let last = graph.topologicalOrder.filter({ firstStart[$0] != nil }).max(by: { best[$0] < best[$1] }) {
            var current: Int? = last
            while let node = current {
                path.append(graph.ids[node])
                current = via[node]
            }
            criticalPathSeconds = best[last]
        } else {
            criticalPathSeconds = 0
        }
        steps = timings
        var order: [String] = []
        var byGroup: [String: MatrixTiming] = [:]
        for (index, group) in matrixGroups.enumerated() where index < graph.count {
            guard let group else { continue }
            if byGroup[group] == nil {
                order.append(group)
                byGroup[group] = MatrixTiming(step: group, expansions: 0, ran: 0, wallTotal: 0, wallMax: 0, slowest: nil, attempts: 0)
            }
            byGroup[group]!.expansions += 1
            guard firstStart[index] != nil else { continue }
            byGroup[group]!.ran += 1
            byGroup[group]!.wallTotal += wall[index]
            byGroup[group]!.attempts += attempts[index] ?? 0
            if byGroup[group]!.slowest == nil || wall[index] > byGroup[group]!.wallMax {
                byGroup[group]!.wallMax = wall[index]
                byGroup[group]!.slowest = graph.ids[index]
            }
        }
        matrices = order.compactMap { byGroup[$0] }
        criticalPath = path.reversed()
        makespan = max(0, end.timeIntervalSince(origin))
        overheadTotal = overheads.reduce(0, +)
        overheadMean = overheads.isEmpty ? 0 : overheadTotal / Double(overheads.count)
        overheadMax = overheads.max() ?? 0

        // Utilisation: sweep the attempt intervals.
        self.slots = slots
        var changes: [(Double, Int)] = []
        for (_, began, ended) in intervals {
            changes.append((max(0, began.timeIntervalSince(origin)), 1))
            changes.append((max(0, ended.timeIntervalSince(origin)), -1))
        }
        changes.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        var atLevel = [Double](repeating: 0, count: slots + 1)
        let buckets = Self.timelineBuckets
        var bucketBusy = [Double](repeating: 0, count: buckets)
        let span = max(makespan, 1e-9)
        var level = 0
        var time = 0.0
        func account(until next: Double) {
            let next = min(max(next, time), span)
            guard next > time else { return }
            atLevel[min(max(level, 0), slots)] += next - time
            // Spread the level over the buckets the segment covers.
            let width = span / Double(buckets)
            let first = max(0, min(buckets - 1, Int(time / width) - 1))
            let last = max(0, min(buckets - 1, Int(next / width) + 1))
            for bucket in first...last {
                let overlap = min(next, Double(bucket + 1) * width) - max(time, Double(bucket) * width)
                if overlap > 0 { bucketBusy[bucket] += Double(level) * overlap }
            }
            time = next
        }
        for (at, delta) in changes {
            account(until: at)
            level += delta
        }
        account(until: span)
        timeAtConcurrency = atLevel
        busyOverTime = bucketBusy.map { $0 / (span / Double(buckets)) }
        busySlotSeconds = intervals.reduce(0) { $0 + max(0, $1.2.timeIntervalSince($1.1)) }
        idleSlotSeconds = max(0, Double(slots) * makespan - busySlotSeconds)
        let attemptCount = attempts.values.reduce(0, +)
        engineCPUPerAttempt = engineCPUSeconds.flatMap { attemptCount > 0 ? $0 / Double(attemptCount) : nil }
        if let arrivals, arrivals.count == events.count, !events.isEmpty {
            let delays = zip(events, arrivals).map { max(0, $1.timeIntervalSince($0.timestamp)) }
            deliveryMean = delays.reduce(0, +) / Double(delays.count)
            deliveryMax = delays.max()
        }
    }

    private static func lastTime(in sorted: [Date], atOrBefore time: Date) -> Date? {
        var low = 0, high = sorted.count
        while low < high {
            let mid = (low + high) / 2
            if sorted[mid] <= time { low = mid + 1 } else { high = mid }
        }
        return low > 0 ? sorted[low - 1] : nil
    }

    /// The share of the slots' time that attempts used (0 for an empty run).
    public var utilisation: Double {
        let capacity = Double(slots) * makespan
        return capacity > 0 ? min(1, busySlotSeconds / capacity) : 0
    }

    /// The slowest steps by wall time.
    public func slowest(_ count: Int = 5) -> [StepTiming] {
        Array(steps.sorted { $0.wall > $1.wall }.prefix(count))
    }

    /// The engine process's CPU time over a piece of work (user + system), in seconds.
    public static func processCPUSeconds() -> Double {
        var usage = rusage()
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return 0 }
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1_000_000 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// The profile as JSON (added to the run report under `profile`).
    public var json: JSONValue {
        func ms(_ seconds: Double) -> JSONValue { .double((seconds * 1_000_000).rounded() / 1000) }
        func sec(_ seconds: Double) -> JSONValue { .double((seconds * 1000).rounded() / 1000) }
        var engine: [JSONValue.Member] = [
            .init("total_ms", ms(overheadTotal)), .init("mean_ms", ms(overheadMean)), .init("max_ms", ms(overheadMax)),
        ]
        if let engineCPUPerAttempt { engine.append(.init("cpu_per_attempt_ms", ms(engineCPUPerAttempt))) }
        if let deliveryMean, let deliveryMax {
            engine.append(.init("event_delivery_mean_ms", ms(deliveryMean)))
            engine.append(.init("event_delivery_max_ms", ms(deliveryMax)))
        }
        var members: [JSONValue.Member] = [
            .init("makespan_sec", sec(makespan)),
            .init("critical_path", .array(criticalPath.map { .string($0) })),
            .init("critical_path_sec", sec(criticalPathSeconds)),
            .init("utilisation", .object([
                "slots": .int(slots),
                "busy_slot_sec": sec(busySlotSeconds),
                "idle_slot_sec": sec(idleSlotSeconds),
                "busy_fraction": .double((utilisation * 1000).rounded() / 1000),
                "sec_at_concurrency": .array(timeAtConcurrency.map(sec)),
                "busy_over_time": .array(busyOverTime.map { .double(($0 * 100).rounded() / 100) }),
            ])),
            .init("engine_overhead", .object(engine)),
            .init("slowest", .array(slowest().map { .string($0.id) })),
            .init("steps", .array(steps.map { step in
                .object([
                    "id": .string(step.id),
                    "wall_sec": sec(step.wall),
                    "attempts": .int(step.attempts),
                    "dispatch_overhead_ms": ms(step.dispatchOverhead),
                    "priority": .double(step.priority),
                    "start_sec": sec(step.startOffset),
                    "busy_sec": sec(step.busy),
                ])
            })),
        ]
        if !matrices.isEmpty {
            members.append(.init("matrices", .array(matrices.map { matrix in
                .object([
                    "step": .string(matrix.step),
                    "expansions": .int(matrix.expansions),
                    "ran": .int(matrix.ran),
                    "wall_sec_total": sec(matrix.wallTotal),
                    "wall_sec_max": sec(matrix.wallMax),
                    "slowest": matrix.slowest.map { .string($0) } ?? .null,
                    "attempts": .int(matrix.attempts),
                ])
            })))
        }
        return .object(members)
    }

    /// The most steps the human rendering lists one by one.
    public static let listedSteps = 20

    /// The human rendering, within the style's width.
    public func render(style: TextStyle) -> String {
        let width = max(60, style.width)
        var lines: [String] = ["Profile: makespan \(formatDuration(makespan)), \(steps.count) \(steps.count == 1 ? "step" : "steps") ran"]
        let ids = criticalPath.map(TerminalText.escaped)
        lines.append(truncate("Critical path (\(criticalPath.count) \(criticalPath.count == 1 ? "step" : "steps"), "
                              + "\(formatDuration(criticalPathSeconds))): " + ids.joined(separator: " -> "), to: width))
        lines.append(String(format: "Slots: %d, busy %.0f%% (%.2f slot-s busy, %.2f slot-s idle)",
                            slots, utilisation * 100, busySlotSeconds, idleSlotSeconds))
        let ramp: [String] = style.rich ? [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"] : [" ", ".", ":", "-", "=", "+", "*", "#", "@"]
        let strip = busyOverTime.map { value -> String in
            let share = min(1, max(0, value / Double(slots)))
            return ramp[Int((share * Double(ramp.count - 1)).rounded())]
        }.joined()
        lines.append(truncate("Slots busy over time: |\(strip)|", to: width))
        let levels = timeAtConcurrency.enumerated().filter { $0.element > 0 }
        if levels.count <= 12 {
            lines.append(truncate("Time at n running: " + levels.map { "\($0.offset): \(formatDuration($0.element))" }
                                    .joined(separator: ", "), to: width))
        }
        var engine = String(format: "Engine overhead: dispatch latency mean %.3f ms, max %.3f ms, total %.1f ms",
                            overheadMean * 1000, overheadMax * 1000, overheadTotal * 1000)
        if let engineCPUPerAttempt { engine += String(format: "; CPU %.0f us per attempt", engineCPUPerAttempt * 1_000_000) }
        lines.append(truncate(engine, to: width))
        if let deliveryMean, let deliveryMax {
            lines.append(String(format: "Events stored and delivered: mean %.2f ms, max %.2f ms after they happened",
                                deliveryMean * 1000, deliveryMax * 1000))
        }
        let onPath = Set(criticalPath)
        let listed = steps.sorted { ($0.startOffset, $0.id) < ($1.startOffset, $1.id) }.prefix(Self.listedSteps)
        let idWidth = min(32, max(4, listed.map { TerminalText.escaped($0.id).count }.max() ?? 4))
        lines.append("Steps in start order (* critical path):")
        lines.append("    \(pad("step", idWidth))  \(pad("start", 8))  \(pad("wall", 8))  \(pad("tries", 5))  "
                     + "\(pad("priority", 9))  dispatch")
        for step in listed {
            let marker = onPath.contains(step.id) ? "  * " : "    "
            let priority = String(format: "%.3g", step.priority)
            lines.append(marker + "\(pad(truncate(TerminalText.escaped(step.id), to: idWidth), idWidth))  "
                         + "\(pad("+" + formatDuration(step.startOffset), 8))  \(pad(formatDuration(step.wall), 8))  "
                         + "\(pad(String(step.attempts), 5))  \(pad(priority, 9))  "
                         + String(format: "%.2f ms", step.dispatchOverhead * 1000))
        }
        if steps.count > listed.count { lines.append("    ... and \(steps.count - listed.count) more (--format json lists every step)") }
        lines.append("Slowest steps:")
        let slowIDWidth = min(32, max(4, slowest().map { TerminalText.escaped($0.id).count }.max() ?? 4))
        for step in slowest() {
            lines.append("  \(pad(truncate(TerminalText.escaped(step.id), to: slowIDWidth), slowIDWidth))  "
                         + "\(pad(formatDuration(step.wall), 8))  \(step.attempts == 1 ? "1 try" : "\(step.attempts) tries")")
        }
        if !matrices.isEmpty {
            lines.append("Matrices (expansions together):")
            let groupWidth = min(32, max(4, matrices.map { TerminalText.escaped($0.step).count }.max() ?? 4))
            for matrix in matrices {
                let slowest = matrix.slowest.map { ", slowest \(TerminalText.escaped($0)) \(formatDuration(matrix.wallMax))" } ?? ""
                lines.append("  \(pad(truncate(TerminalText.escaped(matrix.step), to: groupWidth), groupWidth))  "
                             + "\(matrix.ran)/\(matrix.expansions) ran, \(formatDuration(matrix.wallTotal)) in all, "
                             + "\(matrix.attempts == 1 ? "1 try" : "\(matrix.attempts) tries")\(slowest)")
            }
        }
        return lines.map { truncate($0, to: width) }.joined(separator: "\n") + "\n"
    }
}
