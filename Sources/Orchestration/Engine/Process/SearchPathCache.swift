import COmnibaseShims
import Glibc
import Synchronization

/// Remembers where each command was found on each `PATH`, and trusts it for as long as the
/// directories searched have not changed, which inotify reports (or, where it cannot watch a
/// directory, its change times show).
///
/// A search for `true` on a `PATH` of 12 directories costs about 10 `stat` calls (every directory
/// before `/usr/bin`, then the file), each one walking the path from the root: several
/// microseconds per spawn. A cached search keeps each directory it looked in watched by one
/// inotify descriptor (entries created, deleted or moved in it; the directory's own attributes,
/// deletion or move), and not open: the kernel reports a directory's deletion only once nothing
/// holds it open. Checking a cached search is then one non-blocking `read` of that descriptor,
/// whatever the number of directories: it returns `EAGAIN` when nothing changed. (Before: one `fstat` per directory, 11 for `true` on a `PATH`
/// of 12, about 9 us of the loop thread per spawn.) The kernel queues an event before the call
/// that changed the directory returns, so a change made before a spawn is seen by that spawn.
///
/// The descriptor is opened at the first search and held for the engine's life: one of the
/// user's inotify instances (`fs.inotify.max_user_instances`, 128 by default on Linux).
/// A directory that cannot be watched (inotify unavailable, its watch limit reached) is kept open
/// (`O_PATH`, close-on-exec) and checked with one `fstat`: if its modification and change times,
/// inode and link count are all the same, no entry has been added, removed or renamed in it
/// since, so a name that was missing there is still missing.
///
/// Rules that keep it correct:
/// - Only successful searches of absolute directories are cached, and only when every earlier
///   candidate had no directory entry at all (a dangling symbolic link may come to life without
///   its directory changing). Failures and relative `PATH` entries are searched afresh each time.
/// - A watch is added before the directory is looked at, and a search is cached only if no
///   directory it went through changed from before the search to after it.
/// - An unwatched directory (or one whose watch is new) whose times are less than
///   ``settleMargin`` old is not trusted: two changes within one tick of the file system's clock
///   can leave the same times behind. An event queue that overflowed marks every directory
///   changed.
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

    /// One directory of some `PATH`.
    private struct Directory {
        /// `O_PATH` descriptor of a directory that is not watched, for its `fstat`; -1 otherwise.
        /// A watched directory is not kept open: an open descriptor (or a copy of it in a child
        /// not yet executed) holds the directory's entry, and the kernel reports its deletion
        /// (`IN_DELETE_SELF`) only once nothing does. Kept open, an empty directory deleted and
        /// made again at its path went unnoticed for the engine's life.
        var fd: Int32 = -1
        var stamp: Stamp?
        /// Bumped whenever the directory is found changed (or appeared, or vanished).
        var generation = 0
        /// The inotify watch, or -1 when it is not watched.
        var watch: Int32 = -1
        /// An event came for it since it was last looked at.
        var changed = false
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
        /// The inotify descriptor (non-blocking, close-on-exec); -1 before it is opened, or
        /// when it cannot be (then every directory is checked with `fstat`).
        var inotify: Int32 = -1
        var inotifyFailed = false
        /// The directories of each watch (two paths of one directory, through a symbolic link,
        /// share its watch).
        var watched: [Int32: [String]] = [:]
    }

    /// What a watch reports: entries created, deleted or moved in the directory, and the
    /// directory's own attributes, deletion or move (its entries' attributes are ignored, see
    /// ``drain(_:)``).
    private static let watchMask = UInt32(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB
                                          | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

    /// How old a directory's times must be before a search through it is cached.
    let settleMargin: Duration
    /// Caches at most this many searches and directories; past it, everything is forgotten.
    static let capacity = 4096

    private let state = Mutex(State())

    /// Whether directories are watched with inotify (false: every check is an `fstat`, as
    /// where inotify is not available).
    let watching: Bool

    /// Creates an empty cache.
    init(settleMargin: Duration = .seconds(2), watching: Bool = true) {
        self.settleMargin = settleMargin
        self.watching = watching
    }

    deinit {
        state.withLock { forget(&$0) }
    }

    /// The cached result of searching `command` on `searchPath` if every directory searched is
    /// unchanged; otherwise runs `search` and caches its result when the rules allow.
    func resolve(_ command: String, searchPath: String,
                 search: () -> Result<String, LaunchFailure>) -> Result<String, LaunchFailure> {
        let key = Key(searchPath: searchPath, command: command)
        let now = Self.realtimeNanoseconds()
        return state.withLock { state in
            drain(&state)
            if let found = state.found[key],
               found.directories.allSatisfy({ revalidate($0.path, in: &state, now: now)?.generation == $0.generation }) {
                return .success(found.path)
            }
            state.found[key] = nil
            // Watched before the search, so that a change during it is reported afterwards.
            var before: [String: Int] = [:]
            for entry in searchPath.split(separator: ":", omittingEmptySubsequences: false) where entry.hasPrefix("/") {
                let directory = String(entry)
                if let current = revalidate(directory, in: &state, now: now) { before[directory] = current.generation }
            }
            let result = search()
            guard case .success(let path) = result else { return result }
            drain(&state)
            if let found = record(command, foundAt: path, searchPath: searchPath, before: before, in: &state, now: now) {
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
        // Closing it removes every watch.
        if state.inotify >= 0 { close(state.inotify) }
        state = State()
    }

    /// Reads every event queued on the inotify descriptor and marks the directories they name
    /// changed; one `read` that fails with `EAGAIN` when nothing changed.
    private func drain(_ state: inout State) {
        guard state.inotify >= 0 else { return }
        // On the stack: this runs at every spawn, and nearly always reads nothing.
        let size = 4096
        withUnsafeTemporaryAllocation(byteCount: size, alignment: MemoryLayout<inotify_event>.alignment) { space in
            guard let buffer = space.baseAddress else { return }
            drain(&state, buffer: buffer, size: size)
        }
    }

    private func drain(_ state: inout State, buffer: UnsafeMutableRawPointer, size: Int) {
        while true {
            let count = read(state.inotify, buffer, size)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            var offset = 0
            while offset + MemoryLayout<inotify_event>.size <= count {
                let event = buffer.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                offset += MemoryLayout<inotify_event>.size + Int(event.len)
                if event.mask & UInt32(IN_Q_OVERFLOW) != 0 {
                    // Events were lost: nothing watched can be trusted.
                    for paths in state.watched.values {
                        for path in paths { state.directories[path]?.changed = true }
                    }
                    continue
                }
                guard let paths = state.watched[event.wd] else { continue }
                if event.mask & UInt32(IN_IGNORED | IN_MOVE_SELF | IN_DELETE_SELF) != 0 {
                    // The watch is gone (the directory was deleted or unmounted), or watches a
                    // directory that is no longer at its path (moved away): the path's next
                    // check opens and watches what is there now.
                    if event.mask & UInt32(IN_MOVE_SELF) != 0 { inotify_rm_watch(state.inotify, event.wd) }
                    state.watched[event.wd] = nil
                    for path in paths {
                        state.directories[path]?.watch = -1
                        state.directories[path]?.changed = true
                    }
                    continue
                }
                // An entry's own attributes (a `chmod` of a file in it) do not change which names
                // the directory holds, nor its times: as with `fstat`, the spawn reports them.
                if event.mask & UInt32(IN_ATTRIB) != 0 && event.len > 0 { continue }
                for path in paths { state.directories[path]?.changed = true }
            }
        }
    }

    /// Adds a watch on `path`, opening the inotify descriptor first if need be; -1 if it cannot.
    private func watch(_ path: String, in state: inout State) -> Int32 {
        if state.inotify < 0 {
            guard watching && !state.inotifyFailed else { return -1 }
            state.inotify = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            guard state.inotify >= 0 else {
                state.inotifyFailed = true
                return -1
            }
        }
        let wd = inotify_add_watch(state.inotify, path, Self.watchMask)
        guard wd >= 0 else { return -1 }
        if !(state.watched[wd]?.contains(path) ?? false) { state.watched[wd, default: []].append(path) }
        return wd
    }

    /// The directories searched before `path` was found (and its own), with their generations,
    /// or `nil` when the search must not be cached.
    private func record(_ command: String, foundAt path: String, searchPath: String, before: [String: Int],
                        in state: inout State, now: Int64) -> Found? {
        var directories: [(path: String, generation: Int)] = []
        for entry in searchPath.split(separator: ":", omittingEmptySubsequences: false) {
            guard entry.hasPrefix("/") else { return nil }
            let directory = String(entry)
            guard let current = revalidate(directory, in: &state, now: now), current.settled,
                  current.generation == before[directory] else { return nil }
            directories.append((directory, current.generation))
            let exists = state.directories[directory]?.stamp != nil
            if "\(directory)/\(command)" == path { return exists ? Found(path: path, directories: directories) : nil }
            // An earlier candidate must have no entry at all (not even a dangling link).
            if exists {
                var info = stat()
                let fd = state.directories[directory]?.fd ?? -1
                let missing = fd >= 0 ? fstatat(fd, command, &info, AT_SYMLINK_NOFOLLOW) != 0
                    : lstat("\(directory)/\(command)", &info) != 0
                guard missing, errno == ENOENT else { return nil }
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
        // Watched, and no event since it was last looked at: unchanged, without a system call.
        if directory.watch >= 0 && !directory.changed { return (directory.generation, true) }
        if directory.changed {
            directory.generation += 1
            directory.changed = false
        }
        var info = stat()
        if directory.watch < 0 && directory.fd >= 0 && fstat(directory.fd, &info) == 0 && info.st_nlink > 0
            && Stamp(info) == directory.stamp {
            // Not watched (the watch could not be added): its times tell.
            state.directories[path] = directory
            return (directory.generation, settled(directory.stamp, now: now))
        }
        if directory.fd >= 0 { close(directory.fd) }
        let fd = omni_open_directory(path)
        // The watch before the times it is trusted with: a change after them is reported.
        if fd >= 0 && directory.watch < 0 { directory.watch = watch(path, in: &state) }
        if fd >= 0 && fstat(fd, &info) == 0 {
            let stamp = Stamp(info)
            if state.directories[path] == nil || directory.stamp != stamp { directory.generation += 1 }
            // Watched: closed at once (see ``Directory/fd``).
            if directory.watch >= 0 { close(fd) }
            directory.fd = directory.watch >= 0 ? -1 : fd
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
