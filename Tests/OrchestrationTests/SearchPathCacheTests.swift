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

    /// Where directories cannot be watched, one newer than the settle margin is searched afresh
    /// every time.
    @Test func aFreshUnwatchedDirectoryIsNotTrusted() throws {
        let folders = try Folders()
        let cache = SearchPathCache(settleMargin: .seconds(3600), watching: false)
        let tool = try folders.program("tool", in: folders.first)
        let search = { ExecutableLookup.search("tool", searchPath: folders.first, workingDirectory: nil) }
        #expect(cache.resolve("tool", searchPath: folders.first, search: search) == .success(tool))
        chmod(tool, 0o644)
        #expect(cache.resolve("tool", searchPath: folders.first, search: search)
            == .failure(LaunchFailure("permission denied: tool")))
    }

    /// A watched directory is trusted at once, however fresh its times (an hour's margin here):
    /// the second search is not run again. A program added to an earlier directory, or removed,
    /// within the same tick of the file system's clock (no waiting here) is seen by the next
    /// search: the watch reports it, the times could not.
    @Test func aWatchedDirectoryIsTrustedAtOnceAndItsChangesAreSeenAtOnce() throws {
        let folders = try Folders()
        let cache = SearchPathCache(settleMargin: .seconds(3600))
        var searches = 0
        func resolve() -> Result<String, LaunchFailure> {
            cache.resolve("tool", searchPath: folders.searchPath) {
                searches += 1
                return ExecutableLookup.search("tool", searchPath: folders.searchPath, workingDirectory: nil)
            }
        }
        let later = folders.second + "/tool"
        try "#!/bin/sh\nexit 0\n".write(toFile: later, atomically: false, encoding: .utf8)
        chmod(later, 0o755)
        #expect(resolve() == .success(later))
        #expect(resolve() == .success(later))
        #expect(searches == 1, "the second search was run again")
        let earlier = folders.first + "/tool"
        try "#!/bin/sh\nexit 0\n".write(toFile: earlier, atomically: false, encoding: .utf8)
        chmod(earlier, 0o755)
        #expect(resolve() == .success(earlier))
        #expect(resolve() == .success(earlier))
        try FileManager.default.removeItem(atPath: earlier)
        #expect(resolve() == .success(later))
        // An entry's attributes change nothing it looks at: still cached (the spawn reports a
        // lost permission, and the engine then forgets every search).
        let before = searches
        chmod(later, 0o700)
        #expect(resolve() == .success(later))
        #expect(searches == before)
    }

    /// A directory deleted, then made again with the program in it, is seen each time; a
    /// directory reached through a symbolic link shares its watch with its real path (a change
    /// seen through one is seen through the other); and a directory moved away and replaced at
    /// its path is replaced in the cache too.
    @Test func deletedRecreatedAndLinkedDirectoriesAreSeen() throws {
        let folders = try Folders()
        let cache = SearchPathCache(settleMargin: .seconds(3600))
        let link = folders.root + "/link"
        #expect(symlink(folders.first, link) == 0)
        func resolve(_ searchPath: String) -> Result<String, LaunchFailure> {
            cache.resolve("tool", searchPath: searchPath) {
                ExecutableLookup.search("tool", searchPath: searchPath, workingDirectory: nil)
            }
        }
        let later = folders.second + "/tool"
        try "#!/bin/sh\nexit 0\n".write(toFile: later, atomically: false, encoding: .utf8)
        chmod(later, 0o755)
        let direct = "\(folders.first):\(folders.second)", linked = "\(link):\(folders.second)"
        #expect(resolve(direct) == .success(later))
        #expect(resolve(linked) == .success(later))
        try "#!/bin/sh\nexit 0\n".write(toFile: folders.first + "/tool", atomically: false, encoding: .utf8)
        chmod(folders.first + "/tool", 0o755)
        #expect(resolve(linked) == .success(link + "/tool"))
        #expect(resolve(direct) == .success(folders.first + "/tool"))
        try FileManager.default.removeItem(atPath: folders.first)
        #expect(resolve(direct) == .success(later))
        #expect(resolve(linked) == .success(later))
        try FileManager.default.createDirectory(atPath: folders.first, withIntermediateDirectories: false)
        try "#!/bin/sh\nexit 0\n".write(toFile: folders.first + "/tool", atomically: false, encoding: .utf8)
        chmod(folders.first + "/tool", 0o755)
        #expect(resolve(direct) == .success(folders.first + "/tool"))
        #expect(resolve(linked) == .success(link + "/tool"))
        // Moved away and replaced: the new directory is the one watched from then on.
        try FileManager.default.moveItem(atPath: folders.first, toPath: folders.root + "/moved")
        try FileManager.default.createDirectory(atPath: folders.first, withIntermediateDirectories: false)
        try "#!/bin/sh\nexit 0\n".write(toFile: folders.first + "/tool", atomically: false, encoding: .utf8)
        chmod(folders.first + "/tool", 0o755)
        #expect(resolve(direct) == .success(folders.first + "/tool"))
        #expect(resolve(direct) == .success(folders.first + "/tool"))
        try FileManager.default.removeItem(atPath: folders.first + "/tool")
        #expect(resolve(direct) == .success(later))
        #expect(resolve(linked) == .success(later))
    }

    /// An empty `PATH` directory deleted and made again at its path, with the program in it now,
    /// is seen. The cache kept each directory open, and the kernel reports a directory's deletion
    /// to its watch only once nothing holds it: the watch stayed silent, and the cache went on
    /// trusting the old, deleted directory (the later `PATH` entry was found for the engine's
    /// life). The same happened to a directory that was not empty whenever a child being spawned
    /// still held a copy of that descriptor (a CI failure of the test above).
    @Test func anEmptyDirectoryDeletedAndMadeAgainIsSeen() throws {
        let folders = try Folders()
        let cache = SearchPathCache(settleMargin: .seconds(3600))
        func resolve() -> Result<String, LaunchFailure> {
            cache.resolve("tool", searchPath: folders.searchPath) {
                ExecutableLookup.search("tool", searchPath: folders.searchPath, workingDirectory: nil)
            }
        }
        let later = folders.second + "/tool"
        try "#!/bin/sh\nexit 0\n".write(toFile: later, atomically: false, encoding: .utf8)
        chmod(later, 0o755)
        #expect(resolve() == .success(later))
        #expect(resolve() == .success(later))
        #expect(rmdir(folders.first) == 0)
        #expect(mkdir(folders.first, 0o755) == 0)
        try "#!/bin/sh\nexit 0\n".write(toFile: folders.first + "/tool", atomically: false, encoding: .utf8)
        chmod(folders.first + "/tool", 0o755)
        #expect(resolve() == .success(folders.first + "/tool"))
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
