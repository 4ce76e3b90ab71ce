import Orchestration
import Presentation
import MonitorHTTP
import Foundation

/// A run as the monitor shows it: the same ``HTMLReport`` as `report --html` builds, kept
/// current by applying only the events after the last one seen.
///
/// It is loaded once through ``HTMLReport/load(runID:stateDirectory:store:limits:)`` (the
/// report's own path: plan snapshot, attempts, log tails), then ``update(store:)`` reads the
/// events with a larger `seq` (the `events` primary key) and folds them with the same
/// ``RunReportBuilder`` that `runs show` uses; before a rendering, ``prepare(store:directory:)``
/// re-reads the attempts of the steps they touched (primary-key lookups) and those steps' tails.
struct LiveRun: Sendable {
    /// The run's row as last read.
    private(set) var row: RunStore.RunRow
    /// The page's data.
    private(set) var page: HTMLReport
    /// The last event applied.
    private(set) var seq: Int64
    private var builder: RunReportBuilder
    private var attemptsByStep: [String: [RunStore.AttemptRecord]]
    /// The log sizes behind each running step's tails when they were read.
    private var logSizes: [String: Int] = [:]
    /// Steps whose attempts and tails are to be read again before the next rendering.
    private var touched = Set<String>()
    /// The latest events (at most ``recentLimit``), oldest first.
    private(set) var recentEvents: [RunEvent] = []
    static let recentLimit = 50

    /// The monitor's page limits: stdout tails too.
    static let limits = HTMLReport.Limits(tailLines: 20, tailBytes: 4096, totalTailBytes: 400_000, includeStdout: true)

    /// Loads a run; nil when the store has no such run.
    /// - Throws: ``EngineError`` when the store cannot be read.
    static func load(runID: String, store: RunStore, directory: StateDirectory) throws(EngineError) -> LiveRun? {
        guard let row = try store.runRow(runID) else { return nil }
        // Events first: the page's other data is read after them, so it is at least as new.
        let events = try store.events(runID)
        var page = try HTMLReport.load(runID: runID, stateDirectory: directory, store: store, limits: limits)
        var builder = RunReportBuilder(runID: runID, planID: row.planID, stepIDs: page.report.steps.map(\.id),
                                       traceID: page.report.traceID)
        for event in events { builder.apply(event) }
        page.resumedAt = events.filter { $0.kind == .runResumed }.map(\.timestamp)
        var byStep: [String: [RunStore.AttemptRecord]] = [:]
        for attempt in page.attempts { byStep[attempt.stepID, default: []].append(attempt) }
        page.report = Self.report(builder, row: row)
        var live = LiveRun(row: row, page: page, seq: events.last?.seq ?? 0, builder: builder, attemptsByStep: byStep)
        live.recentEvents = Array(events.suffix(recentLimit))
        live.page.liveUntil = row.isLive ? live.page.generatedAt : nil
        live.recordLogSizes(directory: directory)
        return live
    }

    /// The folded report with the row's stage, and its status while the run is not final (as
    /// ``RunStore/report(_:)`` does).
    private static func report(_ builder: RunReportBuilder, row: RunStore.RunRow) -> RunReport {
        var report = builder.current
        report.stage = row.stage
        if !row.status.isFinal { report.status = row.status }
        return report
    }

    /// Applies the events stored since the last call. The attempts and log tails of the steps
    /// they touched are read later, once, by ``prepare(store:directory:)`` before the page is
    /// rendered (a step that starts and ends between two renderings is read once).
    /// - Returns: The new events, in order (empty when nothing changed).
    mutating func update(store: RunStore) throws(EngineError) -> [RunEvent] {
        guard var row = try store.runRow(page.report.runID) else { return [] }
        let events = row.lastSeq > seq || row != self.row ? try store.events(row.runID, after: seq) : []
        var secretOutputs = Set<String>()
        for event in events {
            builder.apply(event)
            if let step = event.stepID { touched.insert(step) }
            if event.kind == .runResumed { page.resumedAt.append(event.timestamp) }
            if case .stepSucceeded(let end?) = event.payload {
                for output in end.outputs where output.isSecret { secretOutputs.insert(output.name) }
            }
        }
        if !secretOutputs.isEmpty {
            // The tails read from now on mask the values of the secret outputs that appeared.
            let outputs = try store.outputs(row.runID)
            page.logMasking.mask = page.logMasking.mask.merging(SecretMask(values: outputs.values(named: secretOutputs.contains)))
        }
        if !row.status.isFinal && builder.current.status.isFinal {
            // The run ended between the two reads: its row changed in the same transaction as
            // its last event, so reading it again gives its final status.
            row = try store.runRow(row.runID) ?? row
        }
        let statusChanged = row.status != self.row.status
        self.row = row
        guard !events.isEmpty || statusChanged else { return [] }
        seq = events.last?.seq ?? seq
        recentEvents = Array((recentEvents + events).suffix(Self.recentLimit))
        page.report = Self.report(builder, row: row)
        markTime()
        return events
    }

    /// Reads the attempts and log tails of the steps touched since the last call.
    mutating func prepare(store: RunStore, directory: StateDirectory) {
        guard !touched.isEmpty else { return }
        if let attempts = try? store.attempts(row.runID, steps: touched) {
            for (step, records) in attempts { attemptsByStep[step] = records }
            page.attempts = page.report.steps.flatMap { attemptsByStep[$0.id] ?? [] }
        }
        rereadLogs(touched, directory: directory)
        touched.removeAll()
    }

    /// Moves the page's clock to now (a live run's timeline grows with it).
    mutating func markTime() {
        page.generatedAt = Date()
        page.liveUntil = row.isLive ? page.generatedAt : nil
    }

    /// Re-reads the tails of running steps whose logs grew.
    /// - Returns: Whether a tail changed.
    mutating func refreshRunningTails(directory: StateDirectory) -> Bool {
        let running = page.report.steps.filter { $0.status == .running }.map(\.id)
        guard !running.isEmpty else { return false }
        let grown = Set(running.filter { logSize($0, directory: directory) != logSizes[$0] })
        guard !grown.isEmpty else { return false }
        rereadLogs(grown, directory: directory)
        markTime()
        return true
    }

    private mutating func rereadLogs(_ steps: Set<String>, directory: StateDirectory) {
        let logs = HTMLReport.readLogs(report: page.report, attempts: page.attempts, stateDirectory: directory,
                                       runID: page.report.runID, limits: Self.limits, only: steps, masking: page.logMasking)
        for step in steps { page.logs[step] = logs[step] }
        recordLogSizes(directory: directory, only: steps)
    }

    private mutating func recordLogSizes(directory: StateDirectory, only: Set<String>? = nil) {
        for step in page.report.steps where step.status == .running && (only?.contains(step.id) ?? true) {
            logSizes[step.id] = logSize(step.id, directory: directory)
        }
    }

    /// The sizes of a step's last attempt's stdout and stderr together.
    private func logSize(_ step: String, directory: StateDirectory) -> Int {
        guard let log = page.logs[step], (try? directory.runDirectory(page.report.runID)) != nil else { return -1 }
        var total = 0
        for stream in AttemptLog.Stream.allCases {
            var info = stat()
            let path = directory.path(of: AttemptLog(stepID: step, attempt: log.attempt, stream: stream), runID: page.report.runID)
            if stat(path, &info) == 0 { total += Int(info.st_size) }
        }
        return total
    }
}
