import Foundation
import Testing
@testable import Agents
import Orchestration

/// Whether `sbatch` is on the PATH; with `CI` set the Slurm tests run anyway (and fail without it).
private let slurmEnabled: Bool = {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    let hasSbatch = path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/sbatch") }
    return hasSbatch || ProcessInfo.processInfo.environment["CI"] != nil
}()

/// A role with `"executor": "slurm"` runs its agent iterations as Slurm jobs; the check, the
/// verdict and the merge stay in the engine.
@Suite("Agents: a role's iterations as Slurm jobs", .tags(.process), .serialized, .enabled(if: slurmEnabled),
       .timeLimit(.minutes(3)))
struct SlurmRoleTests {
    @Test func eachIterationIsAJobInTheTasksWorktree() async throws {
        let fixture = try await Fixture.make()
        fixture.script("agent.sh", """
            echo "$SLURM_JOB_ID" >> "$WORKSPACE/jobs.txt"
            if [ "$ITERATION" -ge 2 ]; then echo finished > DONE; fi
            """)
        fixture.plan("""
            {"project": "test",
             "roles": {"dev": {"agent": {"command": "sh", "args": ["${PROJECT_DIR}/agent.sh"]}, "executor": "slurm",
                               "slurm": {"cpus": 1, "time": "5"}}},
             "milestones": [{"id": "M1", "tasks": ["T1"]}],
             "tasks": [{"id": "T1", "role": "dev", "title": "Two tries", "done_when": {"command": "test", "args": ["-f", "DONE"]}}]}
            """)
        let status = try await fixture.run()
        let task = try #require(status.task("T1"))
        #expect(task.state == .done)
        #expect(task.iteration == 2)
        let jobs = await git(["show", "integration:jobs.txt"], in: fixture.repo)
        #expect(jobs.lines.count == 2 && Set(jobs.lines).count == 2, "two iterations, two jobs: \(jobs.stdout)")
        #expect(jobs.lines.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }, "\(jobs.stdout)")
    }

    @Test(arguments: [
        (#""executor": "cloud""#, "roles.dev.executor: unknown executor \"cloud\""),
        (#""executor": "slurm", "slurm": {"extra_args": ["--output=x"]}"#, "roles.dev.slurm.extra_args[0]: --output is set by the engine"),
        (#""executor": "slurm", "slurm": {"mem": "lots"}"#, "roles.dev.slurm.mem: \"lots\" is not a memory size"),
    ])
    func aBadExecutorFieldIsRefusedAtLoad(fields: String, message: String) throws {
        let text = """
            {"project": "p", "roles": {"dev": {"agent": {"command": "a"}, \(fields)}},
             "milestones": [], "tasks": [{"id": "T1", "role": "dev"}]}
            """
        do {
            _ = try ProjectPlanLoader.load(bytes: Array(text.utf8), displayPath: "p/plan.json", directory: "/proj")
            Issue.record("loaded")
        } catch {
            #expect("\(error)".contains(message), "\(error)")
            #expect("\(error)".contains("p/plan.json:"), "\(error)")
        }
    }
}
