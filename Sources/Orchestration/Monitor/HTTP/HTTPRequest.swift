/// One parsed HTTP/1.x request head (request line and header fields): what the monitor's
/// handlers see. The server accepts no request body, so a request is its head.
package struct HTTPRequest: Sendable, Hashable {
    /// The method, as sent (`GET`, `HEAD`, ...).
    package var method: String
    /// The request target as sent (`/runs/r-1?after=3`).
    package var target: String
    /// The target's path, percent-decoded (`/runs/r-1`).
    package var path: String
    /// The query parameters, percent-decoded (`+` is a space), in order.
    package var query: [(name: String, value: String)]
    /// `1.0` or `1.1`.
    package var version: String
    /// The header fields in order, names lowercased, values trimmed.
    package var headers: [(name: String, value: String)]

    /// The first value of a header field (name in any case).
    package func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.name == lowered }?.value
    }

    /// The first value of a query parameter.
    package func parameter(_ name: String) -> String? {
        query.first { $0.name == name }?.value
    }

    /// A cookie sent with the request.
    package func cookie(_ name: String) -> String? {
        for field in headers where field.name == "cookie" {
            for pair in field.value.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingSpaces == name { return String(parts[1].trimmingSpaces) }
            }
        }
        return nil
    }

    /// Whether the client asked to close the connection after the response (or speaks 1.0).
    package var wantsClose: Bool {
        let connection = header("connection")?.lowercased() ?? ""
        if version == "1.0" { return !connection.contains("keep-alive") }
        return connection.split(separator: ",").contains { $0.trimmingSpaces == "close" }
    }

    package static func == (lhs: HTTPRequest, rhs: HTTPRequest) -> Bool {
        lhs.method == rhs.method && lhs.target == rhs.target && lhs.version == rhs.version
            && lhs.headers.elementsEqual(rhs.headers, by: { $0 == $1 })
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(method)
        hasher.combine(target)
        for field in headers {
            hasher.combine(field.name)
            hasher.combine(field.value)
        }
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs.
    fileprivate var trimmingSpaces: Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return text
    }
}

