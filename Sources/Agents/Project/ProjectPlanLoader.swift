import Foundation
import Orchestration

/// Loads project plans strictly (SPEC §7): one located sentence for anything that is not exactly
/// a valid plan, as ``PlanLoader`` does for plans.
///
/// Well-formedness problems (JSON, unknown keys, types, missing fields) throw
/// ``PlanParseError``; problems of meaning (unknown role, a task in two milestones or in none,
/// dangling or cyclic dependencies, a role without an agent command, unknown `${NAME}`s, a CI
/// plan that does not load) throw ``PlanValidationError``. Both start with
/// `FILE:LINE:COLUMN: JSON.PATH:`.
public enum ProjectPlanLoader {
    /// The plan's file name inside the project folder.
    public static let fileName = "plan.json"
    /// The largest plan file.
    public static let maxFileBytes = 4 * 1024 * 1024

    /// The `${NAME}`s an agent command, its environment and a `done_when` check may use.
    public static let agentVariables = [
        "TASK_ID", "TASK_TITLE", "TASK_PROMPT", "ITERATION", "WORKSPACE", "ROLE", "PROMPT_FILE", "PROJECT_DIR", "CI_LOG",
    ]

    /// The variables a CI plan is loaded with (`--var`-style overrides): it runs in the task's
    /// worktree, `${WORKSPACE}`.
    public static let ciVariables = ["WORKSPACE", "TASK_ID", "TASK_BRANCH", "ROLE", "PROJECT_DIR"]

    static let topKeys = ["project", "description", "integration_branch", "max_retries", "retry_interval_sec",
                          "stall_after", "roles", "ci", "milestones", "tasks"]
    static let roleKeys = ["agent", "max_parallel", "description", "wait_timeout_sec", "executor", "slurm"]
    static let slurmKeys = ["partition", "account", "extra_args", "cpus", "mem", "time"]
    static let agentKeys = ["command", "args", "env", "timeout_sec"]
    static let taskKeys = ["id", "role", "title", "prompt", "depends_on", "done_when", "completion_promise", "wait_for",
                           "max_retries", "stall_after", "wait_timeout_sec"]
    static let checkKeys = ["command", "args", "timeout_sec"]
    static let milestoneKeys = ["id", "title", "tasks"]
    static let ciKeys = ["plan"]

    /// Reads and validates `PROJECT_DIR/plan.json`.
    ///
    /// - Parameter projectDirectory: The project folder.
    /// - Returns: The validated plan, its paths resolved against the folder.
    /// - Throws: ``PlanParseError`` or ``PlanValidationError``.
    public static func load(projectDirectory: String) throws -> ProjectPlan {
        let directory = URL(fileURLWithPath: projectDirectory).standardizedFileURL.path
        let path = directory + "/" + fileName
        let display = (projectDirectory.hasSuffix("/") ? projectDirectory : projectDirectory + "/") + fileName
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw PlanParseError(.unreadable, "\(display): cannot read the project plan: \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw PlanParseError(.unreadable, "\(display): the project plan is not a regular file")
        }
        guard Int(info.st_size) <= maxFileBytes else {
            throw PlanParseError(.unreadable, "\(display): the project plan is larger than 4 MiB")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PlanParseError(.unreadable, "\(display): cannot read the project plan")
        }
        return try load(bytes: [UInt8](data), displayPath: display, directory: directory)
    }

    /// Validates a project plan from its bytes (used on `--resume`, from the stored snapshot).
    ///
    /// - Parameters:
    ///   - bytes: The file's content.
    ///   - displayPath: The file name for messages.
    ///   - directory: The project folder's absolute path.
    /// - Throws: ``PlanParseError`` or ``PlanValidationError``.
    public static func load(bytes: [UInt8], displayPath: String, directory: String) throws -> ProjectPlan {
        let root: JSONNode
        do {
            root = try StrictJSONParser.parse(bytes, limits: .init(maxBytes: maxFileBytes, maxDepth: 32))
        } catch {
            let at = error.path.isEmpty ? "" : " (at \(error.path))"
            throw PlanParseError(.invalidJSON, "\(displayPath):\(error.location.line):\(error.location.column): invalid JSON: \(error.message)\(at)")
        }
        var decoder = ProjectPlanDecoder(file: displayPath, directory: directory)
        return try decoder.decode(root, bytes: bytes)
    }

