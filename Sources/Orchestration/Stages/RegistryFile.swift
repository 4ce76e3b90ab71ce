import Foundation
import Glibc
import Orchestration

/// Safe edits of the registry file: read, change, validate, replace atomically.
///
/// An edit holds an exclusive `flock` on the file's folder (so concurrent `registry add`s do not
/// lose each other's changes, and no lock file is left in the repository), re-reads the file,
/// applies the change to its JSON document (members keep their order), checks that the result is
/// a valid registry, writes it as canonical JSON (two-space indentation, one member per line,
/// a final newline) to a temporary file in the same folder, `fsync`s it, renames it over the
/// file and `fsync`s the folder: readers see the old or the new registry, never a mix. The
/// file's permission bits are kept; a symbolic link is followed to the file it names.
public enum RegistryFile {
    /// Applies `change` to the registry at `path` (nil when the file does not exist yet).
    /// - Returns: the new registry.
    /// - Throws: ``EngineError``: whatever `change` throws; exit 2 if the result is not a valid
    ///   registry; 74 when the file cannot be written.
    @discardableResult
    public static func edit(path: String, _ change: (LoadedRegistry?) throws(EngineError) -> JSONValue) throws(EngineError) -> LoadedRegistry {
        let target = resolve(path)
        let folder = (target as NSString).deletingLastPathComponent
        let lock = try lockFolder(folder.isEmpty ? "." : folder)
        defer { close(lock) }
        let current: LoadedRegistry? = FileManager.default.fileExists(atPath: target) ? try RegistryLoader.load(path: path) : nil
        let document = try change(current)
        let text = document.serialized(pretty: true) + "\n"
        let directory = URL(fileURLWithPath: target).deletingLastPathComponent().standardizedFileURL.path
        let updated: LoadedRegistry
        do {
            updated = try RegistryLoader.load(bytes: Array(text.utf8), displayPath: path, directory: directory)
        } catch {
            throw EngineError(.invalidPlan, "the change would make the registry invalid: \(error.message)")
        }
        try writeAtomically(target, Array(text.utf8))
        return updated
    }

    /// The path with symbolic links resolved (the file itself may not exist yet).
    static func resolve(_ path: String) -> String {
        if let resolved = realpath(path, nil) {
            defer { free(resolved) }
            return String(cString: resolved)
        }
        return URL(fileURLWithPath: path).standardizedFileURL.path
    }

    /// Takes an exclusive lock on a folder, waiting up to 10 seconds.
    static func lockFolder(_ folder: String) throws(EngineError) -> Int32 {
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw EngineError(.stateFailure, "cannot open \(folder): \(String(cString: strerror(errno)))")
        }
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let number = errno
            guard number == EWOULDBLOCK || number == EINTR else {
                close(fd)
                throw EngineError(.stateFailure, "cannot lock \(folder): \(String(cString: strerror(number)))")
            }
            guard ContinuousClock.now < deadline else {
                close(fd)
                throw EngineError(.runHeld, "another command is editing the registry in \(folder); try again later")
            }
            usleep(5_000)
        }
        return fd
    }

    /// Replaces `path` with `bytes`: temporary file, fsync, rename, fsync of the folder.
    static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws(EngineError) {
        let folder = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        var mode: mode_t = 0o644
        var status = stat()
        if stat(path, &status) == 0 { mode = status.st_mode & 0o7777 }
        let temporary = "\(folder)/.\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        func failure(_ operation: String, _ number: Int32) -> EngineError {
            EngineError(.stateFailure, "cannot write the registry \(path): \(operation): \(String(cString: strerror(number)))")
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure("open", errno) }
        var renamed = false
        defer { if !renamed { unlink(temporary) } }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                let number = errno
                close(fd)
                throw failure("write", number)
            }
            offset += written
        }
        guard fchmod(fd, mode) == 0, fsync(fd) == 0 else {
            let number = errno
            close(fd)
            throw failure("fsync", number)
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw failure("rename", errno) }
        renamed = true
        let directory = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            _ = fsync(directory)
            close(directory)
        }
    }
}
