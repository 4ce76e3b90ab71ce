import Foundation
import Orchestration

extension HTMLReport {
    /// Where the DAG's nodes go: one column per level (longest path from a root), left to right.
    ///
    /// Within a level, steps are ordered by the mean position of their neighbours (barycentre
    /// sweeps down, up and down again, which untangle most edges). Graphs of up to
    /// ``maxBoxedSteps`` steps get labelled boxes, a level wrapping into columns of at most
    /// ``maxColumnBoxes``; larger ones small cells, wrapping into columns of ``maxColumnCells``.
    struct DAGLayout {
        /// Whether nodes are labelled boxes (small graphs) or small cells.
        let boxes: Bool
        /// Each node's top-left corner, by step index.
        let origins: [(x: Double, y: Double)]
        /// Node size.
        let nodeWidth: Double
        let nodeHeight: Double
        /// The distance between the tops of two rows of a level.
        let rowPitch: Double
        /// Each level's left edge and width, for its caption.
        let levelColumns: [(x: Double, width: Double, count: Int)]
        /// The drawing's size.
        let width: Double
        let height: Double

        static let maxColumnCells = 50
        /// Steps up to which nodes are labelled boxes (beyond: cells, hover for the step).
        static let maxBoxedSteps = 400
        /// Boxes stacked in one column before a level wraps into another.
        static let maxColumnBoxes = 40

        init(graph: PlanGraph) {
            let levels = graph.levels
            let levelCount = (levels.max() ?? -1) + 1
            var members = [[Int]](repeating: [], count: levelCount)
            for node in 0..<graph.count { members[levels[node]].append(node) }
            // Barycentre sweeps (down, up, down): order each level by the mean position of the
            // steps it connects to in the levels already placed.
            var position = [Double](repeating: 0, count: graph.count)
            func place(_ level: Int) {
                let count = Double(max(1, members[level].count))
                for (rank, node) in members[level].enumerated() { position[node] = (Double(rank) + 0.5) / count }
            }
            func sweep(_ levelsInOrder: [Int], neighbours: [[Int32]]) {
                for level in levelsInOrder {
                    var key: [Int: Double] = [:]
                    for node in members[level] {
                        let around = neighbours[node]
                        key[node] = around.isEmpty ? position[node]
                            : around.reduce(0.0) { $0 + position[Int($1)] } / Double(around.count)
                    }
                    members[level].sort { (key[$0]!, position[$0], $0) < (key[$1]!, position[$1], $1) }
                    place(level)
                }
            }
            for level in 0..<levelCount { place(level) }
            sweep(Array(1..<max(1, levelCount)), neighbours: graph.dependencies)
            sweep(Array((0..<max(0, levelCount - 1)).reversed()), neighbours: graph.dependents)
            sweep(Array(1..<max(1, levelCount)), neighbours: graph.dependencies)
            let tallest = members.map(\.count).max() ?? 0
            // Labelled boxes up to a real build's size (zstd's CMake build is 141 steps, most of
            // them compiles on one level): a level taller than `maxColumnBoxes` wraps into
            // several columns of boxes, and the page scrolls sideways.
            boxes = graph.count <= Self.maxBoxedSteps
            var origins = [(x: Double, y: Double)](repeating: (0, 0), count: graph.count)
            var columns: [(x: Double, width: Double, count: Int)] = []
            let top = 22.0
            if boxes {
                nodeWidth = 150
                nodeHeight = 24
                let pitch = 32.0
                rowPitch = pitch
                let rows = min(tallest, Self.maxColumnBoxes)
                let boxPitch = nodeWidth + 16
                let levelGap = 50.0
                var x = 12.0
                for nodes in members {
                    let columnsHere = max(1, (nodes.count + rows - 1) / rows)
                    // Whole rows, so the gaps between rows line up across levels (long edges use them).
                    let offset = Double((rows - min(rows, nodes.count)) / 2) * pitch
                    for (rank, node) in nodes.enumerated() {
                        origins[node] = (x + Double(rank / rows) * boxPitch, top + offset + Double(rank % rows) * pitch)
                    }
                    let columnWidth = Double(columnsHere) * boxPitch - (boxPitch - nodeWidth)
                    columns.append((x, columnWidth, nodes.count))
                    x += columnWidth + levelGap
                }
                width = x - levelGap + 12
                height = top + Double(rows) * pitch + 4
            } else {
                nodeWidth = 8
                nodeHeight = 8
                let pitch = 10.0
                rowPitch = pitch
                let gap = 40.0
                let rows = min(tallest, Self.maxColumnCells)
                var x = 12.0
                for nodes in members {
                    let columnsHere = (nodes.count + rows - 1) / rows
                    let offset = Double(rows - min(rows, nodes.count)) / 2 * pitch
                    for (rank, node) in nodes.enumerated() {
                        origins[node] = (x + Double(rank / rows) * pitch, top + offset + Double(rank % rows) * pitch)
                    }
                    let columnWidth = Double(max(1, columnsHere)) * pitch - (pitch - nodeWidth)
                    columns.append((x, columnWidth, nodes.count))
                    x += columnWidth + gap
                }
                width = max(x - gap + 12, 200)
                height = top + Double(rows) * pitch + 4
            }
            self.origins = origins
            levelColumns = columns
        }
    }