    /// Whether `id` can be a task, role or milestone id: a letter or digit, then letters, digits,
    /// `_ . -`; no `..`, not ending with `.` or `.lock` (so it is a valid git branch component).
    public static func isValidID(_ id: String) -> Bool {
        func alnum(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
        }
        guard let first = id.utf8.first, alnum(first), id.utf8.count <= 100 else { return false }
        guard id.utf8.allSatisfy({ alnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") })
        else { return false }
        return !id.contains("..") && !id.hasSuffix(".") && !id.hasSuffix(".lock")
    }

    /// Why ``isValidID(_:)`` refuses `id`, as the end of a sentence that begins with what it is
    /// (`task id "a..b"`): the git rule for branch names it breaks (`..`, a trailing `.`, a
    /// `.lock` suffix) when its characters are allowed, else the characters it may hold.
    public static func invalidIDReason(_ id: String) -> String {
        let rule: String
        if id.utf8.count > 100 || !isValidID(id.replacingOccurrences(of: ".", with: "_")) {
            rule = "must start with a letter or digit and contain only letters, digits, _ . -"
        } else if id.contains("..") {
            rule = "contains \"..\", which git does not allow"
        } else if id.hasSuffix(".lock") {
            rule = "ends with \".lock\", which git does not allow"
        } else {
            rule = "ends with \".\", which git does not allow"
        }
        return rule + " (it is part of a git branch name)"
    }

    /// Whether `name` can be an event name: a letter or digit, then letters, digits, `_ . : -`.
    public static func isValidEventName(_ name: String) -> Bool {
        func alnum(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
        }
        guard let first = name.utf8.first, alnum(first), name.utf8.count <= 200 else { return false }
        return name.utf8.allSatisfy {
            alnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ":")
        }
    }
}

/// Turns a parsed JSON tree into a ``ProjectPlan``.
private struct ProjectPlanDecoder {
    let file: String
    let directory: String

    init(file: String, directory: String) {
        self.file = file
        self.directory = directory
    }

    func locate(_ location: SourceLocation, _ path: String, _ message: String) -> String {
        JSONFields.locate(file, location, path, message)
    }

    mutating func decode(_ root: JSONNode, bytes: [UInt8]) throws -> ProjectPlan {
        let top = try JSONFields(root, path: "", allowed: ProjectPlanLoader.topKeys, file: file)
        let project = try top.string("project", required: true, nonEmpty: true)!
        _ = try top.string("description")
        let integration = try top.string("integration_branch", nonEmpty: true)
        if let integration, !Self.isValidBranch(integration) {
            throw PlanParseError(.invalidValue, top.message("integration_branch", "\"\(integration)\" is not a valid git branch name"))
        }
        let maxRetries = try top.int("max_retries", minimum: 1, maximum: 1_000_000)
        let retryInterval = try top.seconds("retry_interval_sec", positive: false)
        let stallAfter = try top.int("stall_after", minimum: 0, maximum: 1_000_000)

        let roles = try decodeRoles(top)
        var ciPlanPath: String?
        if let ciNode = top["ci"] {
            let ci = try JSONFields(ciNode, path: "ci", allowed: ProjectPlanLoader.ciKeys, file: file)
            if let plan = try ci.string("plan", nonEmpty: true) {
                let resolved = resolve(plan)
                try checkCIPlan(resolved, location: ci.location("plan"))
                ciPlanPath = resolved
            }
        }

        guard let taskNodes = try top.array("tasks") else {
            throw PlanParseError(.missingField, locate(root.location, "", "missing required field \"tasks\""))
        }
        guard !taskNodes.isEmpty else {
            throw PlanValidationError(.missingAgentCommand, locate(top.location("tasks"), "tasks", "a project needs at least one task"))
        }
        var tasks: [TaskSpec] = []
        var taskLocations: [SourceLocation] = []
        var dependencyLocations: [[SourceLocation]] = []
        for (index, node) in taskNodes.enumerated() {
            let (task, locations) = try decodeTask(node, index: index, roles: roles)
            tasks.append(task)
            taskLocations.append(node.location)
            dependencyLocations.append(locations)
        }

        let graph: PlanGraph
        do {
            graph = try PlanGraph(ids: tasks.map(\.id), dependsOn: tasks.map(\.dependsOn))
        } catch {
            throw graphError(error.issue, tasks: tasks, taskLocations: taskLocations, dependencyLocations: dependencyLocations)
        }

        let milestones = try decodeMilestones(top, root: root, tasks: tasks, taskLocations: taskLocations, graph: graph)

        return ProjectPlan(project: project, directory: directory, integrationBranch: integration, maxRetries: maxRetries,
                           retryInterval: retryInterval, stallAfter: stallAfter, roles: roles, tasks: tasks,
                           milestones: milestones, ciPlanPath: ciPlanPath, graph: graph, sourceBytes: bytes)
    }

