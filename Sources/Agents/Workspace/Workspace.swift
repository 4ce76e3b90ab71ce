import Foundation
import Orchestration

/// The git side of a session: the repository, the sandbox of worktrees, the integration branch.
///
/// Each task works in its own worktree, `<sandbox>/<role>/<task>`, on its own branch
/// `agent/<role>/<task>`, created from the integration branch; the branches of the task's
/// dependencies are then merged into it (in dependency order), so a task always starts from its
/// dependencies' work even when their milestone is not merged yet. Milestone merges happen in
/// one more worktree, `<sandbox>/_integration`, kept detached between merges so the user can
/// check the integration branch out elsewhere once the session is over.
///
/// Operations that write refs or a shared worktree (creating worktrees, committing, merging) run
/// one at a time (``exclusively(_:)``), since git's own lock files make concurrent ones fail
/// rather than wait. Reads (fingerprints, `rev-parse`) run freely.
public actor Workspace {
    /// The repository's top-level folder.
    public let repository: String
    /// The folder of the worktrees.
    public let sandbox: String
    /// The integration branch.
    public let integrationBranch: String
    /// The git runner.
    public let git: Git

    private var busy = false
    private var queue: [CheckedContinuation<Void, Never>] = []

    /// The worktree where milestones are merged.
    public var integrationWorktree: String { sandbox + "/_integration" }

    private init(repository: String, sandbox: String, integrationBranch: String, git: Git) {
        self.repository = repository
        self.sandbox = sandbox
        self.integrationBranch = integrationBranch
        self.git = git
    }

    /// Opens the repository: checks it is a git repository with at least one commit, and
    /// picks an identity for engine commits if the repository has none.
    ///
    /// - Parameters:
    ///   - repository: Any folder inside the repository.
    ///   - sandbox: The worktrees' folder (absolute), or nil for `<repo>/sandbox`.
    ///   - integrationBranch: The integration branch's name.
    ///   - scratchDirectory: A folder for git's output files.
    /// - Throws: ``OrchestratorError`` (`invalidConfiguration`, exit 2) when it is not usable.
    public static func open(repository: String, sandbox: String?, integrationBranch: String,
                            scratchDirectory: String) async throws -> Workspace {
        let probe = Git(scratchDirectory: scratchDirectory)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: repository, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw OrchestratorError(.invalidConfiguration, "the repository folder \(repository) does not exist")
        }
        let top = await probe.run(["rev-parse", "--show-toplevel"], in: repository)
        guard top.succeeded, !top.trimmed.isEmpty else {
            throw OrchestratorError(.invalidConfiguration,
                "\(repository) is not a git repository (\(top.firstErrorLine)); pass --repo DIR, or run 'git init' and commit once")
        }
        let root = top.trimmed
        guard await probe.run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], in: root).succeeded else {
            throw OrchestratorError(.invalidConfiguration, "the repository \(root) has no commit yet; commit once so branches have a base")
        }
        let email = await probe.run(["config", "user.email"], in: root)
        let identity: (String, String)? = email.trimmed.isEmpty ? ("omnibase-agents", "agents@omnibase.invalid") : nil
        let git = Git(scratchDirectory: scratchDirectory, identity: identity)
        let sandboxPath = sandbox ?? root + "/sandbox"
        return Workspace(repository: root, sandbox: sandboxPath, integrationBranch: integrationBranch, git: git)
    }

    // MARK: - Serialisation

    /// Runs `body` while no other exclusive operation of this workspace runs.
    func exclusively<T: Sendable>(_ body: @Sendable () async throws -> T) async rethrows -> T {
        if busy {
            await withCheckedContinuation { queue.append($0) }
        } else {
            busy = true
        }
        defer {
            if queue.isEmpty { busy = false } else { queue.removeFirst().resume() }
        }
        return try await body()
    }

    // MARK: - Setup

    /// Prepares the session: creates the integration branch from `HEAD` if it does not exist,
    /// creates the sandbox (excluded from the repository's status when it lies inside it) and the
    /// detached integration worktree.
    ///
    /// - Parameter autoMerge: Whether milestones will be merged into the integration branch,
    ///   which must then not be checked out in another worktree.
    /// - Throws: ``OrchestratorError``.
    public func setUp(autoMerge: Bool) async throws {
        let git = self.git
        let repository = self.repository
        let branch = integrationBranch
        let worktree = integrationWorktree
        let sandbox = self.sandbox
        try await exclusively {
            if !(await git.run(["rev-parse", "--verify", "--quiet", "refs/heads/\(branch)"], in: repository)).succeeded {
                let created = await git.run(["branch", branch, "HEAD"], in: repository)
                guard created.succeeded else {
                    throw OrchestratorError(.gitFailed, "cannot create the integration branch \(branch): \(created.firstErrorLine)")
                }
            }
            if autoMerge, let holder = await Self.checkedOut(branch, git: git, repository: repository), holder != worktree {
                throw OrchestratorError(.invalidConfiguration,
                    "the integration branch \(branch) is checked out at \(holder); check out another branch there (--auto-merge merges into \(branch)), or pass --integration-branch")
            }
            do {
                try FileManager.default.createDirectory(atPath: sandbox, withIntermediateDirectories: true)
            } catch {
                throw OrchestratorError(.invalidConfiguration, "cannot create the sandbox folder \(sandbox): \(error.localizedDescription)")
            }
            await Self.excludeSandbox(sandbox, git: git, repository: repository)
            await git.run(["worktree", "prune"], in: repository).ignore()
            if !FileManager.default.fileExists(atPath: worktree + "/.git") {
                let added = await git.run(["worktree", "add", "--detach", "--quiet", worktree, branch], in: repository)
                guard added.succeeded else {
                    throw OrchestratorError(.gitFailed, "cannot create the integration worktree \(worktree): \(added.firstErrorLine)")
                }
            }
        }
    }

    /// The worktree that has `branch` checked out, if any.
    private static func checkedOut(_ branch: String, git: Git, repository: String) async -> String? {
        let list = await git.run(["worktree", "list", "--porcelain"], in: repository)
        var current: String?
        for line in list.stdout.split(separator: "\n") {
            if line.hasPrefix("worktree ") { current = String(line.dropFirst("worktree ".count)) }
            if line == "branch refs/heads/\(branch)" { return current }
        }
        return nil
    }

    /// Adds the sandbox to `.git/info/exclude` when it lies inside the repository, so the
    /// worktrees do not show up as untracked files there.
    private static func excludeSandbox(_ sandbox: String, git: Git, repository: String) async {
        guard sandbox.hasPrefix(repository + "/") else { return }
        let relative = String(sandbox.dropFirst(repository.count))
        let common = await git.run(["rev-parse", "--path-format=absolute", "--git-common-dir"], in: repository)
        guard common.succeeded else { return }
        let exclude = common.trimmed + "/info/exclude"
        let existing = (try? String(contentsOfFile: exclude, encoding: .utf8)) ?? ""
        let line = relative + "/"
        guard !existing.split(separator: "\n").contains(where: { $0 == line }) else { return }
        try? FileManager.default.createDirectory(atPath: common.trimmed + "/info", withIntermediateDirectories: true)
        let text = existing + (existing.isEmpty || existing.hasSuffix("\n") ? "" : "\n") + "# omnibase-agents worktrees\n" + line + "\n"
        try? text.write(toFile: exclude, atomically: true, encoding: .utf8)
    }

    /// The branches among `names` that already exist.
    public func existingBranches(_ names: [String]) async -> [String] {
        var found: [String] = []
        for name in names where await git.run(["rev-parse", "--verify", "--quiet", "refs/heads/\(name)"], in: repository).succeeded {
            found.append(name)
        }
        return found
    }

    // MARK: - Task worktrees

    /// Creates (or, after a crash, repairs) a task's worktree and merges its dependencies'
    /// branches into its branch.
    ///
    /// - Parameters:
    ///   - task: The task (its branch and worktree path).
    ///   - dependencyBranches: The branches of its dependencies, in dependency order.
    /// - Throws: ``AgentSpawnError`` (`workspaceFailed`) naming the git failure or the
    ///   conflicting files.
    public func prepare(task: TaskRecord, dependencyBranches: [String]) async throws {
        let git = self.git
        let repository = self.repository
        let base = integrationBranch
        try await exclusively {
            let path = task.worktree
            if !FileManager.default.fileExists(atPath: path + "/.git") {
                try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                         withIntermediateDirectories: true)
                await git.run(["worktree", "prune"], in: repository).ignore()
                let exists = await git.run(["rev-parse", "--verify", "--quiet", "refs/heads/\(task.branch)"], in: repository).succeeded
                let arguments = exists ? ["worktree", "add", "--quiet", path, task.branch]
                    : ["worktree", "add", "--quiet", "-b", task.branch, path, base]
                let added = await git.run(arguments, in: repository)
                guard added.succeeded else {
                    throw AgentSpawnError(.workspaceFailed, "cannot create the worktree of task \(task.id) at \(path): \(added.firstErrorLine)")
                }
            }
            // A merge left half-done by a crash is abandoned, then redone.
            if await git.run(["rev-parse", "--verify", "--quiet", "MERGE_HEAD"], in: path).succeeded {
                await git.run(["merge", "--abort"], in: path).ignore()
            }
            for dependency in dependencyBranches {
                if await git.run(["merge-base", "--is-ancestor", dependency, "HEAD"], in: path).succeeded { continue }
                let merged = await git.run(["merge", "--no-ff", "--no-edit", "-m",
                                            "Merge dependency \(dependency) into \(task.branch)", dependency], in: path)
                if !merged.succeeded {
                    let files = await Self.conflictedFiles(git: git, in: path)
                    await git.run(["merge", "--abort"], in: path).ignore()
                    let what = files.isEmpty ? merged.firstErrorLine : "conflicts in \(files.joined(separator: ", "))"
                    throw AgentSpawnError(.workspaceFailed,
                        "task \(task.id) cannot start from its dependencies: merging \(dependency) into \(task.branch): \(what)")
                }
            }
        }
    }

    /// A fingerprint of everything in a worktree: `HEAD` and the tree of all its files (tracked
    /// and untracked, not ignored), computed with a private index so the worktree's own index is
    /// untouched. Two equal fingerprints mean nothing changed.
    ///
    /// - Returns: The fingerprint, or nil when git failed.
    public func fingerprint(_ worktree: String) async -> String? {
        let index = git.scratchDirectory + "/fingerprint-\(UUID().uuidString).index"
        defer { unlink(index) }
        let environment = ["GIT_INDEX_FILE": index]
        let head = await git.run(["rev-parse", "--verify", "--quiet", "HEAD"], in: worktree)
        guard await git.run(["add", "-A", "."], in: worktree, environment: environment).succeeded else { return nil }
        let tree = await git.run(["write-tree"], in: worktree, environment: environment)
        guard tree.succeeded else { return nil }
        return head.trimmed + ":" + tree.trimmed
    }

    /// Where a worktree's `HEAD` is when it is not on `branch`: `on branch X`, or `detached at
    /// <commit>`; nil when it is on `branch` (or git cannot tell). An agent that switched branch
    /// or detached `HEAD` put its work where the task's branch, and so the merge, never sees it.
    public func departure(of worktree: String, from branch: String) async -> String? {
        let symbolic = await git.run(["symbolic-ref", "--quiet", "HEAD"], in: worktree)
        if symbolic.succeeded {
            let ref = symbolic.trimmed
            return ref == "refs/heads/\(branch)" ? nil : "on branch \(ref.replacingOccurrences(of: "refs/heads/", with: ""))"
        }
        guard symbolic.status == 1 else { return nil }
        let head = await git.run(["rev-parse", "--short", "HEAD"], in: worktree)
        return "detached at \(head.succeeded ? head.trimmed : "an unknown commit")"
    }

    /// Commits everything in a worktree (`git add -A`), if anything changed.
    ///
    /// - Returns: The branch's tip after the commit (or as it was, when nothing changed).
    /// - Throws: ``OrchestratorError`` (`gitFailed`).
    public func commitAll(_ worktree: String, message: String) async throws -> String {
        let git = self.git
        return try await exclusively {
            let added = await git.run(["add", "-A", "."], in: worktree)
            guard added.succeeded else { throw OrchestratorError(.gitFailed, "git add in \(worktree): \(added.firstErrorLine)") }
            let staged = await git.run(["diff", "--cached", "--quiet"], in: worktree)
            if staged.status == 1 {
                let committed = await git.run(["commit", "--quiet", "--no-verify", "-m", message], in: worktree)
                guard committed.succeeded else {
                    throw OrchestratorError(.gitFailed, "git commit in \(worktree): \(committed.firstErrorLine)")
                }
            }
            return await git.run(["rev-parse", "HEAD"], in: worktree).trimmed
        }
    }

    /// The commit a ref points at.
    public func commit(of ref: String) async -> String? {
        let result = await git.run(["rev-parse", "--verify", "--quiet", "\(ref)^{commit}"], in: repository)
        return result.succeeded ? result.trimmed : nil
    }

    /// The subjects of the commits in `range` (`git log --format=%s`), newest first.
    public func subjects(_ range: String, firstParent: Bool = false) async -> [String] {
        var arguments = ["log", "--format=%s"]
        if firstParent { arguments.append("--first-parent") }
        arguments.append(range)
        return await git.run(arguments, in: repository).stdout.split(separator: "\n").map(String.init)
    }

    private static func conflictedFiles(git: Git, in worktree: String) async -> [String] {
        await git.run(["diff", "--name-only", "--diff-filter=U"], in: worktree).stdout
            .split(separator: "\n").map(String.init).sorted()
    }

    // MARK: - Milestones

    /// Merges task branches, in order, into a target branch in the integration worktree with
    /// `git merge --no-ff`.
    ///
    /// Branches already contained in the target are skipped (so a merge interrupted by a crash
    /// continues where it stopped). On a conflict the merge is aborted and the target is reset to
    /// where it was before this call: the milestone is merged whole or not at all, and no task
    /// branch is touched.
    ///
    /// - Parameters:
    ///   - branches: `(task, branch)` pairs in dependency order.
    ///   - target: The branch to merge into.
    ///   - resetTo: When given, the target is first (re)created at this commit-ish
    ///     (`checkout -B`), as for a `milestone/<id>` branch.
    ///   - message: The merge commit's message for a branch.
    /// - Returns: The outcome.
    /// - Throws: ``OrchestratorError`` (`gitFailed`) when git fails other than by a conflict.
    public func merge(_ branches: [(task: String, branch: String)], into target: String, resetTo: String? = nil,
                      message: @escaping @Sendable (String, String) -> String) async throws -> MergeOutcome {
        let git = self.git
        let worktree = integrationWorktree
        let pairs = branches.map { TaskBranch(task: $0.task, branch: $0.branch) }
        return try await exclusively {
            if await git.run(["rev-parse", "--verify", "--quiet", "MERGE_HEAD"], in: worktree).succeeded {
                await git.run(["merge", "--abort"], in: worktree).ignore()
            }
            let checkout = resetTo.map { ["checkout", "--quiet", "-B", target, $0] } ?? ["checkout", "--quiet", target]
            let switched = await git.run(checkout, in: worktree)
            guard switched.succeeded else {
                throw OrchestratorError(.gitFailed, "cannot check out \(target) in \(worktree): \(switched.firstErrorLine)")
            }
            let before = await git.run(["rev-parse", "HEAD"], in: worktree).trimmed
            var merged: [String] = []
            for pair in pairs {
                if await git.run(["merge-base", "--is-ancestor", pair.branch, "HEAD"], in: worktree).succeeded {
                    merged.append(pair.task)
                    continue
                }
                let result = await git.run(["merge", "--no-ff", "--no-edit", "-m", message(pair.task, pair.branch), pair.branch],
                                           in: worktree)
                if !result.succeeded {
                    let files = await Self.conflictedFiles(git: git, in: worktree)
                    await git.run(["merge", "--abort"], in: worktree).ignore()
                    await git.run(["reset", "--quiet", "--hard", before], in: worktree).ignore()
                    await git.run(["checkout", "--quiet", "--detach"], in: worktree).ignore()
                    if files.isEmpty {
                        throw OrchestratorError(.gitFailed, "git merge \(pair.branch) into \(target): \(result.firstErrorLine)")
                    }
                    return .conflict(task: pair.task, branch: pair.branch, files: files)
                }
                merged.append(pair.task)
            }
            let head = await git.run(["rev-parse", "HEAD"], in: worktree).trimmed
            await git.run(["checkout", "--quiet", "--detach"], in: worktree).ignore()
            return .merged(commit: head, mergedTasks: merged)
        }
    }

    private struct TaskBranch: Sendable {
        var task: String
        var branch: String
    }
}
