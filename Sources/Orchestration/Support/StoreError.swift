import CSQLite
import Glibc

/// A failure of the durable state folder: the SQLite database, its lock file or a state file.
///
/// Each error carries an extensible ``Code`` that maps to one SPEC §5 exit code, a ``message``
/// (one sentence a user can act on) and the low-level context that explains it: the SQLite
/// result code and message, the SQL that failed, the path involved. Two errors are equal when
/// their codes are equal, whatever their context.
public struct StoreError: CodedError {
    /// What went wrong, independently of where. New codes can be added without breaking clients.
    public struct Code: ErrorCode {
        private enum Kind: String, Hashable, Sendable {
            case diskFull = "disk full"
            case ioError = "I/O error"
            case corrupt = "corrupt"
            case readOnly = "read-only"
            case busy = "busy"
            case cannotOpen = "cannot open"
            case incompatibleSchema = "incompatible schema"
            case symlinkRefused = "symlink refused"
            case insecurePermissions = "insecure permissions"
            case unsafePath = "unsafe path"
            case outOfFiles = "too many open files"
            case other = "other"
        }

        private let kind: Kind

        private init(_ kind: Kind) { self.kind = kind }

        /// The device holding the state folder is full (`SQLITE_FULL`, `ENOSPC`, `EDQUOT`).
        public static var diskFull: Code { Code(.diskFull) }
        /// The operating system reported an I/O error (`SQLITE_IOERR_*`, `EIO`).
        public static var ioError: Code { Code(.ioError) }
        /// The database is damaged or is not a database at all (`SQLITE_CORRUPT`, `SQLITE_NOTADB`).
        public static var corrupt: Code { Code(.corrupt) }
        /// The database or the folder cannot be written (`SQLITE_READONLY`, `EROFS`).
        public static var readOnly: Code { Code(.readOnly) }
        /// Another connection or process kept the database or its lock for longer than the busy
        /// timeout (`SQLITE_BUSY`, `SQLITE_LOCKED`, a held `runs.db.lock`).
        public static var busy: Code { Code(.busy) }
        /// The database or a state file cannot be opened (`SQLITE_CANTOPEN`, `EACCES`, `ENOENT`).
        public static var cannotOpen: Code { Code(.cannotOpen) }
        /// The database was written by an incompatible version of the schema.
        public static var incompatibleSchema: Code { Code(.incompatibleSchema) }
        /// The state folder or one of its files is a symbolic link, which is refused.
        public static var symlinkRefused: Code { Code(.symlinkRefused) }
        /// The state folder belongs to another user, or others may write to it, so its contents
        /// cannot be trusted.
        public static var insecurePermissions: Code { Code(.insecurePermissions) }
        /// A relative state path is absolute, empty or climbs out of the state folder (`..`).
        public static var unsafePath: Code { Code(.unsafePath) }
        /// The process may hold no more open files (`EMFILE`, or the system's `ENFILE`): a limit
        /// to raise (`ulimit -n`), not a fault of the state folder.
        public static var outOfFiles: Code { Code(.outOfFiles) }
        /// Any other failure, such as SQL misuse (a bug in the engine).
        public static var other: Code { Code(.other) }

        /// The process exit code that SPEC §5 assigns to this kind of failure.
        ///
        /// Storage failures exit 74, an incompatible schema exits 4 (protocol violation), and
        /// symbolic links, foreign owners and escaping paths exit 5 (security violation).
        public var exitCode: Int32 {
            switch kind {
            case .diskFull, .ioError, .corrupt, .readOnly, .busy, .cannotOpen, .outOfFiles, .other: 74
            case .incompatibleSchema: 4
            case .symlinkRefused, .insecurePermissions, .unsafePath: 5
            }
        }

        /// The code's name, e.g. `disk full`.
        public var description: String { kind.rawValue }
    }

    /// What went wrong.
    public let code: Code
    /// One sentence that tells the user what happened and what to do about it.
    public let message: String
    /// The low-level explanation: SQLite's error message or the `errno` text, when known.
    public let detail: String?
    /// The (extended) SQLite result code, when the failure came from SQLite.
    public let sqliteResultCode: Int32?
    /// The SQL statement that failed, when the failure came from SQLite.
    public let sql: String?
    /// The file or folder involved, when known.
    public let path: String?

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: What went wrong.
    ///   - message: One sentence a user can act on.
    ///   - detail: The low-level explanation (SQLite's message, `strerror`), if any.
    ///   - sqliteResultCode: The extended SQLite result code, if any.
    ///   - sql: The SQL that failed, if any.
    ///   - path: The file or folder involved, if any.
    public init(
        _ code: Code,
        message: String,
        detail: String? = nil,
        sqliteResultCode: Int32? = nil,
        sql: String? = nil,
        path: String? = nil
    ) {
        self.code = code
        self.message = message
        self.detail = detail
        self.sqliteResultCode = sqliteResultCode
        self.sql = sql
        self.path = path
    }

