/// The DAG of a plan with steps numbered in file order: validated edges, a topological order and
/// scheduling priorities.
public struct PlanGraph: Sendable {
    /// A structural problem of a plan's step list.
    public enum Issue: Sendable, Equatable {
        /// Step `index` reuses the id of step `first`.
        case duplicateID(index: Int, first: Int)
        /// `steps[step].depends_on[position]` names no step.
        case unknownDependency(step: Int, position: Int, name: String)
        /// `steps[step].depends_on[position]` names the step itself.
        case selfDependency(step: Int, position: Int)
        /// `steps[step].depends_on[position]` repeats an earlier entry.
        case repeatedDependency(step: Int, position: Int)
        /// The steps form a cycle; the path starts and ends with the same step.
        case cycle([Int])
    }

    /// Step ids by index.
    public let ids: [String]
    /// Index of every id.
    public let indexByID: [String: Int]
    /// For each step, the steps it depends on.
    public let dependencies: [[Int32]]
    /// For each step, the steps that depend on it.
    public let dependents: [[Int32]]
    /// A topological order (lowest index first among ready steps).
    public let topologicalOrder: [Int]
    /// The expansions of each matrix step, by the id written in the plan (SPEC §11); empty for
    /// a graph built from ids alone.
    public private(set) var matrixGroups: [String: [Int]] = [:]

    /// Builds and validates the graph.
    /// - Throws: ``Issue`` wrapped in a `PlanGraph.ValidationFailure`.
    public init(ids: [String], dependsOn: [[String]]) throws(ValidationFailure) {
        var indexByID: [String: Int] = [:]
        indexByID.reserveCapacity(ids.count)
        for (index, id) in ids.enumerated() {
            if let first = indexByID[id] { throw ValidationFailure(.duplicateID(index: index, first: first)) }
            indexByID[id] = index
        }
        var dependencies = [[Int32]](repeating: [], count: ids.count)
        var dependents = [[Int32]](repeating: [], count: ids.count)
        for (step, names) in dependsOn.enumerated() {
            var seen = Set<Int>()
            for (position, name) in names.enumerated() {
                guard let dep = indexByID[name] else {
                    throw ValidationFailure(.unknownDependency(step: step, position: position, name: name))
                }
                if dep == step { throw ValidationFailure(.selfDependency(step: step, position: position)) }
                if !seen.insert(dep).inserted {
                    throw ValidationFailure(.repeatedDependency(step: step, position: position))
                }
                dependencies[step].append(Int32(dep))
                dependents[dep].append(Int32(step))
            }
        }
        guard let order = GraphAlgorithms.topologicalOrder(count: ids.count, successors: dependents) else {
            let cycle = GraphAlgorithms.findCycle(count: ids.count, successors: dependencies) ?? []
            // findCycle walks dependency edges: in `a -> b`, a depends on b.
            throw ValidationFailure(.cycle(cycle))
        }
        self.ids = ids
        self.indexByID = indexByID
        self.dependencies = dependencies
        self.dependents = dependents
        self.topologicalOrder = order
    }

    /// Builds the graph of a plan's steps.
    public init(steps: [Step]) throws(ValidationFailure) {
        try self.init(ids: steps.map(\.id), dependsOn: steps.map(\.dependsOn))
        for (index, step) in steps.enumerated() {
            if let matrix = step.matrix { matrixGroups[matrix.step, default: []].append(index) }
        }
    }

    /// The number of steps.
    public var count: Int { ids.count }

    /// Whether `step` depends on `candidate`, directly or through other steps (so `candidate`
    /// has ended before `step` starts). A step is not its own dependency.
    public func isTransitiveDependency(_ candidate: Int, of step: Int) -> Bool {
        candidate != step && GraphAlgorithms.reaches(from: step, to: candidate, successors: dependencies)
    }

    /// The longest path from each step to the end of the DAG, the step itself included.
    ///
    /// With no weights every step counts 1 (node counts); with measured durations, the ready step
    /// with the most work behind it starts first (critical-path priority).
    public func remainingPathLengths(weights: [Double]? = nil) -> [Double] {
        var length = [Double](repeating: 0, count: count)
        for node in topologicalOrder.reversed() {
            var tail = 0.0
            for d in dependents[node] { tail = max(tail, length[Int(d)]) }
            length[node] = (weights?[node] ?? 1) + tail
        }
        return length
    }

