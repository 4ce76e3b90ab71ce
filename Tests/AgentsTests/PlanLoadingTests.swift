import Foundation
import Testing
@testable import Agents
import Orchestration

/// Strict loading of `PROJECT_DIR/plan.json` (SPEC §7): located, one-sentence errors.
@Suite("Project plans: strict loading and validation", .tags(.unit))
struct PlanLoadingTests {
    static let valid = """
    {
      "project": "demo",
      "roles": {
        "backend": {"agent": {"command": "my-agent", "args": ["--task", "${TASK_ID}"]}, "max_parallel": 2},
        "qa": {"agent": {"command": "qa-agent"}}
      },
      "milestones": [{"id": "M1", "title": "MVP", "tasks": ["T1", "T2"]}],
      "tasks": [
        {"id": "T1", "role": "backend", "title": "Add endpoint", "prompt": "do it",
         "done_when": {"command": "test", "args": ["-f", "DONE"]}},
        {"id": "T2", "role": "qa", "depends_on": ["T1"], "wait_for": ["deploy.done"], "max_retries": 4}
      ]
    }
    """

    func load(_ text: String) throws -> ProjectPlan {
        try ProjectPlanLoader.load(bytes: Array(text.utf8), displayPath: "p/plan.json", directory: "/proj")
    }

    func failure(_ text: String) -> (any Error)? {
        do {
            _ = try load(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func validPlanLoadsWithDefaults() throws {
        let plan = try load(Self.valid)
        #expect(plan.project == "demo")
        #expect(plan.roles.map(\.name) == ["backend", "qa"])
        #expect(plan.role("backend")?.maxParallel == 2)
        #expect(plan.role("qa")?.maxParallel == 1)
        #expect(plan.task("T1")?.completionPromise == nil, "a task with a check and no promise uses the check only")
        #expect(plan.task("T2")?.completionPromise == "DONE", "a task without a check uses <promise>DONE</promise>")
        #expect(plan.task("T2")?.waitFor == ["deploy.done"])
        #expect(plan.milestone(of: "T2")?.id == "M1")
        #expect(ProjectPlan.branch(role: "backend", task: "T1") == "agent/backend/T1")
    }

    @Test func unknownRoleIsNamedWithASuggestion() {
        let text = Self.valid.replacingOccurrences(of: "\"role\": \"qa\"", with: "\"role\": \"qaa\"")
        let error = failure(text) as? PlanValidationError
        #expect(error?.code == .unknownRole)
        #expect(error?.message.contains("p/plan.json:") == true)
        #expect(error?.message.contains("unknown role \"qaa\" (did you mean \"qa\"?)") == true, "\(String(describing: error))")
        #expect(error?.engineError.exitCode == 2)
    }

    @Test func taskInTwoMilestones() {
        let text = Self.valid.replacingOccurrences(
            of: "[{\"id\": \"M1\", \"title\": \"MVP\", \"tasks\": [\"T1\", \"T2\"]}]",
            with: "[{\"id\": \"M1\", \"tasks\": [\"T1\", \"T2\"]}, {\"id\": \"M2\", \"tasks\": [\"T2\"]}]")
        let error = failure(text) as? PlanValidationError
        #expect(error?.code == .milestoneMembership)
        #expect(error?.message.contains("task \"T2\" is in two milestones, \"M1\" and \"M2\"") == true, "\(String(describing: error))")
    }

    @Test func taskInNoMilestone() {
        let text = Self.valid.replacingOccurrences(of: "\"tasks\": [\"T1\", \"T2\"]", with: "\"tasks\": [\"T1\"]")
        let error = failure(text) as? PlanValidationError
        #expect(error?.code == .milestoneMembership)
        #expect(error?.message.contains("task \"T2\" is in no milestone; add it to one of M1") == true, "\(String(describing: error))")
    }

    @Test func danglingDependency() {
        let text = Self.valid.replacingOccurrences(of: "\"depends_on\": [\"T1\"]", with: "\"depends_on\": [\"T9\"]")
        let error = failure(text) as? PlanValidationError
        #expect(error?.code == .danglingDependency)
        #expect(error?.message.contains("tasks[1].depends_on[0]: task \"T2\" depends on unknown task \"T9\"") == true,
                "\(String(describing: error))")
    }

    @Test func cyclicDependenciesPrintTheCycle() {
        let text = Self.valid.replacingOccurrences(of: "\"prompt\": \"do it\",", with: "\"prompt\": \"do it\", \"depends_on\": [\"T2\"],")
        let error = failure(text) as? PlanValidationError
        #expect(error?.code == .dependencyCycle)
        #expect(error?.message.contains("T1 -> T2 -> T1") == true || error?.message.contains("T2 -> T1 -> T2") == true,
                "\(String(describing: error))")
    }

    @Test func missingAgentCommand() {
        let noAgent = Self.valid.replacingOccurrences(of: "\"qa\": {\"agent\": {\"command\": \"qa-agent\"}}", with: "\"qa\": {}")
        #expect((failure(noAgent) as? PlanValidationError)?.code == .missingAgentCommand)
        let emptyCommand = Self.valid.replacingOccurrences(of: "{\"command\": \"qa-agent\"}", with: "{\"command\": \"\"}")
        let error = failure(emptyCommand) as? PlanValidationError
        #expect(error?.code == .missingAgentCommand)
        #expect(error?.message.contains("role \"qa\" has no agent command") == true, "\(String(describing: error))")
    }

    @Test func unknownKeysTypesAndJSONAreParseErrorsWithLocations() {
        let typo = Self.valid.replacingOccurrences(of: "\"depends_on\"", with: "\"depend_on\"")
        let unknown = failure(typo) as? PlanParseError
        #expect(unknown?.code == .unknownKey)
        #expect(unknown?.message.contains("unknown key \"depend_on\" (did you mean \"depends_on\"?)") == true,
                "\(String(describing: unknown))")
        #expect(unknown?.message.hasPrefix("p/plan.json:11:32: tasks[1].depend_on:") == true, "\(String(describing: unknown))")

        let wrongType = Self.valid.replacingOccurrences(of: "\"max_retries\": 4", with: "\"max_retries\": \"4\"")
        #expect((failure(wrongType) as? PlanParseError)?.code == .wrongType)

        let broken = failure("{\"project\": \"x\",}") as? PlanParseError
        #expect(broken?.code == .invalidJSON)
        #expect(broken?.message.hasPrefix("p/plan.json:1:") == true, "\(String(describing: broken))")
    }

