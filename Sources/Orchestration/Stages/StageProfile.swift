import Orchestration

/// The timings of `--mode profile` (components run one at a time, so each one's wall time is its
/// own): per component wall time and attempts, the critical path through the stage's DAG, and
/// the engine's own overhead (the run's wall time minus the components').
public struct StageProfile: Sendable {
    /// One component's timings.
    public struct Entry: Sendable, Hashable {
        /// The component.
        public var name: String
        /// Wall time from its first attempt's start to its end (retry delays included).
        public var seconds: Double?
        /// Attempts made.
        public var attempts: Int
        /// Its share of the components' total time (0...1).
        public var share: Double
    }

    /// The components, slowest first.
    public var entries: [Entry]
    /// The longest chain of dependencies by wall time, first to last.
    public var criticalPath: [String]
    /// Its wall time.
    public var criticalPathSeconds: Double
    /// The components' total wall time.
    public var componentSeconds: Double
    /// The run's wall time.
    public var wallSeconds: Double
    /// `wallSeconds - componentSeconds`: scheduling, spawning, recording.
    public var overheadSeconds: Double

    /// Computes the profile of a finished run of `plan`.
    public static func of(_ report: RunReport, graph: PlanGraph) -> StageProfile {
        var durationByID: [String: RunReport.StepReport] = [:]
        for step in report.steps { durationByID[step.id] = step }
        let weights = graph.ids.map { durationByID[$0]?.duration ?? 0 }
        let total = weights.reduce(0, +)
        // Longest path ending at each node, in topological order.
        var best = [Double](repeating: 0, count: graph.count)
        var previous = [Int?](repeating: nil, count: graph.count)
        for node in graph.topologicalOrder {
            var start = 0.0
            for dep in graph.dependencies[node] {
                let index = Int(dep)
                if previous[node] == nil || best[index] > start {
                    start = best[index]
                    previous[node] = index
                }
            }
            best[node] = start + weights[node]
        }
        var path: [String] = []
        var length = 0.0
        if let end = best.indices.max(by: { best[$0] < best[$1] }) {
            length = best[end]
            var cursor: Int? = end
            while let node = cursor {
                path.append(graph.ids[node])
                cursor = previous[node]
            }
            path.reverse()
        }
        let entries = graph.ids.enumerated().map { index, id in
            Entry(name: id, seconds: durationByID[id]?.duration, attempts: durationByID[id]?.attempts ?? 0,
                  share: total > 0 ? weights[index] / total : 0)
        }.sorted { ($0.seconds ?? -1) > ($1.seconds ?? -1) }
        let wall = report.duration ?? total
        return StageProfile(entries: entries, criticalPath: path, criticalPathSeconds: length, componentSeconds: total,
                            wallSeconds: wall, overheadSeconds: max(0, wall - total))
    }

    /// The profile as JSON.
    public var json: JSONValue {
        .object([
            "components": .array(entries.map { entry in
                .object([
                    "name": .string(entry.name),
                    "wall_sec": entry.seconds.map { .double(RunReport.rounded($0)) } ?? .null,
                    "attempts": .int(entry.attempts),
                    "share": .double((entry.share * 1000).rounded() / 1000),
                ])
            }),
            "critical_path": .array(criticalPath.map { .string($0) }),
            "critical_path_sec": .double(RunReport.rounded(criticalPathSeconds)),
            "components_sec": .double(RunReport.rounded(componentSeconds)),
            "wall_sec": .double(RunReport.rounded(wallSeconds)),
            "engine_overhead_sec": .double(RunReport.rounded(overheadSeconds)),
        ])
    }

    /// The profile as human lines.
    public func render(style: TextStyle) -> [String] {
        let width = max(60, style.width)
        var lines = ["\(style.rich ? "⏱️" : "TIME") profile: components \(formatDuration(componentSeconds)), "
                     + "wall \(formatDuration(wallSeconds)), engine overhead \(formatDuration(overheadSeconds))"]
        let nameWidth = min(max(4, entries.map(\.name.count).max() ?? 4), 32)
        for entry in entries {
            let attempts = entry.attempts == 1 ? "1 try" : "\(entry.attempts) tries"
            let share = String(Int((entry.share * 100).rounded())) + "%"
            lines.append("  \(pad(truncate(entry.name, to: nameWidth), nameWidth))  \(pad(formatDuration(entry.seconds), 8))  "
                         + "\(pad(attempts, 8))  \(share)")
        }
        lines.append(truncate("  critical path (\(formatDuration(criticalPathSeconds))): " + criticalPath.joined(separator: " -> "),
                              to: width))
        return lines
    }
}
