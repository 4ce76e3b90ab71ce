import Testing
@testable import Orchestration

@Test func versionIsSet() { #expect(!Orchestration.version.isEmpty) }
