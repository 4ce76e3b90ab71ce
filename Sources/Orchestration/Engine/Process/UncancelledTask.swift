/// Runs `body` to completion even if the calling task is cancelled, and returns its result.
///
/// Cleanup that must finish (tearing a process group down, reaping its leader) would otherwise see
/// the caller's cancellation: its sleeps would end at once and its waits would give up.
///
/// This looks unstructured but is not: the task's `.value` is awaited right here, so the task
/// never outlives the call. It inherits priority and task-locals, but not the cancellation, and
/// not, by itself, the caller's task executor preference: a caller on the process loop's thread
/// (a run of process steps) gets the loop again, so a timeout's TERM never waits for a thread of
/// the global pool, which blocking work elsewhere in the process may hold.
func withUncancelledTask<Result: Sendable>(_ body: @escaping @Sendable () async -> Result) async -> Result {
    if let loop = ProcessLoop.shared, loop.isCurrentThread {
        return await Task(executorPreference: loop) { await body() }.value
    }
    return await Task { await body() }.value
}