    func dagSection() -> String {
        var out = "<section id=\"dag\">\n<h2>DAG</h2>\n"
        guard let graph, graph.count == report.steps.count, graph.count > 0 else {
            return out + "<p class=\"hint\">The plan's DAG is not available for this run.</p>\n</section>\n"
        }
        let layout = DAGLayout(graph: graph)
        let levels = graph.levels
        let reduced = graph.transitiveReduction
        let allEdges = graph.dependencies.reduce(0) { $0 + $1.count }
        let edgeCount = reduced.reduce(0) { $0 + $1.count }
        let drawn = min(edgeCount, limits.maxEdges)
        out += "<p class=\"hint\">Levels left to right (a step sits one level after its deepest dependency); "
            + "edges go from a dependency to its dependent; colours are the steps' final status"
        out += layout.boxes ? "" : "; \(counted(graph.count, "step")) as cells (hover for the step, click for its row)"
        if allEdges > edgeCount {
            out += "; edges implied by a longer path are left out (\(counted(allEdges - edgeCount, "edge")), "
                + "like a→c beside a→b→c: every dependency is still a path of arrows)"
        }
        out += drawn < edgeCount ? "; \(drawn) of \(edgeCount) edges drawn" : ""
        out += ".</p>\n<div class=\"scroll\">\n"
        out += "<svg width=\"\(HTML.number(layout.width))\" height=\"\(HTML.number(layout.height))\" "
            + "viewBox=\"0 0 \(HTML.number(layout.width)) \(HTML.number(layout.height))\" role=\"img\" aria-label=\"DAG by levels\">\n"
        if layout.boxes {
            out += "<defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"7\" markerHeight=\"7\" "
                + "orient=\"auto\"><path d=\"M0,0L8,4L0,8z\" fill=\"#8c959f\"/></marker></defs>\n"
        }
        for (level, column) in layout.levelColumns.enumerated() {
            let caption = layout.boxes ? "level \(level)" : "\(level)"
            out += "<text class=\"level\" x=\"\(HTML.number(column.x))\" y=\"13\">\(caption)<title>level \(level): "
                + "\(counted(column.count, "step"))</title></text>"
        }
        out += "\n"
        // Edges under the nodes.
        var path = ""
        var remaining = drawn
        edges: for node in 0..<graph.count {
            for dependency in reduced[node] {
                guard remaining > 0 else { break edges }
                remaining -= 1
                let from = layout.origins[Int(dependency)]
                let to = layout.origins[node]
                let x1 = from.x + layout.nodeWidth, y1 = from.y + layout.nodeHeight / 2
                let x2 = to.x, y2 = to.y + layout.nodeHeight / 2
                if layout.boxes, levels[node] - levels[Int(dependency)] > 1 {
                    // An edge that skips levels runs along the gap between two rows, so it passes
                    // no box of the levels it skips.
                    let gap = (layout.rowPitch - layout.nodeHeight) / 2
                    let gy = y2 >= y1 ? from.y + layout.nodeHeight + gap : from.y - gap
                    out += "<path class=\"edges\" marker-end=\"url(#arrow)\" d=\"M\(HTML.number(x1)),\(HTML.number(y1))"
                        + "C\(HTML.number(x1 + 18)),\(HTML.number(y1)) \(HTML.number(x1 + 18)),\(HTML.number(gy)) "
                        + "\(HTML.number(x1 + 36)),\(HTML.number(gy))L\(HTML.number(x2 - 36)),\(HTML.number(gy))"
                        + "C\(HTML.number(x2 - 18)),\(HTML.number(gy)) \(HTML.number(x2 - 18)),\(HTML.number(y2)) "
                        + "\(HTML.number(x2 - 1)),\(HTML.number(y2))\"/>\n"
                } else if layout.boxes {
                    let bend = max(20, (x2 - x1) / 2)
                    out += "<path class=\"edges\" marker-end=\"url(#arrow)\" d=\"M\(HTML.number(x1)),\(HTML.number(y1))"
                        + "C\(HTML.number(x1 + bend)),\(HTML.number(y1)) \(HTML.number(x2 - bend)),\(HTML.number(y2)) "
                        + "\(HTML.number(x2 - 1)),\(HTML.number(y2))\"/>\n"
                } else {
                    path += "M\(HTML.number(x1)),\(HTML.number(y1))L\(HTML.number(x2)),\(HTML.number(y2))"
                }
            }
        }
        if !path.isEmpty {
            let opacity = drawn > 1000 ? "0.25" : "0.5"
            out += "<path class=\"edges\" stroke-width=\"0.6\" stroke-opacity=\"\(opacity)\" d=\"\(path)\"/>\n"
        }
        for (index, step) in report.steps.enumerated() {
            let origin = layout.origins[index]
            let title = HTML.escape(nodeTitle(step))
            out += "<a href=\"#\(HTML.escape(Self.anchor(step.id)))\"><rect class=\"node \(step.status.rawValue)\" "
                + "x=\"\(HTML.number(origin.x))\" y=\"\(HTML.number(origin.y))\" width=\"\(HTML.number(layout.nodeWidth))\" "
                + "height=\"\(HTML.number(layout.nodeHeight))\" rx=\"\(layout.boxes ? 5 : 1.5)\"><title>\(title)</title></rect>"
            if layout.boxes {
                out += "<text class=\"label\" x=\"\(HTML.number(origin.x + 7))\" y=\"\(HTML.number(origin.y + 16))\">"
                    + "\(HTML.escape(Self.middleTruncated(step.id, to: 21)))<title>\(title)</title></text>"
            }
            out += "</a>\n"
        }
        out += "</svg>\n</div>\n</section>\n"
        return out
    }

    /// A label that keeps both ends of a long id (`CMakeFiles/z…/zstd.c.o`): build ids often
    /// share long prefixes, so cutting the end would make them all look alike.
    static func middleTruncated(_ text: String, to width: Int) -> String {
        guard text.count > width, width >= 5 else { return HTML.truncate(text, to: width) }
        let head = (width - 1) / 3
        return String(text.prefix(head)) + "…" + String(text.suffix(width - 1 - head))
    }

    /// `build (Build it): failed after 3 attempts`.
    private func nodeTitle(_ step: RunReport.StepReport) -> String {
        var text = step.id
        if let name = names[step.id] { text += " (\(name))" }
        text += ": \(step.status.rawValue)"
        if step.attempts > 1 { text += " after \(step.attempts) attempts" }
        if let duration = step.duration { text += ", \(formatDuration(duration))" }
        return text
    }
}
