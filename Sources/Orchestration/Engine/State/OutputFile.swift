import COmnibaseShims
import Foundation

/// The file an attempt writes its outputs to, named by `$OMNIBASE_OUTPUT` (SPEC section 11):
/// a fresh path per attempt, read once the attempt has succeeded.
///
/// The engine does not create the file: the step does when it first appends to it (`>>`), as
/// the logs are created when a step first writes to them. Creating an empty file for every
/// attempt doubled the wall time of a run of 2,000 `true` steps on this machine (3.7 s instead
/// of 1.8 s, 1.9 s of system time instead of 0.3 s). No file means no outputs. The path is
/// fresh all the same: an attempt number is never used twice, and ``checkFresh(atPath:)`` makes
/// sure nothing is there when the attempt starts.
///
/// ## Format (GitHub Actions' output files)
/// - `NAME=VALUE`: the value is the rest of the line, verbatim (`=`, quotes, `$` included).
/// - `NAME<<DELIMITER`, then the value's lines, then a line that is exactly `DELIMITER`: a
///   multi-line value (its lines joined with `\n`, without a final newline).
/// - Empty lines between entries are ignored; whichever of `=` and `<<` comes first on a line
///   decides its form; a later entry of a name replaces the earlier one.
/// - `NAME` is `[A-Za-z_][A-Za-z0-9_]*`; the file is UTF-8 without NUL bytes (a value must fit
///   in an argument or an environment variable) and at most ``maxBytes`` long.
///
/// Anything else fails the attempt (``Failure``), which then retries like any failed attempt.
public enum OutputFile {
    /// The most bytes of outputs one step may write.
    public static let maxBytes = 1 << 20

    /// Why an attempt's outputs were refused; `message` is one sentence that names no value.
    public struct Failure: Error, Sendable, Hashable {
        /// What is wrong.
        public var message: String
        init(_ message: String) { self.message = message }
    }

    /// The name of an attempt's outputs file in the run's `logs` folder, beside its logs:
    /// `build.3.outputs` (see ``AttemptLog``).
    public static func fileName(stepID: String, attempt: Int) -> String { "\(stepID).\(attempt).outputs" }

    /// Makes the files that steps create in `folder` (their outputs files) owner-only, `0600`,
    /// whatever their umask, as every file of the state folder is: `folder` gets the default
    /// POSIX ACL `u::rwx,g::---,o::---`, which takes the place of the creator's umask for new
    /// files (one system call per run, none per attempt).
    /// - Returns: false where the file system keeps no ACLs: ``makePrivate(atPath:)`` then
    ///   mends each outputs file once its attempt has ended.
    public static func makeNewFilesPrivate(inFolder folder: String) -> Bool {
        omni_default_acl_owner_only(folder) == 0
    }

    /// Gives an attempt's outputs file, if there is one, mode `0600` (a symbolic link in its
    /// place is left alone).
    public static func makePrivate(atPath path: String) {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_mode & 0o7777 != 0o600 { fchmod(fd, 0o600) }
    }

    /// Makes sure nothing (not even a symbolic link) is at an attempt's outputs path yet.
    /// - Throws: ``Failure`` when something is.
    public static func checkFresh(atPath path: String) throws(Failure) {
        var info = stat()
        guard lstat(path, &info) != 0, errno == ENOENT else {
            throw Failure("its outputs file \(path) exists before the attempt started")
        }
    }

    /// The outputs in the file at `path`, in the order their names first appear, each with its
    /// last value; none when the attempt removed the file.
    /// - Throws: ``Failure`` for a file that is not a regular file, too large, unreadable or
    ///   malformed.
    public static func read(atPath path: String) throws(Failure) -> [(name: String, value: String)] {
        // Non-blocking: a step that put a FIFO in its place must not hang the engine.
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            if errno == ENOENT { return [] }
            throw Failure("cannot read its outputs file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw Failure("its outputs file \(path) is not a regular file")
        }
        guard Int(info.st_size) <= maxBytes else { throw tooLarge(Int(info.st_size)) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while bytes.count <= maxBytes {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw Failure("cannot read its outputs file \(path): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        // The file may have grown after fstat (a process the step left behind).
        guard bytes.count <= maxBytes else { throw tooLarge(bytes.count) }
        return try parse(bytes)
    }

    private static func tooLarge(_ size: Int) -> Failure {
        Failure("it wrote \(size) bytes of outputs to $OMNIBASE_OUTPUT; the limit is 1 MiB (\(maxBytes) bytes) per step")
    }

    /// The outputs `bytes` hold (see the format above).
    /// - Throws: ``Failure`` naming the first bad line.
    public static func parse(_ bytes: [UInt8]) throws(Failure) -> [(name: String, value: String)] {
        guard bytes.count <= maxBytes else { throw tooLarge(bytes.count) }
        guard !bytes.contains(0) else {
            throw Failure("$OMNIBASE_OUTPUT holds a NUL byte, which no argument or environment variable can carry")
        }
        guard String(validating: bytes, as: UTF8.self) != nil else { throw Failure("$OMNIBASE_OUTPUT is not valid UTF-8") }
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        var order: [String] = []
        var values: [String: String] = [:]
        func store(_ name: String, _ value: String) {
            if values.updateValue(value, forKey: name) == nil { order.append(name) }
        }
        var index = 0
        while index < lines.count {
            let line = lines[index]
            let number = index + 1
            index += 1
            if line.isEmpty { continue }
            let equals = line.firstIndex(of: UInt8(ascii: "="))
            let heredoc = line.indices.dropLast().first { line[$0] == UInt8(ascii: "<") && line[$0 + 1] == UInt8(ascii: "<") }
            if let equals, heredoc.map({ equals < $0 }) ?? true {
                let name = try checkedName(line[line.startIndex..<equals], line: number)
                store(name, String(decoding: line[(equals + 1)...], as: UTF8.self))
            } else if let heredoc {
                let name = try checkedName(line[line.startIndex..<heredoc], line: number)
                let delimiter = line[(heredoc + 2)...]
                guard !delimiter.isEmpty else {
                    throw Failure("$OMNIBASE_OUTPUT line \(number): \(name)<< needs a delimiter (NAME<<DELIMITER)")
                }
                guard let end = lines[index...].firstIndex(where: { $0.elementsEqual(delimiter) }) else {
                    throw Failure("$OMNIBASE_OUTPUT line \(number): the block \(name)<<\(String(decoding: delimiter, as: UTF8.self)) "
                                  + "has no closing line \(String(decoding: delimiter, as: UTF8.self))")
                }
                let value = lines[index..<end].map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n")
                store(name, value)
                index = end + 1
            } else {
                throw Failure("$OMNIBASE_OUTPUT line \(number) is neither NAME=VALUE nor NAME<<DELIMITER")
            }
        }
        return order.map { (name: $0, value: values[$0] ?? "") }
    }

    private static func checkedName(_ bytes: ArraySlice<UInt8>, line: Int) throws(Failure) -> String {
        let name = String(decoding: bytes, as: UTF8.self)
        guard VariableSubstitution.isValidName(name) else {
            let shown = name.count > 40 ? String(name.prefix(40)) + "..." : name
            throw Failure("$OMNIBASE_OUTPUT line \(line): \"\(shown)\" is not a valid output name "
                          + "(letters, digits and _, not starting with a digit)")
        }
        return name
    }
}
