import COmnibaseShims
import Glibc
import Synchronization

/// Remembers where each command was found on each `PATH`, and trusts it for as long as the
/// directories searched have not changed, which is checked by their change times.
///
/// A search for `true` on a `PATH` of 12 directories costs about 10 `stat` calls (every directory
/// before `/usr/bin`, then the file), each one walking the path from the root: several
/// microseconds per spawn. A cached search keeps each directory it looked in open (`O_PATH`,
/// close-on-exec) and checks it with one `fstat`, which walks nothing: if the directory's
/// modification and change times, inode and link count are all the same, no entry has been
/// added, removed or renamed in it since, so a name that was missing there is still missing.
///
/// Rules that keep it correct:
/// - Only successful searches of absolute directories are cached, and only when every earlier
///   candidate had no directory entry at all (a dangling symbolic link may come to life without
///   its directory changing). Failures and relative `PATH` entries are searched afresh each time.
/// - A directory whose times are less than ``settleMargin`` old is not trusted: two changes
///   within one tick of the file system's clock can leave the same times behind.
/// - A directory replaced at its path (renamed away, deleted and made again) is seen too: renaming
///   or deleting it changes its change time or its link count.
/// - The found file itself is not checked again: if it loses its execute permission, or its
///   symbolic link's target goes away, the spawn fails and reports it
///   (``ProcessLauncher``), which also forgets every cached search (``forget()``).
final class SearchPathCache: Sendable {
    /// What a directory's `fstat` said.
    private struct Stamp: Equatable {
        var device: UInt64
        var inode: UInt64
        var links: UInt64
        var modified: timespec
        var changed: timespec

        init(_ info: stat) {
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            links = UInt64(info.st_nlink)
            modified = info.st_mtim
            changed = info.st_ctim
        }

        static func == (a: Stamp, b: Stamp) -> Bool {
            a.device == b.device && a.inode == b.inode && a.links == b.links
                && a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec
                && a.changed.tv_sec == b.changed.tv_sec && a.changed.tv_nsec == b.changed.tv_nsec
        }

        /// The later of the two times, in nanoseconds since the epoch.
        var latest: Int64 {
            max(Int64(modified.tv_sec) * 1_000_000_000 + Int64(modified.tv_nsec),
                Int64(changed.tv_sec) * 1_000_000_000 + Int64(changed.tv_nsec))
        }
    }

    /// One directory of some `PATH`, kept open.
    private struct Directory {
        /// `O_PATH` descriptor, or -1 when the directory did not exist when last looked at.
        var fd: Int32 = -1
        var stamp: Stamp?
        /// Bumped whenever the directory is found changed (or appeared, or vanished).
        var generation = 0
    }

    private struct Key: Hashable {
        var searchPath: String
        var command: String
    }

    /// A successful search: the file found and the generation of each directory searched.
    private struct Found {
        var path: String
        var directories: [(path: String, generation: Int)]
    }

    private struct State {
        var directories: [String: Directory] = [:]
        var found: [Key: Found] = [:]
    }

    /// How old a directory's times must be before a search through it is cached.
    let settleMargin: Duration
    /// Caches at most this many searches and directories; past it, everything is forgotten.
    static let capacity = 4096

    private let state = Mutex(State())

    /// Creates an empty cache.
    init(settleMargin: Duration = .seconds(2)) {
        self.settleMargin = settleMargin
    }

    deinit {
        state.withLock { state in
            for directory in state.directories.values where directory.fd >= 0 { close(directory.fd) }
        }
    }

    /// The cached result of searching `command` on `searchPath` if every directory searched is
    /// unchanged; otherwise runs `search` and caches its result when the rules allow.
    func resolve(_ command: String, searchPath: String,
                 search: () -> Result<String, LaunchFailure>) -> Result<String, LaunchFailure> {
        let key = Key(searchPath: searchPath, command: command)
        let now = Self.realtimeNanoseconds()
        return state.withLock { state in
            if let found = state.found[key],
               found.directories.allSatisfy({ revalidate($0.path, in: &state, now: now)?.generation == $0.generation }) {
                return .success(found.path)
            }
            state.found[key] = nil
            let result = search()
            guard case .success(let path) = result else { return result }
            if let found = record(command, foundAt: path, searchPath: searchPath, in: &state, now: now) {
                if state.found.count >= Self.capacity || state.directories.count >= Self.capacity { forget(&state) }
                state.found[key] = found
            }
            return result
        }
    }

    /// Forgets every search (after a spawn of a found file failed).
    func forget() {
        state.withLock { forget(&$0) }
    }

    private func forget(_ state: inout State) {
        for directory in state.directories.values where directory.fd >= 0 { close(directory.fd) }
        state = State()
    }

    /// The directories searched before `path` was found (and its own), with their generations,
    /// or `nil` when the search must not be cached.
    private func record(_ command: String, foundAt path: String, searchPath: String, in state: inout State,
                        now: Int64) -> Found? {
        var directories: [(path: String, generation: Int)] = []
        for entry in searchPath.split(separator: ":", omittingEmptySubsequences: false) {
            guard entry.hasPrefix("/") else { return nil }
            let directory = String(entry)
            guard let current = revalidate(directory, in: &state, now: now), current.settled else { return nil }
            directories.append((directory, current.generation))
            let fd = state.directories[directory]?.fd ?? -1
            if "\(directory)/\(command)" == path { return fd >= 0 ? Found(path: path, directories: directories) : nil }
            // An earlier candidate must have no entry at all (not even a dangling link).
            if fd >= 0 {
                var info = stat()
                guard fstatat(fd, command, &info, AT_SYMLINK_NOFOLLOW) != 0, errno == ENOENT else { return nil }
            }
        }
        return nil
    }

    /// Checks `path`'s directory against what was last seen, reopening it when it changed.
    ///
    /// - Returns: Its generation and whether its times are old enough to trust; `nil` if it
    ///   cannot be checked.
    private func revalidate(_ path: String, in state: inout State, now: Int64) -> (generation: Int, settled: Bool)? {
        var directory = state.directories[path] ?? Directory()
        var info = stat()
        if directory.fd >= 0 && fstat(directory.fd, &info) == 0 && info.st_nlink > 0 && Stamp(info) == directory.stamp {
            return (directory.generation, settled(directory.stamp, now: now))
        }
        if directory.fd >= 0 { close(directory.fd) }
        let fd = omni_open_directory(path)
        if fd >= 0 && fstat(fd, &info) == 0 {
            let stamp = Stamp(info)
            if state.directories[path] == nil || directory.stamp != stamp { directory.generation += 1 }
            directory.fd = fd
            directory.stamp = stamp
        } else {
            if fd >= 0 { close(fd) }
            if directory.stamp != nil || state.directories[path] == nil { directory.generation += 1 }
            directory.fd = -1
            directory.stamp = nil
        }
        state.directories[path] = directory
        return (directory.generation, settled(directory.stamp, now: now))
    }

    /// Whether a directory's times are old enough; a missing directory is checked by opening it
    /// each time, so its absence is always current.
    private func settled(_ stamp: Stamp?, now: Int64) -> Bool {
        guard let stamp else { return true }
        let (seconds, attoseconds) = settleMargin.components
        return now - stamp.latest >= seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    private static func realtimeNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}
