/// The kind of a ``CodedError``: comparable, printable, and mapped to one SPEC §5 exit code.
public protocol ErrorCode: Hashable, Sendable, CustomStringConvertible {
    /// The process exit code for this kind of error.
    var exitCode: Int32 { get }
}

/// The shape of the errors the engine reports to a user: a kind (``code``) that callers match
/// on, one sentence a user can act on (``message``) and the exit code the CLI ends with.
///
/// ``description`` is the message unless the type says more (``StoreError`` adds its low-level
/// context), and ``exitCode`` is the code's unless the type overrides it (``EngineError`` after
/// SIGTERM).
///
/// ```swift
/// func exitStatus(for error: any CodedError) -> Int32 {
///     FileHandle.standardError.write(Data((error.message + "\n").utf8))
///     return error.exitCode
/// }
/// ```
public protocol CodedError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure.
    associatedtype Code: ErrorCode
    /// What kind of failure this is.
    var code: Code { get }
    /// One sentence a user can act on, with its context.
    var message: String { get }
    /// The process exit code for this error (SPEC §5).
    var exitCode: Int32 { get }
}

extension CodedError {
    /// The code's exit code.
    public var exitCode: Int32 { code.exitCode }
    /// The message.
    public var description: String { message }
}
