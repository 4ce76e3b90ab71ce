import Foundation

/// The fields of a process step that use other steps' outputs (`${steps.ID.outputs.NAME}`,
/// SPEC section 11), resolved when an attempt starts (``ProcessCommand/outputBindings``).
///
/// Until then the step's ``ProcessCommand`` holds each such field with its references as
/// written (``OutputTemplate/placeholder``), which is what dry runs and `graph` show.
public struct OutputBindings: Sendable, Hashable {
    /// The program, when it uses outputs.
    public var command: OutputTemplate?
    /// The arguments that use outputs, by position in ``ProcessCommand/arguments``.
    public var arguments: [Int: OutputTemplate]
    /// The working folder, when it uses outputs; a relative result resolves against
    /// ``baseDirectory``.
    public var workingDirectory: OutputTemplate?
    /// The folder a relative working folder resolves against (the plan file's).
    public var baseDirectory: String
    /// The environment entries that use outputs, by name.
    public var environment: [String: OutputTemplate]

    /// Creates bindings.
    public init(command: OutputTemplate? = nil, arguments: [Int: OutputTemplate] = [:],
                workingDirectory: OutputTemplate? = nil, baseDirectory: String = "/",
                environment: [String: OutputTemplate] = [:]) {
        self.command = command
        self.arguments = arguments
        self.workingDirectory = workingDirectory
        self.baseDirectory = baseDirectory
        self.environment = environment
    }

    /// Whether no field uses an output.
    public var isEmpty: Bool { command == nil && arguments.isEmpty && workingDirectory == nil && environment.isEmpty }

    /// Every reference, without repeats, in field order (command, arguments, folder, environment
    /// by name).
    public var references: [OutputTemplate.Reference] {
        var templates: [OutputTemplate] = []
        if let command { templates.append(command) }
        templates += arguments.sorted { $0.key < $1.key }.map(\.value)
        if let workingDirectory { templates.append(workingDirectory) }
        templates += environment.sorted { $0.key < $1.key }.map(\.value)
        var seen = Set<OutputTemplate.Reference>()
        return templates.flatMap(\.references).filter { seen.insert($0).inserted }
    }

    /// `command` with every bound field resolved through `value`, verbatim.
    /// - Returns: the command (without bindings), or the first reference that has no value.
    public func resolve(_ command: ProcessCommand,
                        value: (OutputTemplate.Reference) -> String?) -> Result<ProcessCommand, OutputTemplate.MissingOutput> {
        var resolved = command
        resolved.outputBindings = nil
        do throws(OutputTemplate.MissingOutput) {
            if let template = self.command { resolved.command = try template.resolve(value).get() }
            for (index, template) in arguments where resolved.arguments.indices.contains(index) {
                resolved.arguments[index] = try template.resolve(value).get()
            }
            if let template = workingDirectory {
                let path = try template.resolve(value).get()
                resolved.workingDirectory = path.hasPrefix("/") ? path
                    : URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: baseDirectory, isDirectory: true))
                        .standardizedFileURL.path
            }
            for (name, template) in environment { resolved.environment[name] = try template.resolve(value).get() }
        } catch {
            return .failure(error)
        }
        return .success(resolved)
    }
}
