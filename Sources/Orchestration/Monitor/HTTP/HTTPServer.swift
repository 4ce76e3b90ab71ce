import COmnibaseShims
import Dispatch
import Foundation
import Glibc
import OmnibaseSupport
import Synchronization

/// A small, defensive HTTP/1.1 server on one thread: GET and HEAD only, fixed routes answered by
/// a handler, Server-Sent Events streams, and limits on everything a client controls.
///
/// One thread runs a `poll(2)` loop over the listening socket, a wake-up descriptor and every
/// connection (non-blocking sockets). The handler runs on that thread, so it must be quick
/// (the monitor's pages are built from SQLite rows and small log tails). Event streams are fed
/// from other threads through ``HTTPStream/send(_:)``, which queues bytes and wakes the loop.
///
/// What a client cannot do:
/// - send a request head over ``Configuration/maxHeadBytes`` (431), a body (413), another method
///   (405), another protocol version (505) or a malformed head (400);
/// - name another host in `Host` than the address it connected to (421), which stops DNS
///   rebinding: a page of another site whose name was rebound to 127.0.0.1 sends its own name
///   (on a wildcard address, the concrete address of the connection: never `0.0.0.0`, which
///   other sites' pages can send requests to);
/// - go without the token when one is configured (401);
/// - hold a slot by sending its head slowly (closed after ``Configuration/headerTimeout``), by
///   idling on a kept-alive connection (``Configuration/idleTimeout``) or by not reading
///   (``Configuration/writeTimeout``, and a stream's queue is capped at
///   ``Configuration/maxStreamBacklog``);
/// - make the server work for answers it does not read: the next pipelined request is answered
///   only once the kernel holds less than ``Configuration/maxUnsentBytes`` of the previous one,
///   one request per connection and turn of the loop (no connection keeps the thread from the
///   others), and at most ``Configuration/maxRequestsPerConnection`` on one connection;
/// - open more than ``Configuration/maxConnections`` connections (503 beyond).
///
/// Every response carries ``Configuration/securityHeaders`` (a strict Content-Security-Policy,
/// `nosniff`, no framing, no caching) and no CORS field. The server knows no engine type: it maps
/// requests to responses through the handler.
package final class HTTPServer: Sendable {
    /// Limits and policies.
    package struct Configuration: Sendable {
        /// The IP address to listen on (`127.0.0.1`, `::1`, `0.0.0.0`, ...).
        package var host: String
        /// The port; 0 picks a free one (see ``HTTPServer/port``).
        package var port: UInt16
        /// The most bytes of a request line and its header fields together (431 beyond).
        package var maxHeadBytes = 16 * 1024
        /// The most open connections (503 beyond), event streams included.
        package var maxConnections = 64
        /// How long a client may take to send a complete request head.
        package var headerTimeout: Duration = .seconds(10)
        /// How long a kept-alive connection may wait for its next request.
        package var idleTimeout: Duration = .seconds(60)
        /// How long queued output may wait for the client to read any of it.
        package var writeTimeout: Duration = .seconds(30)
        /// The most bytes queued for one event stream (a client that does not read is dropped).
        package var maxStreamBacklog = 8 << 20
        /// The most unsent bytes the kernel may hold for one connection before the next of its
        /// pipelined requests is answered (`TCP_NOTSENT_LOWAT`): a client that does not read what
        /// it asked for gets nothing more built for it.
        package var maxUnsentBytes = 16 * 1024
        /// The most requests answered on one connection; the last answer closes it (a client that
        /// pipelines more connects again, behind the others).
        package var maxRequestsPerConnection = 100
        /// How often an idle event stream gets a comment line (keeps it open through proxies and
        /// finds clients that went away).
        package var heartbeat: Duration = .seconds(15)
        /// The token every request must carry (`Authorization: Bearer`, the `token` query
        /// parameter, or the cookie the server sets after it); nil for none.
        package var token: String?
        /// The cookie that carries the token.
        package var tokenCookie = "omnibase_token"
        /// Builds the server's own refusals (400, 401, 405, 408, 413, 421, 431, 503, 505) from the
        /// request's path (percent-decoded when it can be; nil when no request line was read, as
        /// for 503), the status and one sentence. Plain text by default; the server adds the fields
        /// it needs (`Allow`, `WWW-Authenticate`).
        package var refusal: @Sendable (_ path: String?, _ status: HTTPStatus, _ message: String) -> HTTPResponse = { _, status, message in
            .text(status, message)
        }
        /// Fields added to every response.
        package var securityHeaders: [(name: String, value: String)] = [
            ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                + "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "no-referrer"),
            ("Cross-Origin-Resource-Policy", "same-origin"),
            ("Cache-Control", "no-store"),
        ]

        package init(host: String = "127.0.0.1", port: UInt16 = 0) {
            self.host = host
            self.port = port
        }
    }

    /// Answers one request (on the server's thread).
    package typealias Handler = @Sendable (HTTPRequest) -> HTTPResponse

    enum Command: Sendable {
        case send(UInt64, [UInt8])
        case finish(UInt64)
        case stop
    }

    /// The configuration.
    package let configuration: Configuration
    /// The port the server listens on (the one picked when ``Configuration/port`` was 0).
    package let port: UInt16
    /// Whether the listening address is a loopback one.
    package let isLoopback: Bool
    /// The host ``url`` names: the listening address, or for a wildcard one (`0.0.0.0`, `::`),
    /// which no client can open and no `Host` field may name, an address of this machine (the
    /// first interface that is up and not loopback; loopback when there is none).
    package let urlHost: String
    private let handler: Handler
    private let listenFD: Int32
    private let wakeFD: Int32
    private let commands = Mutex<[Command]>([])
    private let stopped = DispatchSemaphore(value: 0)
    private let started = Mutex(false)

    /// Binds and listens (nothing is accepted before ``start()``).
    /// - Throws: ``HTTPServerError`` when the address is not an IP address or cannot be bound.
    package init(configuration: Configuration, handler: @escaping Handler) throws(HTTPServerError) {
        self.configuration = configuration
        self.handler = handler
        let address = try SocketAddress(host: configuration.host, port: configuration.port)
        isLoopback = address.isLoopback
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw HTTPServerError("cannot create a socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if address.family == AF_INET6 {
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        let bound = address.withSockaddr { bind(fd, $0, $1) }
        guard bound == 0, listen(fd, 128) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw HTTPServerError("cannot listen on \(address.display): \(reason)")
        }
        guard let local = SocketAddress.local(of: fd) else {
            close(fd)
            throw HTTPServerError("cannot read the listening address")
        }
        let wake = omni_wake_fd()
        guard wake >= 0 else {
            close(fd)
            throw HTTPServerError("cannot create a wake-up descriptor: \(String(cString: strerror(errno)))")
        }
        listenFD = fd
        wakeFD = wake
        port = local.port
        if address.isUnspecified {
            urlHost = SocketAddress.interfaceAddress(family: address.family) ?? (address.family == AF_INET ? "127.0.0.1" : "::1")
        } else {
            urlHost = configuration.host
        }
    }

    /// Whether an IP address literal is a loopback address (`127.0.0.0/8`, `::1`).
    /// - Throws: ``HTTPServerError`` when it is not an IP address.
    package static func isLoopback(host: String) throws(HTTPServerError) -> Bool {
        try SocketAddress(host: host, port: 0).isLoopback
    }

    /// `http://HOST:PORT/` with ``urlHost`` (an IPv6 address in brackets): an address a client
    /// can open and whose `Host` field the server accepts.
    package var url: String {
        let host = urlHost.contains(":") ? "[\(urlHost)]" : urlHost
        return "http://\(host):\(port)/"
    }

    /// Starts the server's thread.
    package func start() {
        let first = started.withLock { started in
            defer { started = true }
            return !started
        }
        guard first else { return }
        startThread(named: "omnibase-http") { [self] in serve() }
    }

    /// Stops accepting, closes every connection (streams' delegates are told) and returns when
    /// the thread has ended.
    package func stop() {
        let running = started.withLock { $0 }
        guard running else {
            close(listenFD)
            close(wakeFD)
            return
        }
        enqueue(.stop)
        stopped.wait()
    }

    func enqueue(_ command: Command) {
        commands.withLock { $0.append(command) }
        omni_wake(wakeFD)
    }

    // MARK: - The loop

    private func serve() {
        var loop = Loop(server: self, listenFD: listenFD, wakeFD: wakeFD)
        loop.run()
        close(listenFD)
        close(wakeFD)
        stopped.signal()
    }

    /// The commands queued since the last call.
    fileprivate func takeCommands() -> [Command] {
        commands.withLock { commands in
            defer { commands.removeAll() }
            return commands
        }
    }

    fileprivate func respond(to request: HTTPRequest) -> HTTPResponse { handler(request) }
}

