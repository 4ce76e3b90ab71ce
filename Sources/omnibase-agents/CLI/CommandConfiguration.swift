import Foundation

/// What a command declares about itself: its name, help texts and option table, and its nested
/// subcommands. The parser and the `--help` text are both generated from it.
struct CommandConfiguration: Sendable {
    /// The word users type.
    let name: String
    /// What follows the name in the usage line and in "needs an action" messages (`RUN_ID`).
    let arguments: String
    /// Usage lines (after `omnibase-agents `) instead of the generated ones, for a command with
    /// several forms.
    let usage: [String]
    /// One line for the command list.
    let abstract: String
    /// Paragraphs after the usage lines.
    let discussion: String
    /// The option table, by section.
    let sections: [OptionSection]
    /// Lines after the options (exit codes, examples).
    let epilogue: String
    /// Nested commands chosen by the first positional word (`runs list`).
    let subcommands: [any CLICommand.Type]

    init(name: String, arguments: String = "", usage: [String] = [], abstract: String, discussion: String = "",
         sections: [OptionSection] = [], epilogue: String = "", subcommands: [any CLICommand.Type] = []) {
        self.name = name
        self.arguments = arguments
        self.usage = usage
        self.abstract = abstract
        self.discussion = discussion
        self.sections = sections
        self.epilogue = epilogue
        self.subcommands = subcommands
    }

    /// `name arguments`, the way a parent's message or usage line shows it.
    var synopsis: String { arguments.isEmpty ? name : "\(name) \(arguments)" }

    /// The whole option table: this command's sections, then each subcommand's, whose options
    /// belong to the subcommand's mode (its name).
    var options: [Option] {
        sections.flatMap(\.options) + subcommands.flatMap { sub in
            sub.configuration.options.map { $0.modes.isEmpty ? $0.inModes([sub.configuration.name]) : $0 }
        }
    }

    /// The `--help` text.
    var help: String {
        var text = ""
        let usages = !usage.isEmpty ? usage
            : subcommands.isEmpty ? [synopsis + " [options]"] : subcommands.map { "\(name) \($0.configuration.synopsis) [options]" }
        for (index, line) in usages.enumerated() {
            text += (index == 0 ? "Usage: " : "       ") + "omnibase-agents \(line)\n"
        }
        if !discussion.isEmpty { text += "\n" + HelpLayout.wrap(discussion, indent: 0) }
        if !subcommands.isEmpty {
            text += "\n"
            for sub in subcommands {
                let configuration = sub.configuration
                text += HelpLayout.item(configuration.name, configuration.discussion.isEmpty ? configuration.abstract : configuration.discussion,
                                        column: 8)
            }
        }
        var sections = subcommands.flatMap { sub in
            sub.configuration.sections.map { OptionSection("Options of \(sub.configuration.name):", $0.options) }
        }
        sections = sections.filter { !$0.options.isEmpty } + self.sections
        for section in sections {
            text += "\n\(section.title)\n"
            for option in section.options { text += HelpLayout.option(option) }
        }
        if !epilogue.isEmpty { text += "\n" + epilogue + "\n" }
        return text
    }
}

/// The layout of generated help: items in two columns, text wrapped within 100 columns.
enum HelpLayout {
    static let width = 98
    static let optionColumn = 28

    /// One option: `  --name VALUE` then its help from column 28 (on the next line when the name
    /// is too long), `(repeatable)` added for a repeatable option that does not say so.
    static func option(_ option: Option) -> String {
        var label = option.name
        if let short = option.short { label = "\(short), \(label)" }
        if let valueName = option.valueName { label += " \(valueName)" }
        var help = option.help
        if option.isRepeatable && !help.contains("repeatable") {
            help = help.hasSuffix(".") ? help.dropLast() + " (repeatable)." : help + " (repeatable)"
        }
        return item(label, help, column: optionColumn - 2)
    }

    /// `  label` then `text` wrapped from `column + 2`.
    static func item(_ label: String, _ text: String, column: Int) -> String {
        let indent = column + 2
        let head = "  " + label
        if head.count < indent {
            return head + String(repeating: " ", count: indent - head.count) + String(wrap(text, indent: indent).dropFirst(indent))
        }
        return head + "\n" + wrap(text, indent: indent)
    }

    /// `text`'s paragraphs (separated by blank lines) wrapped at word boundaries, every line
    /// indented by `indent` spaces.
    static func wrap(_ text: String, indent: Int) -> String {
        let pad = String(repeating: " ", count: indent)
        var output = ""
        for (index, paragraph) in text.components(separatedBy: "\n\n").enumerated() {
            if index > 0 { output += "\n" }
            var line = ""
            for word in paragraph.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
                if !line.isEmpty && indent + line.count + 1 + word.count > width {
                    output += pad + line + "\n"
                    line = ""
                }
                line += (line.isEmpty ? "" : " ") + word
            }
            output += pad + line + "\n"
        }
        return output
    }
}
