import Foundation
import Orchestration

/// What git says about the working folder, for stage labels and gates.
///
/// A stage run is labelled with `git_commit` (`git rev-parse HEAD`) and, when the tracked files
/// in the working tree equal the index (`git diff --quiet`), `git_tree` (`git write-tree`: the
/// tree the next commit will have). A gate "passed on this commit" accepts a run whose
/// `git_commit` is `HEAD`, or whose `git_tree` is `HEAD^{tree}`: so a pre-commit check made on
/// the staged files before `git commit` counts for the commit that results.
public struct GitRevision: Sendable, Hashable {
    /// `HEAD`'s commit id.
    public var commit: String
    /// The tree of the staged files, when the working tree's tracked files match them.
    public var stagedTree: String?
    /// `HEAD^{tree}`.
    public var headTree: String?

    /// Reads the revision of the git work tree at `directory`; nil when it is not one (or has
    /// no commit yet, or git is missing).
    /// - Parameter staged: also compute ``stagedTree`` (writes tree objects, as `git commit` does).
    public static func read(in directory: String, environment: [String: String], staged: Bool) async -> GitRevision? {
        guard let commit = await git(["rev-parse", "--verify", "-q", "HEAD"], in: directory, environment: environment) else {
            return nil
        }
        var revision = GitRevision(commit: commit)
        revision.headTree = await git(["rev-parse", "--verify", "-q", "HEAD^{tree}"], in: directory, environment: environment)
        if staged, await git(["diff", "--quiet"], in: directory, environment: environment) != nil {
            revision.stagedTree = await git(["write-tree"], in: directory, environment: environment)
        }
        return revision
    }

    /// Runs git and returns its trimmed output, or nil when it fails.
    static func git(_ arguments: [String], in directory: String, environment: [String: String]) async -> String? {
        var env = environment
        env["GIT_TERMINAL_PROMPT"] = "0"
        env["LC_ALL"] = "C"
        let spec = ProcessSpec(command: "git", arguments: arguments, environment: env, workingDirectory: directory,
                               stdout: .capture(limit: 1 << 20), stderr: .discard, timeout: .seconds(30))
        let outcome = await LocalProcess.run(spec)
        // Ids and `diff --quiet` print at most a line; a longer output is not an answer.
        guard outcome.succeeded, let captured = outcome.capturedStdout, !captured.isTruncated else { return nil }
        return captured.text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