/// Why the server could not start.
package struct HTTPServerError: Error, Sendable, CustomStringConvertible {
    /// One sentence.
    package let message: String
    init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// Milliseconds on the monotonic clock.
private func monotonicMillis() -> Int64 {
    Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000)
}

extension Duration {
    fileprivate var millis: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// The state of the server's thread: its connections, owned by that thread alone.
private struct Loop {
    enum Phase {
        /// Waiting for (the rest of) a request head; `started` once bytes of it arrived.
        case awaitingRequest(started: Bool)
        /// A response is being written; then keep the connection or close it.
        case responding(close: Bool)
        /// A response was handed to the kernel, which may still hold much of it unsent (a client
        /// that does not read): the next request waits until it holds less than
        /// ``HTTPServer/Configuration/maxUnsentBytes`` (`POLLOUT` under `TCP_NOTSENT_LOWAT`).
        case draining
        /// An event stream.
        case streaming(any HTTPStreamDelegate)
        /// Output flushed and write side shut: reading until the client closes, briefly, so a
        /// response is not lost to a reset caused by unread input.
        case lingering
    }

    final class Connection {
        let id: UInt64
        let fd: Int32
        /// `host:port` values a request on this connection may name in `Host`.
        let allowedHosts: Set<String>
        var phase: Loop.Phase = .awaitingRequest(started: false)
        var input: [UInt8] = []
        var output: [UInt8] = []
        var outputOffset = 0
        /// When the current phase's timer runs out.
        var deadline: Int64
        /// The last moment output was written (or queued into an empty buffer).
        var lastWrite: Int64
        /// For streams: when the next heartbeat is due; close after the output is flushed.
        var nextHeartbeat: Int64 = .max
        var closeAfterFlush = false
        /// The client closed its side.
        var peerClosed = false
        /// Bytes of input arrived since the last look found no complete head in it.
        var inputPending = false
        /// The requests answered so far.
        var served = 0

