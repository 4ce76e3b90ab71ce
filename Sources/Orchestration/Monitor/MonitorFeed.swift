import Orchestration
import Presentation
import MonitorHTTP
import COmnibaseShims
import Dispatch
import Foundation
import Glibc
import Synchronization

/// Feeds the monitor's event streams from the state folder, on a thread of its own with its own
/// read-only connection.
///
/// It never scans the database: it wakes when a file of the state folder changes (inotify on
/// the folder, where `runs.db-wal` and `agents.db-wal` grow with every commit; a 1 s tick as a
/// fallback and for growing log files), asks SQLite whether another connection committed
/// (`PRAGMA data_version`), and then reads, for each followed run, the events after the last
/// one it saw (the `events` primary key: `run_id = ? AND seq > ?`). The new events go to every
/// follower of the run; the run's page is rendered once for all of them, at most every 250 ms
/// at most 5% of the time (a page that takes 50 ms waits a second) and once a second per MB of
/// page (a 2,000-step run's page is about 1.5 MB), so twenty followers cost
/// what one does; a live run is redrawn each second for its growing timeline. Readers never
/// block the engine: SQLite WAL readers and the writer do not wait for each other.
package final class MonitorFeed: Sendable {
    /// What a stream follows.
    package enum Topic: Sendable, Hashable {
        /// The runs list, narrowed by a filter.
        case runs(RunStore.RunFilter)
        /// One run, from the event after `after`.
        case run(String, after: Int64)
        /// The agents session.
        case agents
    }

    enum Message: Sendable {
        case subscribe(HTTPStream, Topic)
        case unsubscribe(HTTPStream)
        /// The render thread finished a run's page: its HTML, the milliseconds it took, and the
        /// run's last event and status when the page's data was taken.
        case rendered(runID: String, html: String, cost: Int64, seq: Int64, status: RunStatus)
        case stop
    }

    /// The state folder.
    package let directory: StateDirectory
    let agentsStatus: @Sendable () -> Result<JSONValue?, MonitorError>
    private let messages = Mutex<[Message]>([])
    private let wakeFD: Int32
    private let stopped = DispatchSemaphore(value: 0)
    private let renderStopped = DispatchSemaphore(value: 0)
    /// Pages for the render thread.
    let renderJobs = RenderQueue()
    private let followerCount = Atomic<Int>(0)
    /// Renderings of run pages, and the milliseconds they took in all.
    let renderCount = Atomic<Int>(0)
    let renderMillis = Atomic<Int>(0)
    /// Looks at the store after a change, and events read.
    let refreshCount = Atomic<Int>(0)
    let eventCount = Atomic<Int>(0)

    /// Creates a feed (``start()`` starts its thread).
    /// - Parameter agentsStatus: Reads the agents session as `agents status --format json`
    ///   shows it (nil when there is none).
    package init(directory: StateDirectory, agentsStatus: @escaping @Sendable () -> Result<JSONValue?, MonitorError>) {
        self.directory = directory
        self.agentsStatus = agentsStatus
        wakeFD = omni_wake_fd()
    }

    /// How many streams follow something now.
    package var followers: Int { followerCount.load(ordering: .relaxed) }

    /// The feed's work so far: renderings (count and milliseconds), looks at the store, events read.
    package var statistics: [String: Int] {
        ["renders": renderCount.load(ordering: .relaxed), "render_ms": renderMillis.load(ordering: .relaxed),
         "refreshes": refreshCount.load(ordering: .relaxed), "events": eventCount.load(ordering: .relaxed)]
    }

    /// Starts the feed's thread and its render thread.
    package func start() {
        startThread(named: "omnibase-render") { [self] in
            // Renders pages off the feed's thread, so events keep flowing while a large page is
            // built; the result goes back to the feed, which sends it.
            while let job = renderJobs.next() {
                let started = FeedLoop.millis()
                let html = MonitorPages.runContent(job.run)
                post(.rendered(runID: job.runID, html: html, cost: FeedLoop.millis() - started, seq: job.run.seq,
                               status: job.run.row.status))
            }
            renderStopped.signal()
        }
        startThread(named: "omnibase-feed") { [self] in
            var loop = FeedLoop(feed: self)
            loop.run()
            renderJobs.finish()
            renderStopped.wait()
            close(wakeFD)
            stopped.signal()
        }
    }

    /// Stops the thread and waits for it.
    package func stop() {
        post(.stop)
        stopped.wait()
    }

    /// Sends a stream what it follows from now on (the catch-up first).
    package func subscribe(_ stream: HTTPStream, to topic: Topic) {
        followerCount.add(1, ordering: .relaxed)
        post(.subscribe(stream, topic))
    }

    /// Forgets a stream.
    package func unsubscribe(_ stream: HTTPStream) {
        followerCount.subtract(1, ordering: .relaxed)
        post(.unsubscribe(stream))
    }

    fileprivate func post(_ message: Message) {
        messages.withLock { $0.append(message) }
        omni_wake(wakeFD)
    }

    fileprivate func takeMessages() -> [Message] {
        messages.withLock { messages in
            defer { messages.removeAll() }
            return messages
        }
    }

    fileprivate var wakeDescriptor: Int32 { wakeFD }
}

