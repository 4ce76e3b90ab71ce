import Orchestration

/// Draws a plan's DAG as Graphviz DOT or a Mermaid flowchart, optionally with each step coloured
/// by a run's final status.
///
/// Edges go from a dependency to its dependent, in plan order. Node labels show a step's `name`
/// when it has one, its id otherwise; every id and label is quoted and escaped for the target
/// language, so ids with `.` and `-` and names with quotes, backslashes or markup are safe. A
/// matrix step's expansions are drawn together, in a DOT cluster or a Mermaid subgraph labelled
/// with the matrix step's id and the number of expansions.
///
/// ```swift
/// let loaded = try PlanLoader.load(path: "plan.json")
/// print(GraphRenderer.render(loaded.plan, graph: loaded.graph, format: .dot))
/// ```
public enum GraphRenderer {
    /// An output language.
    public enum Format: String, Sendable, CaseIterable {
        /// Graphviz: `dot -Tsvg graph.dot > graph.svg`.
        case dot
        /// A Mermaid `flowchart` (Markdown renderers on code hosts draw it).
        case mermaid
    }

    /// Renders a plan's DAG.
    /// - Parameters:
    ///   - plan: the plan (for its id and the steps' names).
    ///   - graph: its validated graph.
    ///   - format: DOT or Mermaid.
    ///   - statuses: each step's status by step index, to colour the nodes (and add the status to
    ///     each label); nil draws the plan alone.
    ///   - runID: the run the statuses come from, named in the header comment.
    /// - Returns: the whole document, ending with a newline.
    public static func render(_ plan: Plan, graph: PlanGraph, format: Format, statuses: [StepStatus]? = nil,
                              runID: String? = nil) -> String {
        switch format {
        case .dot: return dot(plan, graph: graph, statuses: statuses, runID: runID)
        case .mermaid: return mermaid(plan, graph: graph, statuses: statuses, runID: runID)
        }
    }

    /// Fill and stroke colours of a status (shared with the HTML report).
    static func colors(_ status: StepStatus) -> (fill: String, stroke: String) {
        switch status {
        case .succeeded: return ("#c8e6c9", "#2e7d32")
        case .failed: return ("#ffcdd2", "#c62828")
        case .skipped: return ("#e0e0e0", "#757575")
        case .cancelled: return ("#ffe0b2", "#ef6c00")
        case .running: return ("#bbdefb", "#1565c0")
        case .pending: return ("#ffffff", "#9e9e9e")
        }
    }

    private static func label(_ plan: Plan, _ index: Int, graph: PlanGraph) -> String {
        let step = index < plan.steps.count ? plan.steps[index] : nil
        if let name = step?.name, !name.isEmpty { return name }
        return graph.ids[index]
    }

    /// The matrix step a step is an expansion of.
    private static func matrixGroup(_ plan: Plan, _ index: Int) -> String? {
        index < plan.steps.count ? plan.steps[index].matrix?.step : nil
    }

    /// How many expansions a matrix step has.
    private static func groupSize(_ plan: Plan, _ group: String) -> Int {
        plan.steps.reduce(0) { $0 + ($1.matrix?.step == group ? 1 : 0) }
    }

    private static func header(_ plan: Plan, runID: String?) -> String {
        let run = runID.map { ", run \($0)" } ?? ""
        return TerminalText.escaped("omnibase-agents graph of plan \(plan.id)\(run)")
    }

    // MARK: - DOT