    /// The message followed by the context (path, SQLite's message and code, the SQL), for logs.
    public var description: String {
        var context: [String] = []
        if let path { context.append("path: \(path)") }
        if let detail { context.append(detail) }
        if let sqliteResultCode { context.append("SQLite code \(sqliteResultCode)") }
        if let sql { context.append("while running: \(sql)") }
        return context.isEmpty ? message : "\(message) (\(context.joined(separator: "; ")))"
    }
}

extension StoreError: Hashable {
    /// Errors are equal when their codes are equal; the context is not compared.
    public static func == (lhs: StoreError, rhs: StoreError) -> Bool { lhs.code == rhs.code }

    /// Hashes the code only, consistently with `==`.
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}

extension StoreError {
    /// The user-facing sentence for a code, naming the path when there is one.
    package static func defaultMessage(for code: Code, path: String?) -> String {
        let subject = path.map { "'\($0)'" } ?? "the state folder"
        switch code {
        case .diskFull:
            return "The disk holding \(subject) is full; free some space and run the command again."
        case .ioError:
            return "Reading or writing \(subject) failed with an I/O error; check the disk, then try again."
        case .corrupt:
            return "\(subject) is damaged or is not an omnibase-agents database; move it aside "
                + "(or pass --state-dir) and try again."
        case .readOnly:
            return "\(subject) cannot be written; make it writable or pass --state-dir with a writable folder."
        case .busy:
            return "\(subject) stayed locked by another process for longer than the busy timeout; "
                + "try again when that process has finished."
        case .cannotOpen:
            return "\(subject) could not be opened; check that it exists and that you may read and write it."
        case .incompatibleSchema:
            return "\(subject) was written by an incompatible version of omnibase-agents; "
                + "use a matching version or a new --state-dir."
        case .symlinkRefused:
            return "\(subject) is a symbolic link, which is refused for safety; "
                + "replace it with a real file or folder."
        case .insecurePermissions:
            return "\(subject) belongs to another user; use a state folder of your own (--state-dir)."
        case .unsafePath:
            return "\(subject) is not a plain relative path inside the state folder; remove '..' and '/' prefixes."
        case .outOfFiles:
            var limit = rlimit()
            getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
            return "Too many open files to open \(subject): this process may hold \(limit.rlim_cur) at once "
                + "(ulimit -n); raise the limit and run the command again."
        default:
            return "An operation on \(subject) failed; see the details and report it if it persists."
        }
    }

    /// `SQLITE_CANTOPEN_SYMLINK` (`SQLITE_CANTOPEN | (6 << 8)`), a macro Swift does not import.
    private static let cantOpenSymlink: Int32 = SQLITE_CANTOPEN | (6 << 8)

    /// Maps an (extended) SQLite result code to a store error.
    ///
    /// - Parameters:
    ///   - resultCode: The extended result code returned by SQLite.
    ///   - sqliteMessage: `sqlite3_errmsg` at the time of the failure.
    ///   - sql: The statement that failed, if any.
    ///   - path: The database file.
    ///   - systemErrno: `sqlite3_system_errno`, the error number of the system call that failed
    ///     (0 when none did): it tells a file SQLite could not open for want of descriptors.
    static func sqlite(_ resultCode: Int32, sqliteMessage: String?, sql: String?, path: String?,
                       systemErrno: Int32 = 0) -> StoreError {
        let code: Code
        switch resultCode & 0xFF {
        case SQLITE_CANTOPEN where systemErrno == EMFILE || systemErrno == ENFILE,
             SQLITE_IOERR where systemErrno == EMFILE || systemErrno == ENFILE: code = .outOfFiles
        case SQLITE_FULL: code = .diskFull
        case SQLITE_IOERR: code = .ioError
        case SQLITE_CORRUPT, SQLITE_NOTADB: code = .corrupt
        case SQLITE_READONLY: code = .readOnly
        case SQLITE_BUSY, SQLITE_LOCKED: code = .busy
        case SQLITE_CANTOPEN: code = resultCode == cantOpenSymlink ? .symlinkRefused : .cannotOpen
        default: code = .other
        }
        let text = sqliteMessage ?? String(cString: sqlite3_errstr(resultCode))
        return StoreError(
            code,
            message: defaultMessage(for: code, path: path),
            detail: text,
            sqliteResultCode: resultCode,
            sql: sql,
            path: path
        )
    }

    /// Maps an `errno` value from a system call on a state file to a store error.
    ///
    /// - Parameters:
    ///   - number: The `errno` value.
    ///   - operation: The system call, for the detail (`"open"`, `"rename"`).
    ///   - path: The file or folder involved.
    package static func posix(_ number: Int32, operation: String, path: String) -> StoreError {
        let code: Code
        switch number {
        case ENOSPC, EDQUOT, EFBIG: code = .diskFull
        case EIO: code = .ioError
        case EROFS: code = .readOnly
        case ELOOP: code = .symlinkRefused
        case EACCES, EPERM, ENOENT, ENOTDIR, EISDIR, ENAMETOOLONG: code = .cannotOpen
        case EWOULDBLOCK: code = .busy
        case EMFILE, ENFILE: code = .outOfFiles
        default: code = .other
        }
        return StoreError(
            code,
            message: defaultMessage(for: code, path: path),
            detail: "\(operation): \(String(cString: strerror(number)))",
            path: path
        )
    }
}
