/// Graph algorithms over nodes numbered `0..<count`, iterative (an explicit stack, no recursion),
/// so a 100,000-step chain cannot overflow the thread's stack.
enum GraphAlgorithms {
    /// A topological order (Kahn's algorithm; among ready nodes the lowest index comes first, so
    /// the order is stable), or nil if the graph has a cycle.
    /// - Parameters:
    ///   - count: the number of nodes.
    ///   - successors: the nodes each node points to (edges `u -> v` mean "u before v").
    static func topologicalOrder(count: Int, successors: [[Int32]]) -> [Int]? {
        var indegree = [Int32](repeating: 0, count: count)
        for edges in successors { for v in edges { indegree[Int(v)] += 1 } }
        var ready = Heap<Int>(areInIncreasingOrder: <)
        for node in 0..<count where indegree[node] == 0 { ready.insert(node) }
        var order: [Int] = []
        order.reserveCapacity(count)
        while let node = ready.popFirst() {
            order.append(node)
            for v in successors[node] {
                let target = Int(v)
                indegree[target] -= 1
                if indegree[target] == 0 { ready.insert(target) }
            }
        }
        return order.count == count ? order : nil
    }

    /// Whether `target` can be reached from `start` by following edges (depth-first, explicit
    /// stack; each node visited once). A node reaches itself.
    static func reaches(from start: Int, to target: Int, successors: [[Int32]]) -> Bool {
        if start == target { return true }
        var seen = Set<Int>([start])
        var stack = [start]
        while let node = stack.popLast() {
            for next in successors[node] {
                let v = Int(next)
                if v == target { return true }
                if seen.insert(v).inserted { stack.append(v) }
            }
        }
        return false
    }

    /// One cycle of the graph as a path that starts and ends at the same node
    /// (`[a, b, c, a]`), or nil if the graph is acyclic.
    ///
    /// Depth-first search with an explicit stack; a back edge to a node on the current path
    /// closes the cycle.
    static func findCycle(count: Int, successors: [[Int32]]) -> [Int]? {
        enum Mark: UInt8 { case unvisited, onPath, done }
        var mark = [Mark](repeating: .unvisited, count: count)
        var stack: [(node: Int, next: Int)] = []
        for root in 0..<count where mark[root] == .unvisited {
            stack.append((root, 0))
            mark[root] = .onPath
            while let top = stack.last {
                let edges = successors[top.node]
                if top.next < edges.count {
                    stack[stack.count - 1].next += 1
                    let v = Int(edges[top.next])
                    switch mark[v] {
                    case .unvisited:
                        mark[v] = .onPath
                        stack.append((v, 0))
                    case .onPath:
                        // `v` is marked onPath, so it is on the stack.
                        let start = stack.firstIndex { $0.node == v } ?? 0
                        return stack[start...].map(\.node) + [v]
                    case .done:
                        continue
                    }
                } else {
                    mark[top.node] = .done
                    stack.removeLast()
                }
            }
        }
        return nil
    }
}

/// A binary heap ordered by a comparison: `popFirst` returns the element that sorts first.
struct Heap<Element: Sendable>: Sendable {
    private var storage: [Element] = []
    private let areInIncreasingOrder: @Sendable (Element, Element) -> Bool

    init(areInIncreasingOrder: @escaping @Sendable (Element, Element) -> Bool) {
        self.areInIncreasingOrder = areInIncreasingOrder
    }

    var isEmpty: Bool { storage.isEmpty }
    var count: Int { storage.count }

    mutating func reserveCapacity(_ n: Int) { storage.reserveCapacity(n) }

    mutating func insert(_ element: Element) {
        storage.append(element)
        var child = storage.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard areInIncreasingOrder(storage[child], storage[parent]) else { break }
            storage.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popFirst() -> Element? {
        guard !storage.isEmpty else { return nil }
        storage.swapAt(0, storage.count - 1)
        let first = storage.removeLast()
        var parent = 0
        let n = storage.count
        while true {
            let left = 2 * parent + 1
            guard left < n else { break }
            var best = left
            let right = left + 1
            if right < n && areInIncreasingOrder(storage[right], storage[left]) { best = right }
            guard areInIncreasingOrder(storage[best], storage[parent]) else { break }
            storage.swapAt(best, parent)
            parent = best
        }
        return first
    }

    /// Removes every element (used when a run is aborted).
    mutating func removeAll() { storage.removeAll() }

    /// The elements in no particular order.
    var unordered: [Element] { storage }
}