    @Test func unknownAgentVariableIsRejected() {
        let text = Self.valid.replacingOccurrences(of: "${TASK_ID}", with: "${TASK_IDD}")
        let error = failure(text) as? PlanValidationError
        #expect(error?.code == .unknownVariable)
        #expect(error?.message.contains("did you mean ${TASK_ID}?") == true, "\(String(describing: error))")
    }

    @Test func idsMustBeBranchComponents() {
        let text = Self.valid.replacingOccurrences(of: "\"id\": \"T1\"", with: "\"id\": \"T..1\"")
        #expect((failure(text) as? PlanValidationError)?.code == .invalidID)
    }

    @Test func ciPlanIsCheckedAtLoadTime() throws {
        let dir = TempDir()
        dir.write("plan.json", Self.valid.replacingOccurrences(of: "\"project\": \"demo\",", with: "\"project\": \"demo\", \"ci\": {\"plan\": \"ci.json\"},"))
        dir.write("ci.json", "{\"plan_id\": \"ci\", \"version\": \"1\", \"steps\": [{\"id\": \"a\", \"command\": \"true\", \"cwd\": \"${NOPE}\"}]}")
        #expect(throws: PlanValidationError.self) { try ProjectPlanLoader.load(projectDirectory: dir.path) }
        dir.write("ci.json", "{\"plan_id\": \"ci\", \"version\": \"1\", \"globals\": {\"working_dir\": \"${WORKSPACE}\"}, \"steps\": [{\"id\": \"a\", \"command\": \"true\"}]}")
        let plan = try ProjectPlanLoader.load(projectDirectory: dir.path)
        #expect(plan.ciPlanPath == dir.path + "/ci.json")
    }

    @Test func theDemoProjectLoads() throws {
        let plan = try ProjectPlanLoader.load(projectDirectory: packageRoot + "/plans/demo-project")
        #expect(plan.tasks.count == 4)
        #expect(plan.milestones.map(\.id) == ["M1", "M2"])
    }
}
