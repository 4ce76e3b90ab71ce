import Foundation
import Glibc
import Orchestration

/// A session's state as `agents status` and ``Orchestrator/status()`` report it: roles, tasks
/// (state, iteration, branch), the events awaited, milestones (SPEC §7).
///
/// It is read from `agents.db`, so it is the same whether the run is live (another process) or
/// over.
public struct ProjectStatus: Sendable {
    /// One role's line.
    public struct Role: Sendable, Hashable {
        /// The role's name.
        public var name: String
        /// `max_parallel`.
        public var maxParallel: Int
        /// The agent command and its arguments.
        public var agent: [String]
    }

    /// The session.
    public var session: SessionRecord
    /// Whether an engine is working on it right now.
    public var live: Bool
    /// The roles.
    public var roles: [Role]
    /// The tasks, in plan order.
    public var tasks: [TaskRecord]
    /// The tasks' dependencies.
    public var dependencies: [String: [String]]
    /// The milestones, in plan order.
    public var milestones: [MilestoneRecord]
    /// How many bus events the session has.
    public var eventCount: Int
    /// The latest events (at most 20), oldest first.
    public var recentEvents: [CIEvent]
    /// When each blocked task blocked (RFC 3339: the end of the iteration that exited 42), by
    /// task id.
    public var blockedSince: [String: String] = [:]

    /// Reads a session's status from a connection.
    static func read(_ db: SQLiteDatabase, session: SessionRecord, live: Bool) throws -> ProjectStatus {
        let roles = try db.query("SELECT role, max_parallel, agent FROM roles WHERE session_id = ? ORDER BY rowid", session.id).map { row in
            let agent = AgentDatabase.parse(row.string(2))
            let argv = [agent?["command"]?.stringValue ?? ""] + (agent?["args"]?.arrayValue?.compactMap(\.stringValue) ?? [])
            return Role(name: row.string(0) ?? "", maxParallel: row.int(1), agent: argv)
        }
        let tasks = try AgentDatabase.tasks(db, session: session.id)
        var dependencies: [String: [String]] = [:]
        if let plan = try? ProjectPlanLoader.load(bytes: session.plan, displayPath: "plan.json", directory: session.projectDirectory) {
            for task in plan.tasks { dependencies[task.id] = task.dependsOn }
        }
        let milestones = try AgentDatabase.milestones(db, session: session.id)
        let count = try db.query("SELECT COUNT(*) FROM events WHERE session_id = ?", session.id).first?.int(0) ?? 0
        let recent = try db.query("SELECT \(AgentDatabase.eventColumns) FROM events WHERE session_id = ? ORDER BY seq DESC LIMIT 20",
                                  session.id).map(AgentDatabase.event(from:)).reversed()
        return ProjectStatus(session: session, live: live, roles: roles, tasks: tasks, dependencies: dependencies,
                             milestones: milestones, eventCount: count, recentEvents: Array(recent),
                             blockedSince: try AgentDatabase.blockedSince(db, session: session.id))
    }

    /// Reads the status of a session from a state folder (read-only; works while a run is live).
    ///
    /// - Parameters:
    ///   - stateDirectory: The state folder's path.
    ///   - sessionID: The session, or nil for the latest (of `projectDirectory` when given).
    ///   - projectDirectory: A project folder to pick the latest session of.
    /// - Throws: ``OrchestratorError`` (`noSession`, exit 3) when there is none; ``StoreError``.
    public static func load(stateDirectory: String, sessionID: String? = nil, projectDirectory: String? = nil) throws -> ProjectStatus {
        // Read-only: a missing folder (a mistyped --state-dir) is not created.
        var info = stat()
        if stat(stateDirectory, &info) != 0 && errno == ENOENT {
            let path = URL(fileURLWithPath: stateDirectory).standardizedFileURL.path
            throw OrchestratorError(.noSession, "no agents session in \(path) (no such folder); start one with 'agents run PROJECT_DIR'")
        }
        let state = try StateDirectory(path: stateDirectory)
        guard let db = try AgentDatabase.open(state, readOnly: true) else {
            throw OrchestratorError(.noSession, "no agents session in \(state.path) (no agents.db yet); start one with 'agents run PROJECT_DIR'")
        }
        let project = projectDirectory.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        guard let session = try AgentDatabase.session(db, id: sessionID, projectDirectory: project) else {
            let what = sessionID.map { "session \($0)" } ?? project.map { "session of \($0)" } ?? "session"
            throw OrchestratorError(.noSession, "no \(what) in \(state.path)")
        }
        let live = SessionLock.isHeld(stateDirectory: state)
        return try read(db, session: session, live: live)
    }

