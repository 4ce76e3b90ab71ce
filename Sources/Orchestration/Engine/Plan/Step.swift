import Foundation
import Synchronization

/// What a step does when it runs: a process, or an async Swift closure (library API).
public enum StepAction: Sendable {
    /// Run a program with fully substituted argv (no shell).
    case process(ProcessCommand)
    /// Run an async closure in the engine's process. Throwing fails the attempt.
    case closure(@Sendable (StepContext) async throws -> Void)
}

/// A process step's program, arguments, folder and environment, all variables substituted.
public struct ProcessCommand: Sendable, Hashable {
    /// The program: a path, or a name looked up in `PATH`.
    public var command: String
    /// `argv[1...]`, each element passed through untouched.
    public var arguments: [String]
    /// The absolute working folder, or nil for the engine's own.
    public var workingDirectory: String?
    /// Variables added to the engine's environment (the plan's `globals.env`, then the step's `env`).
    public var environment: [String: String]
    /// The fields that use other steps' outputs (`${steps.ID.outputs.NAME}`), resolved when an
    /// attempt starts; until then those fields hold the references as written. Nil when none does.
    public var outputBindings: OutputBindings?

    /// Creates a command.
    public init(command: String, arguments: [String] = [], workingDirectory: String? = nil,
                environment: [String: String] = [:], outputBindings: OutputBindings? = nil) {
        self.command = command
        self.arguments = arguments
        self.workingDirectory = workingDirectory
        self.environment = environment
        self.outputBindings = outputBindings
    }

    /// The argv as it will be executed, for dry runs and reports.
    public var argv: [String] { [command] + arguments }
}

/// What a closure step knows about its attempt.
///
/// ```swift
/// Step.closure("version") { context in try context.writeOutput("version", "1.2.0") }
/// Step.closure("tag", dependsOn: ["version"]) { context in
///     let version = context.outputs.value(step: "version", name: "version")
/// }
/// ```
public struct StepContext: Sendable {
    /// The run this attempt belongs to.
    public var runID: String
    /// The step's id.
    public var stepID: String
    /// 1-based attempt number.
    public var attempt: Int
    /// The attempt's outputs file (`$OMNIBASE_OUTPUT` of a process step, ``OutputFile``), which
    /// does not exist until something writes to it: what is in it when the closure returns
    /// becomes the step's outputs. Nil when the runner collects none.
    ///
    /// Reading it tells the engine that the closure may write outputs: a closure that never
    /// asks for the path (nor calls ``writeOutput(_:_:)``) costs no file system call.
    public var outputPath: String? {
        get {
            guard let outputUse else { return storedOutputPath }
            outputUse.markUsed()
            return storedOutputPath ?? outputUse.path
        }
        set { storedOutputPath = newValue }
    }
    private var storedOutputPath: String?
    /// Set by the engine for a closure step: whether ``outputPath`` was asked for.
    package var outputUse: OutputUse?

    /// Creates the context of one attempt.
    public init(runID: String, stepID: String, attempt: Int, outputPath: String? = nil,
                outputs: StepOutputs = StepOutputs()) {
        self.runID = runID
        self.stepID = stepID
        self.attempt = attempt
        self.storedOutputPath = outputPath
        self.outputs = outputs
    }
    /// The outputs of the steps that succeeded before this attempt started (its dependencies'
    /// among them).
    public var outputs = StepOutputs()

