import Foundation

/// The completion promise of the Ralph loop: the agent prints `<promise>TEXT</promise>` alone on
/// a line of its standard output when it believes its task is done.
///
/// Only a line that is exactly the tag (surrounding spaces, tabs and a `\r` allowed) counts: the
/// tag inside a sentence ("I will print <promise>DONE</promise> when finished") does not, so an
/// agent that quotes its instructions does not end its task by accident.
public enum CompletionPromise {
    /// The tag for a promise text: `<promise>TEXT</promise>`.
    public static func tag(_ promise: String) -> String { "<promise>\(promise)</promise>" }

    /// Whether `text` has the tag alone on one of its lines.
    public static func isPresent(_ promise: String, in text: String) -> Bool {
        let tag = self.tag(promise)
        guard text.contains(tag) else { return false }
        // Split on the byte: in Swift "\r\n" is one Character, which `split(separator: "\n")`
        // would not split.
        let padding = CharacterSet(charactersIn: " \t\r")
        return text.utf8.split(separator: UInt8(ascii: "\n")).contains { line in
            String(decoding: line, as: UTF8.self).trimmingCharacters(in: padding) == tag
        }
    }

    /// Whether the file at `path` (an agent's stdout log) has the tag alone on a line; a missing
    /// file (the agent printed nothing) has not.
    ///
    /// Read in 64 KiB pieces and matched byte by byte against the tag, so memory does not grow
    /// with the log (it held the whole log, three times over: an agent that printed 150 MB took
    /// the engine to 390-760 MB).
    public static func isPresent(_ promise: String, inFile path: String) -> Bool {
        let tag = Array(self.tag(promise).utf8)
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var line = LineMatch()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            for byte in buffer[0..<count] {
                if byte == UInt8(ascii: "\n") {
                    if line.matches(tag) { return true }
                    line = LineMatch()
                } else {
                    line.feed(byte, tag)
                }
            }
        }
        return line.matches(tag)
    }

    /// One line compared with the tag as it is read: padding before it, the tag's bytes, padding
    /// after it, and nothing else.
    private struct LineMatch {
        var started = false
        var matched = 0
        var failed = false

        static func isPadding(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r")
        }

        mutating func feed(_ byte: UInt8, _ tag: [UInt8]) {
            guard !failed else { return }
            if !started && Self.isPadding(byte) { return }
            started = true
            if matched < tag.count {
                if byte == tag[matched] { matched += 1 } else { failed = true }
            } else if !Self.isPadding(byte) {
                failed = true
            }
        }

        func matches(_ tag: [UInt8]) -> Bool { !failed && matched == tag.count }
    }
}
