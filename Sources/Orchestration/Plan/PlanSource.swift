import Foundation

/// Everything needed to load a plan again: the file's bytes, where it was and the `--var`
/// overrides. Stored with every run so `resume` and `replay` need nothing else.
public struct PlanSource: Sendable, Hashable {
    /// The plan file as given on the command line (for messages).
    public var displayPath: String
    /// The plan file's absolute folder: relative `cwd` and `working_dir` resolve against it.
    public var directory: String
    /// The file's bytes.
    public var bytes: [UInt8]
    /// `--var NAME=VALUE` overrides.
    public var overrides: [String: String]

    /// Creates a source.
    public init(displayPath: String, directory: String, bytes: [UInt8], overrides: [String: String]) {
        self.displayPath = displayPath
        self.directory = directory
        self.bytes = bytes
        self.overrides = overrides
    }
}

/// A loaded plan with its graph and the source it came from.
public struct LoadedPlan: Sendable {
    /// The resolved plan.
    public var plan: Plan
    /// Its validated DAG.
    public var graph: PlanGraph
    /// Where it came from.
    public var source: PlanSource
}