        init(id: UInt64, fd: Int32, allowedHosts: Set<String>, deadline: Int64, now: Int64) {
            self.id = id
            self.fd = fd
            self.allowedHosts = allowedHosts
            self.deadline = deadline
            self.lastWrite = now
        }

        var pendingOutput: Int { output.count - outputOffset }

        func queue(_ bytes: [UInt8], now: Int64) {
            if pendingOutput == 0 { lastWrite = now }
            output.append(contentsOf: bytes)
        }
    }

    let server: HTTPServer
    let listenFD: Int32
    let wakeFD: Int32
    let config: HTTPServer.Configuration
    var connections: [UInt64: Connection] = [:]
    var nextID: UInt64 = 1
    var running = true
    /// Until when the listening socket is left alone after `accept` found no descriptor
    /// (`EMFILE`, `ENFILE`): the pending connection keeps it readable, and polling it meanwhile
    /// spun the loop at full CPU until a descriptor came free. A closed connection ends the pause.
    var acceptPausedUntil: Int64 = 0
    /// How long such a pause lasts at most, in milliseconds.
    static let acceptPause: Int64 = 100
    /// Descriptors a new connection may not take: left free for the rest of the process.
    static let reservedDescriptors = 16

    /// Whether a new connection would leave this process fewer than ``reservedDescriptors``
    /// descriptors free. Counted
    /// (``omni_open_descriptors``) only when it could be: a limit under 4,096, or connections
    /// holding an eighth of it.
    static func lowOnDescriptors(connections: Int) -> Bool {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else {
            return false
        }
        let maximum = Int(clamping: limit.rlim_cur)
        if maximum >= 4_096 && connections * 8 < maximum { return false }
        let open = omni_open_descriptors()
        return open >= 0 && maximum - (open + 1) < reservedDescriptors
    }

