import Orchestration
import Foundation

/// The JSON shapes of the run history (SPEC §4): one run of `runs list --format json` and the
/// object `runs show --format json` prints. The CLI and the live monitor's JSON endpoints build
/// them here, so both give the same keys with the same meaning.
public enum RunHistoryJSON {
    /// One element of `runs list`'s `runs` array: `{"run_id", "plan_id", "status", "live",
    /// "started_at", "finished_at", "summary": {"total", "succeeded", "failed", "skipped",
    /// "cancelled"}}`.
    ///
    /// - Parameters:
    ///   - report: The run's report (nil when it cannot be read: the summary is all zeros).
    ///   - live: Whether an engine still holds the run (``RunStore/RunRecord/isLive``).
    public static func listEntry(runID: String, planID: String, status: RunStatus, live: Bool, startedAt: String?,
                                 finishedAt: String?, report: RunReport?) -> JSONValue {
        let counts = report?.summary ?? [:]
        return .object([
            "run_id": .string(runID),
            "plan_id": .string(planID),
            "status": .string(status.rawValue),
            "live": .bool(live),
            "started_at": startedAt.map { .string($0) } ?? .null,
            "finished_at": finishedAt.map { .string($0) } ?? .null,
            "summary": .object([
                "total": .int(report?.steps.count ?? 0),
                "succeeded": .int(counts[.succeeded] ?? 0),
                "failed": .int(counts[.failed] ?? 0),
                "skipped": .int(counts[.skipped] ?? 0),
                "cancelled": .int(counts[.cancelled] ?? 0),
            ]),
        ])
    }

    /// Steps that are neither pending nor running.
    public static func doneCount(_ report: RunReport) -> Int {
        let counts = report.summary
        return report.steps.count - (counts[.pending] ?? 0) - (counts[.running] ?? 0)
    }

    /// `{"done", "total", "running": [step ids]}`.
    public static func progress(_ report: RunReport) -> JSONValue {
        .object([
            "done": .int(doneCount(report)),
            "total": .int(report.steps.count),
            "running": .array(report.steps.filter { $0.status == .running }.map { .string($0.id) }),
        ])
    }

    /// What `runs show --format json` prints: the report's JSON (SPEC §4) with `live`,
    /// `progress`, `engine_pid` (when known) and `snapshot` (the failure snapshot's path or null).
    public static func show(record: RunStore.RunRecord, report: RunReport, snapshotPath: String?) -> JSONValue {
        var json = report.json
        if case .object(var members) = json {
            members.append(.init("live", .bool(record.isLive)))
            members.append(.init("progress", progress(report)))
            if let engine = record.engine { members.append(.init("engine_pid", .int(Int(engine.pid)))) }
            members.append(.init("snapshot", snapshotPath.map { .string($0) } ?? .null))
            json = .object(members)
        }
        return json
    }
}