/// A run's page to render: a copy of its data (a value), so the feed goes on changing its own.
struct RenderJob: Sendable {
    var runID: String
    var run: LiveRun
}

/// The render thread's queue: jobs in order, a wait that blocks the render thread only.
final class RenderQueue: Sendable {
    private let state = Mutex<(jobs: [RenderJob], finished: Bool)>(([], false))
    private let available = DispatchSemaphore(value: 0)

    func add(_ job: RenderJob) {
        state.withLock { $0.jobs.append(job) }
        available.signal()
    }

    /// Ends ``next()`` once the queued jobs are done.
    func finish() {
        state.withLock { $0.finished = true }
        available.signal()
    }

    /// The next job, waiting for one; nil once finished.
    func next() -> RenderJob? {
        while true {
            available.wait()
            let (job, finished) = state.withLock { state -> (RenderJob?, Bool) in
                state.jobs.isEmpty ? (nil, state.finished) : (state.jobs.removeFirst(), false)
            }
            if let job { return job }
            if finished { return nil }
        }
    }
}

/// One Server-Sent Events message.
enum ServerSentEvent {
    /// `id:` (when given), `event:`, one `data:` line per line of `data`, blank line. Works on
    /// the UTF-8 bytes (a run page is megabytes; carriage returns are dropped).
    static func message(event: String, id: Int64? = nil, data: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(data.utf8.count + data.utf8.count / 40 + 64)
        if let id { bytes += Array("id: \(id)\n".utf8) }
        bytes += Array("event: \(event)\ndata: ".utf8)
        let separator = Array("\ndata: ".utf8)
        for byte in data.utf8 {
            switch byte {
            case 10: bytes += separator
            case 13: continue
            default: bytes.append(byte)
            }
        }
        bytes += [10, 10]
        return bytes
    }
}

/// The feed thread's state, owned by that thread alone.
private struct FeedLoop {
    struct RunFollower {
        var stream: HTTPStream
        var runID: String
        var sentSeq: Int64
        var ended = false
        /// Not caught up yet (its run was not stored when it came): new events are not sent to
        /// it until ``catchUp(_:)`` has sent it everything before them.
        var waiting = true
    }

    struct Follower {
        var stream: HTTPStream
        var topic: MonitorFeed.Topic
        var lastHTML = ""
    }

    /// A run's progress for the list: folded while it can change, counts only once final.
    enum Progress {
        case folding(RunReportBuilder, seq: Int64)
        case final(total: Int, counts: [StepStatus: Int], seq: Int64)
    }

    /// A followed run's rendering.
    struct Rendering {
        var html = ""
        /// ``html`` as a `render` message, built once for every follower.
        var message: [UInt8] = []
        var dirty = true
        var lastAt: Int64 = 0
        var cost: Int64 = 0
        /// A job for this run is with the render thread.
        var inFlight = false
    }

