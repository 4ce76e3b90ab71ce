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
        // Member by member, in `RunEvent.json`'s order, without building the object first (the
        // store writer appends every event of a run here: ~1 us less per event).
        bytes.append(contentsOf: #"{"seq":"#.utf8)
        bytes.append(contentsOf: String(event.seq).utf8)
        bytes.append(contentsOf: #","ts":"#.utf8)
        JSONValue.string(timestamp).write(into: &bytes)
        bytes.append(contentsOf: #","run_id":"#.utf8)
        JSONValue.string(event.runID).write(into: &bytes)
        bytes.append(contentsOf: #","type":"#.utf8)
        JSONValue.string(event.kind.rawValue).write(into: &bytes)
        if let stepID = event.stepID {
            bytes.append(contentsOf: #","step_id":"#.utf8)
            JSONValue.string(stepID).write(into: &bytes)
        }
        if let attempt = event.attempt {
            bytes.append(contentsOf: #","attempt":"#.utf8)
            bytes.append(contentsOf: String(attempt).utf8)
        }
        if let data {
            bytes.append(contentsOf: #","data":"#.utf8)
            bytes.append(contentsOf: data.utf8)
        }
        bytes.append(contentsOf: "}\n".utf8)
    }
}
