import Orchestration

/// What watches the run a stage starts: the command line's live progress, the same as `run`'s
/// (``ExecutionContext/runWatcher``). The stage's own notices (deprecations, failed post hooks)
/// go to ``ExecutionContext/notices`` instead.
public protocol StageRunWatcher: Sendable {
    /// The observers to attach to the run about to start (a progress printer); called once, just
    /// before the run starts, with its plan and request.
    func observers(for plan: LoadedPlan, request: RunRequest, stateDirectory: StateDirectory) -> [any RunObserver]

    /// The run ended, or failed to start: a display drawn in place clears itself, before the post
    /// hooks run and their notices are printed.
    func runEnded()
}
