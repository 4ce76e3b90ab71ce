import Foundation
import Orchestration

/// The floor under any process runner on this machine: the same DAG of `true` run by the least
/// a runner can do. `posix_spawn` (glibc's is a `vfork`-style clone) with the child in a group
/// of its own, stdin on `/dev/null`, stdout and stderr on two pipes; a blocking `waitpid(-1)`;
/// after an exit, the child's pipes read to their end and closed; dependents in index order.
/// No store, no logs, no timeouts, no lookups (the path of `true` is found once): not a usable
/// runner (a child that filled a pipe before exiting would block it), a yardstick. A ratio
/// near 1 to it means the rest is the kernel's.
func spawnFloor(dependencies: [[Int]], concurrency: Int) async throws -> Measured? {
    let candidates: [String] = ["/usr/bin/true", "/bin/true"]
    guard let truePath = candidates.first(where: { access($0, X_OK) == 0 }) else { return nil }
    return try await measure { try runFloor(dependencies: dependencies, concurrency: concurrency, truePath: truePath) }
}

private func runFloor(dependencies: [[Int]], concurrency: Int, truePath: String) throws(EngineError) {
    func failed(_ call: String, _ code: Int32) -> EngineError {
        EngineError(.executionFailed, "the spawn floor failed: \(call): \(String(cString: strerror(code)))")
    }
    let count = dependencies.count
    var waitingOn = dependencies.map(\.count)
    var dependents = [[Int]](repeating: [], count: count)
    for (step, list) in dependencies.enumerated() { for dep in list { dependents[dep].append(step) } }
    var ready = (0..<count).filter { waitingOn[$0] == 0 }
    var nextReady = 0
    var running: [pid_t: (step: Int, out: Int32, err: Int32)] = [:]
    let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
    defer { close(devNull) }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
    posix_spawnattr_setpgroup(&attributes, 0)
    defer { posix_spawnattr_destroy(&attributes) }
    let argv: [UnsafeMutablePointer<CChar>?] = [strdup(truePath), nil]
    defer { free(argv[0]) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    var finished = 0
    while finished < count {
        while running.count < concurrency && nextReady < ready.count {
            let step = ready[nextReady]
            nextReady += 1
            var out: [Int32] = [0, 0], err: [Int32] = [0, 0]
            guard pipe(&out) == 0, pipe(&err) == 0 else { throw failed("pipe", errno) }
            // The parent's read ends must not leak into later children (the write ends are
            // closed before the next spawn).
            _ = fcntl(out[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(err[0], F_SETFD, FD_CLOEXEC)
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            posix_spawn_file_actions_adddup2(&actions, devNull, 0)
            posix_spawn_file_actions_adddup2(&actions, out[1], 1)
            posix_spawn_file_actions_adddup2(&actions, err[1], 2)
            var pid: pid_t = 0
            let code = argv.withUnsafeBufferPointer { pointer in
                posix_spawn(&pid, truePath, &actions, &attributes, pointer.baseAddress!, environ)
            }
            posix_spawn_file_actions_destroy(&actions)
            close(out[1])
            close(err[1])
            guard code == 0 else { throw failed("posix_spawn", code) }
            running[pid] = (step, out[0], err[0])
        }
        var status: Int32 = 0
        let pid = waitpid(-1, &status, 0)
        guard pid > 0, let child = running.removeValue(forKey: pid) else {
            if pid < 0 && errno == EINTR { continue }
            throw failed("waitpid", errno)
        }
        for fd in [child.out, child.err] {
            while buffer.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) > 0 {}
            close(fd)
        }
        finished += 1
        for dependent in dependents[child.step] {
            waitingOn[dependent] -= 1
            if waitingOn[dependent] == 0 { ready.append(dependent) }
        }
    }
}
