import Glibc

/// The last bytes of a file, read without following a symbolic link and without reading the
/// rest of it (a log may be gigabytes): what the failure snapshot, the reports' log tails and
/// the retry rules read of an attempt's output.
package enum FileTail {
    /// Reads at most `maxBytes` from the end of the regular file at `path`.
    /// - Returns: the bytes and the file's whole size; nil when the file is absent, not a
    ///   regular file (a symbolic link is not followed), unreadable or empty.
    public static func read(path: String, maxBytes: Int) -> (bytes: [UInt8], fileSize: Int)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        let size = Int(info.st_size)
        let length = min(size, maxBytes)
        guard length > 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: length)
        var done = 0
        while done < length {
            let count = bytes.withUnsafeMutableBytes { buffer in
                pread(fd, buffer.baseAddress! + done, length - done, off_t(size - length + done))
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            done += count
        }
        bytes.removeSubrange(done...)
        return (bytes, size)
    }
}