    let feed: MonitorFeed
    let directory: StateDirectory
    var store: RunStore?
    var dataVersion: Int64 = -1
    var runFollowers: [UInt64: RunFollower] = [:]
    var followers: [UInt64: Follower] = [:]
    var runs: [String: LiveRun] = [:]
    var renderings: [String: Rendering] = [:]
    var progress: [String: Progress] = [:]
    var agentsStamp = ""
    var running = true
    var inotifyFD: Int32 = -1
    /// The state folder is watched (it may not exist yet: `serve` does not create it).
    var watching = false
    var changePending = true
    var lastCheck: Int64 = 0
    var lastTick: Int64 = 0
    /// The runs list changed since its followers were last sent it.
    var listDirty = false
    /// The engines of the runs the list last showed live: when one of them dies, nothing in the
    /// store changes, so the tick looks at them (``listedEnginesGone()``).
    var listedEngines: [String: EngineIdentity] = [:]
    var lastListAt: Int64 = 0

    /// The least time between two looks at the database (changes in between are taken together).
    static let minimumSpacing: Int64 = 20
    /// The least time between two renderings of a run's page.
    static let minimumRenderInterval: Int64 = 250
    /// The least time between two renderings of the runs list.
    static let listInterval: Int64 = 500

    init(feed: MonitorFeed) {
        self.feed = feed
        directory = feed.directory
    }

    mutating func run() {
        inotifyFD = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        watchFolder()
        defer { if inotifyFD >= 0 { close(inotifyFD) } }
        while running {
            let now = Self.millis()
            var fds = [pollfd(fd: feed.wakeDescriptor, events: Int16(POLLIN), revents: 0)]
            // While a change waits for its turn, the folder's notifications need not wake us.
            if inotifyFD >= 0 && !changePending { fds.append(pollfd(fd: inotifyFD, events: Int16(POLLIN), revents: 0)) }
            var wakeAt = lastTick + 1000
            if changePending { wakeAt = min(wakeAt, lastCheck + Self.minimumSpacing) }
            for (runID, rendering) in renderings where rendering.dirty && !rendering.inFlight && runs[runID] != nil {
                wakeAt = min(wakeAt, rendering.lastAt + renderInterval(rendering))
            }
            if listDirty { wakeAt = min(wakeAt, lastListAt + Self.listInterval) }
            _ = poll(&fds, nfds_t(fds.count), Int32(clamping: max(0, wakeAt - now)))
            if fds[0].revents != 0 {
                omni_wake_consume(feed.wakeDescriptor)
            }
            if fds.count > 1, fds[1].revents != 0 {
                drainNotifications()
                changePending = true
            }
            for message in feed.takeMessages() { handle(message) }
            guard running else { break }
            let after = Self.millis()
            if after - lastTick >= 1000 {
                lastTick = after
                changePending = true
                if !watching { watchFolder() }
                refreshTails()
                if listedEnginesGone() { listDirty = true }
                agentsChanged(force: false)
            }
            if changePending && after - lastCheck >= Self.minimumSpacing {
                changePending = false
                lastCheck = after
                refresh()
                agentsChanged(force: false)
            }
            renderDue(now: Self.millis())
        }
        for follower in runFollowers.values { follower.stream.finish() }
        for follower in followers.values { follower.stream.finish() }
    }

    /// Watches the state folder for changes, once it exists (the 1 s tick tries again until then).
    mutating func watchFolder() {
        guard inotifyFD >= 0 else { return }
        watching = inotify_add_watch(inotifyFD, directory.path, UInt32(IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE)) >= 0
    }

