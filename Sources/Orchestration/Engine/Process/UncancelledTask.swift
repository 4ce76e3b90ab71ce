/// Runs `body` to completion even if the calling task is cancelled, and returns its result.
///
/// Cleanup that must finish (tearing a process group down, reaping its leader) would otherwise see
/// the caller's cancellation: its sleeps would end at once and its waits would give up.
///
/// This looks unstructured but is not: the task's `.value` is awaited right here, so the task
/// never outlives the call. It inherits priority and task-locals, but not the cancellation.
func withUncancelledTask<Result: Sendable>(_ body: @escaping @Sendable () async -> Result) async -> Result {
    await Task { await body() }.value
}
