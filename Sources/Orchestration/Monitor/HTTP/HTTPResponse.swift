/// An HTTP status code with its reason phrase.
package struct HTTPStatus: Sendable, Hashable {
    /// The code (`200`).
    package var code: Int
    /// The reason phrase (`OK`).
    package var reason: String

    package init(_ code: Int, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    package static let ok = HTTPStatus(200, "OK")
    package static let notModified = HTTPStatus(304, "Not Modified")
    package static let badRequest = HTTPStatus(400, "Bad Request")
    package static let unauthorized = HTTPStatus(401, "Unauthorized")
    package static let forbidden = HTTPStatus(403, "Forbidden")
    package static let notFound = HTTPStatus(404, "Not Found")
    package static let methodNotAllowed = HTTPStatus(405, "Method Not Allowed")
    package static let requestTimeout = HTTPStatus(408, "Request Timeout")
    package static let payloadTooLarge = HTTPStatus(413, "Content Too Large")
    package static let misdirectedRequest = HTTPStatus(421, "Misdirected Request")
    package static let requestHeaderFieldsTooLarge = HTTPStatus(431, "Request Header Fields Too Large")
    package static let internalServerError = HTTPStatus(500, "Internal Server Error")
    package static let serviceUnavailable = HTTPStatus(503, "Service Unavailable")
    package static let httpVersionNotSupported = HTTPStatus(505, "HTTP Version Not Supported")
}

/// What a handler answers: a status, header fields, and a body that is either bytes or a
/// Server-Sent Events stream that stays open.
package struct HTTPResponse: Sendable {
    /// The body.
    package enum Body: Sendable {
        /// A complete body (sent with `Content-Length`; left out for `HEAD`).
        case bytes([UInt8])
        /// A `text/event-stream` that stays open: the server sends the head, then calls the
        /// delegate with the stream, whose owner sends events until either side closes it.
        case stream(any HTTPStreamDelegate)
    }

    /// The status.
    package var status: HTTPStatus
    /// Header fields beyond those the server adds to every response (`Content-Length`,
    /// `Connection` and the security fields of ``HTTPServer/Configuration/securityHeaders``).
    package var headers: [(name: String, value: String)]
    /// The body.
    package var body: Body

    package init(status: HTTPStatus = .ok, headers: [(name: String, value: String)] = [], body: Body) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A body of bytes with its content type.
    package init(status: HTTPStatus = .ok, contentType: String, body: [UInt8], headers: [(name: String, value: String)] = []) {
        self.status = status
        self.headers = [("Content-Type", contentType)] + headers
        self.body = .bytes(body)
    }

    /// A short plain-text answer (errors): the status line's text and one sentence.
    package static func text(_ status: HTTPStatus, _ message: String, headers: [(name: String, value: String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8",
                     body: Array("\(status.code) \(status.reason): \(message)\n".utf8), headers: headers)
    }

    /// The head's bytes: status line, fields, blank line.
    func head(contentLength: Int?, close: Bool, extra: [(name: String, value: String)]) -> [UInt8] {
        var text = "HTTP/1.1 \(status.code) \(status.reason)\r\n"
        for field in headers + extra {
            // Field values come from this program, but a stray CR or LF must never split a field.
            let value = field.value.filter { $0 != "\r" && $0 != "\n" }
            text += "\(field.name): \(value)\r\n"
        }
        if let contentLength { text += "Content-Length: \(contentLength)\r\n" }
        text += close ? "Connection: close\r\n" : "Connection: keep-alive\r\n"
        text += "\r\n"
        return Array(text.utf8)
    }
}

/// The owner of a Server-Sent Events stream: told when it opens and when it closes.
///
/// Both calls come from the server's thread; they must not block.
package protocol HTTPStreamDelegate: Sendable {
    /// The response head was queued; events may be sent from now on (from any thread).
    func streamOpened(_ stream: HTTPStream, request: HTTPRequest)
    /// The stream closed (the client went away, ``HTTPStream/finish()`` was called, the client
    /// did not read fast enough, or the server stopped). Nothing sent afterwards arrives.
    func streamClosed(_ stream: HTTPStream)
}

/// An open event stream: a handle that any thread may use to send bytes to one client.
package struct HTTPStream: Sendable, Hashable {
    /// The connection's number, unique for the server's lifetime.
    package let id: UInt64
    let server: HTTPServer

    /// Queues bytes for the client (already in `text/event-stream` form).
    package func send(_ bytes: [UInt8]) { server.enqueue(.send(id, bytes)) }

    /// Closes the stream after what was queued is sent.
    package func finish() { server.enqueue(.finish(id)) }

    package static func == (lhs: HTTPStream, rhs: HTTPStream) -> Bool { lhs.id == rhs.id && lhs.server === rhs.server }
    package func hash(into hasher: inout Hasher) { hasher.combine(id) }
}
