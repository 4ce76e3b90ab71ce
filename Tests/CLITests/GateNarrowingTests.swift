import Foundation
import Testing
@testable import Orchestration

// Issue 11, item 11: a gate counts only a full default run of the required stage on the commit.

@Suite(.serialized) struct GateNarrowingTests {
    @Test(arguments: [
        ["--filter", "name=lint"], ["--tags", "style"], ["--from", "types"], ["--to", "types"], ["--lifecycle", "stable"],
    ])
    func aNarrowedRunOfTheRequiredStageDoesNotMeetTheGate(narrowing: [String]) async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("lint", tags: ["pre-commit", "style"], script: logScript("lint")),
            componentJSON("types", script: logScript("types"), deps: ["lint"]),
            componentJSON("format", lifecycle: "canary", script: logScript("format"), deps: ["types"]),
            componentJSON("deploy", type: "tool", tags: ["ci"], script: logScript("deploy")),
        ], extra: "\"gates\": {\"ci\": {\"require_passed\": [\"pre-commit\"]}}"))
        dir.put(".gitignore", ".state/\nlog\n.cli-*\n.run-*\n")
        #expect(await git(["init", "-q"], in: dir.path) == 0)
        #expect(await git(["add", "-A"], in: dir.path) == 0)
        #expect(await git(["commit", "-q", "-m", "one"], in: dir.path) == 0)

        let narrowed = await orch(["--stage", "pre-commit"] + narrowing, in: dir)
        #expect(narrowed.status == 0, "\(narrowing): \(narrowed.stderr)")
        let ran = try narrowed.json()["steps"]?.arrayValue?.filter { $0["status"]?.stringValue == "succeeded" }.count ?? 0
        #expect(ran > 0 && ran < 3, "\(narrowing) did not narrow the stage (\(ran) components ran)")

        let refused = await orch(["--stage", "ci"], in: dir)
        #expect(refused.status == 1, "\(narrowing): a narrowed pre-commit run met the gate")
        #expect(refused.stderr.contains("only a narrowed run passed there"), "\(refused.stderr)")
        #expect(refused.stderr.contains(narrowing.joined(separator: " ")), "\(refused.stderr)")
        #expect(!(dir.read("log") ?? "").contains("deploy"))

        let full = await orch(["--stage", "pre-commit"], in: dir)
        #expect(full.status == 0, "\(full.stderr)")
        #expect(try full.json().stepIDs.count == 3)
        let allowed = await orch(["--stage", "ci"], in: dir)
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect((dir.read("log") ?? "").contains("deploy"))
    }
}