    private static func dot(_ plan: Plan, graph: PlanGraph, statuses: [StepStatus]?, runID: String?) -> String {
        var out = "// \(header(plan, runID: runID))\n"
        out += "digraph \(dotString(plan.id)) {\n"
        out += "    rankdir=LR;\n"
        out += "    node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", color=\"#616161\", "
            + "fontname=\"Helvetica\", fontsize=11];\n"
        out += "    edge [color=\"#757575\", arrowsize=0.7];\n"
        var cluster: String?
        for index in 0..<graph.count {
            // A matrix step's expansions (adjacent in plan order) in one cluster, labelled with its id.
            let group = matrixGroup(plan, index)
            if group != cluster {
                if cluster != nil { out += "    }\n" }
                cluster = group
                if let group {
                    out += "    subgraph \(dotString("cluster_" + group)) {\n"
                    out += "        label=\(dotString("\(group) (matrix, \(groupSize(plan, group)))")); style=\"rounded,dashed\"; "
                        + "color=\"#9e9e9e\";\n"
                }
            }
            if cluster != nil { out += "    " }
            var text = label(plan, index, graph: graph)
            var attributes: [String] = []
            if let status = statuses?[index] {
                text += "\n" + status.rawValue
                let (fill, stroke) = colors(status)
                attributes += ["fillcolor=\"\(fill)\"", "color=\"\(stroke)\""]
                attributes.append("tooltip=\(dotString(graph.ids[index] + ": " + status.rawValue))")
            }
            out += "    \(dotString(graph.ids[index])) [label=\(dotString(text))"
                + attributes.map { ", " + $0 }.joined() + "];\n"
        }
        if cluster != nil { out += "    }\n" }
        for index in 0..<graph.count {
            for dependency in graph.dependencies[index] {
                out += "    \(dotString(graph.ids[Int(dependency)])) -> \(dotString(graph.ids[index]));\n"
            }
        }
        out += "}\n"
        return out
    }

    /// A DOT double-quoted string: `"` and `\` escaped, line breaks as `\n`, other controls
    /// (those ``TerminalText`` escapes: C0, DEL, C1, bidi overrides) dropped.
    static func dotString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if TerminalText.needsEscape(scalar) { continue }
                out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    // MARK: - Mermaid

    private static func mermaid(_ plan: Plan, graph: PlanGraph, statuses: [StepStatus]?, runID: String?) -> String {
        // Node ids are generated (`s0`, `s1`, ...): Mermaid reads `-` in an id as part of an arrow
        // and words such as `end` as keywords; the real id or name is the quoted label.
        var out = "%% \(header(plan, runID: runID))\n"
        out += "flowchart LR\n"
        var subgraph: String?
        var subgraphs = 0
        for index in 0..<graph.count {
            let group = matrixGroup(plan, index)
            if group != subgraph {
                if subgraph != nil { out += "    end\n" }
                subgraph = group
                if let group {
                    out += "    subgraph m\(subgraphs)[\"\(mermaidString("\(group) (matrix, \(groupSize(plan, group)))"))\"]\n"
                    subgraphs += 1
                }
            }
            var text = mermaidString(label(plan, index, graph: graph))
            if let status = statuses?[index] { text += "<br/>" + status.rawValue }
            out += "    \(subgraph == nil ? "" : "    ")s\(index)[\"\(text)\"]\n"
        }
        if subgraph != nil { out += "    end\n" }
        for index in 0..<graph.count {
            for dependency in graph.dependencies[index] {
                out += "    s\(dependency) --> s\(index)\n"
            }
        }
        if let statuses {
            for status in StepStatus.allCases {
                let members = statuses.indices.filter { statuses[$0] == status }
                guard !members.isEmpty else { continue }
                let (fill, stroke) = colors(status)
                out += "    classDef \(status.rawValue) fill:\(fill),stroke:\(stroke),color:#212121\n"
                out += "    class \(members.map { "s\($0)" }.joined(separator: ",")) \(status.rawValue)\n"
            }
        }
        return out
    }

    /// A Mermaid label's text: letters, digits and plain punctuation as they are, anything else
    /// (quotes, markup, `#`, `;`, backticks, line breaks) as a `#code;` entity.
    static func mermaidString(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            let plain = (scalar.value >= 0x80 && (scalar.properties.isAlphabetic || scalar.properties.numericType != nil))
                || ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                || " _.-,:/()+=@!?*'".unicodeScalars.contains(scalar)
            if plain {
                out.unicodeScalars.append(scalar)
            } else if scalar.value >= 0x20 && scalar.value != 0x7F {
                out += "#\(scalar.value);"
            } else if scalar == "\n" || scalar == "\t" {
                out += " "
            }
        }
        return out
    }
}