/// Parses a request head from the bytes read so far, within a size limit.
package enum HTTPRequestParser {
    /// What the bytes read so far hold.
    package enum Outcome: Sendable, Equatable {
        /// The head is not complete yet.
        case incomplete
        /// A complete head, and how many bytes it took (up to and including the blank line).
        case request(HTTPRequest, consumed: Int)
        /// A head that breaks the rules: answer with this status and close.
        case invalid(HTTPStatus, reason: String)
    }

    /// Looks for a complete request head at the start of `bytes`.
    ///
    /// - Parameters:
    ///   - bytes: What was read from the connection.
    ///   - maxHeadBytes: The most bytes a head may take (request line and fields together);
    ///     beyond it the outcome is `431`.
    package static func parse(_ bytes: [UInt8], maxHeadBytes: Int) -> Outcome {
        // Leading empty lines before a request line are allowed (RFC 9112 section 2.2).
        var start = 0
        while start + 1 < bytes.count, bytes[start] == 13, bytes[start + 1] == 10 { start += 2 }
        guard let end = headEnd(bytes, from: start) else {
            return bytes.count - start > maxHeadBytes ? .invalid(.requestHeaderFieldsTooLarge, reason: "request head too large")
                : .incomplete
        }
        guard end - start <= maxHeadBytes else {
            return .invalid(.requestHeaderFieldsTooLarge, reason: "request head too large")
        }
        // Lines end with CRLF (a bare LF is tolerated); the head ends with an empty line.
        var lines: [ArraySlice<UInt8>] = []
        var lineStart = start
        var index = start
        while index < end {
            if bytes[index] == 10 {
                var lineEnd = index
                if lineEnd > lineStart, bytes[lineEnd - 1] == 13 { lineEnd -= 1 }
                lines.append(bytes[lineStart..<lineEnd])
                lineStart = index + 1
            }
            index += 1
        }
        while let last = lines.last, last.isEmpty { lines.removeLast() }
        guard let requestLine = lines.first else { return .invalid(.badRequest, reason: "empty request") }
        let parts = requestLine.split(separator: 32, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty,
              parts[0].allSatisfy(isTokenByte), parts[1].allSatisfy({ $0 > 32 && $0 < 127 }) else {
            return .invalid(.badRequest, reason: "malformed request line")
        }
        let versionText = String(decoding: parts[2], as: UTF8.self)
        guard versionText == "HTTP/1.1" || versionText == "HTTP/1.0" else {
            return .invalid(.httpVersionNotSupported, reason: "only HTTP/1.0 and HTTP/1.1 are spoken here")
        }
        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() {
            // Obsolete line folding and fields without a name are refused (RFC 9112 section 5.2).
            guard let colon = line.firstIndex(of: 58), colon > line.startIndex,
                  line[line.startIndex..<colon].allSatisfy(isTokenByte) else {
                return .invalid(.badRequest, reason: "malformed header field")
            }
            let valueBytes = line[(colon + 1)...]
            guard valueBytes.allSatisfy({ $0 == 9 || ($0 >= 32 && $0 != 127) }) else {
                return .invalid(.badRequest, reason: "control character in a header field")
            }
            let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self).lowercased()
            let value = String(Substring(String(decoding: valueBytes, as: UTF8.self)).trimmingSpaces)
            headers.append((name, value))
        }
        let target = String(decoding: parts[1], as: UTF8.self)
        guard target.hasPrefix("/") else {
            return .invalid(.badRequest, reason: "the request target must be a path")
        }
        let hosts = headers.filter { $0.name == "host" }
        if versionText == "HTTP/1.1", hosts.count != 1 {
            return .invalid(.badRequest, reason: "an HTTP/1.1 request needs exactly one Host field")
        }
        if hosts.count > 1 { return .invalid(.badRequest, reason: "more than one Host field") }
        let pathPart = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        guard let path = percentDecode(pathPart[0], plusIsSpace: false) else {
            return .invalid(.badRequest, reason: "malformed percent-encoding in the path")
        }
        var query: [(name: String, value: String)] = []
        if pathPart.count == 2 {
            for pair in pathPart[1].split(separator: "&") where !pair.isEmpty {
                let nameValue = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard let name = percentDecode(nameValue[0], plusIsSpace: true),
                      let value = percentDecode(nameValue.count == 2 ? nameValue[1] : "", plusIsSpace: true) else {
                    return .invalid(.badRequest, reason: "malformed percent-encoding in the query")
                }
                query.append((name, value))
            }
        }
        let request = HTTPRequest(method: String(decoding: parts[0], as: UTF8.self), target: target, path: path,
                                  query: query, version: String(versionText.dropFirst(5)), headers: headers)
        return .request(request, consumed: end)
    }

    /// The path of the request line at the start of `bytes` (for a refusal's form): percent-decoded,
    /// or as sent when its escapes are broken; nil when no complete request line with a path is there.
    package static func requestPath(_ bytes: [UInt8]) -> String? {
        var start = 0
        while start + 1 < bytes.count, bytes[start] == 13, bytes[start + 1] == 10 { start += 2 }
        guard let end = bytes[start...].firstIndex(of: 10) else { return nil }
        let parts = bytes[start..<end].split(separator: 32, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[1].first == UInt8(ascii: "/") else { return nil }
        let target = String(decoding: parts[1], as: UTF8.self)
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        return percentDecode(path, plusIsSpace: false) ?? String(path)
    }

    /// The index just past the blank line that ends the head, or nil.
    private static func headEnd(_ bytes: [UInt8], from start: Int) -> Int? {
        var index = start
        while index < bytes.count {
            if bytes[index] == 10 {
                // LF LF or LF CR LF ends the head.
                if index + 1 < bytes.count, bytes[index + 1] == 10 { return index + 2 }
                if index + 2 < bytes.count, bytes[index + 1] == 13, bytes[index + 2] == 10 { return index + 3 }
            }
            index += 1
        }
        return nil
    }

    /// RFC 9110 `tchar`.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// `%XX` decoded; nil for a broken escape or bytes that are not UTF-8 text, or a NUL.
    package static func percentDecode(_ text: Substring, plusIsSpace: Bool) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                bytes.append(high << 4 | low)
            } else if plusIsSpace && byte == UInt8(ascii: "+") {
                bytes.append(32)
            } else {
                bytes.append(byte)
            }
        }
        guard !bytes.contains(0), let decoded = String(validating: bytes, as: UTF8.self) else { return nil }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
