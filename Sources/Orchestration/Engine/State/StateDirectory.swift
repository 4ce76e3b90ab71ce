import Foundation
import Glibc

/// The state folder (`./.state` by default) and the safety rules for everything inside it.
///
/// The folder is created with mode 0700 and every file in it with mode 0600, whatever the umask
/// (the mode is set again with `chmod`/`fchmod` after creation, since the umask can only have
/// removed bits). Symbolic links are refused, because a link planted in the state folder would
/// make the engine write through it to a file of the attacker's choosing:
///
/// - the state folder itself must not be a symbolic link (its parents may be, e.g. `/tmp`);
/// - state files and subfolders are opened relative to the folder with `openat` and
///   `O_NOFOLLOW`, one path component at a time, so a link anywhere below the folder fails with
///   `ELOOP`, which is reported as ``StoreError/Code/symlinkRefused`` (exit 5), and the link's
///   target is never opened, truncated or replaced.
///
/// Every descriptor is opened with `O_CLOEXEC`, so spawned steps never inherit one.
///
/// Relative paths given to the methods must be plain: no leading `/`, no empty, `.` or `..`
/// components (``StoreError/Code/unsafePath``, exit 5).
public struct StateDirectory: Sendable, Hashable {
    /// The state folder's absolute path.
    public let path: String

    /// The files SQLite and the write lock keep beside the database; checked at `init`.
    static let databaseFiles = ["runs.db", "runs.db-wal", "runs.db-shm", "runs.db-journal", "runs.db.lock",
                                "runs.db.lock-wait"]

    /// Opens the state folder at `path`, creating it and its missing parents (mode 0700).
    ///
    /// An existing folder is used as it is (it is not `chmod`-ed), provided the current user
    /// owns it and nobody else may write to it.
    ///
    /// - Parameter path: The folder, absolute or relative to the current directory.
    /// - Throws: ``StoreError``: `.symlinkRefused` when the folder or one of the database files in
    ///   it is a symbolic link; `.insecurePermissions` when the folder belongs to another user or
    ///   is writable by group or others;
    ///   `.cannotOpen` when a path component is not a folder; the mapped `errno` otherwise.
    ///   With `creating` false (the commands that only read: `runs`, `report`, `graph --run`) a
    ///   missing folder is not created: ``EngineError`` `.unknownReference` (exit 3), "no run
    ///   history", so a mistyped `--state-dir` leaves nothing behind.
    public init(path: String, creating: Bool = true) throws {
        self.path = Self.absolute(path)
        if !creating {
            var status = stat()
            if stat(self.path, &status) != 0 && errno == ENOENT {
                throw EngineError(.unknownReference, "no run history in \(self.path) (no such folder)")
            }
        }
        try createFolder()
        for name in Self.databaseFiles + ["runs"] {
            try refuseSymlink(at: self.path + "/" + name)
        }
    }

    /// A state folder that does not exist (yet), for a reader that waits for an engine to create
    /// it (`serve`): nothing is created, written or checked. Use ``init(path:creating:)`` with
    /// `creating` false first; this is for its `.unknownReference` answer.
    /// - Parameter path: The folder, absolute or relative to the current directory.
    public static func awaited(path: String) -> StateDirectory {
        StateDirectory(absolutePath: absolute(path))
    }

    private init(absolutePath: String) {
        path = absolutePath
    }

    /// The SQLite database: `<folder>/runs.db`.
    public var databasePath: String { path + "/runs.db" }

