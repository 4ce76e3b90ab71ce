import Foundation
import Testing
@testable import Agents
import Orchestration

/// A merge conflict between two tasks blocks their milestone, names the files and loses nothing.
@Suite("Milestone merges: conflicts", .tags(.process), .timeLimit(.minutes(2)))
struct MergeConflictTests {
    @Test func conflictBlocksTheMilestoneNamesTheFilesAndKeepsEverything() async throws {
        let fixture = try await Fixture.make()
        fixture.script("writer.sh", """
            echo "written by $TASK_ID" > shared.txt
            echo "$TASK_ID" > "own-$TASK_ID.txt"
            echo '<promise>DONE</promise>'
            """)
        fixture.script("solo.sh", "echo solo > solo.txt\necho '<promise>DONE</promise>'\n")
        fixture.plan(projectPlan(roles: [("left", "writer.sh"), ("right", "writer.sh"), ("solo", "solo.sh")], tasks: [
            #"{"id": "T1", "role": "left"}"#,
            #"{"id": "T2", "role": "right"}"#,
            #"{"id": "T3", "role": "solo"}"#,
        ], milestones: [#"{"id": "M1", "tasks": ["T1", "T2"]}"#, #"{"id": "M2", "tasks": ["T3"]}"#]))
        let before = await git(["rev-parse", "main"], in: fixture.repo)
        let status = try await fixture.run(autoMerge: true)

        #expect(status.tasks.allSatisfy { $0.state == .done })
        let milestone = try #require(status.milestone("M1"))
        #expect(milestone.state == .blocked)
        #expect(milestone.conflicts == ["shared.txt"])
        #expect(milestone.reason?.contains("conflicts in shared.txt") == true, "\(milestone.reason ?? "")")
        #expect(milestone.reason?.contains("agent/right/T2") == true, "the second branch in order is the one that conflicted")
        #expect(status.session.status == .failed)

        // Nothing of M1 reached the integration branch; M2 merged on its own.
        #expect(status.milestone("M2")?.state == .merged)
        let m2Parent = await git(["rev-parse", "integration^1"], in: fixture.repo)
        #expect(m2Parent.stdout == before.stdout, "integration = base + M2's merge only")
        let onIntegration = await git(["ls-tree", "--name-only", "integration"], in: fixture.repo)
        #expect(!onIntegration.lines.contains("shared.txt") && !onIntegration.lines.contains("own-T1.txt"))
        // Both branches keep their work, and no merge is left half-done.
        for (branch, task) in [("agent/left/T1", "T1"), ("agent/right/T2", "T2")] {
            let content = await git(["show", "\(branch):shared.txt"], in: fixture.repo)
            #expect(content.stdout == "written by \(task)\n")
        }
        let mergeHead = await git(["rev-parse", "--verify", "--quiet", "MERGE_HEAD"], in: fixture.repo + "/sandbox/_integration")
        #expect(mergeHead.status != 0)
        let dirty = await git(["status", "--porcelain"], in: fixture.repo + "/sandbox/_integration")
        #expect(dirty.stdout.isEmpty)
    }
}