    /// Counts of tasks per state.
    public var taskCounts: [TaskState: Int] {
        var counts: [TaskState: Int] = [:]
        for task in tasks { counts[task.state, default: 0] += 1 }
        return counts
    }

    /// Whether every task is done and every milestone delivered.
    public var succeeded: Bool {
        tasks.allSatisfy { $0.state == .done } && milestones.allSatisfy { $0.state == .merged || $0.state == .complete }
    }

    /// The status as JSON (SPEC §7): `{"project", "roles": [...], "tasks": [{"id", "role",
    /// "state", "iteration", "branch", ...}], "milestones": [{"id", "state", "tasks", "merge" |
    /// "pull_request", ...}], ...}`.
    public var json: JSONValue {
        let counts = taskCounts
        var summary: [JSONValue.Member] = [.init("total", .int(tasks.count))]
        for state in TaskState.allCases { summary.append(.init(state.rawValue, .int(counts[state] ?? 0))) }
        var awaiting: [JSONValue] = []
        for task in tasks where task.state == .blocked {
            let events: [JSONValue] = (task.awaiting ?? []).map { .string($0) }
            awaiting.append(.object([.init("task", .string(task.id)), .init("events", .array(events)),
                                     .init("since", blockedSince[task.id].map { JSONValue.string($0) } ?? .null)]))
        }
        var members: [JSONValue.Member] = []
        members.append(.init("project", .string(session.project)))
        members.append(.init("session_id", .string(session.id)))
        members.append(.init("status", .string(session.status.rawValue)))
        members.append(.init("live", .bool(live)))
        members.append(.init("engine_pid", session.enginePID.map { JSONValue.int($0) } ?? .null))
        members.append(.init("project_dir", .string(session.projectDirectory)))
        members.append(.init("repo", .string(session.repository)))
        members.append(.init("sandbox", .string(session.sandbox)))
        members.append(.init("integration_branch", .string(session.integrationBranch)))
        members.append(.init("auto_merge", session.config["auto_merge"] ?? .bool(false)))
        members.append(.init("started_at", .string(session.startedAt)))
        members.append(.init("finished_at", session.finishedAt.map { JSONValue.string($0) } ?? .null))
        members.append(.init("summary", .object(summary)))
        members.append(.init("roles", .array(roles.map(roleJSON))))
        members.append(.init("tasks", .array(tasks.map(taskJSON))))
        members.append(.init("awaiting", .array(awaiting)))
        members.append(.init("milestones", .array(milestones.map(Self.milestoneJSON))))
        let recent: [JSONValue] = recentEvents.map(\.json)
        members.append(.init("events", .object([.init("count", .int(eventCount)), .init("recent", .array(recent))])))
        return .object(members)
    }

    private func roleJSON(_ role: Role) -> JSONValue {
        let active: [JSONValue] = tasks.filter { $0.role == role.name && ($0.state == .working || $0.state == .blocked) }
            .map { .string($0.id) }
        let agent: [JSONValue] = role.agent.map { .string($0) }
        return .object([
            .init("name", .string(role.name)),
            .init("max_parallel", .int(role.maxParallel)),
            .init("agent", .array(agent)),
            .init("active", .array(active)),
        ])
    }

    private func taskJSON(_ task: TaskRecord) -> JSONValue {
        func text(_ value: String?) -> JSONValue { value.map { JSONValue.string($0) } ?? .null }
        var ci = JSONValue.null
        if let status = task.ciStatus {
            ci = .object([.init("status", .string(status)), .init("run_id", text(task.ciRunID)), .init("log", text(task.ciLog))])
        }
        let dependsOn: [JSONValue] = (dependencies[task.id] ?? []).map { .string($0) }
        var awaiting = JSONValue.null
        if let names = task.awaiting { awaiting = .array(names.map { .string($0) }) }
        var members: [JSONValue.Member] = []
        members.append(.init("id", .string(task.id)))
        members.append(.init("role", .string(task.role)))
        members.append(.init("title", .string(task.title)))
        members.append(.init("milestone", .string(task.milestone)))
        members.append(.init("state", .string(task.state.rawValue)))
        members.append(.init("phase", text(task.phase?.rawValue)))
        members.append(.init("iteration", .int(task.iteration)))
        members.append(.init("branch", .string(task.branch)))
        members.append(.init("worktree", .string(task.worktree)))
        members.append(.init("depends_on", .array(dependsOn)))
        members.append(.init("awaiting", awaiting))
        // What a blocked task waits for (its wait_for; empty: any event addressed to it) and
        // since when; null unless the task is blocked.
        var waitingFor = JSONValue.null
        if task.state == .blocked { waitingFor = .array((task.awaiting ?? []).map { .string($0) }) }
        members.append(.init("waiting_for", waitingFor))
        members.append(.init("blocked_since", task.state == .blocked ? text(blockedSince[task.id]) : .null))
        members.append(.init("ci", ci))
        members.append(.init("reason", text(task.reason)))
        members.append(.init("started_at", text(task.startedAt)))
        members.append(.init("finished_at", text(task.finishedAt)))
        return .object(members)
    }