    init(server: HTTPServer, listenFD: Int32, wakeFD: Int32) {
        self.server = server
        self.listenFD = listenFD
        self.wakeFD = wakeFD
        config = server.configuration
    }

    mutating func run() {
        var fds: [pollfd] = []
        var order: [Connection] = []
        while running {
            let now = monotonicMillis()
            fds.removeAll(keepingCapacity: true)
            order.removeAll(keepingCapacity: true)
            let accepting = now >= acceptPausedUntil
            fds.append(pollfd(fd: listenFD, events: accepting ? Int16(POLLIN) : 0, revents: 0))
            fds.append(pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
            var nearest = accepting ? now + 1000 : min(now + 1000, acceptPausedUntil)
            for connection in connections.values {
                var events: Int16 = 0
                // Read unless the client is gone, or a response is being written and the next
                // pipelined request is already as large as a head may be.
                if !connection.peerClosed, connection.input.count <= config.maxHeadBytes { events |= Int16(POLLIN) }
                if connection.pendingOutput > 0 { events |= Int16(POLLOUT) }
                if case .draining = connection.phase { events |= Int16(POLLOUT) }
                fds.append(pollfd(fd: connection.fd, events: events, revents: 0))
                order.append(connection)
                nearest = min(nearest, connection.deadline, connection.nextHeartbeat,
                              connection.pendingOutput > 0 ? connection.lastWrite + config.writeTimeout.millis : .max)
            }
            let timeout = Int32(clamping: max(0, nearest - now))
            let ready = poll(&fds, nfds_t(fds.count), timeout)
            if ready < 0 && errno != EINTR { break }
            let after = monotonicMillis()
            if fds[1].revents != 0 {
                omni_wake_consume(wakeFD)
                apply(server.takeCommands(), now: after)
                if !running { break }
            }
            for (index, connection) in order.enumerated() {
                let revents = fds[index + 2].revents
                guard revents != 0, connections[connection.id] != nil else { continue }
                if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { readable(connection, now: after) }
                guard connections[connection.id] != nil, revents & Int16(POLLOUT) != 0 else { continue }
                if connection.pendingOutput > 0 {
                    flush(connection, now: after)
                } else if case .draining = connection.phase {
                    // The client took the last response (all but a little): its next request may come.
                    awaitNext(connection, now: after)
                }
            }
            // At most one request answered per connection and turn, so a client that pipelines
            // cannot keep the thread from the others (each page costs milliseconds to build).
            for connection in order where connections[connection.id] != nil && connection.inputPending {
                if case .awaitingRequest = connection.phase { process(connection, now: after) }
            }
            if fds[0].revents & Int16(POLLIN) != 0 { accept(now: after) }
            expire(now: after)
        }
        for connection in Array(connections.values) { drop(connection) }
    }

    // MARK: Commands from other threads

    mutating func apply(_ commands: [HTTPServer.Command], now: Int64) {
        for command in commands {
            switch command {
            case .stop:
                running = false
                return
            case .send(let id, let bytes):
                guard let connection = connections[id], case .streaming = connection.phase, !connection.closeAfterFlush else { continue }
                if connection.pendingOutput + bytes.count > config.maxStreamBacklog {
                    // The client does not keep up: drop it rather than buffer without bound.
                    drop(connection)
                    continue
                }
                connection.queue(bytes, now: now)
                connection.nextHeartbeat = now + config.heartbeat.millis
                flush(connection, now: now)
            case .finish(let id):
                guard let connection = connections[id] else { continue }
                connection.closeAfterFlush = true
                flush(connection, now: now)
            }
        }
    }

    // MARK: Accepting

    mutating func accept(now: Int64) {
        while true {
            // Near the last descriptors: paused as after a failed accept, the pending connections
            // left in the backlog, so that the process keeps some free (Swift's thread pool
            // crashes the process when its check of its workers cannot open /proc/<tid>/stat).
            if Self.lowOnDescriptors(connections: connections.count) {
                acceptPausedUntil = now + Self.acceptPause
                return
            }
            // accept4 is a GNU extension Glibc's module does not import; this process spawns
            // nothing, so setting close-on-exec right after the accept leaks to no child.
            let fd = Glibc.accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                if errno == EMFILE || errno == ENFILE { acceptPausedUntil = now + Self.acceptPause }
                return
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            // Writable only while the kernel holds little unsent: what a client does not read stays
            // in our queue (bounded by the write timeout), and its next request waits (``Phase/draining``).
            var lowat = Int32(clamping: config.maxUnsentBytes)
            setsockopt(fd, Int32(IPPROTO_TCP), Int32(TCP_NOTSENT_LOWAT), &lowat, socklen_t(MemoryLayout<Int32>.size))
            // Lingering connections (answered, closing) hold no slot; they end within 2 s.
            let active = connections.values.reduce(0) { count, connection in
                if case .lingering = connection.phase { return count }
                return count + 1
            }
            guard active < config.maxConnections, connections.count < 2 * config.maxConnections else {
                // Over the cap: a best-effort 503 and close, without reading anything.
                let response = config.refusal(nil, .serviceUnavailable, "too many connections; try again later")
                var bytes = response.head(contentLength: responseLength(response), close: true, extra: config.securityHeaders)
                if case .bytes(let body) = response.body { bytes += body }
                _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                shutdown(fd, Int32(SHUT_WR))
                close(fd)
                continue
            }
            guard let local = SocketAddress.local(of: fd) else {
                close(fd)
                continue
            }
            var hosts: Set<String> = [local.hostHeader]
            if local.isLoopback {
                hosts.insert("localhost:\(local.port)")
                hosts.insert(local.family == AF_INET ? "127.0.0.1:\(local.port)" : "[::1]:\(local.port)")
            }
            if local.port == 80 {
                for host in Array(hosts) { hosts.insert(String(host.dropLast(3))) }
            }
            let connection = Connection(id: nextID, fd: fd, allowedHosts: hosts, deadline: now + config.headerTimeout.millis,
                                        now: now)
            nextID += 1
            connections[connection.id] = connection
        }
    }

    func responseLength(_ response: HTTPResponse) -> Int {
        if case .bytes(let body) = response.body { return body.count }
        return 0
    }

    // MARK: Reading

    mutating func readable(_ connection: Connection, now: Int64) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                drop(connection)
                return
            }
            if count == 0 {
                // The client closed (or half-closed) its side: answer what it sent, then close.
                connection.peerClosed = true
                break
            }
            switch connection.phase {
            case .streaming, .lingering, .responding(close: true):
                // Nothing more is expected from this client: discard.
                continue
            case .awaitingRequest(let started):
                if !started {
                    // A request begins: from now on the head must be complete within the header timeout.
                    connection.phase = .awaitingRequest(started: true)
                    connection.deadline = now + config.headerTimeout.millis
                }
                connection.input.append(contentsOf: buffer[0..<count])
                connection.inputPending = true
            case .responding(close: false), .draining:
                // The next pipelined request: read (up to a head's size), answered in its turn.
                connection.input.append(contentsOf: buffer[0..<count])
            }
            if connection.input.count > config.maxHeadBytes + 4 { break }
        }
        guard connection.peerClosed else { return }
        switch connection.phase {
        case .awaitingRequest, .draining:
            // The client closed its side: answer what it sent (the loop's turn), then close.
            if connection.input.isEmpty {
                drop(connection)
            } else if case .awaitingRequest = connection.phase {
                connection.inputPending = true
            }
        case .streaming, .lingering:
            drop(connection)
        case .responding:
            connection.phase = .responding(close: true)
        }
    }

    /// Parses and answers the request at the start of the input (the connection is free).
    mutating func process(_ connection: Connection, now: Int64) {
        connection.inputPending = false
        guard case .awaitingRequest = connection.phase, !connection.input.isEmpty else { return }
        switch HTTPRequestParser.parse(connection.input, maxHeadBytes: config.maxHeadBytes) {
        case .incomplete:
            // A client that closed its side will never complete its head.
            if connection.peerClosed { drop(connection) }
        case .invalid(let status, let reason):
            let path = HTTPRequestParser.requestPath(connection.input)
            connection.input.removeAll()
            reply(config.refusal(path, status, reason), to: connection, head: false, close: true, now: now)
        case .request(let request, let consumed):
            connection.input.removeFirst(consumed)
            connection.served += 1
            answer(request, on: connection, now: now)
        }
    }

    /// The kernel took the last response: the connection waits for (or has) its next request.
    mutating func awaitNext(_ connection: Connection, now: Int64) {
        connection.phase = .awaitingRequest(started: !connection.input.isEmpty)
        connection.deadline = now + (connection.input.isEmpty ? config.idleTimeout : config.headerTimeout).millis
        connection.inputPending = !connection.input.isEmpty
    }

    mutating func answer(_ request: HTTPRequest, on connection: Connection, now: Int64) {
        let head = request.method == "HEAD"
        // DNS rebinding: the Host must be the address the client connected to.
        let host = (request.header("host") ?? "").lowercased()
        guard connection.allowedHosts.contains(host) else {
            return reply(config.refusal(request.path, .misdirectedRequest,
                                        "this server answers to \(connection.allowedHosts.sorted().joined(separator: " or "))"),
                        to: connection, head: head, close: true, now: now)
        }
        var extra: [(name: String, value: String)] = []
        if let token = config.token {
            let bearer = request.header("authorization").flatMap { value -> String? in
                let parts = value.split(separator: " ", maxSplits: 1)
                return parts.count == 2 && parts[0].lowercased() == "bearer" ? String(parts[1]) : nil
            }
            let fromQuery = request.parameter("token")
            let offered = [bearer, fromQuery, request.cookie(config.tokenCookie)].compactMap { $0 }
            guard offered.contains(where: { constantTimeEqual($0, token) }) else {
                var refusal = config.refusal(request.path, .unauthorized, "this server needs its token (Authorization: Bearer, or ?token=)")
                refusal.headers.append(("WWW-Authenticate", "Bearer"))
                return reply(refusal, to: connection, head: head, close: true, now: now)
            }
            if let fromQuery, constantTimeEqual(fromQuery, token) {
                // The page keeps the token in a cookie that scripts cannot read.
                extra.append(("Set-Cookie", "\(config.tokenCookie)=\(token); Path=/; HttpOnly; SameSite=Strict"))
            }
        }
        guard request.method == "GET" || head else {
            var refusal = config.refusal(request.path, .methodNotAllowed, "this server is read-only: GET and HEAD only")
            refusal.headers.append(("Allow", "GET, HEAD"))
            return reply(refusal, to: connection, head: false, close: true, now: now)
        }
        let length = request.header("content-length")
        if request.header("transfer-encoding") != nil || (length != nil && length != "0") {
            let status: HTTPStatus = length.map { Int($0) != nil } ?? true ? .payloadTooLarge : .badRequest
            return reply(config.refusal(request.path, status, "a request here carries no body"), to: connection, head: head, close: true,
                         now: now)
        }
        var response = server.respond(to: request)
        response.headers += extra
        switch response.body {
        case .bytes:
            // A client that closed its side, or reached the most requests a connection may make, is answered last.
            let close = request.wantsClose || connection.peerClosed || connection.served >= config.maxRequestsPerConnection
            reply(response, to: connection, head: head, close: close, now: now)
        case .stream(let delegate):
            if head {
                var plain = response
                plain.body = .bytes([])
                return reply(plain, to: connection, head: true, close: true, now: now)
            }
            // The stream's body ends when the connection closes. It answers no other request, so the
            // kernel may buffer as much of it as it would (0: the system's default, no limit); with
            // the limit, 20 followers of a 3.6 MB page held their pages in this process instead
            // (peak RSS 50 -> 120-130 MiB) and took 25-70% more CPU to send them.
            var unlimited: Int32 = 0
            setsockopt(connection.fd, Int32(IPPROTO_TCP), Int32(TCP_NOTSENT_LOWAT), &unlimited, socklen_t(MemoryLayout<Int32>.size))
            connection.queue(response.head(contentLength: nil, close: true, extra: config.securityHeaders), now: now)
            connection.phase = .streaming(delegate)
            connection.deadline = .max
            connection.nextHeartbeat = now + config.heartbeat.millis
            delegate.streamOpened(HTTPStream(id: connection.id, server: server), request: request)
            flush(connection, now: now)
        }
    }

    /// Queues a complete response.
    mutating func reply(_ response: HTTPResponse, to connection: Connection, head: Bool, close: Bool, now: Int64) {
        let body: [UInt8]
        if case .bytes(let bytes) = response.body { body = bytes } else { body = [] }
        connection.queue(response.head(contentLength: body.count, close: close, extra: config.securityHeaders), now: now)
        if !head { connection.queue(body, now: now) }
        connection.phase = .responding(close: close)
        connection.deadline = .max
        flush(connection, now: now)
    }

    // MARK: Writing

    mutating func flush(_ connection: Connection, now: Int64) {
        while connection.pendingOutput > 0 {
            let count = connection.output.withUnsafeBytes { buffer in
                Glibc.send(connection.fd, buffer.baseAddress! + connection.outputOffset, connection.pendingOutput, Int32(MSG_NOSIGNAL))
            }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                drop(connection)
                return
            }
            connection.outputOffset += count
            connection.lastWrite = now
        }
        if connection.pendingOutput == 0 {
            connection.output.removeAll(keepingCapacity: connection.output.count <= 64 * 1024)
            connection.outputOffset = 0
        } else if connection.outputOffset > 1 << 20 {
            connection.output.removeFirst(connection.outputOffset)
            connection.outputOffset = 0
        }
        guard connection.pendingOutput == 0 else { return }
        switch connection.phase {
        case .responding(let close):
            if close {
                linger(connection, now: now)
            } else if connection.peerClosed {
                drop(connection)
            } else {
                // The next request is answered once the kernel has sent most of this response
                // (the loop's `POLLOUT`), never from here: no recursion, no connection served twice
                // in one turn, and nothing built for a client that does not read.
                connection.phase = .draining
                connection.deadline = now + config.writeTimeout.millis
            }
        case .streaming:
            if connection.closeAfterFlush { linger(connection, now: now) }
        case .awaitingRequest, .draining, .lingering:
            break
        }
    }

    /// Shuts the write side and waits briefly for the client to close, discarding its input.
    mutating func linger(_ connection: Connection, now: Int64) {
        if case .streaming(let delegate) = connection.phase {
            delegate.streamClosed(HTTPStream(id: connection.id, server: server))
        }
        shutdown(connection.fd, Int32(SHUT_WR))
        connection.phase = .lingering
        connection.input.removeAll()
        connection.deadline = now + 2000
        connection.nextHeartbeat = .max
    }

    // MARK: Timers

    mutating func expire(now: Int64) {
        for connection in Array(connections.values) {
            if connection.pendingOutput > 0, now - connection.lastWrite >= config.writeTimeout.millis {
                drop(connection)
                continue
            }
            if case .streaming = connection.phase, now >= connection.nextHeartbeat {
                connection.queue(Array(": keep-alive\n\n".utf8), now: now)
                connection.nextHeartbeat = now + config.heartbeat.millis
                flush(connection, now: now)
                continue
            }
            guard now >= connection.deadline else { continue }
            switch connection.phase {
            case .awaitingRequest(let started):
                if started {
                    // A head that did not arrive in time (a slow client): 408, then close.
                    let path = HTTPRequestParser.requestPath(connection.input)
                    connection.input.removeAll()
                    reply(config.refusal(path, .requestTimeout, "the request head did not arrive in time"), to: connection, head: false,
                         close: true, now: now)
                } else {
                    drop(connection)
                }
            case .draining, .lingering:
                // A client that did not take its last response within the write timeout.
                drop(connection)
            case .responding, .streaming:
                break
            }
        }
    }

    /// Closes a connection now; a stream's delegate is told.
    mutating func drop(_ connection: Connection) {
        guard connections.removeValue(forKey: connection.id) != nil else { return }
        if case .streaming(let delegate) = connection.phase {
            delegate.streamClosed(HTTPStream(id: connection.id, server: server))
        }
        close(connection.fd)
        // A descriptor came free: a connection that waited for one can be accepted.
        acceptPausedUntil = 0
    }
}

/// Equal strings compared in time that depends only on their lengths, not on where they differ.
package func constantTimeEqual(_ lhs: String, _ rhs: String) -> Bool {
    let a = Array(lhs.utf8), b = Array(rhs.utf8)
    var difference = UInt8(a.count == b.count ? 0 : 1)
    for index in 0..<max(a.count, b.count) {
        difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
    }
    return difference == 0
}
