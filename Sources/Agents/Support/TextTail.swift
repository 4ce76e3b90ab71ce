import Foundation

/// The last lines of a text file, read from its end without loading the whole file.
enum TextTail {
    /// The last `maxLines` lines of the file (at most `maxBytes` read), or nil when it is
    /// missing, empty or only whitespace. Symbolic links are not followed.
    static func read(path: String, maxLines: Int = 40, maxBytes: Int = 16_384) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        let size = Int(info.st_size)
        let length = min(size, maxBytes)
        guard length > 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: length)
        let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, length, off_t(size - length)) }
        guard got > 0 else { return nil }
        var text = String(decoding: bytes[0..<got], as: UTF8.self)
        if length < size, let newline = text.firstIndex(of: "\n") { text = String(text[text.index(after: newline)...]) }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let kept = lines.suffix(maxLines + (text.hasSuffix("\n") ? 1 : 0)).joined(separator: "\n")
        return kept.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : kept
    }
}
