import Orchestration

extension ExecutorKind {
    /// `--executor local|slurm`, declared once for `run`, `resume`, `replay` and `orch`.
    static func option(_ help: String, modes: [String] = []) -> Option {
        .choice("--executor", "local|slurm", among: allCases.map(\.rawValue), help, modes: modes)
    }

    /// The executor given with `--executor`, or nil.
    static func parse(_ arguments: ParsedArguments) throws(EngineError) -> ExecutorKind? {
        try arguments.choice("--executor").flatMap(ExecutorKind.init(rawValue:))
    }
}
