import Foundation
@testable import Presentation
import Testing
@testable import Orchestration

/// Golden tests of `graph`'s DOT and Mermaid output, and the levels the HTML report lays out.
@Suite("GraphRenderer: DOT and Mermaid")
struct GraphRendererTests {
    /// A plan whose ids hold `.` and `-`, one a DOT keyword, and whose names hold quotes,
    /// backslashes, markup and a line break.
    static let planText = #"""
    {"plan_id": "P \"q\"", "version": "1", "steps": [
      {"id": "fetch.src", "name": "Fetch \"src\" <all>", "command": "true"},
      {"id": "build-x", "command": "true", "depends_on": ["fetch.src"]},
      {"id": "node", "name": "back\\slash # ; `x` &\nnext", "command": "true", "depends_on": ["fetch.src"]},
      {"id": "end", "command": "true", "depends_on": ["build-x", "node"]}
    ]}
    """#

    static func load(_ text: String = planText) throws -> LoadedPlan {
        try PlanLoader.load(PlanSource(displayPath: "p.json", directory: "/tmp", bytes: Array(text.utf8), overrides: [:]))
    }

    static let goldenDOT = #"""
    // omnibase-agents graph of plan P "q"
    digraph "P \"q\"" {
        rankdir=LR;
        node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#616161", fontname="Helvetica", fontsize=11];
        edge [color="#757575", arrowsize=0.7];
        "fetch.src" [label="Fetch \"src\" <all>"];
        "build-x" [label="build-x"];
        "node" [label="back\\slash # ; `x` &\nnext"];
        "end" [label="end"];
        "fetch.src" -> "build-x";
        "fetch.src" -> "node";
        "build-x" -> "end";
        "node" -> "end";
    }

    """#

    static let goldenMermaid = #"""
    %% omnibase-agents graph of plan P "q"
    flowchart LR
        s0["Fetch #34;src#34; #60;all#62;"]
        s1["build-x"]
        s2["back#92;slash #35; #59; #96;x#96; #38; next"]
        s3["end"]
        s0 --> s1
        s0 --> s2
        s1 --> s3
        s2 --> s3

    """#

    static let goldenDOTWithStatuses = #"""
    // omnibase-agents graph of plan P "q", run r-1
    digraph "P \"q\"" {
        rankdir=LR;
        node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#616161", fontname="Helvetica", fontsize=11];
        edge [color="#757575", arrowsize=0.7];
        "fetch.src" [label="Fetch \"src\" <all>\nsucceeded", fillcolor="#c8e6c9", color="#2e7d32", tooltip="fetch.src: succeeded"];
        "build-x" [label="build-x\nfailed", fillcolor="#ffcdd2", color="#c62828", tooltip="build-x: failed"];
        "node" [label="back\\slash # ; `x` &\nnext\ncancelled", fillcolor="#ffe0b2", color="#ef6c00", tooltip="node: cancelled"];
        "end" [label="end\nskipped", fillcolor="#e0e0e0", color="#757575", tooltip="end: skipped"];
        "fetch.src" -> "build-x";
        "fetch.src" -> "node";
        "build-x" -> "end";
        "node" -> "end";
    }

    """#

    static let goldenMermaidWithStatuses = #"""
    %% omnibase-agents graph of plan P "q", run r-1
    flowchart LR
        s0["Fetch #34;src#34; #60;all#62;<br/>succeeded"]
        s1["build-x<br/>failed"]
        s2["back#92;slash #35; #59; #96;x#96; #38; next<br/>cancelled"]
        s3["end<br/>pending"]
        s0 --> s1
        s0 --> s2
        s1 --> s3
        s2 --> s3
        classDef pending fill:#ffffff,stroke:#9e9e9e,color:#212121
        class s3 pending
        classDef succeeded fill:#c8e6c9,stroke:#2e7d32,color:#212121
        class s0 succeeded
        classDef failed fill:#ffcdd2,stroke:#c62828,color:#212121
        class s1 failed
        classDef cancelled fill:#ffe0b2,stroke:#ef6c00,color:#212121
        class s2 cancelled