    static func millis() -> Int64 {
        Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000)
    }

    func renderInterval(_ rendering: Rendering) -> Int64 {
        // A large page is also costly for every browser that receives it: a second per MB.
        max(Self.minimumRenderInterval, rendering.cost * 20, Int64(rendering.html.utf8.count >> 20) * 1000)
    }

    mutating func drainNotifications() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while buffer.withUnsafeMutableBytes({ read(inotifyFD, $0.baseAddress, $0.count) }) > 0 {}
    }

    // MARK: Subscriptions

    mutating func handle(_ message: MonitorFeed.Message) {
        switch message {
        case .stop:
            running = false
        case .rendered(let runID, let html, let cost, let seq, let status):
            finishRendering(runID, html: html, cost: cost, seq: seq, status: status)
        case .unsubscribe(let stream):
            if let follower = runFollowers.removeValue(forKey: stream.id),
               !runFollowers.values.contains(where: { $0.runID == follower.runID }) {
                runs[follower.runID] = nil
                renderings[follower.runID] = nil
            }
            followers[stream.id] = nil
        case .subscribe(let stream, .run(let runID, let after)):
            var follower = RunFollower(stream: stream, runID: runID, sentSeq: after)
            catchUp(&follower)
            runFollowers[stream.id] = follower
        case .subscribe(let stream, let topic):
            var follower = Follower(stream: stream, topic: topic)
            send(&follower)
            followers[stream.id] = follower
        }
    }

    /// Brings a new follower of a run up to date: the events it has not seen (read from the
    /// store, after its `seq`), the current page when it is behind, and `end` when the run is over.
    ///
    /// A follower of a run that is not stored yet (one that asked with `wait=1`: a client may
    /// connect just before the run it will follow starts) waits for it; each change of the store
    /// looks for it again.
    mutating func catchUp(_ follower: inout RunFollower) {
        guard let store = openStore() else { return }
        do {
            if runs[follower.runID] == nil {
                guard let live = try LiveRun.load(runID: follower.runID, store: store, directory: directory) else { return }
                runs[follower.runID] = live
                renderings[follower.runID] = Rendering()
            } else {
                try update(follower.runID, store: store)
            }
            guard let live = runs[follower.runID] else { return }
            follower.waiting = false
            if follower.sentSeq < live.seq {
                let missed = try store.events(follower.runID, after: follower.sentSeq).filter { $0.seq <= live.seq }
                var bytes: [UInt8] = []
                for event in missed { bytes += Self.eventMessage(event) }
                // The last rendering, even if events came since (its followers get a new one
                // when its turn comes): followers that join together cost one rendering.
                _ = html(follower.runID, allowStale: true)
                bytes += renderings[follower.runID]?.message ?? []
                follower.stream.send(bytes)
                follower.sentSeq = live.seq
            }
            if live.row.status.isFinal {
                // A finished run sends nothing more: the stream ends (the page's script closes
                // its side on `end`, so the browser does not reconnect).
                follower.stream.send(ServerSentEvent.message(event: "end", data: live.row.status.rawValue))
                follower.stream.finish()
                follower.ended = true
            }
        } catch {
            follower.stream.send(ServerSentEvent.message(event: "error", data: error.message))
        }
    }

    /// A run's page content, rendered now if it changed (with `allowStale`, only if it was
    /// never rendered).
    mutating func html(_ runID: String, allowStale: Bool = false) -> String {
        guard var live = runs[runID] else { return "" }
        var rendering = renderings[runID] ?? Rendering()
        if (rendering.dirty && !allowStale && !rendering.inFlight) || rendering.html.isEmpty {
            let started = Self.millis()
            if let store = openStore() {
                live.prepare(store: store, directory: directory)
                runs[runID] = live
            }
            rendering.html = MonitorPages.runContent(live)
            rendering.message = ServerSentEvent.message(event: "render", data: rendering.html)
            rendering.cost = Self.millis() - started
            feed.renderCount.add(1, ordering: .relaxed)
            feed.renderMillis.add(Int(rendering.cost), ordering: .relaxed)
            rendering.lastAt = Self.millis()
            rendering.dirty = false
        }
        renderings[runID] = rendering
        return rendering.html
    }

    static func eventMessage(_ event: RunEvent) -> [UInt8] {
        ServerSentEvent.message(event: "event", id: event.seq, data: event.json.serialized())
    }

    mutating func openStore() -> RunStore? {
        if let store { return store }
        guard FileManager.default.fileExists(atPath: directory.databasePath) else { return nil }
        store = try? RunStore(stateDirectory: directory, readOnly: true)
        return store
    }

    // MARK: Changes

    /// Reads what changed since the last look, when another connection committed.
    mutating func refresh() {
        guard !runFollowers.isEmpty || followers.values.contains(where: { if case .runs = $0.topic { true } else { false } }),
              let store = openStore() else { return }
        guard let version = try? store.dataVersion(), version != dataVersion else { return }
        dataVersion = version
        feed.refreshCount.add(1, ordering: .relaxed)
        for runID in Set(runFollowers.values.map(\.runID)) {
            if runFollowers.values.contains(where: { $0.runID == runID && $0.waiting }) {
                // Followers waiting for a run that was not stored yet.
                for id in Array(runFollowers.keys) where runFollowers[id]!.runID == runID && runFollowers[id]!.waiting {
                    var follower = runFollowers[id]!
                    catchUp(&follower)
                    runFollowers[id] = follower
                }
            } else {
                try? update(runID, store: store)
            }
        }
        listDirty = true
    }

    /// Applies a followed run's new events and sends them to its followers.
    mutating func update(_ runID: String, store: RunStore) throws(EngineError) {
        guard var live = runs[runID] else { return }
        let events = try live.update(store: store)
        runs[runID] = live
        feed.eventCount.add(events.count, ordering: .relaxed)
        guard !events.isEmpty || live.row.status.isFinal else { return }
        // Rendered again when its turn comes; the `end` for followers of a finished run follows
        // that last rendering.
        if !events.isEmpty || runFollowers.values.contains(where: { $0.runID == runID && !$0.ended }) {
            renderings[runID, default: Rendering()].dirty = true
        }
        guard !events.isEmpty else { return }
        // Each event's message is built once for all followers.
        var bytes: [UInt8] = []
        var offsets: [Int] = []
        for event in events {
            offsets.append(bytes.count)
            bytes += Self.eventMessage(event)
        }
        for id in Array(runFollowers.keys) where runFollowers[id]!.runID == runID && !runFollowers[id]!.waiting {
            var follower = runFollowers[id]!
            guard let first = events.firstIndex(where: { $0.seq > follower.sentSeq }) else { continue }
            follower.stream.send(first == 0 ? bytes : Array(bytes[offsets[first]...]))
            follower.sentSeq = events.last!.seq
            runFollowers[id] = follower
        }
    }

    /// Re-reads running steps' log tails that grew, and moves live runs' clocks (once a
    /// second): their timeline grows with the time even when no event comes.
    mutating func refreshTails() {
        for runID in Array(runs.keys) {
            guard var live = runs[runID] else { continue }
            if live.refreshRunningTails(directory: directory) || live.page.liveUntil != nil {
                live.markTime()
                renderings[runID, default: Rendering()].dirty = true
            }
            runs[runID] = live
        }
    }

    /// Sends dirty run pages whose turn has come, and `end` to followers of finished runs; the
    /// runs list to its followers (rendered once per filter) when it changed.
    mutating func renderDue(now: Int64) {
        if listDirty && now - lastListAt >= Self.listInterval {
            listDirty = false
            lastListAt = now
            var rendered: [RunStore.RunFilter: String] = [:]
            for id in Array(followers.keys) {
                guard var follower = followers[id], case .runs(let filter) = follower.topic else { continue }
                if rendered[filter] == nil, let rows = listedRuns(filter) { rendered[filter] = MonitorPages.runRows(rows) }
                guard let html = rendered[filter], html != follower.lastHTML else { continue }
                follower.lastHTML = html
                follower.stream.send(ServerSentEvent.message(event: "runs", data: html))
                followers[id] = follower
            }
        }
        for runID in Array(renderings.keys) {
            guard var rendering = renderings[runID], rendering.dirty, !rendering.inFlight,
                  now - rendering.lastAt >= renderInterval(rendering), var live = runs[runID] else { continue }
            // The attempts and tails are read here (the feed's connection); the HTML is built on
            // the render thread from a copy.
            if let store = openStore() {
                live.prepare(store: store, directory: directory)
                runs[runID] = live
            }
            rendering.dirty = false
            rendering.inFlight = true
            rendering.lastAt = now
            renderings[runID] = rendering
            feed.renderJobs.add(RenderJob(runID: runID, run: live))
        }
    }

    /// A page came back from the render thread: its followers get it, and `end` after the
    /// rendering of a finished run.
    mutating func finishRendering(_ runID: String, html: String, cost: Int64, seq: Int64, status: RunStatus) {
        feed.renderCount.add(1, ordering: .relaxed)
        feed.renderMillis.add(Int(cost), ordering: .relaxed)
        guard var rendering = renderings[runID], let live = runs[runID] else { return }
        rendering.inFlight = false
        rendering.html = html
        rendering.message = ServerSentEvent.message(event: "render", data: html)
        rendering.cost = cost
        // Older than what the feed holds now (a page rendered meanwhile for a new follower, or
        // events that came during the rendering): another rendering follows.
        if live.seq != seq || live.row.status != status { rendering.dirty = true }
        renderings[runID] = rendering
        let message = rendering.message
        for id in Array(runFollowers.keys) where runFollowers[id]!.runID == runID && !runFollowers[id]!.waiting {
            guard !runFollowers[id]!.ended else { continue }
            runFollowers[id]!.stream.send(message)
            if status.isFinal {
                runFollowers[id]!.stream.send(ServerSentEvent.message(event: "end", data: status.rawValue))
                runFollowers[id]!.stream.finish()
                runFollowers[id]!.ended = true
            }
        }
    }

    /// Sends a list or agents follower its region when it changed.
    mutating func send(_ follower: inout Follower) {
        let html: String
        let event: String
        switch follower.topic {
        case .runs(let filter):
            guard let rows = listedRuns(filter) else { return }
            html = MonitorPages.runRows(rows)
            event = "runs"
        case .agents:
            html = MonitorPages.agentsContent(feed.agentsStatus())
            event = "agents"
        case .run:
            return
        }
        guard html != follower.lastHTML else { return }
        follower.lastHTML = html
        follower.stream.send(ServerSentEvent.message(event: event, data: html))
    }

    /// The list's runs with their progress, each run's events folded once (then only new ones).
    mutating func listedRuns(_ filter: RunStore.RunFilter) -> [MonitorPages.ListedRun]? {
        // No history yet (no folder, no runs.db): no runs, as `runs list` says.
        guard FileManager.default.fileExists(atPath: directory.databasePath) else { return [] }
        guard let store = openStore(), let rows = try? store.runRows(filter) else { return nil }
        return rows.map { row in
            let (total, counts) = progress(for: row, store: store)
            let done = total - (counts[.pending] ?? 0) - (counts[.running] ?? 0)
            let live = row.isLive
            if live, let engine = row.engine { listedEngines[row.runID] = engine }
            return MonitorPages.ListedRun(row: row, done: done, total: total, counts: counts, live: live)
        }
    }

    /// Whether the engine of a run the list showed live has died since (its row then says
    /// `engine gone: resume RUN_ID`); forgets the dead ones. Looked at once a second while the list
    /// has followers (a `/proc` read per live run).
    mutating func listedEnginesGone() -> Bool {
        guard followers.values.contains(where: { if case .runs = $0.topic { true } else { false } }) else {
            listedEngines.removeAll()
            return false
        }
        let dead = listedEngines.filter { !$0.value.isAlive }.map(\.key)
        for runID in dead { listedEngines[runID] = nil }
        return !dead.isEmpty
    }

    mutating func progress(for row: RunStore.RunRow, store: RunStore) -> (Int, [StepStatus: Int]) {
        if let live = runs[row.runID], live.seq >= row.lastSeq {
            return (live.page.report.steps.count, live.page.report.summary)
        }
        var builder: RunReportBuilder
        var seq: Int64
        switch progress[row.runID] {
        case .final(let total, let counts, let known)? where known >= row.lastSeq:
            return (total, counts)
        case .folding(let folded, let known)?:
            builder = folded
            seq = known
        default:
            let steps = (try? store.steps(row.runID).map(\.id)) ?? []
            builder = RunReportBuilder(runID: row.runID, planID: row.planID, stepIDs: steps, traceID: "")
            seq = 0
        }
        if row.lastSeq > seq, let events = try? store.events(row.runID, after: seq) {
            for event in events { builder.apply(event) }
            seq = events.last?.seq ?? seq
        }
        let report = builder.current
        progress[row.runID] = row.status.isFinal ? .final(total: report.steps.count, counts: report.summary, seq: seq)
            : .folding(builder, seq: seq)
        return (report.steps.count, report.summary)
    }

    /// Sends the agents page to its followers when `agents.db` changed (or `force`).
    mutating func agentsChanged(force: Bool) {
        guard followers.values.contains(where: { $0.topic == .agents }) else { return }
        var stamp = ""
        for name in ["agents.db", "agents.db-wal"] {
            var info = stat()
            if stat(directory.path + "/" + name, &info) == 0 {
                stamp += "\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec);"
            }
        }
        guard force || stamp != agentsStamp else { return }
        agentsStamp = stamp
        for id in Array(followers.keys) where followers[id]!.topic == .agents {
            var follower = followers[id]!
            send(&follower)
            followers[id] = follower
        }
    }
}
