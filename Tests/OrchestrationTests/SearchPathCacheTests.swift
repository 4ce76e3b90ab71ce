import Foundation
import Glibc
import Testing

@testable import Orchestration

/// The `PATH` search cache against real directories and files: programs added to and removed from
/// a directory between two searches, a `PATH` that differs per step, and what is never cached.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct SearchPathCacheTests {
    /// Two `PATH` directories in a temporary folder, and a cache that trusts directories at once
    /// (no settle margin), so the change times alone decide.
    private final class Folders {
        let root: String
        let first: String
        let second: String
        let cache = SearchPathCache(settleMargin: .zero)

        init() throws {
            var template = Array("/tmp/omnibase-path-test.XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw SystemCallError(call: "mkdtemp", code: errno) }
            root = String(cString: made)
            first = root + "/first"
            second = root + "/second"
            try FileManager.default.createDirectory(atPath: first, withIntermediateDirectories: false)
            try FileManager.default.createDirectory(atPath: second, withIntermediateDirectories: false)
        }

        deinit { try? FileManager.default.removeItem(atPath: root) }

        var searchPath: String { "\(first):\(second)" }

        func resolve(_ command: String, searchPath: String? = nil) -> Result<String, LaunchFailure> {
            let searchPath = searchPath ?? self.searchPath
            return cache.resolve(command, searchPath: searchPath) {
                ExecutableLookup.search(command, searchPath: searchPath, workingDirectory: nil)
            }
        }

        /// Waits (bounded) until the file system's clock has moved past `directory`'s times, so the
        /// change that follows gives it new ones: within one tick they could stay the same, which
        /// is what the settle margin guards against in the engine.
        func awaitNextTick(of directory: String) {
            var info = stat()
            stat(directory, &info)
            let deadline = ContinuousClock.now.advanced(by: .seconds(5))
            while ContinuousClock.now < deadline {
                var now = timespec()
                clock_gettime(CLOCK_REALTIME_COARSE, &now)
                if now.tv_sec > info.st_mtim.tv_sec || (now.tv_sec == info.st_mtim.tv_sec && now.tv_nsec > info.st_mtim.tv_nsec) {
                    return
                }
                sched_yield()
            }
        }

        @discardableResult
        func program(_ name: String, in directory: String) throws -> String {
            awaitNextTick(of: directory)
            let path = "\(directory)/\(name)"
            try "#!/bin/sh\nexit 0\n".write(toFile: path, atomically: false, encoding: .utf8)
            chmod(path, 0o755)
            return path
        }

        func remove(_ path: String) throws {
            awaitNextTick(of: (path as NSString).deletingLastPathComponent)
            try FileManager.default.removeItem(atPath: path)
        }
    }

    @Test func aProgramAddedToAnEarlierDirectoryIsFoundNext() throws {
        let folders = try Folders()
        let later = try folders.program("tool", in: folders.second)
        #expect(folders.resolve("tool") == .success(later))
        #expect(folders.resolve("tool") == .success(later))
        let earlier = try folders.program("tool", in: folders.first)
        #expect(folders.resolve("tool") == .success(earlier))
    }

    @Test func aRemovedProgramIsNotFoundAnyMore() throws {
        let folders = try Folders()
        let earlier = try folders.program("tool", in: folders.first)
        let later = try folders.program("tool", in: folders.second)
        #expect(folders.resolve("tool") == .success(earlier))
        try folders.remove(earlier)
        #expect(folders.resolve("tool") == .success(later))
        try folders.remove(later)
        #expect(folders.resolve("tool") == .failure(LaunchFailure("command not found: tool")))
        // And when it comes back, it is found again (failures are never cached).
        try folders.program("tool", in: folders.second)
        #expect(folders.resolve("tool") == .success(later))
    }

    @Test func eachPathHasItsOwnAnswer() throws {
        let folders = try Folders()
        let inFirst = try folders.program("tool", in: folders.first)
        let inSecond = try folders.program("tool", in: folders.second)
        #expect(folders.resolve("tool", searchPath: "\(folders.first):\(folders.second)") == .success(inFirst))
        #expect(folders.resolve("tool", searchPath: "\(folders.second):\(folders.first)") == .success(inSecond))
        #expect(folders.resolve("tool", searchPath: folders.second) == .success(inSecond))
        #expect(folders.resolve("tool", searchPath: "\(folders.first):\(folders.second)") == .success(inFirst))
    }

    /// What shows that searches are cached at all: a file that loses its permission in place (its
    /// directory does not change) is still the answer; the spawn then reports it, and the engine
    /// forgets its searches.
    @Test func anUnchangedDirectoryIsTrustedUntilForgotten() throws {
        let folders = try Folders()
        let tool = try folders.program("tool", in: folders.first)
        #expect(folders.resolve("tool") == .success(tool))
        chmod(tool, 0o644)
        #expect(folders.resolve("tool") == .success(tool))
        folders.cache.forget()
        #expect(folders.resolve("tool") == .failure(LaunchFailure("permission denied: tool")))
    }

    /// A directory newer than the settle margin is searched afresh every time.
    @Test func aFreshDirectoryIsNotTrusted() throws {
        let folders = try Folders()
        let cache = SearchPathCache(settleMargin: .seconds(3600))
        let tool = try folders.program("tool", in: folders.first)
        let search = { ExecutableLookup.search("tool", searchPath: folders.first, workingDirectory: nil) }
        #expect(cache.resolve("tool", searchPath: folders.first, search: search) == .success(tool))
        chmod(tool, 0o644)
        #expect(cache.resolve("tool", searchPath: folders.first, search: search)
            == .failure(LaunchFailure("permission denied: tool")))
    }

    /// Through the whole launch: a step's command added to a `PATH` directory between two steps.
    @Test func stepsSeeAProgramAddedBetweenThem() async throws {
        let folders = try Folders()
        var spec = ProcessSpec(command: "omnibase-path-test-tool", environment: ["PATH": folders.searchPath],
                               stdoutPath: "/dev/null", stderrPath: "/dev/null")
        spec.keepsExistingLogs = false
        #expect(await LocalProcess.run(spec).termination == .failedToStart("command not found: omnibase-path-test-tool"))
        try folders.program("omnibase-path-test-tool", in: folders.second)
        #expect(await LocalProcess.run(spec).termination == .exited(0))
        #expect(await LocalProcess.run(spec).termination == .exited(0))
        let earlier = try folders.program("omnibase-path-test-tool", in: folders.first)
        try "#!/bin/sh\nexit 7\n".write(toFile: earlier, atomically: false, encoding: .utf8)
        #expect(await LocalProcess.run(spec).termination == .exited(7))
    }
}
