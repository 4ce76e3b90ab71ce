import Foundation

/// Shell-style quoting of argv words for display (dry runs, step-through). Nothing the engine
/// runs ever goes through a shell.
public enum ShellQuoting {
    /// The word as a shell would need it written: as is when safe, otherwise in single quotes.
    public static func quote(_ word: String) -> String {
        let safe = !word.isEmpty && word.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) || "-_./=:,@%+".unicodeScalars.contains($0)
        }
        return safe ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// An argv as one display line.
    public static func line(_ argv: [String]) -> String { argv.map(quote).joined(separator: " ") }
}
