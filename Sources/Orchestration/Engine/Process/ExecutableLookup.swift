import Glibc

/// Finds the file a step's command names, the way `execvpe` would, before anything is spawned.
///
/// Doing the lookup here (instead of `posix_spawnp`) gives one clear sentence for each failure
/// (`command not found: foo`, `permission denied: ./script`) without starting a process, and
/// searches the `PATH` of the *child's* environment rather than the engine's.
enum ExecutableLookup {
    /// The `PATH` used when neither the child's environment nor the engine's has one (glibc's default).
    static let defaultSearchPath = "/bin:/usr/bin"

    /// Resolves `command` to the path to hand to the spawn.
    ///
    /// - A command containing `/` is used as is; a relative one is taken relative to
    ///   `workingDirectory` (where the child will be when it executes). The path returned is
    ///   absolute whenever the command or the directory is relative.
    /// - Otherwise each directory of `path` (the child's `PATH`; without one, the engine's) is tried in
    ///   order; an empty entry means the working directory. The first regular file that passes
    ///   `access(X_OK)` wins. As in `execvp`, finding only non-executable candidates reports
    ///   "permission denied".
    ///
    /// - Returns: The path, or a one-sentence reason why the command cannot be started.
    static func resolve(_ command: String, path: String?, workingDirectory: String?) -> Result<String, LaunchFailure> {
        if command.isEmpty {
            return .failure(LaunchFailure("the command is empty"))
        }
        if command.utf8.contains(UInt8(ascii: "/")) {
            let path = anchored(command, in: workingDirectory)
            switch classify(path) {
            case .executable: return .success(path)
            case .missing: return .failure(LaunchFailure("command not found: \(command)"))
            case .notExecutable: return .failure(LaunchFailure("permission denied: \(command)"))
            case .directory: return .failure(LaunchFailure("is a directory, not a program: \(command)"))
            }
        }
        let searchPath = path ?? getenv("PATH").map { String(cString: $0) } ?? defaultSearchPath
        return searchCache.resolve(command, searchPath: searchPath) {
            search(command, searchPath: searchPath, workingDirectory: workingDirectory)
        }
    }

    /// The engine's cache of `PATH` searches (``SearchPathCache``).
    static let searchCache = SearchPathCache()

    /// Searches each directory of `searchPath` in order, as ``resolve(_:path:workingDirectory:)``
    /// describes.
    static func search(_ command: String, searchPath: String, workingDirectory: String?) -> Result<String, LaunchFailure> {
        var sawNotExecutable = false
        for directory in searchPath.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = anchored(directory.isEmpty ? command : "\(directory)/\(command)", in: workingDirectory)
            switch classify(candidate) {
            case .executable: return .success(candidate)
            case .notExecutable: sawNotExecutable = true
            case .missing, .directory: continue
            }
        }
        return .failure(LaunchFailure(sawNotExecutable ? "permission denied: \(command)" : "command not found: \(command)"))
    }

    /// What is at a path, as far as executing it goes.
    enum Kind: Equatable {
        case executable, notExecutable, directory, missing
    }

    /// Classifies `path` with `stat` and `access(X_OK)`.
    static func classify(_ path: String) -> Kind {
        var info = stat()
        guard stat(path, &info) == 0 else { return .missing }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return access(path, X_OK) == 0 ? .executable : .notExecutable
        default: return .notExecutable
        }
    }

    /// Whether `path` names an existing directory.
    static func isDirectory(_ path: String) -> Bool {
        classify(path) == .directory
    }

    /// `path` itself if absolute, else `path` under `directory` (when there is one), made absolute
    /// against the engine's current directory if still relative: the child changes directory
    /// before it executes the file, so a relative path would be resolved from the wrong place.
    private static func anchored(_ path: String, in directory: String?) -> String {
        if path.hasPrefix("/") { return path }
        var anchored = path
        if let directory {
            anchored = directory.hasSuffix("/") ? directory + path : "\(directory)/\(path)"
        }
        if anchored.hasPrefix("/") { return anchored }
        guard let current = getcwd(nil, 0) else { return anchored }
        defer { free(current) }
        return "\(String(cString: current))/\(anchored)"
    }
}

/// Why a spec could not be started: one sentence a user can act on.
struct LaunchFailure: Error, Equatable {
    /// The sentence, e.g. `command not found: foo`.
    var message: String
    /// The spawn's error number, when the spawn itself failed (0 otherwise): what decides a retry.
    var code: Int32 = 0

    init(_ message: String) { self.message = message }

    /// The engine ran out of file descriptors (`EMFILE`, or the system's `ENFILE`) setting up or
    /// spawning a child: a failure that clears as other steps end, so it is retried
    /// (``ProcessLauncher/isTransient(_:)``), and said with the limit to change.
    static func outOfFiles(_ code: Int32) -> LaunchFailure {
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        var failure = code == ENFILE
            ? LaunchFailure("too many open files in the system (ENFILE): lower max_concurrency")
            : LaunchFailure("too many open files: the engine may hold \(limit.rlim_cur) at once (ulimit -n) and each "
                            + "running step holds up to 5; lower max_concurrency or raise the limit")
        failure.code = code
        return failure
    }

    /// A spawn refused because it would leave fewer descriptors free than the engine keeps for
    /// itself (``DescriptorGate``), with no step running to give any back.
    static func noRoomForStep() -> LaunchFailure {
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        let open = DescriptorGate.openDescriptors().map { " and has \($0) open" } ?? ""
        var failure = LaunchFailure("too many open files: the engine may hold \(limit.rlim_cur) at once (ulimit -n)\(open); "
                                    + "a step needs \(DescriptorGate.perSpawn) more beside \(DescriptorGate.reserve) kept free "
                                    + "for the engine itself; raise the limit")
        failure.code = EMFILE
        return failure
    }
}
