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

extension PlanGraph {
    /// Each step's dependencies without the ones implied by a longer path (the transitive
    /// reduction): `a -> c` is dropped when `a -> b -> c` exists. Drawing only these keeps a
    /// large DAG's edges readable while it keeps every path.
    ///
    /// One ancestor bitset per step, filled in topological order: a dependency `d` of `v` is
    /// kept when no other dependency of `v` has `d` among its ancestors. Time is about
    /// edges × steps / 64 word operations; memory steps² bits.
    public var transitiveReduction: [[Int32]] {
        let words = (count + 63) / 64
        var ancestors = [UInt64](repeating: 0, count: count * words)
        var reduced = [[Int32]](repeating: [], count: count)
        var implied = [UInt64](repeating: 0, count: words)
        for node in topologicalOrder {
            for word in 0..<words { implied[word] = 0 }
            let base = node * words
            for dependency in dependencies[node] {
                let from = Int(dependency) * words
                for word in 0..<words {
                    implied[word] |= ancestors[from + word]
                    ancestors[base + word] |= ancestors[from + word]
                }
                ancestors[base + Int(dependency) / 64] |= 1 << UInt64(Int(dependency) % 64)
            }
            reduced[node] = dependencies[node].filter { implied[Int($0) / 64] & (1 << UInt64(Int($0) % 64)) == 0 }
        }
        return reduced
    }
}
