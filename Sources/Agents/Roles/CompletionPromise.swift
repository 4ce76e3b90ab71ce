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
    public static func isPresent(_ promise: String, inFile path: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: path) else { return false }
        return isPresent(promise, in: String(decoding: data, as: UTF8.self))
    }
}