    func decodeRoles(_ top: JSONFields) throws -> [RoleSpec] {
        guard let rolesNode = top["roles"] else {
            throw PlanParseError(.missingField, locate(top.node.location, "", "missing required field \"roles\""))
        }
        guard case .object(let object) = rolesNode.kind else {
            throw PlanParseError(.wrongType, locate(rolesNode.location, "roles", "must be an object of roles, not \(rolesNode.typeName)"))
        }
        var roles: [RoleSpec] = []
        for member in object.members {
            let path = "roles.\(member.key)"
            guard ProjectPlanLoader.isValidID(member.key) else {
                throw PlanValidationError(.invalidID, locate(member.keyLocation, path,
                    "role name \"\(member.key)\" " + ProjectPlanLoader.invalidIDReason(member.key)))
            }
            let fields = try JSONFields(member.value, path: path, allowed: ProjectPlanLoader.roleKeys, file: file)
            _ = try fields.string("description")
            let maxParallel = try fields.int("max_parallel", minimum: 1, maximum: 1000) ?? 1
            let waitTimeout = try fields.seconds("wait_timeout_sec", positive: true)
            guard let agentNode = fields["agent"] else {
                throw PlanValidationError(.missingAgentCommand, locate(member.value.location, path,
                    "role \"\(member.key)\" has no agent: add \"agent\": {\"command\": ..., \"args\": [...]}"))
            }
            let agentPath = "\(path).agent"
            let agent = try JSONFields(agentNode, path: agentPath, allowed: ProjectPlanLoader.agentKeys, file: file)
            guard let command = try agent.string("command"), !command.isEmpty else {
                throw PlanValidationError(.missingAgentCommand, locate(agent.location("command"), agentPath,
                    "role \"\(member.key)\" has no agent command: set \"command\" to the agent CLI to run"))
            }
            try checkVariables(command, agent.location("command"), "\(agentPath).command")
            var arguments: [String] = []
            for (index, (argument, location)) in (try agent.strings("args") ?? []).enumerated() {
                try checkVariables(argument, location, "\(agentPath).args[\(index)]")
                arguments.append(argument)
            }
            var environment: [String: String] = [:]
            for (name, value, location) in try agent.stringMembers("env") {
                guard VariableSubstitution.isValidName(name) else {
                    throw PlanParseError(.invalidValue, locate(location, "\(agentPath).env", "\"\(name)\" is not a valid environment variable name"))
                }
                try checkVariables(value, location, "\(agentPath).env.\(name)")
                environment[name] = value
            }
            let timeout = try agent.seconds("timeout_sec", positive: true)
            var executor = ExecutorKind.local
            if let raw = try fields.string("executor") {
                guard let kind = ExecutorKind(rawValue: raw) else {
                    throw PlanParseError(.invalidValue, fields.message("executor",
                        "unknown executor \"\(raw)\"; expected \"local\" or \"slurm\""))
                }
                executor = kind
            }
            let slurm = try fields["slurm"].map { node throws(PlanParseError) in try decodeSlurm(node, path: "\(path).slurm") }
            roles.append(RoleSpec(name: member.key,
                                  agent: .init(command: resolveCommand(command), arguments: arguments,
                                               environment: environment, timeout: timeout),
                                  maxParallel: maxParallel, waitTimeout: waitTimeout, executor: executor,
                                  slurm: slurm ?? SlurmSettings()))
        }
        return roles
    }

