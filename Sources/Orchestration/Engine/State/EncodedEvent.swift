import Foundation


/// A run event with the texts the store writes for it, made once: its timestamp and `data` for
/// the `events` row, and from the same texts its `events.jsonl` line.
struct EncodedEvent {
    /// The event.
    let event: RunEvent
    /// `ts`, RFC 3339 with milliseconds.
    let timestamp: String
    /// The `data` object as compact JSON, nil when the event has none.
    let data: String?

    /// Encodes an event.
    init(_ event: RunEvent) {
        self.event = event
        timestamp = Timestamp.rfc3339(event.timestamp)
        data = event.data?.serialized()
    }

    /// Appends the event's `events.jsonl` line (with its newline): byte for byte
    /// `event.json.serialized()`, built from the texts above instead of encoding them again.
    func appendLine(to bytes: inout [UInt8]) {
        var members: [JSONValue.Member] = [
            .init("seq", .int(Int(event.seq))),
            .init("ts", .string(timestamp)),
            .init("run_id", .string(event.runID)),
            .init("type", .string(event.kind.rawValue)),
        ]
        if let stepID = event.stepID { members.append(.init("step_id", .string(stepID))) }
        if let attempt = event.attempt { members.append(.init("attempt", .int(attempt))) }
        JSONValue.object(members).write(into: &bytes)
        if let data {
            // Compact JSON: the object ends with its "}"; the data member goes before it.
            bytes.removeLast()
            bytes.append(contentsOf: #","data":"#.utf8)
            bytes.append(contentsOf: data.utf8)
            bytes.append(UInt8(ascii: "}"))
        }
        bytes.append(UInt8(ascii: "\n"))
    }
}
