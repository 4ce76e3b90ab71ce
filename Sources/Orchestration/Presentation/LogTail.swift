import Foundation
import Orchestration

/// The last lines of an attempt's log, read without loading the whole file.
public struct LogTail: Sendable, Hashable {
    /// The lines, joined with `\n`: valid UTF-8 (invalid bytes replaced), ANSI escape sequences
    /// and other control characters removed (tabs kept).
    public var text: String
    /// How many lines ``text`` holds.
    public var lineCount: Int
    /// Whether the log had more than ``text`` (earlier lines, or the start of a long line).
    public var truncated: Bool
    /// The log's size in bytes.
    public var fileSize: Int

    /// Creates a tail.
    public init(text: String, lineCount: Int, truncated: Bool, fileSize: Int) {
        self.text = text
        self.lineCount = lineCount
        self.truncated = truncated
        self.fileSize = fileSize
    }

    /// Reads the last lines of a log file.
    ///
    /// A missing file is an empty log (a step that wrote nothing may leave none), as is one that
    /// cannot be read; a symbolic link is not followed.
    /// - Parameters:
    ///   - path: the log file.
    ///   - maxLines: the most lines to keep.
    ///   - maxBytes: the most bytes to read from the end of the file.
    /// - Returns: nil when the log is absent or holds only whitespace.
    public static func read(path: String, maxLines: Int = 20, maxBytes: Int = 4096) -> LogTail? {
        guard let (bytes, size) = FileTail.read(path: path, maxBytes: maxBytes) else { return nil }
        return tail(of: bytes, maxLines: maxLines, cutAtStart: size > bytes.count, fileSize: size)
    }

    /// The tail of bytes already in memory (the end of a log).
    /// - Parameter cutAtStart: whether the bytes begin in the middle of the log.
    static func tail(of bytes: [UInt8], maxLines: Int, cutAtStart: Bool, fileSize: Int) -> LogTail? {
        var slice = bytes[...]
        var truncated = cutAtStart
        if cutAtStart {
            // Drop the partial first line (and any partial UTF-8 sequence with it).
            if let newline = slice.firstIndex(of: UInt8(ascii: "\n")), newline < slice.endIndex - 1 {
                slice = slice[(newline + 1)...]
            } else {
                while let first = slice.first, first & 0xC0 == 0x80 { slice = slice.dropFirst() }
            }
        }
        while let last = slice.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { slice = slice.dropLast() }
        var lines = slice.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if lines.count > maxLines {
            lines = Array(lines.suffix(maxLines))
            truncated = true
        }
        let text = lines.map { line -> String in
            // A carriage return redraws the line on a terminal: keep what was drawn last.
            let drawn = line.split(separator: UInt8(ascii: "\r")).last ?? line[line.startIndex..<line.startIndex]
            return clean(String(decoding: drawn, as: UTF8.self))
        }.joined(separator: "\n")
        guard text.contains(where: { !$0.isWhitespace }) else { return nil }
        return LogTail(text: text, lineCount: lines.count, truncated: truncated, fileSize: fileSize)
    }

    /// Removes ANSI escape sequences (CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ST`, two-byte
    /// `ESC x`), carriage returns and other control characters except tabs.
    static func clean(_ line: String) -> String {
        var out = String.UnicodeScalarView()
        var scalars = line.unicodeScalars.makeIterator()
        while let scalar = scalars.next() {
            if scalar == "\u{1B}" {
                guard let kind = scalars.next() else { break }
                if kind == "[" {
                    while let next = scalars.next(), !(0x40...0x7E).contains(next.value) {}
                } else if kind == "]" {
                    var previous: Unicode.Scalar = " "
                    while let next = scalars.next() {
                        if next == "\u{07}" || (previous == "\u{1B}" && next == "\\") { break }
                        previous = next
                    }
                }
                continue
            }
            if scalar == "\t" || (scalar.value >= 0x20 && scalar.value != 0x7F && !(0x80..<0xA0).contains(scalar.value)) {
                out.append(scalar)
            }
        }
        return String(out)
    }
}
