import Orchestration

/// A well-formed project plan that does not make sense: an unknown role, a task in two
/// milestones or in none, a dangling or cyclic dependency, a role without an agent command.
///
/// The message starts with the file and the location of the offending value. It maps to exit
/// code 2 (``EngineError/Code/invalidPlan``).
public struct PlanValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem. New codes can be added without breaking callers.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The code's name.
        public var rawValue: String
        /// Creates a code from its name.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// A task names a role the plan does not define.
        public static let unknownRole = Code(rawValue: "unknown_role")
        /// A task is in two milestones, or in none.
        public static let milestoneMembership = Code(rawValue: "milestone_membership")
        /// A milestone lists a task the plan does not define.
        public static let unknownTask = Code(rawValue: "unknown_task")
        /// A task depends on a task the plan does not define (or on itself, or twice on one).
        public static let danglingDependency = Code(rawValue: "dangling_dependency")
        /// The task dependencies form a cycle.
        public static let dependencyCycle = Code(rawValue: "dependency_cycle")
        /// A role has no agent command.
        public static let missingAgentCommand = Code(rawValue: "missing_agent_command")
        /// Two tasks, roles or milestones share an id.
        public static let duplicateID = Code(rawValue: "duplicate_id")
        /// An id cannot be used in a git branch name.
        public static let invalidID = Code(rawValue: "invalid_id")
        /// A `${NAME}` the agent or check cannot be given.
        public static let unknownVariable = Code(rawValue: "unknown_variable")
        /// The CI plan named by `ci.plan` does not load.
        public static let invalidCIPlan = Code(rawValue: "invalid_ci_plan")

        /// The code's name.
        public var description: String { rawValue }
    }

    /// What kind of problem.
    public var code: Code
    /// One sentence, starting with its location.
    public var message: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: The kind of problem.
    ///   - message: One located sentence.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }

    /// The error as the CLI reports it (exit 2).
    public var engineError: EngineError { EngineError(.invalidPlan, message) }
}
