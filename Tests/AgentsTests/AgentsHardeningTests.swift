import Foundation
import Testing
@testable import Agents
import Orchestration

// Issue 11, item 8: `ci emit` writes only into a state folder that holds an agents project, and
// only for a task of that project. Item 10: text from the project plan and the agents is shown
// escaped by `agents run` and `agents status`.

@Suite("agents CLI: bad input writes nothing, plan text shown escaped", .tags(.cli), .serialized, .timeLimit(.minutes(2)))
struct AgentsHardeningTests {
    /// The number of events stored in a state folder's agents.db.
    static func eventCount(_ state: String) throws -> Int {
        let db = try SQLiteDatabase(path: state + "/agents.db", mode: .readOnly)
        return try db.query("SELECT COUNT(*) FROM events").first?.int(0) ?? -1
    }

    @Test func aStateFolderWithoutAnAgentsProjectIsRefusedAndNotCreated() async throws {
        let dir = TempDir()
        let typo = dir.path + "/typo"
        let typoResult = await runCLI(["ci", "emit", "deploy.done", "--state-dir", typo], in: dir.path)
        #expect(typoResult.status == 2, "\(typoResult.stderr)")
        #expect(typoResult.stderr.contains("holds no agents project"), "\(typoResult.stderr)")
        #expect(!FileManager.default.fileExists(atPath: typo), "ci emit created the mistyped state folder")

        let empty = dir.path + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: false)
        let emptyResult = await runCLI(["ci", "emit", "deploy.done", "--state-dir", empty], in: dir.path)
        #expect(emptyResult.status == 2, "\(emptyResult.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: empty).isEmpty, "ci emit wrote into a folder without a project")
    }

    @Test func anUnknownTaskIsExit3AndStoresNothing() async throws {
        let fixture = try await Fixture.make()
        fixture.script("done.sh", "echo '<promise>DONE</promise>'\n")
        fixture.plan(projectPlan(roles: [("dev", "done.sh")], tasks: [#"{"id": "build-api", "role": "dev"}"#],
                                 milestones: [#"{"id": "M1", "tasks": ["build-api"]}"#]))
        let run = await runCLI(["agents", "run", fixture.project, "--repo", fixture.repo, "--state-dir", fixture.state,
                                "--auto-merge", "--format", "json"], in: fixture.dir.path)
        try #require(run.status == 0, "\(run.stderr)")
        let before = try Self.eventCount(fixture.state)

        let unknown = await runCLI(["ci", "emit", "deploy.done", "--task", "build-apj", "--state-dir", fixture.state],
                                   in: fixture.dir.path)
        #expect(unknown.status == 3, "\(unknown.stderr)")
        #expect(unknown.stderr.contains("no task \"build-apj\""), "\(unknown.stderr)")
        #expect(unknown.stderr.contains("did you mean \"build-api\"?"), "\(unknown.stderr)")
        #expect(try Self.eventCount(fixture.state) == before, "the refused event was stored")

        let known = await runCLI(["ci", "emit", "deploy.done", "--task", "build-api", "--state-dir", fixture.state],
                                 in: fixture.dir.path)
        #expect(known.status == 0, "\(known.stderr)")
        #expect(try Self.eventCount(fixture.state) == before + 1)
    }

    @Test func projectTextIsShownEscapedByAgentsRunAndStatus() async throws {
        let fixture = try await Fixture.make()
        fixture.script("done.sh", "echo '<promise>DONE</promise>'\n")
        let plan = projectPlan(roles: [("dev", "done.sh")], tasks: [#"{"id": "T1", "role": "dev"}"#],
                               milestones: [#"{"id": "M1", "title": "Ship\u001b[2J\u001b]0;pwned\u0007\nFAKE PASS", "tasks": ["T1"]}"#])
        fixture.plan(plan.replacingOccurrences(of: #""project": "test""#, with: #""project": "demo\u001b[31m\nFAKE""#))
        let run = await runCLI(["agents", "run", fixture.project, "--repo", fixture.repo, "--state-dir", fixture.state,
                                "--auto-merge", "--format", "human"], in: fixture.dir.path)
        #expect(run.status == 0, "\(run.stderr)")
        let status = await runCLI(["agents", "status", "--state-dir", fixture.state, "--format", "human"], in: fixture.dir.path)
        #expect(status.status == 0, "\(status.stderr)")
        #expect(status.stdout.contains("demo\\e[31m\\nFAKE"), "\(status.stdout)")
        #expect(status.stdout.contains("Ship\\e[2J\\e]0;pwned\\u{7}\\nFAKE PASS"), "\(status.stdout)")
        for (view, text) in [("agents run", run.stdout), ("agents run progress", run.stderr), ("agents status", status.stdout)] {
            let raw = text.unicodeScalars.filter { $0 != "\n" && TerminalText.needsEscape($0) }
            #expect(raw.isEmpty, "\(view) printed raw control characters: \(text)")
        }
    }
}
