import Foundation
import Testing
@testable import Orchestration

@Suite("Timestamps and run ids")
struct TimestampTests {
    @Test(arguments: [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1_795_255_200.25, "2026-11-21T10:00:00.250Z"),
        (-1.5, "1969-12-31T23:59:58.500Z"),
        (951_782_400.999, "2000-02-29T00:00:00.999Z"),
    ])
    func formatsRFC3339WithMilliseconds(seconds: Double, text: String) {
        let date = Date(timeIntervalSince1970: seconds)
        #expect(Timestamp.rfc3339(date) == text)
        #expect(Timestamp.parse(text) == date)
    }

    @Test func rejectsMalformedTimestamps() {
        #expect(Timestamp.parse("2026-11-21 10:00:00") == nil)
        #expect(Timestamp.parse("2026-1x-21T10:00:00.000Z") == nil)
    }

    @Test func runIDsHaveTheDocumentedShape() {
        let id = RunID.make(date: Date(timeIntervalSince1970: 1_795_255_200))
        #expect(id.hasPrefix("r-20261121-"))
        #expect(id.count == "r-20261121-8f3a2c".count)
        #expect(RunID.traceID().count == 32)
        #expect(RunID.make() != RunID.make())
    }
}
