import Glibc

/// A whole small file read with plain system calls, so that a failure keeps its error number
/// (Foundation's `Data(contentsOf:)` turns an `EMFILE` into "The operation could not be
/// completed").
package enum FileContents {
    /// The `open` or `read` that failed: its error number and the C library's sentence for it.
    package struct Failure: Error, CustomStringConvertible {
        package var code: Int32
        package var description: String { String(cString: strerror(code)) }
    }

    /// Reads the file at `path` to its end.
    package static func read(path: String) throws(Failure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
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
}
