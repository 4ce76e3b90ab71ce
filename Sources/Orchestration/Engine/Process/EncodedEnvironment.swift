import Glibc

/// A child's environment encoded once as the `NAME=VALUE` C strings `execve` takes, so that the
/// many spawns that share it (every step of a run inherits the engine's environment) pay only
/// for the few entries of their own.
///
/// Encoding a 35-entry environment per spawn (a dictionary copy, a `NAME=VALUE` string and a
/// `strdup` per entry, the NUL and `=` checks, the frees) cost about a tenth of the engine's
/// own CPU per `true` step; with a base encoded when the runner is made, a spawn copies one
/// pointer per inherited entry and encodes its 4-10 own entries.
struct EncodedEnvironment: Sendable {
    /// The entries, as given.
    let values: [String: String]
    /// `NAME=VALUE\0` of every entry, back to back (one allocation for all of them).
    private let bytes: [UInt8]
    /// Each entry's name and the offset of its string in ``bytes``, in a fixed order.
    private let entries: [(name: String, offset: Int)]
    /// Why these entries cannot be given to a child (the first bad name or value), if so.
    let problem: LaunchFailure?

    /// Encodes `values`, checking them as a spawn would.
    init(_ values: [String: String]) {
        self.values = values
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 2 })
        var entries: [(name: String, offset: Int)] = []
        entries.reserveCapacity(values.count)
        var problem: LaunchFailure?
        for (name, value) in values {
            if problem == nil { problem = Self.check(name: name, value: value) }
            entries.append((name, bytes.count))
            bytes.append(contentsOf: name.utf8)
            bytes.append(UInt8(ascii: "="))
            bytes.append(contentsOf: value.utf8)
            bytes.append(0)
        }
        self.bytes = bytes
        self.entries = entries
        self.problem = problem
    }

    /// The first reason `name=value` cannot be in a child's environment: a name that is empty or
    /// holds `=` or NUL (`execve` would split it elsewhere), a value that holds NUL (cut short).
    static func check(name: String, value: String) -> LaunchFailure? {
        if name.isEmpty || name.utf8.contains(UInt8(ascii: "=")) || containsNUL(name) {
            return LaunchFailure("invalid environment variable name: \(name.debugDescription)")
        }
        if containsNUL(value) {
            return LaunchFailure("environment variable \(name) contains a NUL byte")
        }
        return nil
    }

    /// Whether `string` has a NUL byte, which would cut it short as a C string (`memchr` over the
    /// contiguous UTF-8 of native strings).
    static func containsNUL(_ string: String) -> Bool {
        string.utf8.withContiguousStorageIfAvailable { bytes in
            bytes.baseAddress.map { memchr($0, 0, bytes.count) != nil } ?? false
        }
            ?? string.utf8.contains(0)
    }

    /// Calls `body` with a NULL-terminated `envp`: these entries, except those `overrides`
    /// names, then the entries of `overrides` (already checked by the caller). The pointers are
    /// valid only inside `body`.
    func withEnvp<R>(overriding overrides: EncodedEnvironment?,
                             _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = []
        pointers.reserveCapacity(entries.count + (overrides?.entries.count ?? 0) + 1)
        return bytes.withUnsafeBufferPointer { own in
            // No entries, no bytes: an empty array may have no storage at all.
            if let start = own.baseAddress {
                let base = UnsafeMutableRawPointer(mutating: start)
                for entry in entries where overrides?.values[entry.name] == nil {
                    pointers.append((base + entry.offset).assumingMemoryBound(to: CChar.self))
                }
            }
            return (overrides?.bytes ?? []).withUnsafeBufferPointer { added in
                if let overrides, let start = added.baseAddress {
                    let base = UnsafeMutableRawPointer(mutating: start)
                    for entry in overrides.entries {
                        pointers.append((base + entry.offset).assumingMemoryBound(to: CChar.self))
                    }
                }
                pointers.append(nil)
                return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
            }
        }
    }
}