    /// The steps in the part of the DAG downstream of any of `from` and upstream of any of `to`
    /// (both inclusive); an empty list is an open bound.
    public func selection(from: [Int], to: [Int]) -> [Bool] {
        func reach(_ starts: [Int], _ edges: [[Int32]]) -> [Bool] {
            guard !starts.isEmpty else { return [Bool](repeating: true, count: count) }
            var seen = [Bool](repeating: false, count: count)
            var stack = starts
            for start in starts { seen[start] = true }
            while let node = stack.popLast() {
                for next in edges[node] where !seen[Int(next)] {
                    seen[Int(next)] = true
                    stack.append(Int(next))
                }
            }
            return seen
        }
        return zip(reach(from, dependents), reach(to, dependencies)).map { $0 && $1 }
    }

    /// A validation failure and its issue.
    public struct ValidationFailure: Error, Sendable {
        /// What is wrong.
        public var issue: Issue
        init(_ issue: Issue) { self.issue = issue }
    }

    /// A sentence describing an issue with step ids (no file location).
    public static func describe(_ issue: Issue, ids: [String]) -> String {
        describe(issue, ids: ids, fileIndex: { $0 }, filePosition: { $1 })
    }

    /// A sentence describing an issue, with the `steps[N]` and `depends_on[N]` of the file the
    /// steps came from (a matrix step's expansions share the index of the step written).
    /// - Parameters:
    ///   - fileIndex: a step's index in the file, by its index in `ids`.
    ///   - filePosition: a dependency's position in the file's `depends_on`, by step index and position.
    static func describe(_ issue: Issue, ids: [String], fileIndex: (Int) -> Int,
                         filePosition: (Int, Int) -> Int) -> String {
        switch issue {
        case .duplicateID(let index, let first):
            return "steps[\(fileIndex(index))]: duplicate step id \"\(ids[index])\" (first used by steps[\(fileIndex(first))])"
        case .unknownDependency(let step, let position, let name):
            let hint = Suggestion.closest(to: name, among: ids).map { " (did you mean \"\($0)\"?)" } ?? ""
            return "steps[\(fileIndex(step))].depends_on[\(filePosition(step, position))]: step \"\(ids[step])\" "
                + "depends on unknown step \"\(name)\"\(hint)"
        case .selfDependency(let step, let position):
            return "steps[\(fileIndex(step))].depends_on[\(filePosition(step, position))]: step \"\(ids[step])\" depends on itself"
        case .repeatedDependency(let step, let position):
            return "steps[\(fileIndex(step))].depends_on[\(filePosition(step, position))]: step \"\(ids[step])\" "
                + "lists the same dependency twice"
        case .cycle(let path):
            return "dependency cycle: " + cyclePath(path.map { ids[$0] }) + " (each step depends on the next)"
        }
    }

    /// How many ids of a long cycle stay at each end of the printed path.
    static let cycleEnds = 5

    /// `a -> b -> c -> a`; a cycle longer than twice ``cycleEnds`` is cut in the middle:
    /// `a -> b -> c -> d -> e -> ... (99,990 more) ... -> v -> w -> x -> y -> a`.
    static func cyclePath(_ names: [String]) -> String {
        guard names.count > 2 * cycleEnds + 1 else { return names.joined(separator: " -> ") }
        let hidden = names.count - 2 * cycleEnds
        return names.prefix(cycleEnds).joined(separator: " -> ")
            + " -> ... (\(grouped(hidden)) more) ... -> " + names.suffix(cycleEnds).joined(separator: " -> ")
    }

    /// `99991` as `99,991`.
    private static func grouped(_ number: Int) -> String {
        var digits = Array(String(number))
        var index = digits.count - 3
        while index > 0 {
            digits.insert(",", at: index)
            index -= 3
        }
        return String(digits)
    }
}

extension PlanGraph {
    /// What to add to "there is no step ID": the expansions when ID is a matrix step (its
    /// expansions are the steps named `ID.VALUE...`), else the closest id, if any is close.
    public static func unknownStepHint(_ id: String, ids: [String]) -> String {
        let prefix = id + "."
        let expansions = ids.filter { $0.hasPrefix(prefix) }
        guard expansions.isEmpty else {
            let shown = expansions.prefix(3).map { "\"\($0)\"" }.joined(separator: ", ")
                + (expansions.count > 3 ? " and \(expansions.count - 3) more" : "")
            return " (\"\(id)\" is a matrix step: name one of its expansions, \(shown))"
        }
        return Suggestion.closest(to: id, among: ids).map { " (did you mean \"\($0)\"?)" } ?? ""
    }
}