    private static func milestoneJSON(_ milestone: MilestoneRecord) -> JSONValue {
        var members: [JSONValue.Member] = [
            .init("id", .string(milestone.id)),
            .init("title", .string(milestone.title)),
            .init("state", .string(milestone.state.rawValue)),
            .init("tasks", .array(milestone.tasks.map { .string($0) })),
        ]
        if let merge = milestone.merge { members.append(.init("merge", merge)) }
        if let pullRequest = milestone.pullRequest { members.append(.init("pull_request", pullRequest)) }
        members.append(.init("conflicts", .array(milestone.conflicts.map { .string($0) })))
        members.append(.init("reason", milestone.reason.map { .string($0) } ?? .null))
        return .object(members)
    }

    /// The status for a terminal: one line per role, task and milestone, within 100 columns.
    public func humanText(style: TextStyle) -> String {
        func mark(_ state: TaskState) -> String {
            switch state {
            case .done: style.rich ? "✅" : "PASS"
            case .failed: style.rich ? "❌" : "FAIL"
            case .stalled: style.rich ? "⚠️" : "WARN"
            case .blockedTimeout: style.rich ? "❌" : "FAIL"
            case .blocked: style.rich ? "⏱️" : "WAIT"
            case .working: style.rich ? "⏱️" : "RUN "
            case .pending: style.rich ? "⏭️" : "TODO"
            }
        }
        func milestoneMark(_ state: MilestoneState) -> String {
            switch state {
            case .merged, .complete: style.rich ? "✅" : "PASS"
            case .blocked: style.rich ? "❌" : "FAIL"
            case .pending: style.rich ? "⏱️" : "TODO"
            }
        }
        // Markers are plain text or emoji, never escape sequences: a whole line can be escaped.
        func clip(_ text: String) -> String { style.fit(TerminalText.escaped(text)) }
        var lines: [String] = []
        lines.append(clip("Project \(session.project), session \(session.id): \(session.status.rawValue)\(live ? " (live)" : "")"))
        lines.append(clip("  repo \(session.repository), integration branch \(session.integrationBranch)"))
        lines.append("Roles:")
        for role in roles {
            let active = tasks.filter { $0.role == role.name && ($0.state == .working || $0.state == .blocked) }.map(\.id)
            lines.append(clip("  \(role.name) (max_parallel \(role.maxParallel)): " + (active.isEmpty ? "idle" : active.joined(separator: ", "))))
        }
        lines.append("Tasks:")
        for task in tasks {
            var line = "  \(mark(task.state)) \(task.id) [\(task.role)] \(task.state.rawValue), iteration \(task.iteration), \(task.branch)"
            if let ci = task.ciStatus { line += ", CI \(ci)" }
            lines.append(clip(line))
            if let awaiting = task.awaiting, task.state == .blocked {
                // On a line of its own: the event names and the time must not be cut off.
                var wait = "      waiting for " + (awaiting.isEmpty ? "any event for \(task.id)" : awaiting.joined(separator: ", "))
                if let since = blockedSince[task.id] { wait += " since \(since)" }
                lines.append(clip(wait))
            }
            if let reason = task.reason, task.state != .done { lines.append(clip("      \(reason)")) }
        }
        lines.append("Milestones:")
        for milestone in milestones {
            var line = "  \(milestoneMark(milestone.state)) \(milestone.id) \(milestone.title): \(milestone.state.rawValue)"
            if let commit = milestone.merge?["commit"]?.stringValue { line += " (\(commit.prefix(10)))" }
            if let branch = milestone.pullRequest?["branch"]?.stringValue { line += ", review \(branch)" }
            lines.append(clip(line))
            if let file = milestone.pullRequest?["description_file"]?.stringValue { lines.append(clip("      \(file)")) }
            if let reason = milestone.reason { lines.append(clip("      \(reason)")) }
        }
        lines.append("Events: \(eventCount)")
        return lines.joined(separator: "\n") + "\n"
    }
}
