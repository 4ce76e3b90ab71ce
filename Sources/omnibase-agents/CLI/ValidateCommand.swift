import Orchestration

/// `validate PLAN.json`: check a plan, print nothing but errors.
struct ValidateCommand: CLICommand {
    static let configuration = CommandConfiguration(
        name: "validate", arguments: "PLAN.json", abstract: "Check a plan; print nothing but errors (exit 0 or 2).",
        discussion: """
        Loads the plan exactly as 'run' would (strict JSON, unknown keys, types, ranges, ids, dependencies, \
        cycles, variables) and prints nothing when it is valid.
        """,
        sections: [
            OptionSection("Options:", [.repeatable("--var", "NAME=VALUE", "Set a plan variable (overrides the plan's \"variables\").")]),
            // Accepted so that scripts can pass them everywhere; validate uses none.
            CommonOptions.section,
        ],
        epilogue: "Exit codes: 0 valid, 2 invalid (one located sentence on stderr).")

    let planPath: String
    let variables: [String: String]

    init(parsing arguments: ParsedArguments) throws(EngineError) {
        _ = try CommonOptions(arguments)
        planPath = try arguments.positionals(count: 1) {
            $0.isEmpty ? "validate needs a plan file" : "validate takes one plan file, got \($0.count) arguments"
        }[0]
        variables = try arguments.variables()
    }

    func run() async throws(EngineError) -> Int32 {
        _ = try PlanLoader.load(path: planPath, overrides: variables, refusingUnusedOverrides: true)
        return 0
    }
}
