import Foundation
import Orchestration

/// Where a run's time went (`--mode profile`): per-step wall time and attempts, the critical path
/// as it happened, the engine's own dispatch overhead and the slowest steps.
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
        /// The scheduling priority the engine used (longer remaining path starts first).
        public var priority: Double
    }

    /// Steps that ran, in plan order.
    public var steps: [StepTiming]
    /// The chain of steps that ended last, each waiting on the previous one, first to last.
    public var criticalPath: [String]
    /// The wall time of the run, in seconds.
    public var makespan: Double
    /// Sum, mean and maximum of the dispatch overheads, in seconds.
    public var overheadTotal: Double
    /// Mean dispatch overhead.
    public var overheadMean: Double
    /// Worst dispatch overhead.
    public var overheadMax: Double

    /// Computes the profile from a run's events (full precision) and its graph.
    public init(events: [RunEvent], graph: PlanGraph, priorities: [Double]? = nil) {
        let priority = priorities ?? graph.remainingPathLengths()
        var firstStart: [Int: Date] = [:]
        var finish: [Int: Date] = [:]
        var attempts: [Int: Int] = [:]
        var finishTimes: [Date] = []
        var runStart: Date?
        var runEnd: Date?
        for event in events {
            switch event.kind {
            case .runStarted, .runResumed: runStart = runStart ?? event.timestamp
            case .runFinished: runEnd = event.timestamp
            default: break
            }
            guard let id = event.stepID, let index = graph.indexByID[id] else { continue }
            switch event.kind {
            case .stepStarted:
                if firstStart[index] == nil { firstStart[index] = event.timestamp }
                attempts[index, default: 0] += 1
            case .stepSucceeded, .stepFailed, .stepCancelled:
                if firstStart[index] != nil { finish[index] = event.timestamp }
                finishTimes.append(event.timestamp)
            case .stepAttemptFailed:
                finishTimes.append(event.timestamp)
            default:
                break
            }
        }
        finishTimes.sort()
        let origin = runStart ?? firstStart.values.min() ?? Date()
        var timings: [StepTiming] = []
        var overheads: [Double] = []
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
            let end = finish[index] ?? start
            timings.append(StepTiming(id: graph.ids[index], wall: end.timeIntervalSince(start), attempts: attempts[index] ?? 0,
                                      dispatchOverhead: overhead, priority: priority[index]))
        }
        // Walk back from the step that finished last through the dependency that finished last.
        var path: [String] = []
        if var current = finish.max(by: { $0.value < $1.value })?.key {
            while true {
                path.append(graph.ids[current])
                let deps = graph.dependencies[current].map(Int.init).filter { finish[$0] != nil }
                guard let latest = deps.max(by: { finish[$0]! < finish[$1]! }) else { break }
                current = latest
            }
        }
        steps = timings
        criticalPath = path.reversed()
        makespan = (runEnd ?? finish.values.max() ?? origin).timeIntervalSince(origin)
        overheadTotal = overheads.reduce(0, +)
        overheadMean = overheads.isEmpty ? 0 : overheadTotal / Double(overheads.count)
        overheadMax = overheads.max() ?? 0
    }

    private static func lastTime(in sorted: [Date], atOrBefore time: Date) -> Date? {
        var low = 0, high = sorted.count
        while low < high {
            let mid = (low + high) / 2
            if sorted[mid] <= time { low = mid + 1 } else { high = mid }
        }
        return low > 0 ? sorted[low - 1] : nil
    }

    /// The slowest steps by wall time.
    public func slowest(_ count: Int = 5) -> [StepTiming] {
        Array(steps.sorted { $0.wall > $1.wall }.prefix(count))
    }

    /// The profile as JSON (added to the run report under `profile`).
    public var json: JSONValue {
        func ms(_ seconds: Double) -> JSONValue { .double((seconds * 1_000_000).rounded() / 1000) }
        return .object([
            "makespan_sec": .double((makespan * 1000).rounded() / 1000),
            "critical_path": .array(criticalPath.map { .string($0) }),
            "engine_overhead": .object([
                "total_ms": ms(overheadTotal), "mean_ms": ms(overheadMean), "max_ms": ms(overheadMax),
            ]),
            "slowest": .array(slowest().map { .string($0.id) }),
            "steps": .array(steps.map { step in
                .object([
                    "id": .string(step.id),
                    "wall_sec": .double((step.wall * 1000).rounded() / 1000),
                    "attempts": .int(step.attempts),
                    "dispatch_overhead_ms": ms(step.dispatchOverhead),
                    "priority": .double(step.priority),
                ])
            }),
        ])
    }

    /// The human rendering, within the style's width.
    public func render(style: TextStyle) -> String {
        let width = max(60, style.width)
        var lines: [String] = ["Profile: makespan \(formatDuration(makespan)), \(steps.count) steps ran"]
        lines.append(truncate("Critical path (\(criticalPath.count) steps): " + criticalPath.joined(separator: " -> "), to: width))
        lines.append(String(format: "Engine overhead (dispatch latency): mean %.3f ms, max %.3f ms, total %.1f ms",
                            overheadMean * 1000, overheadMax * 1000, overheadTotal * 1000))
        lines.append("Slowest steps:")
        let idWidth = min(32, max(4, slowest().map(\.id.count).max() ?? 4))
        for step in slowest() {
            lines.append("  \(pad(truncate(step.id, to: idWidth), idWidth))  \(pad(formatDuration(step.wall), 8))  "
                         + "\(step.attempts == 1 ? "1 try" : "\(step.attempts) tries")")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
