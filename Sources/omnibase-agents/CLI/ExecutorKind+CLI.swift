import Orchestration

extension ExecutorKind {
    /// `--executor local|slurm`, declared once for `run`, `resume`, `replay` and `orch`.
    static func option(_ help: String, modes: [String] = []) -> Option {
        .choice("--executor", "local|slurm", among: allCases.map(\.rawValue), help, modes: modes)
    }

    /// `-k`/`--keep-going`, declared once for `run`, `resume`, `replay` and `orch`: every failure
    /// acts as `skip_dependents` for this run (``RunRequest/keepGoing``).
    static func keepGoingOption(modes: [String] = []) -> Option {
        .flag("--keep-going", short: "-k", """
            Keep going after failures, as make -k does: every failed step skips only its dependents,             nothing aborts the run (kept by resume).
            """, modes: modes)
    }

    /// The executor given with `--executor`, or nil.
    static func parse(_ arguments: ParsedArguments) throws(EngineError) -> ExecutorKind? {
        try arguments.choice("--executor").flatMap(ExecutorKind.init(rawValue:))
    }
}
