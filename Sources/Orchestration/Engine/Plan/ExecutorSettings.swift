import Foundation

/// Where a step's attempts run (SPEC §9): `globals.executor`, a step's `executor`, `--executor`.
public enum ExecutorKind: String, Sendable, Hashable, CaseIterable {
    /// Processes on this machine.
    case local
    /// One Slurm batch job per attempt.
    case slurm
}

/// Slurm job settings: `globals.slurm` for the whole plan, a step's `slurm` for itself.
///
/// A step's value overrides the plan's field by field (``overridden(by:)``). Every field is
/// validated at load (``validationError(ofTime:)`` and friends), so `sbatch` never sees a value
/// the engine has not checked.
public struct SlurmSettings: Sendable, Hashable {
    /// `--partition` (plan only).
    public var partition: String?
    /// `--account` (plan only).
    public var account: String?
    /// `--cpus-per-task`.
    public var cpus: Int?
    /// `--mem`, e.g. `"512M"`, `"4G"` (a number alone is megabytes).
    public var mem: String?
    /// `--time`, in Slurm's format (`"30"` minutes, `"1:30:00"`, `"2-00:00:00"`); without it the
    /// engine sets `timeout_sec + kill_grace_sec` rounded up to minutes, plus one, when the step
    /// has a timeout.
    public var time: String?
    /// More `sbatch` options, each one `--name=value` or `--flag` (plan only).
    public var extraArguments: [String]
    /// `pending_timeout_sec`: the longest an attempt's job may wait in Slurm's queue before it
    /// starts; past it the job is cancelled and the attempt fails as timed out. nil (the
    /// default): no limit, as long as Slurm does not say the job can never start.
    public var pendingTimeout: Duration?

    /// Creates settings (all unset by default).
    public init(partition: String? = nil, account: String? = nil, cpus: Int? = nil, mem: String? = nil,
                time: String? = nil, extraArguments: [String] = [], pendingTimeout: Duration? = nil) {
        self.partition = partition
        self.account = account
        self.cpus = cpus
        self.mem = mem
        self.time = time
        self.extraArguments = extraArguments
        self.pendingTimeout = pendingTimeout
    }

    /// These settings with a step's `cpus`, `mem`, `time` and `pending_timeout_sec` taking precedence.
    public func overridden(by step: SlurmSettings?) -> SlurmSettings {
        guard let step else { return self }
        var merged = self
        if let cpus = step.cpus { merged.cpus = cpus }
        if let mem = step.mem { merged.mem = mem }
        if let time = step.time { merged.time = time }
        if let pendingTimeout = step.pendingTimeout { merged.pendingTimeout = pendingTimeout }
        return merged
    }

    /// `sbatch` options the engine sets itself (or that would break how it drives a job), with
    /// the plan field to use instead where there is one.
    static let reservedOptions: [(name: String, field: String?)] = [
        ("output", nil), ("error", nil), ("input", nil), ("job-name", nil), ("parsable", nil), ("wrap", nil),
        ("comment", nil), ("chdir", nil), ("export", nil), ("export-file", nil), ("requeue", nil),
        ("no-requeue", nil), ("array", nil), ("wait", nil), ("test-only", nil), ("dependency", nil), ("hold", nil),
        ("open-mode", nil), ("quiet", nil), ("help", nil), ("usage", nil), ("version", nil),
        ("time", "time"), ("partition", "partition"), ("account", "account"), ("cpus-per-task", "cpus"), ("mem", "mem"),
    ]

    /// Why one `extra_args` element is refused, or nil when it is fine.
    ///
    /// Elements must be long options (`--name` or `--name=value`): a bare word would be taken by
    /// `sbatch` as the script to run. `sbatch` accepts unambiguous abbreviations of long options,
    /// so a name that abbreviates a reserved option is refused too.
    public static func validationError(ofExtraArgument argument: String) -> String? {
        guard argument.hasPrefix("--"), argument.count > 2 else {
            return "\"\(argument)\" is not a long option; write each option as one element, --name=value or --flag"
        }
        let body = argument.dropFirst(2)
        let name = String(body.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0])
        guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }) else {
            return "\"\(argument)\" is not a valid option name (lower-case letters, digits and -)"
        }
        for reserved in reservedOptions where reserved.name.hasPrefix(name) {
            let instead = reserved.field.map { "; use the \"\($0)\" field" } ?? ""
            return "--\(reserved.name) is set by the engine and cannot be given in extra_args\(instead)"
        }
        return nil
    }

    /// Why a `time` value is refused, or nil: Slurm's `minutes`, `minutes:seconds`,
    /// `hours:minutes:seconds`, `days-hours`, `days-hours:minutes`, `days-hours:minutes:seconds`.
    public static func validationError(ofTime time: String) -> String? {
        let parts = time.split(separator: "-", omittingEmptySubsequences: false)
        let digits: (Substring) -> Bool = { !$0.isEmpty && $0.count <= 9 && $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        let valid: Bool
        switch parts.count {
        case 1:
            let fields = parts[0].split(separator: ":", omittingEmptySubsequences: false)
            valid = (1...3).contains(fields.count) && fields.allSatisfy(digits)
        case 2:
            let fields = parts[1].split(separator: ":", omittingEmptySubsequences: false)
            valid = digits(parts[0]) && (1...3).contains(fields.count) && fields.allSatisfy(digits)
        default:
            valid = false
        }
        return valid ? nil : "\"\(time)\" is not a Slurm time (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)"
    }

    /// Why a `mem` value is refused, or nil: a whole number with an optional unit K, M, G or T.
    public static func validationError(ofMemory mem: String) -> String? {
        var text = Substring(mem)
        if let last = text.last, "KMGTkmgt".contains(last) { text = text.dropLast() }
        let valid = !text.isEmpty && text.count <= 12 && text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
        return valid ? nil : "\"\(mem)\" is not a memory size (a whole number with an optional unit K, M, G or T, e.g. \"512M\")"
    }

    /// Why a partition or account name is refused, or nil.
    public static func validationError(ofName name: String) -> String? {
        let valid = !name.isEmpty && name.count <= 256 && name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A) || b == 0x5F || b == 0x2D || b == 0x2E || b == 0x2C
        }
        return valid ? nil : "\"\(name)\" is not a valid name (letters, digits, _ - . and , only)"
    }
}
