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
    ///   registry or its folder cannot be opened; 74 when the file cannot be written.
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
            // The registry's path is an argument (exit 2); 74 is for the state folder.
            throw EngineError(.usage, "cannot open the registry's folder \(folder): \(String(cString: strerror(errno)))")
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

    /// Replaces `path` with `bytes` (``FileContents/write(_:to:mode:)``: temporary file, fsync,
    /// rename, fsync of the folder).
    static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws(EngineError) {
        do throws(FileContents.Failure) {
            try FileContents.write(bytes, to: path)
        } catch {
            throw EngineError(.stateFailure, "cannot write the registry \(path): \(error.operation.map { "\($0): " } ?? "")\(error)")
        }
    }
}