    /// A role's `slurm` settings, checked with the rules of a plan's `globals.slurm`.
    func decodeSlurm(_ node: JSONNode, path: String) throws(PlanParseError) -> SlurmSettings {
        let fields = try JSONFields(node, path: path, allowed: ProjectPlanLoader.slurmKeys, file: file)
        func checked(_ key: String, _ rule: (String) -> String?) throws(PlanParseError) -> String? {
            guard let value = try fields.string(key) else { return nil }
            if let problem = rule(value) { throw PlanParseError(.invalidValue, fields.message(key, problem)) }
            return value
        }
        var settings = SlurmSettings()
        settings.partition = try checked("partition", SlurmSettings.validationError(ofName:))
        settings.account = try checked("account", SlurmSettings.validationError(ofName:))
        settings.mem = try checked("mem", SlurmSettings.validationError(ofMemory:))
        settings.time = try checked("time", SlurmSettings.validationError(ofTime:))
        settings.cpus = try fields.int("cpus", minimum: 1, maximum: 100_000)
        for (index, (argument, location)) in try (fields.strings("extra_args") ?? []).enumerated() {
            if let problem = SlurmSettings.validationError(ofExtraArgument: argument) {
                throw PlanParseError(.invalidValue, locate(location, "\(path).extra_args[\(index)]", problem))
            }
            settings.extraArguments.append(argument)
        }
        return settings
    }

    func decodeTask(_ node: JSONNode, index: Int, roles: [RoleSpec]) throws -> (TaskSpec, [SourceLocation]) {
        let path = "tasks[\(index)]"
        let fields = try JSONFields(node, path: path, allowed: ProjectPlanLoader.taskKeys, file: file)
        let id = try fields.string("id", required: true)!
        guard ProjectPlanLoader.isValidID(id) else {
            throw PlanValidationError(.invalidID, fields.message("id",
                "task id \"\(id)\" " + ProjectPlanLoader.invalidIDReason(id)))
        }
        let role = try fields.string("role", required: true)!
        guard roles.contains(where: { $0.name == role }) else {
            let names = roles.map(\.name)
            let hint = Suggestion.closest(to: role, among: names).map { " (did you mean \"\($0)\"?)" }
                ?? (names.isEmpty ? "; the plan defines no roles" : "; roles are \(names.joined(separator: ", "))")
            throw PlanValidationError(.unknownRole, fields.message("role", "task \"\(id)\" names unknown role \"\(role)\"\(hint)"))
        }
        let title = try fields.string("title") ?? id
        let prompt = try fields.string("prompt") ?? ""
        let dependencies = try fields.strings("depends_on") ?? []
        var check: TaskSpec.Check?
        if let checkNode = fields["done_when"] {
            let checkPath = "\(path).done_when"
            let checkFields = try JSONFields(checkNode, path: checkPath, allowed: ProjectPlanLoader.checkKeys, file: file)
            let command = try checkFields.string("command", required: true, nonEmpty: true)!
            try checkVariables(command, checkFields.location("command"), "\(checkPath).command")
            var arguments: [String] = []
            for (position, (argument, location)) in (try checkFields.strings("args") ?? []).enumerated() {
                try checkVariables(argument, location, "\(checkPath).args[\(position)]")
                arguments.append(argument)
            }
            let timeout = try checkFields.seconds("timeout_sec", positive: true) ?? .seconds(300)
            check = TaskSpec.Check(command: resolveCommand(command), arguments: arguments, timeout: timeout)
        }
        let promise = try fields.string("completion_promise", nonEmpty: true)
        if let promise, promise.contains("<") || promise.contains(">") || promise.contains("\n") {
            throw PlanParseError(.invalidValue, fields.message("completion_promise",
                "the promise text must not contain <, > or a line break (the agent prints <promise>TEXT</promise>)"))
        }
        var waitFor: [String] = []
        for (position, (name, location)) in (try fields.strings("wait_for") ?? []).enumerated() {
            guard ProjectPlanLoader.isValidEventName(name) else {
                throw PlanParseError(.invalidValue, locate(location, "\(path).wait_for[\(position)]",
                    "\"\(name)\" is not a valid event name (letters, digits and _ . : -)"))
            }
            waitFor.append(name)
        }
        let maxRetries = try fields.int("max_retries", minimum: 1, maximum: 1_000_000)
        let stallAfter = try fields.int("stall_after", minimum: 0, maximum: 1_000_000)
        let waitTimeout = try fields.seconds("wait_timeout_sec", positive: true)
        let task = TaskSpec(id: id, role: role, title: title, prompt: prompt, dependsOn: dependencies.map(\.0),
                            doneWhen: check, completionPromise: promise, waitFor: waitFor, maxRetries: maxRetries,
                            stallAfter: stallAfter, waitTimeout: waitTimeout)
        return (task, dependencies.map(\.1))
    }

