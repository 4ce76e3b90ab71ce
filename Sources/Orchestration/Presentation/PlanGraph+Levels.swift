import Orchestration

extension PlanGraph {
    /// Each step's level: 0 for a step without dependencies, otherwise one more than its deepest
    /// dependency (the longest path from a root), so every edge goes to a higher level.
    public var levels: [Int] {
        var level = [Int](repeating: 0, count: count)
        for node in topologicalOrder {
            for dependency in dependencies[node] {
                level[node] = max(level[node], level[Int(dependency)] + 1)
            }
        }
        return level
    }
}
