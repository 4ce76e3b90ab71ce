import Glibc

/// A whole small file read or replaced with plain system calls, so that a failure keeps its error
/// number (Foundation's `Data(contentsOf:)` turns an `EMFILE` into "The operation could not be
/// completed", and its atomic write reports a folder as "NSCocoaErrorDomain error 512").
package enum FileContents {
    /// The system call that failed: its error number and the C library's sentence for it.
    package struct Failure: Error, CustomStringConvertible {
        package var code: Int32
        /// The step of a write that failed (`open`, `write`, `fsync`, `rename`); nil for a read
        /// and for a target that is a folder.
        package var operation: String? = nil
        package var description: String { String(cString: strerror(code)) }
    }

    /// Reads the file at `path` to its end.
    package static func read(path: String) throws(Failure) -> [UInt8] {
        // Non-blocking: a FIFO put in place of the file would otherwise wait for a writer forever
        // (it reads as empty instead); a regular file is read the same either way.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw Failure(code: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                bytes.append(contentsOf: chunk[0..<count])
            } else if count == 0 {
                return bytes
            } else if errno != EINTR {
                throw Failure(code: errno)
            }
        }
    }

    /// Replaces the file at `path` with `bytes` atomically: a temporary file in the same folder,
    /// written, `fsync`ed, renamed over `path`, then the folder `fsync`ed. Readers see the old
    /// or the new content, never a mix; on failure the temporary file is removed and `path` is
    /// untouched. An existing file's permission bits are kept (new files get `mode`); `path`
    /// names the file itself (resolve a symbolic link first to write through it).
    /// - Throws: ``Failure`` with the error number of the step that failed; `EISDIR` without an
    ///   operation when `path` is a folder.
    package static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws(Failure) {
        var slash = path.utf8.count
        while slash > 1, path.utf8.last == UInt8(ascii: "/") { slash -= 1 }
        let trimmed = String(path.utf8.prefix(slash))!
        let folder: String
        let name: String
        if let index = trimmed.lastIndex(of: "/") {
            folder = index == trimmed.startIndex ? "/" : String(trimmed[..<index])
            name = String(trimmed[trimmed.index(after: index)...])
        } else {
            folder = "."
            name = trimmed
        }
        var status = stat()
        var permissions = mode
        if stat(path, &status) == 0 {
            guard status.st_mode & S_IFMT != S_IFDIR else { throw Failure(code: EISDIR) }
            permissions = status.st_mode & 0o7777
        }
        let temporary = "\(folder == "/" ? "" : folder)/.\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(code: errno, operation: "open") }
        var renamed = false
        defer { if !renamed { unlink(temporary) } }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if written < 0 {
                let number = errno
                if number == EINTR { continue }
                close(fd)
                throw Failure(code: number, operation: "write")
            }
            offset += written
        }
        guard fchmod(fd, permissions) == 0, fsync(fd) == 0 else {
            let number = errno
            close(fd)
            throw Failure(code: number, operation: "fsync")
        }
        close(fd)
        guard rename(temporary, path) == 0 else { throw Failure(code: errno, operation: "rename") }
        renamed = true
        let directory = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            _ = fsync(directory)
            close(directory)
        }
    }
}
