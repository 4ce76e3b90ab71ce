import Orchestration

/// A well-formed project plan that does not make sense: an unknown role, a task in two
/// milestones or in none, a dangling or cyclic dependency, a role without an agent command.
///
/// The message starts with the file and the location of the offending value. It maps to exit
/// code 2 (``EngineError/Code/invalidPlan``).
public typealias PlanValidationError = CodedError<PlanValidationErrorCode>

/// What kind of problem a ``PlanValidationError`` is. New codes can be added without breaking
/// callers.
public struct PlanValidationErrorCode: ErrorCode {
    /// The code's name.
    public var rawValue: String
    /// Creates a code from its name.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// A task names a role the plan does not define.
    public static let unknownRole = Self(rawValue: "unknown_role")
    /// A task is in two milestones, or in none.
    public static let milestoneMembership = Self(rawValue: "milestone_membership")
    /// A milestone lists a task the plan does not define.
    public static let unknownTask = Self(rawValue: "unknown_task")
    /// A task depends on a task the plan does not define (or on itself, or twice on one).
    public static let danglingDependency = Self(rawValue: "dangling_dependency")
    /// The task dependencies form a cycle.
    public static let dependencyCycle = Self(rawValue: "dependency_cycle")
    /// A role has no agent command.
    public static let missingAgentCommand = Self(rawValue: "missing_agent_command")
    /// Two tasks, roles or milestones share an id.
    public static let duplicateID = Self(rawValue: "duplicate_id")
    /// An id cannot be used in a git branch name.
    public static let invalidID = Self(rawValue: "invalid_id")
    /// A `${NAME}` the agent or check cannot be given.
    public static let unknownVariable = Self(rawValue: "unknown_variable")
    /// The CI plan named by `ci.plan` does not load.
    public static let invalidCIPlan = Self(rawValue: "invalid_ci_plan")

    /// Every plan error exits 2.
    public var engineCode: EngineError.Code { .invalidPlan }
}