    """#

    @Test func dotOfAPlanIsGolden() throws {
        let loaded = try Self.load()
        #expect(GraphRenderer.render(loaded.plan, graph: loaded.graph, format: .dot) == Self.goldenDOT)
    }

    @Test func mermaidOfAPlanIsGolden() throws {
        let loaded = try Self.load()
        #expect(GraphRenderer.render(loaded.plan, graph: loaded.graph, format: .mermaid) == Self.goldenMermaid)
    }

    @Test func statusesColourTheNodes() throws {
        let loaded = try Self.load()
        let dot = GraphRenderer.render(loaded.plan, graph: loaded.graph, format: .dot,
                                       statuses: [.succeeded, .failed, .cancelled, .skipped], runID: "r-1")
        #expect(dot == Self.goldenDOTWithStatuses)
        let mermaid = GraphRenderer.render(loaded.plan, graph: loaded.graph, format: .mermaid,
                                           statuses: [.succeeded, .failed, .cancelled, .pending], runID: "r-1")
        #expect(mermaid == Self.goldenMermaidWithStatuses)
    }

    @Test func everyStatusHasItsOwnColour() {
        let fills = StepStatus.allCases.map { GraphRenderer.colors($0).fill }
        #expect(Set(fills).count == StepStatus.allCases.count)
        #expect(GraphRenderer.colors(.pending).fill == "#ffffff")
    }

    /// Graphviz parses the output (skipped when `dot` is not installed: `apt-get install graphviz`).
    @Test(.enabled(if: Self.dotPath != nil, "graphviz's dot is not installed (apt-get install graphviz)"))
    func dotParsesTheOutput() async throws {
        let loaded = try Self.load()
        let statuses: [StepStatus] = [.succeeded, .failed, .cancelled, .skipped]
        for text in [GraphRenderer.render(loaded.plan, graph: loaded.graph, format: .dot),
                     GraphRenderer.render(loaded.plan, graph: loaded.graph, format: .dot, statuses: statuses, runID: "r")] {
            let svg = try await Self.renderWithDot(text)
            #expect(svg.contains("<svg"))
            // Every node and edge made it into the drawing.
            #expect(svg.components(separatedBy: "class=\"node\"").count - 1 == 4)
            #expect(svg.components(separatedBy: "class=\"edge\"").count - 1 == 4)
            #expect(svg.contains("Fetch &quot;src&quot; &lt;all&gt;"))
        }
    }

    @Test func levelsAreLongestPathsFromTheRoots() throws {
        let loaded = try Self.load()
        #expect(loaded.graph.levels == [0, 1, 1, 2])
        // A chain and a shortcut: the shortcut does not pull a step to an earlier level.
        let graph = try PlanGraph(ids: ["a", "b", "c", "d"], dependsOn: [[], ["a"], ["b"], ["a", "c"]])
        #expect(graph.levels == [0, 1, 2, 3])
    }

    @Test func idsAndLabelsAreEscaped() {
        #expect(GraphRenderer.dotString("a\"b\\c\nd\u{07}") == #""a\"b\\c\nd""#)
        #expect(GraphRenderer.mermaidString("é <b>\"x\"</b> end") == "é #60;b#62;#34;x#34;#60;/b#62; end")
    }

    static let dotPath: String? = ["/usr/bin/dot", "/usr/local/bin/dot"].first { FileManager.default.isExecutableFile(atPath: $0) }

    static func renderWithDot(_ text: String) async throws -> String {
        let folder = NSTemporaryDirectory() + "graph-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try text.write(toFile: folder + "/g.dot", atomically: true, encoding: .utf8)
        let spec = ProcessSpec(command: try #require(dotPath), arguments: ["-Tsvg", folder + "/g.dot"],
                               environment: ProcessInfo.processInfo.environment, workingDirectory: folder,
                               stdoutPath: folder + "/g.svg", stderrPath: folder + "/g.err", timeout: .seconds(60),
                               killGrace: .seconds(1))
        let outcome = await LocalProcess.run(spec)
        let errors = (try? String(contentsOfFile: folder + "/g.err", encoding: .utf8)) ?? ""
        #expect(outcome.termination == .exited(0), "dot failed: \(errors)")
        #expect(errors.isEmpty, "dot warned: \(errors)")
        return try String(contentsOfFile: folder + "/g.svg", encoding: .utf8)
    }
}
