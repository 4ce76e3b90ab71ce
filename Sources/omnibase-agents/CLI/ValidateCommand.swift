import Orchestration

/// `validate PLAN.json`: check a plan, print nothing but errors.
struct ValidateCommand: CLICommand {
    static let name = "validate"
    static let abstract = "Check a plan; print nothing but errors (exit 0 or 2)."
    static let help = """
    Usage: omnibase-agents validate PLAN.json [--var NAME=VALUE]...

    Loads the plan exactly as 'run' would (strict JSON, unknown keys, types, ranges, ids,
    dependencies, cycles, variables) and prints nothing when it is valid.

    Exit codes: 0 valid, 2 invalid (one located sentence on stderr).

    """

    let planPath: String
    let variables: [String: String]

    init(arguments: [String]) throws(EngineError) {
        // The common options are accepted (so scripts can pass them everywhere); validate uses none.
        let scanner = try ArgumentScanner(arguments, valueOptions: CommonOptions.valueOptions.union(["--var"]),
                                          flags: CommonOptions.flags)
        _ = try CommonOptions(scanner)
        guard scanner.remainingPositionals.count == 1 else {
            throw usage(scanner.remainingPositionals.isEmpty ? "validate needs a plan file"
                        : "validate takes one plan file, got \(scanner.remainingPositionals.count) arguments")
        }
        planPath = scanner.remainingPositionals[0]
        variables = try scanner.variables()
    }

    func run() async throws(EngineError) -> Int32 {
        _ = try PlanLoader.load(path: planPath, overrides: variables, refusingUnusedOverrides: true)
        return 0
    }
}
