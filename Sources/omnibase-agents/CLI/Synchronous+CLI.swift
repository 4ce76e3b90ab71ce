import Orchestration

extension SQLiteDatabase.Synchronous {
    /// `--synchronous full|normal`, declared once for `run`, `resume` and `replay`: the
    /// durability of the run's record (README "Durability").
    static func option() -> Option {
        .choice("--synchronous", "full|normal", among: ["full", "normal"], """
            Durability of the run's record: full (default) syncs every commit to disk; normal commits \
            without syncing (what a step waits for goes to the run's commit record, the database \
            follows within 50 ms), so an OS crash or power loss can lose the last commits (a killed \
            engine loses nothing: resume applies the record). Applies to this session only (resume \
            does not keep it).
            """)
    }

    /// The level given with `--synchronous`; `.full` when none is given.
    static func parse(_ arguments: ParsedArguments) throws(EngineError) -> SQLiteDatabase.Synchronous {
        try arguments.choice("--synchronous") == "normal" ? .normal : .full
    }
}