    /// Checks that the run history is whole: a folder that holds recorded runs (`runs/<id>/`
    /// with an `events.jsonl`) but whose `runs.db` is missing or empty has lost its history, and
    /// using it would silently start a new one (earlier runs could no longer be listed or
    /// resumed).
    ///
    /// A run's `events.jsonl` is created only after its row is in the database, so a new state
    /// folder never looks damaged, not even to a second engine starting at the same moment (a
    /// stage's hooks may create `runs/<id>/hooks` before the database exists).
    ///
    /// - Throws: ``EngineError`` (exit 74) naming the database file; nothing is created or
    ///   written.
    public func checkHistoryIntact() throws(EngineError) {
        var status = stat()
        let missing = lstat(databasePath, &status) != 0 && errno == ENOENT
        guard missing || (status.st_mode & S_IFMT == S_IFREG && status.st_size == 0) else { return }
        let runs = path + "/runs"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: runs) else { return }
        let runFolders = entries.filter { name in
            var events = stat()
            return lstat(runs + "/" + name + "/events.jsonl", &events) == 0
        }
        guard !runFolders.isEmpty else { return }
        throw EngineError(.stateFailure,
                          "\(databasePath) is \(missing ? "missing" : "empty") but \(runs) holds \(runFolders.count) "
                          + "recorded run\(runFolders.count == 1 ? "" : "s"): the run history is damaged; restore runs.db "
                          + "from a backup, or move the state folder aside to start a new history")
    }

    /// The folder of one run: `<folder>/runs/<runID>`. Does not create it (see
    /// ``ensureSubdirectory(_:)``).
    ///
    /// - Parameter runID: The run's id; must be a single plain path component.
    /// - Throws: ``StoreError`` with `.unsafePath` when `runID` contains `/` or is `.`, `..` or
    ///   empty.
    public func runDirectory(_ runID: String) throws -> String {
        _ = try components(of: runID)
        guard !runID.contains("/") else { throw unsafePath(runID) }
        return path + "/runs/" + runID
    }

    // MARK: - Files

    /// Creates (or truncates) the file at `relativePath` for writing, with mode 0600, creating
    /// missing parent folders (mode 0700).
    ///
    /// - Parameter relativePath: The file, relative to the state folder.
    /// - Returns: A write-only descriptor, close-on-exec, owned by the caller (who must close it).
    /// - Throws: ``StoreError``: `.symlinkRefused` when the file or a folder on the way is a
    ///   symbolic link (its target is left untouched), `.unsafePath`, or the mapped `errno`.
    public func createFile(_ relativePath: String) throws -> Int32 {
        try openFile(relativePath, flags: O_WRONLY | O_CREAT | O_TRUNC)
    }

    /// Opens the file at `relativePath` for appending, creating it (mode 0600) and its missing
    /// parent folders (mode 0700).
    ///
    /// - Parameter relativePath: The file, relative to the state folder.
    /// - Returns: A handle that closes its descriptor when released; every write goes to the end
    ///   of the file (`O_APPEND`).
    /// - Throws: ``StoreError``: `.symlinkRefused`, `.unsafePath`, or the mapped `errno`.
    public func openForAppend(_ relativePath: String) throws -> FileHandle {
        let fd = try openFile(relativePath, flags: O_WRONLY | O_CREAT | O_APPEND)
        return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// Opens the file at `relativePath` for reading and writing (to map it), creating it (mode
    /// 0600) and its missing parent folders (mode 0700), as ``openForAppend(_:)`` does.
    ///
    /// - Returns: The descriptor (close-on-exec); the caller closes it.
    /// - Throws: ``StoreError``: `.symlinkRefused`, `.unsafePath`, or the mapped `errno`.
    package func openForUpdate(_ relativePath: String) throws -> Int32 {
        try openFile(relativePath, flags: O_RDWR | O_CREAT)
    }

    /// Opens an existing state file for reading, as ``openForUpdate(_:)`` does (no links, a
    /// regular file); nil when there is none.
    package func openForReading(_ relativePath: String) throws -> Int32? {
        guard faccessat(AT_FDCWD, fullPath(relativePath), F_OK, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT else { return nil }
        return try openFile(relativePath, flags: O_RDONLY)
    }

    /// Replaces the file at `relativePath` with `bytes` so that readers see the old or the new
    /// content, never a mix, even after a crash.
    ///
    /// Writes a temporary file (mode 0600, `O_EXCL | O_NOFOLLOW`) in the same folder, `fsync`s
    /// it, renames it over the target, then `fsync`s the folder. The temporary file is removed
    /// when anything fails.
    ///
    /// - Parameters:
    ///   - relativePath: The file, relative to the state folder.
    ///   - bytes: The new content.
    /// - Throws: ``StoreError``: `.symlinkRefused` when the target is a symbolic link (it is
    ///   neither replaced nor followed), `.diskFull`, `.ioError`, `.unsafePath`, or the mapped
    ///   `errno`.
    public func writeFileAtomically(_ relativePath: String, _ bytes: [UInt8]) throws {
        var names = try components(of: relativePath)
        let leaf = names.removeLast()
        let folder = try openDirectory(names, creating: true)
        defer { close(folder) }
        let target = fullPath(relativePath)

        var status = stat()
        if fstatat(folder, leaf, &status, AT_SYMLINK_NOFOLLOW) == 0 {
            switch status.st_mode & S_IFMT {
            case S_IFLNK: throw symlinkRefused(target)
            case S_IFREG: break
            default: throw StoreError.posix(EISDIR, operation: "rename", path: target)
            }
        }

        let temporary = ".\(leaf).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = openat(folder, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError.posix(errno, operation: "open", path: fullPath(temporary)) }
        var renamed = false
        defer { if !renamed { unlinkat(folder, temporary, 0) } }
        do {
            defer { close(fd) }
            guard fchmod(fd, 0o600) == 0 else { throw StoreError.posix(errno, operation: "fchmod", path: target) }
            try Self.writeAll(fd, bytes, path: target)
            guard fsync(fd) == 0 else { throw StoreError.posix(errno, operation: "fsync", path: target) }
        }
        guard renameat(folder, temporary, folder, leaf) == 0 else {
            throw StoreError.posix(errno, operation: "rename", path: target)
        }
        renamed = true
        // Make the rename itself durable.
        guard fsync(folder) == 0 else { throw StoreError.posix(errno, operation: "fsync", path: target) }
    }

    /// Creates the folder at `relativePath` and its missing parents (mode 0700) unless they
    /// exist.
    ///
    /// - Parameter relativePath: The folder, relative to the state folder, e.g. `runs/<id>/logs`.
    /// - Returns: The folder's absolute path.
    /// - Throws: ``StoreError``: `.symlinkRefused` when a component is a symbolic link,
    ///   `.cannotOpen` when one is not a folder, `.unsafePath`, or the mapped `errno`.
    @discardableResult
    public func ensureSubdirectory(_ relativePath: String) throws -> String {
        let folder = try openDirectory(try components(of: relativePath), creating: true)
        close(folder)
        return fullPath(relativePath)
    }

    // MARK: - Implementation

    private func openFile(_ relativePath: String, flags: Int32) throws -> Int32 {
        var names = try components(of: relativePath)
        let leaf = names.removeLast()
        let folder = try openDirectory(names, creating: true)
        defer { close(folder) }
        let target = fullPath(relativePath)

        let fd = openat(folder, leaf, flags | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let number = errno
            throw number == ELOOP ? symlinkRefused(target) : StoreError.posix(number, operation: "open", path: target)
        }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw StoreError.posix(EISDIR, operation: "open (not a regular file)", path: target)
        }
        if status.st_mode & 0o7777 != 0o600, fchmod(fd, 0o600) != 0 {
            let number = errno
            close(fd)
            throw StoreError.posix(number, operation: "fchmod", path: target)
        }
        return fd
    }

    /// Opens the state folder, then each of `names` below it without following links, creating
    /// missing ones with mode 0700 when `creating`. Returns the last folder's descriptor.
    private func openDirectory(_ names: [String], creating: Bool) throws -> Int32 {
        var current = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard current >= 0 else {
            let number = errno
            throw number == ELOOP ? symlinkRefused(path) : StoreError.posix(number, operation: "open", path: path)
        }
        var walked = path
        for name in names {
            walked += "/" + name
            if creating, mkdirat(current, name, 0o700) != 0, errno != EEXIST {
                let number = errno
                close(current)
                throw StoreError.posix(number, operation: "mkdir", path: walked)
            }
            let next = openat(current, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else {
                let number = errno
                var status = stat()
                let isLink = fstatat(current, name, &status, AT_SYMLINK_NOFOLLOW) == 0 && status.st_mode & S_IFMT == S_IFLNK
                close(current)
                throw isLink || number == ELOOP
                    ? symlinkRefused(walked) : StoreError.posix(number, operation: "open", path: walked)
            }
            close(current)
            current = next
            var status = stat()
            if fstat(current, &status) == 0, status.st_uid == geteuid(), status.st_mode & 0o7777 != 0o700 {
                _ = fchmod(current, 0o700)
            }
        }
        return current
    }

    /// Creates the state folder and its missing parents (0700); checks the folder itself.
    private func createFolder() throws {
        var prefix = ""
        for name in path.split(separator: "/") {
            prefix += "/" + name
            var status = stat()
            if stat(prefix, &status) == 0 { continue }  // Parents may be links (e.g. /tmp).
            guard errno == ENOENT else { throw StoreError.posix(errno, operation: "stat", path: prefix) }
            if mkdir(prefix, 0o700) == 0 {
                guard chmod(prefix, 0o700) == 0 else { throw StoreError.posix(errno, operation: "chmod", path: prefix) }
            } else if errno != EEXIST {
                throw StoreError.posix(errno, operation: "mkdir", path: prefix)
            }
        }

        var status = stat()
        guard lstat(path, &status) == 0 else { throw StoreError.posix(errno, operation: "lstat", path: path) }
        switch status.st_mode & S_IFMT {
        case S_IFDIR: break
        case S_IFLNK: throw symlinkRefused(path)
        default: throw StoreError.posix(ENOTDIR, operation: "open", path: path)
        }
        // An existing folder is not chmod-ed (it may be a folder the user chose, like their home),
        // but one that another user owns or may write to cannot be trusted.
        guard status.st_uid == geteuid() else {
            throw StoreError(
                .insecurePermissions,
                message: StoreError.defaultMessage(for: .insecurePermissions, path: path),
                detail: "owned by uid \(status.st_uid), running as uid \(geteuid())",
                path: path
            )
        }
        guard status.st_mode & 0o022 == 0 else {
            throw StoreError(
                .insecurePermissions,
                message: "Other users may write to the state folder '\(path)'; run 'chmod 700 \(path)' "
                    + "or choose another --state-dir.",
                detail: "mode \(String(status.st_mode & 0o7777, radix: 8))",
                path: path
            )
        }
    }

    private func refuseSymlink(at file: String) throws {
        var status = stat()
        if lstat(file, &status) == 0, status.st_mode & S_IFMT == S_IFLNK { throw symlinkRefused(file) }
    }

    /// Splits a relative path into plain components, refusing anything that could leave the folder.
    private func components(of relativePath: String) throws -> [String] {
        let names = relativePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard !relativePath.hasPrefix("/"),
              !names.isEmpty,
              names.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && !$0.contains("\0") })
        else { throw unsafePath(relativePath) }
        return names
    }

    private func fullPath(_ relativePath: String) -> String { path + "/" + relativePath }

    private func symlinkRefused(_ file: String) -> StoreError {
        StoreError(
            .symlinkRefused,
            message: StoreError.defaultMessage(for: .symlinkRefused, path: file),
            detail: "refusing to follow a symbolic link in the state folder",
            path: file
        )
    }

    private func unsafePath(_ relativePath: String) -> StoreError {
        StoreError(.unsafePath, message: StoreError.defaultMessage(for: .unsafePath, path: relativePath), path: relativePath)
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw StoreError.posix(errno, operation: "write", path: path)
                }
                offset += written
            }
        }
    }

    /// `path` made absolute against the current directory, without `.` or empty components.
    private static func absolute(_ path: String) -> String {
        let base = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let names = base.split(separator: "/").filter { $0 != "." }
        return "/" + names.joined(separator: "/")
    }
}
