import Orchestration
import Presentation
import MonitorHTTP
import Foundation

/// The live monitor's routes: maps requests to pages, JSON and event streams over a state folder,
/// read-only. ``HTTPServer`` calls ``handle(_:)``; the server knows nothing of runs.
///
/// | route | answer |
/// | --- | --- |
/// | `/` (`?status=S&plan=P&limit=N`) | the runs list, following `/events` |
/// | `/runs/RUN_ID` | the run page: Gantt, DAG, step table, output tails; follows `/runs/RUN_ID/events` |
/// | `/agents` | the agents session; follows `/agents/events` |
/// | `/events`, `/runs/RUN_ID/events`, `/agents/events` | `text/event-stream` (`Last-Event-ID` or `?after=SEQ`; `&wait=1` follows a run not stored yet) |
/// | `/api/runs`, `/api/runs/RUN_ID` | the JSON of `runs list` / `runs show --format json` |
/// | `/api/runs/RUN_ID/events?after=SEQ` | `{"events": [...]}` as `runs events` prints them |
/// | `/api/agents` | the JSON of `agents status --format json` |
/// | `/api/monitor` | the server's own figures (followers) |
/// | `/assets/monitor.css`, `/assets/monitor.js` | the fixed stylesheet and script |
///
/// Anything else is 404: no file is ever served by path. An unknown run is 404 (its event stream
/// too, unless asked to wait for it), a bad filter or `seq` 400.
package final class MonitorService: Sendable {
    /// The state folder.
    package let directory: StateDirectory
    /// The event streams' feed.
    package let feed: MonitorFeed

    /// Creates the service and its feed (started by ``start()``).
    /// - Parameter agentsStatus: Reads the agents session as `agents status --format json`
    ///   shows it; nil when there is none.
    package init(directory: StateDirectory, agentsStatus: @escaping @Sendable () -> Result<JSONValue?, MonitorError>) {
        self.directory = directory
        feed = MonitorFeed(directory: directory, agentsStatus: agentsStatus)
    }

    /// Starts the feed's thread.
    package func start() { feed.start() }

    /// Stops the feed's thread.
    package func stop() { feed.stop() }

    /// Answers one request.
    package func handle(_ request: HTTPRequest) -> HTTPResponse {
        let segments = request.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        // A run id is one non-empty segment; everything else is a fixed word.
        func run(_ index: Int) -> String? { segments.count > index && !segments[index].isEmpty ? segments[index] : nil }
        // Under /api every answer is JSON, errors included.
        let api = segments.first == "api"
        switch segments.count {
        case 1:
            switch segments[0] {
            case "": return runsPage(request)
            case "events":
                guard let filter = filter(request) else { return badFilter(api: false) }
                return stream(.runs(filter))
            case "agents":
                return html(MonitorPages.agentsPage(content: MonitorPages.agentsContent(feed.agentsStatus()), stream: "/agents/events"))
            default: break
            }
        case 2:
            switch (segments[0], segments[1]) {
            case ("runs", _) where run(1) != nil: return runPage(segments[1])
            case ("agents", "events"): return stream(.agents)
            case ("api", "runs"): return runsJSON(request)
            case ("api", "agents"): return agentsJSON()
            case ("api", "monitor"):
                return json(.object([
                    "state_dir": .string(directory.path),
                    "pid": .int(Int(getpid())),
                    "followers": .int(feed.followers),
                    "feed": .object(feed.statistics.sorted { $0.key < $1.key }.map { .init($0.key, .int($0.value)) }),
                    "version": .string(Orchestration.version),
                ]))
            case ("assets", "monitor.css"): return HTTPResponse(contentType: "text/css; charset=utf-8", body: MonitorAssets.css)
            case ("assets", "monitor.js"): return HTTPResponse(contentType: "text/javascript; charset=utf-8", body: MonitorAssets.script)
            default: break
            }
        case 3:
            if segments[0] == "runs", let id = run(1), segments[2] == "events" {
                // A reconnecting browser sends `Last-Event-ID` with the page's `?after=`: the header wins.
                guard let resumed = seq(request.header("last-event-id")), let after = seq(request.parameter("after")) else {
                    return badSeq(api: false)
                }
                return runStream(id, after: resumed ?? after ?? 0, wait: request.parameter("wait") == "1")
            }
            if segments[0] == "api", segments[1] == "runs", let id = run(2) { return showJSON(id) }
        case 4:
            if segments[0] == "api", segments[1] == "runs", let id = run(2), segments[3] == "events" {
                guard let after = seq(request.parameter("after")) else { return badSeq(api: true) }
                return eventsJSON(id, after: after ?? 0)
            }
        default:
            break
        }
        return notFound("no page at this address", api: api)
    }

    private func agentsJSON() -> HTTPResponse {
        switch feed.agentsStatus() {
        case .success(let value?): return json(value)
        case .success(nil): return notFound("no agents session in this state folder", api: true)
        case .failure(let error): return failure(error.message, api: true)
        }
    }

    // MARK: - Pages

    private func runsPage(_ request: HTTPRequest) -> HTTPResponse {
        guard let filter = filter(request) else { return badFilter(api: false) }
        var query: [String] = []
        if let status = filter.status { query.append("status=\(status.rawValue)") }
        if let plan = filter.planID { query.append("plan=\(MonitorPages.percentEncode(plan))") }
        let stream = "/events" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
        let result = withStore { store throws(EngineError) -> ([MonitorPages.ListedRun], [String]) in
            let rows = try store.runRows(filter)
            var listed: [MonitorPages.ListedRun] = []
            for row in rows {
                let report = try store.report(row.runID)
                let total = report?.steps.count ?? 0
                let counts = report?.summary ?? [:]
                listed.append(MonitorPages.ListedRun(row: row, done: total - (counts[.pending] ?? 0) - (counts[.running] ?? 0),
                                                     total: total, counts: counts, live: row.isLive))
            }
            return (listed, try store.planIDs())
        }
        switch result {
        case .success(let (runs, plans)?):
            return html(MonitorPages.runsPage(runs: runs, filter: filter, planIDs: plans, stream: stream, note: nil))
        case .success(nil):
            return html(MonitorPages.runsPage(runs: [], filter: filter, planIDs: [], stream: stream,
                                              note: "No run history in \(directory.path) yet: the list fills in as runs start."))
        case .failure(let error):
            return failure(error.message, api: false)
        }
    }

    private func runPage(_ id: String) -> HTTPResponse {
        let directory = self.directory
        let result = withStore { store throws(EngineError) in try LiveRun.load(runID: id, store: store, directory: directory) }
        switch result {
        case .success(let live??):
            return html(MonitorPages.runPage(live, stream: "/runs/\(MonitorPages.percentEncode(id))/events?after=\(live.seq)"))
        case .success:
            return notFound("no run \(id) in \(directory.path)", api: false)
        case .failure(let error):
            return failure(error.message, api: false)
        }
    }

    // MARK: - JSON

    private func runsJSON(_ request: HTTPRequest) -> HTTPResponse {
        guard let filter = filter(request) else { return badFilter(api: true) }
        let result = withStore { store throws(EngineError) -> [JSONValue] in
            try store.runRows(filter).map { row throws(EngineError) in
                RunHistoryJSON.listEntry(runID: row.runID, planID: row.planID, status: row.status, live: row.isLive,
                                         startedAt: row.startedAt, finishedAt: row.finishedAt, report: try store.report(row.runID))
            }
        }
        switch result {
        case .success(let items): return json(.object(["runs": .array(items ?? [])]))
        case .failure(let error): return failure(error.message, api: true)
        }
    }

    private func showJSON(_ id: String) -> HTTPResponse {
        let directory = self.directory
        let result = withStore { store throws(EngineError) -> JSONValue? in
            guard let record = try store.run(id), let report = try store.report(id) else { return nil }
            let snapshot = "\(directory.path)/\(FailureSnapshot.relativePath(runID: id))"
            return RunHistoryJSON.show(record: record, report: report,
                                       snapshotPath: FileManager.default.fileExists(atPath: snapshot) ? snapshot : nil)
        }
        switch result {
        case .success(let value??): return json(value)
        case .success: return notFound("no run \(id) in \(directory.path)", api: true)
        case .failure(let error): return failure(error.message, api: true)
        }
    }

    private func eventsJSON(_ id: String, after: Int64) -> HTTPResponse {
        let result = withStore { store throws(EngineError) -> [JSONValue]? in
            guard try store.runRow(id) != nil else { return nil }
            return try store.events(id, after: after).map(\.json)
        }
        switch result {
        case .success(let events??): return json(.object(["events": .array(events)]))
        case .success: return notFound("no run \(id) in \(directory.path)", api: true)
        case .failure(let error): return failure(error.message, api: true)
        }
    }

    // MARK: - Helpers

    /// The list's filter from `status`, `plan` and `limit`; nil when one is invalid.
    private func filter(_ request: HTTPRequest) -> RunStore.RunFilter? {
        var filter = RunStore.RunFilter()
        if let text = request.parameter("status"), !text.isEmpty {
            guard let status = RunStatus(rawValue: text) else { return nil }
            filter.status = status
        }
        if let plan = request.parameter("plan"), !plan.isEmpty { filter.planID = plan }
        if let text = request.parameter("limit"), !text.isEmpty {
            guard let limit = Int(plainDecimal: text), (1...10_000).contains(limit) else { return nil }
            filter.limit = limit
        }
        return filter
    }

    /// An event's `seq` from `after` or `Last-Event-ID`: `.some(nil)` when absent or empty, nil
    /// when it is not a whole number from 0 to 2^63-1 in plain digits (which would otherwise mean
    /// "from the start" and send every event again; `+10` and `010` are refused, as `-1` is).
    private func seq(_ text: String?) -> Int64?? {
        guard let text, !text.isEmpty else { return .some(nil) }
        guard let value = Int64(plainDecimal: text) else { return nil }
        return .some(value)
    }

    private func badSeq(api: Bool) -> HTTPResponse {
        problem(.badRequest, "after and Last-Event-ID must be an event's seq: a whole number from 0 to \(Int64.max)", api: api)
    }

    private func badFilter(api: Bool) -> HTTPResponse {
        problem(.badRequest, "status must be one of " + RunStatus.allCases.map(\.rawValue).joined(separator: ", ")
                + "; limit a number from 1 to 10000", api: api)
    }

    /// Runs `body` with a read-only connection opened for this request (a page or JSON answer
    /// is rare next to the feed's work; an open costs well under a millisecond); `.success(nil)`
    /// when there is no `runs.db` yet.
    private func withStore<T>(_ body: (RunStore) throws(EngineError) -> T) -> Result<T?, EngineError> {
        guard FileManager.default.fileExists(atPath: directory.databasePath) else { return .success(nil) }
        do throws(EngineError) {
            let store = try RunStore(stateDirectory: directory, readOnly: true)
            return .success(try body(store))
        } catch {
            return .failure(error)
        }
    }

    /// The event stream of a stored run; 404 for any other id unless `wait` asks to follow a run
    /// that is not stored yet (a client that connects just before the run it will follow starts),
    /// so a mistyped id never holds a connection open that nothing will ever answer.
    private func runStream(_ id: String, after: Int64, wait: Bool) -> HTTPResponse {
        guard !wait else { return stream(.run(id, after: after)) }
        switch withStore({ store throws(EngineError) in try store.runRow(id) != nil }) {
        case .success(true?): return stream(.run(id, after: after))
        case .success: return notFound("no run \(id) in \(directory.path)", api: false)
        case .failure(let error): return failure(error.message, api: false)
        }
    }

    private func stream(_ topic: MonitorFeed.Topic) -> HTTPResponse {
        HTTPResponse(headers: [("Content-Type", "text/event-stream; charset=utf-8"), ("X-Accel-Buffering", "no")],
                     body: .stream(Subscription(feed: feed, topic: topic)))
    }

    private func html(_ page: String) -> HTTPResponse {
        HTTPResponse(contentType: "text/html; charset=utf-8", body: Array(page.utf8))
    }

    private func json(_ value: JSONValue) -> HTTPResponse {
        HTTPResponse(contentType: "application/json", body: Array((value.serialized(pretty: true) + "\n").utf8))
    }

    private func notFound(_ message: String, api: Bool) -> HTTPResponse { problem(.notFound, message, api: api) }

    private func failure(_ message: String, api: Bool) -> HTTPResponse { problem(.internalServerError, message, api: api) }

    /// An error answer: a page for a browser, `{"error": {"status": N, "message": "..."}}` under `/api`.
    private func problem(_ status: HTTPStatus, _ message: String, api: Bool) -> HTTPResponse {
        guard api else {
            return HTTPResponse(status: status, contentType: "text/html; charset=utf-8",
                                body: Array(MonitorPages.errorPage(status, message).utf8))
        }
        return Self.jsonProblem(status, message)
    }

    /// `{"error": {"status": N, "message": "..."}}`.
    private static func jsonProblem(_ status: HTTPStatus, _ message: String) -> HTTPResponse {
        let body: JSONValue = .object(["error": .object(["status": .int(status.code), "message": .string(message)])])
        return HTTPResponse(status: status, contentType: "application/json",
                            body: Array((body.serialized(pretty: true) + "\n").utf8))
    }

    /// The HTTP server's own refusals (``HTTPServer/Configuration/refusal``: 400 for a malformed
    /// request, 401, 405, 408, 413, 421, 431, 503, 505): JSON under `/api`, as every answer there
    /// is; plain text elsewhere and when no path could be read.
    package static func refusal(path: String?, status: HTTPStatus, message: String) -> HTTPResponse {
        guard let path, path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().first == "api" else {
            return .text(status, message)
        }
        return jsonProblem(status, message)
    }

    /// Connects an event stream to the feed.
    private struct Subscription: HTTPStreamDelegate {
        let feed: MonitorFeed
        let topic: MonitorFeed.Topic

        func streamOpened(_ stream: HTTPStream, request: HTTPRequest) {
            stream.send(Array("retry: 3000\n\n".utf8))
            feed.subscribe(stream, to: topic)
        }

        func streamClosed(_ stream: HTTPStream) { feed.unsubscribe(stream) }
    }
}
