import Foundation
import Orchestration

/// Aggregates task completions into milestones and delivers complete milestones.
///
/// A milestone is complete when every one of its tasks is `done` (its CI passed). Then:
/// - with `--auto-merge`, its task branches are merged into the integration branch in
///   dependency order (`git merge --no-ff`, one merge commit per task); a conflict aborts the
///   merge, leaves the integration branch as it was and every task branch untouched, and marks
///   the milestone `blocked` with the conflicting files named;
/// - without it, the same merges build a `milestone/<id>` branch from the integration branch,
///   and a pull-request description is written to
///   `<state>/agents/pull-requests/<session>/<id>.md`; the milestone is `complete`.
///
/// A task that failed, stalled or timed out blocked, or can never start, blocks its milestone
/// with the reason.
///
/// ## State
/// `idle` until ``run()``, `running` while it works through its inbox, `stopped` after. The
/// orchestrator only signals (``record(_:)``); the tracker's own loop transitions milestones,
/// one settlement at a time, so merges into the integration branch never overlap.
public actor MilestoneTracker {
    /// A change of a task that the tracker must look at.
    public struct Settlement: Sendable, Hashable {
        /// The task.
        public var task: String
        /// Its final state, or nil when it can never start.
        public var state: TaskState?
        /// Why it failed, stalled or cannot start.
        public var reason: String?

        /// Creates a settlement.
        public init(task: String, state: TaskState?, reason: String?) {
            self.task = task
            self.state = state
            self.reason = reason
        }
    }

    enum State {
        case idle
        case running
        case stopped
    }

    private let plan: ProjectPlan
    private let store: AgentStore
    private let workspace: Workspace
    private let autoMerge: Bool
    private let stateDirectory: StateDirectory
    private let session: String
    private let observers: ObserverSet
    private let inbox = Mailbox<Settlement>()
    private let processed: @Sendable () async -> Void
    private var state = State.idle
    private var milestones: [String: MilestoneRecord] = [:]
    private var tasks: [String: TaskRecord] = [:]
    private var unreachable: [String: String] = [:]

    init(plan: ProjectPlan, store: AgentStore, workspace: Workspace, autoMerge: Bool, stateDirectory: StateDirectory,
         session: String, observers: ObserverSet, processed: @escaping @Sendable () async -> Void) {
        self.plan = plan
        self.store = store
        self.workspace = workspace
        self.autoMerge = autoMerge
        self.stateDirectory = stateDirectory
        self.session = session
        self.observers = observers
        self.processed = processed
    }

    /// Signals a task's settlement; the tracker's loop handles it (and then calls the
    /// `processed` callback once).
    public nonisolated func record(_ settlement: Settlement) {
        inbox.send(settlement)
    }

    /// The tracker's loop: re-evaluates every milestone from the store (healing a crash
    /// between a task's completion and its milestone's merge), then handles settlements until
    /// cancelled.
    ///
    /// - Throws: ``OrchestratorError`` when the store or git fails.
    public func run() async throws {
        guard state == .idle else { return }
        state = .running
        defer {
            state = .stopped
            inbox.close()
        }
        try await reload()
        for milestone in plan.milestones {
            try await evaluate(milestone)
        }
        while let settlement = await inbox.next() {
            guard state == .running else { break }
            if settlement.state == nil { unreachable[settlement.task] = settlement.reason }
            try await reload()
            if let milestone = plan.milestone(of: settlement.task) {
                try await evaluate(milestone)
            }
            await processed()
        }
    }

    private func reload() async throws {
        for record in try await store.milestones() { milestones[record.id] = record }
        for record in try await store.tasks() { tasks[record.id] = record }
    }

    private func evaluate(_ spec: MilestoneSpec) async throws {
        guard var record = milestones[spec.id] else { return }
        if record.state == .merged || (record.state == .complete && !autoMerge) { return }
        let members = spec.tasks.compactMap { tasks[$0] }
        if let stuck = members.first(where: { $0.state.isUnsuccessful }) {
            record.state = .blocked
            record.reason = "task \(stuck.id) \(stuck.state.rawValue)" + (stuck.reason.map { ": \($0)" } ?? "")
            record.conflicts = []
            try await save(record)
            return
        }
        if let (task, why) = spec.tasks.lazy.compactMap({ id in self.unreachable[id].map { (id, $0) } }).first {
            record.state = .blocked
            record.reason = "task \(task) cannot start: \(why)"
            try await save(record)
            return
        }
        guard members.count == spec.tasks.count, members.allSatisfy({ $0.state == .done }) else {
            if record.state != .pending {
                record.state = .pending
                record.reason = nil
                try await save(record)
            }
            return
        }
        try await deliver(spec, record)
    }

    private func deliver(_ spec: MilestoneSpec, _ record: MilestoneRecord) async throws {
        var record = record
        let ordered = plan.graph.topologicalOrder.map { plan.tasks[$0] }.filter { spec.tasks.contains($0.id) }
        let branches = ordered.map { (task: $0.id, branch: tasks[$0.id]?.branch ?? ProjectPlan.branch(role: $0.role, task: $0.id)) }
        let integration = workspace.integrationBranch
        let title = spec.title
        let id = spec.id
        if autoMerge {
            let outcome = try await workspace.merge(branches, into: integration) { task, branch in
                "Merge \(branch) into \(integration)\n\nTask \(task) of milestone \(id): \(title) (omnibase-agents --auto-merge)."
            }
            switch outcome {
            case .merged(let commit, let merged):
                record.state = .merged
                record.reason = nil
                record.conflicts = []
                record.merge = .object([
                    "branch": .string(integration),
                    "commit": .string(commit),
                    "merged_tasks": .array(merged.map { .string($0) }),
                    "merged_at": .string(Timestamp.rfc3339(Date())),
                ])
            case .conflict(let task, let branch, let files):
                record.state = .blocked
                record.conflicts = files
                record.reason = "merging \(branch) (task \(task)) into \(integration) conflicts in \(files.joined(separator: ", ")); \(integration) is unchanged and every task branch is kept"
            }
        } else {
            let branch = "milestone/\(spec.id)"
            let outcome = try await workspace.merge(branches, into: branch, resetTo: integration) { task, taskBranch in
                "Merge \(taskBranch) into \(branch)\n\nTask \(task) of milestone \(id): \(title) (omnibase-agents)."
            }
            switch outcome {
            case .merged(let commit, _):
                let file = try await writeDescription(spec, branch: branch, base: integration, ordered: ordered)
                record.state = .complete
                record.reason = nil
                record.conflicts = []
                record.pullRequest = .object([
                    "branch": .string(branch),
                    "base": .string(integration),
                    "head": .string(commit),
                    "title": .string("\(spec.id): \(spec.title)"),
                    "description_file": .string(file),
                ])
            case .conflict(let task, let taskBranch, let files):
                record.state = .blocked
                record.conflicts = files
                record.reason = "merging \(taskBranch) (task \(task)) into \(branch) conflicts in \(files.joined(separator: ", ")); every task branch is kept"
            }
        }
        try await save(record)
    }

    private func save(_ record: MilestoneRecord) async throws {
        let previous = milestones[record.id]
        milestones[record.id] = record
        guard previous != record else { return }
        try await store.saveMilestone(record)
        if previous?.state != record.state || previous?.reason != record.reason {
            let detail: String
            switch record.state {
            case .merged: detail = "merged into \(record.merge?["branch"]?.stringValue ?? "the integration branch")"
            case .complete: detail = "ready for review: \(record.pullRequest?["branch"]?.stringValue ?? "") (\(record.pullRequest?["description_file"]?.stringValue ?? ""))"
            case .blocked: detail = record.reason ?? "blocked"
            case .pending: detail = "pending"
            }
            await observers.emit(.milestoneChanged(milestone: record.id, state: record.state, detail: detail))
        }
    }

    /// Writes the pull-request description of a milestone and returns its path.
    private func writeDescription(_ spec: MilestoneSpec, branch: String, base: String, ordered: [TaskSpec]) async throws -> String {
        var text = "# \(spec.id): \(spec.title)\n\nMerge `\(branch)` into `\(base)`.\n\n## Tasks\n\n"
        for task in ordered {
            let record = tasks[task.id]
            text += "- **\(task.id)** \(task.title) (role \(task.role), branch `\(record?.branch ?? "")`, "
            text += "\(record?.iteration ?? 0) iteration(s)"
            if let run = record?.ciRunID { text += ", CI run `\(run)` passed" }
            text += ")\n"
            if !task.prompt.isEmpty {
                text += "  " + task.prompt.split(separator: "\n").joined(separator: "\n  ") + "\n"
            }
        }
        let subjects = await workspace.subjects("\(base)..\(branch)")
        text += "\n## Commits\n\n" + subjects.map { "- \($0)" }.joined(separator: "\n") + "\n"
        text += "\nPrepared by omnibase-agents, session \(session).\n"
        let relative = "agents/pull-requests/\(session)/\(spec.id).md"
        do {
            try stateDirectory.writeFileAtomically(relative, Array(text.utf8))
        } catch {
            throw OrchestratorError(store: error)
        }
        return stateDirectory.path + "/" + relative
    }
}