    func decodeMilestones(_ top: JSONFields, root: JSONNode, tasks: [TaskSpec], taskLocations: [SourceLocation],
                          graph: PlanGraph) throws -> [MilestoneSpec] {
        let nodes = try top.array("milestones") ?? []
        var milestones: [MilestoneSpec] = []
        var owner: [String: String] = [:]
        for (index, node) in nodes.enumerated() {
            let path = "milestones[\(index)]"
            let fields = try JSONFields(node, path: path, allowed: ProjectPlanLoader.milestoneKeys, file: file)
            let id = try fields.string("id", required: true)!
            guard ProjectPlanLoader.isValidID(id) else {
                throw PlanValidationError(.invalidID, fields.message("id",
                    "milestone id \"\(id)\" " + ProjectPlanLoader.invalidIDReason(id)))
            }
            if milestones.contains(where: { $0.id == id }) {
                throw PlanValidationError(.duplicateID, fields.message("id", "duplicate milestone id \"\(id)\""))
            }
            let title = try fields.string("title") ?? id
            let members = try fields.strings("tasks") ?? []
            guard !members.isEmpty else {
                throw PlanValidationError(.milestoneMembership, fields.message("tasks", "milestone \"\(id)\" has no tasks"))
            }
            for (position, (task, location)) in members.enumerated() {
                let at = "\(path).tasks[\(position)]"
                guard graph.indexByID[task] != nil else {
                    let hint = Suggestion.closest(to: task, among: graph.ids).map { " (did you mean \"\($0)\"?)" } ?? ""
                    throw PlanValidationError(.unknownTask, locate(location, at, "milestone \"\(id)\" lists unknown task \"\(task)\"\(hint)"))
                }
                if let first = owner[task] {
                    let message = first == id
                        ? "milestone \"\(id)\" lists task \"\(task)\" twice"
                        : "task \"\(task)\" is in two milestones, \"\(first)\" and \"\(id)\"; a task belongs to exactly one"
                    throw PlanValidationError(.milestoneMembership, locate(location, at, message))
                }
                owner[task] = id
            }
            milestones.append(MilestoneSpec(id: id, title: title, tasks: members.map(\.0)))
        }
        for (index, task) in tasks.enumerated() where owner[task.id] == nil {
            let names = milestones.map(\.id)
            let hint = names.isEmpty ? "; add a \"milestones\" list" : "; add it to one of \(names.joined(separator: ", "))"
            throw PlanValidationError(.milestoneMembership, locate(taskLocations[index], "tasks[\(index)]",
                "task \"\(task.id)\" is in no milestone\(hint)"))
        }
        return milestones
    }

