import Orchestration

extension SQLiteDatabase.Synchronous {
    /// `--synchronous full|normal`, declared once for `run`, `resume` and `replay`: the
    /// durability of the run's record (README "Durability").
    static func option() -> Option {
        .choice("--synchronous", "full|normal", among: ["full", "normal"], """
            Durability of the run's record: full (default) syncs every commit to disk; normal leaves \
            syncing to checkpoints, so an OS crash or power loss can lose the last commits (a killed \
            engine loses nothing). Applies to this session only (resume does not keep it).
            """)
    }

    /// The level given with `--synchronous`; `.full` when none is given.
    static func parse(_ arguments: ParsedArguments) throws(EngineError) -> SQLiteDatabase.Synchronous {
        try arguments.choice("--synchronous") == "normal" ? .normal : .full
    }
}