    /// Appends output `name` to ``outputPath`` as a `NAME<<DELIMITER` block, so any value
    /// (newlines included) arrives verbatim; a later write of the same name wins.
    /// - Throws: ``OutputFile/Failure`` for an invalid name, a value with a NUL byte, no
    ///   outputs file, or a write that fails.
    public func writeOutput(_ name: String, _ value: String) throws(OutputFile.Failure) {
        guard let outputPath else { throw OutputFile.Failure("this attempt has no outputs file") }
        guard VariableSubstitution.isValidName(name) else {
            throw OutputFile.Failure("\"\(name)\" is not a valid output name (letters, digits and _, not starting with a digit)")
        }
        guard !value.utf8.contains(0) else { throw OutputFile.Failure("the value of output \(name) holds a NUL byte") }
        let lines = Set(value.split(separator: "\n", omittingEmptySubsequences: false))
        var delimiter = "OMNIBASE_EOF"
        while lines.contains(Substring(delimiter)) { delimiter += "_" }
        let fd = open(outputPath, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw OutputFile.Failure("cannot open \(outputPath): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array("\(name)<<\(delimiter)\n\(value)\n\(delimiter)\n".utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw OutputFile.Failure("cannot write \(outputPath): \(String(cString: strerror(errno)))") }
            written += count
        }
    }
}

/// A closure attempt's outputs path, made only when the attempt asks for it, and whether it did
/// (shared by the copies of its ``StepContext``), so the engine reads an outputs file only when
/// one may exist. A closure that never asks costs neither a file system call nor the path's
/// string (in-process runs of no-op closures: two allocations per node less).
package final class OutputUse: Sendable {
    private let used = Atomic<Bool>(false)
    private let folder: String
    private let stepID: String
    private let attempt: Int

    /// The use of `folder/<stepID>.<attempt>.outputs` (``OutputFile/fileName(stepID:attempt:)``).
    package init(folder: String, stepID: String, attempt: Int) {
        self.folder = folder
        self.stepID = stepID
        self.attempt = attempt
    }

    /// The outputs file's path (does not mark it used).
    package var path: String { "\(folder)/\(OutputFile.fileName(stepID: stepID, attempt: attempt))" }

    func markUsed() { used.store(true, ordering: .relaxed) }

    /// Whether the path was asked for (after the closure returned: its writes happen before).
    package var wasUsed: Bool { used.load(ordering: .relaxed) }
}

/// What the rest of the run does when a step finally fails (SPEC §2).
public enum FailurePolicy: String, Sendable, Hashable, CaseIterable {
    /// Stop the run if the step is critical (otherwise as `skip_dependents`).
    case abort
    /// Let dependents run as if the step had succeeded.
    case `continue`
    /// Skip everything downstream of the step; the rest of the run goes on.
    case skipDependents = "skip_dependents"
}

/// One node of a plan's DAG: a process (argv, no shell) or an async Swift closure.
///
/// ```swift
/// let steps: [Step] = [
///     .process("build", "swift", ["build"]),
///     .closure("notify", dependsOn: ["build"]) { context in print("built in attempt \(context.attempt)") },
/// ]
/// ```
public struct Step: Sendable {
    /// Unique id, `[A-Za-z0-9][A-Za-z0-9_.-]*`.
    public var id: String
    /// A human-readable name.
    public var name: String?
    /// What running the step does.
    public var action: StepAction
    /// Ids of steps that must finish first.
    public var dependsOn: [String]
    /// Per-attempt time limit; nil = none.
    public var timeout: Duration?
    /// Retries and their delays.
    public var retry: RetryPolicy
    /// Whether the run fails (and, with `abort`, stops) when this step fails.
    public var critical: Bool
    /// What a final failure does to the rest of the run.
    public var onFailure: FailurePolicy
    /// Free-form labels.
    public var tags: [String]
    /// Where its attempts run; nil = the plan's or the run's choice. Closure steps always run locally.
    public var executor: ExecutorKind?
    /// Its Slurm `cpus`, `mem` and `time`, over the plan's `globals.slurm`.
    public var slurm: SlurmSettings?
    /// Its `"if"` (SPEC §11): decided once its dependencies have ended; false = `skipped`
    /// ("condition false"). Nil = none (the step runs when its dependencies let it).
    public var condition: StepCondition?
    /// The matrix step and combination this step is an expansion of; nil for a step written as
    /// it is.
    public var matrix: MatrixInstance?

    /// Creates a step.
    public init(id: String, name: String? = nil, action: StepAction, dependsOn: [String] = [],
                timeout: Duration? = nil, retry: RetryPolicy = RetryPolicy(), critical: Bool = true,
                onFailure: FailurePolicy = .abort, tags: [String] = [], executor: ExecutorKind? = nil,
                slurm: SlurmSettings? = nil, condition: StepCondition? = nil, matrix: MatrixInstance? = nil) {
        self.id = id
        self.name = name
        self.action = action
        self.dependsOn = dependsOn
        self.timeout = timeout
        self.retry = retry
        self.critical = critical
        self.onFailure = onFailure
        self.tags = tags
        self.executor = executor
        self.slurm = slurm
        self.condition = condition
        self.matrix = matrix
    }

    /// A process step (library API convenience).
    public static func process(_ id: String, _ command: String, _ arguments: [String] = [],
                               dependsOn: [String] = []) -> Step {
        Step(id: id, action: .process(ProcessCommand(command: command, arguments: arguments)),
             dependsOn: dependsOn)
    }

    /// A closure step (library API convenience).
    public static func closure(_ id: String, dependsOn: [String] = [],
                               _ body: @escaping @Sendable (StepContext) async throws -> Void) -> Step {
        Step(id: id, action: .closure(body), dependsOn: dependsOn)
    }

    /// The process command, if this is a process step.
    public var processCommand: ProcessCommand? {
        if case .process(let command) = action { return command }
        return nil
    }

    /// The effective on-failure behaviour: a non-critical `abort` acts as `skip_dependents`.
    var effectiveFailurePolicy: FailurePolicy {
        onFailure == .abort && !critical ? .skipDependents : onFailure
    }
}