    func graphError(_ issue: PlanGraph.Issue, tasks: [TaskSpec], taskLocations: [SourceLocation],
                    dependencyLocations: [[SourceLocation]]) -> PlanValidationError {
        let ids = tasks.map(\.id)
        switch issue {
        case .duplicateID(let index, let first):
            return PlanValidationError(.duplicateID, locate(taskLocations[index], "tasks[\(index)].id",
                "duplicate task id \"\(ids[index])\" (first used by tasks[\(first)])"))
        case .unknownDependency(let task, let position, let name):
            let hint = Suggestion.closest(to: name, among: ids).map { " (did you mean \"\($0)\"?)" } ?? ""
            return PlanValidationError(.danglingDependency, locate(dependencyLocations[task][position],
                "tasks[\(task)].depends_on[\(position)]", "task \"\(ids[task])\" depends on unknown task \"\(name)\"\(hint)"))
        case .selfDependency(let task, let position):
            return PlanValidationError(.danglingDependency, locate(dependencyLocations[task][position],
                "tasks[\(task)].depends_on[\(position)]", "task \"\(ids[task])\" depends on itself"))
        case .repeatedDependency(let task, let position):
            return PlanValidationError(.danglingDependency, locate(dependencyLocations[task][position],
                "tasks[\(task)].depends_on[\(position)]", "task \"\(ids[task])\" lists the same dependency twice"))
        case .cycle(let path):
            let first = path.first ?? 0
            return PlanValidationError(.dependencyCycle, locate(taskLocations[first], "tasks[\(first)]",
                "task dependency cycle: " + path.map { ids[$0] }.joined(separator: " -> ") + " (each task depends on the next)"))
        }
    }

    /// Checks that `text` only uses the variables an agent is given.
    func checkVariables(_ text: String, _ location: SourceLocation, _ path: String) throws {
        var dummy: [String: String] = [:]
        for name in ProjectPlanLoader.agentVariables { dummy[name] = "x" }
        do {
            _ = try VariableSubstitution.substitute(text, variables: dummy)
        } catch {
            switch error {
            case .unknownVariable(let name):
                let hint = Suggestion.closest(to: name, among: ProjectPlanLoader.agentVariables).map { " (did you mean ${\($0)}?)" }
                    ?? "; agents get \(ProjectPlanLoader.agentVariables.map { "${\($0)}" }.joined(separator: ", "))"
                throw PlanValidationError(.unknownVariable, locate(location, path, "unknown variable ${\(name)}\(hint)"))
            case .malformedReference(let reference):
                throw PlanParseError(.invalidValue, locate(location, path,
                    "malformed variable reference \(reference) (write ${NAME}, or $$ for a literal $)"))
            }
        }
    }

    /// Loads the CI plan with placeholder values, so a broken CI plan fails before any agent runs.
    func checkCIPlan(_ path: String, location: SourceLocation) throws {
        var overrides: [String: String] = [:]
        for name in ProjectPlanLoader.ciVariables { overrides[name] = directory }
        do {
            _ = try PlanLoader.load(path: path, overrides: overrides)
        } catch {
            throw PlanValidationError(.invalidCIPlan, locate(location, "ci.plan", "the CI plan does not load: \(error.message)"))
        }
    }

    /// A path relative to the project folder made absolute.
    func resolve(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: directory, isDirectory: true)).standardizedFileURL.path
    }

    /// A command with a `/` (and no variable) resolved against the project folder; names stay
    /// names, for the `PATH` lookup.
    func resolveCommand(_ command: String) -> String {
        guard command.contains("/"), !command.hasPrefix("/"), !command.contains("${") else { return command }
        return resolve(command)
    }

    static func isValidBranch(_ name: String) -> Bool {
        name.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { ProjectPlanLoader.isValidID(String($0)) }
    }
}
