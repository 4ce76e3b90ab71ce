/// Why a step's output reference cannot be satisfied by its plan (checked at load).
public enum OutputReferenceIssue: Sendable, Hashable {
    /// No step has the referenced id.
    case unknownStep
    /// The step refers to its own output.
    case ownOutput
    /// The referenced step is not among the step's dependencies, direct or transitive.
    case notADependency

    /// The sentence for step `stepID` and its reference.
    public func describe(stepID: String, reference: OutputTemplate.Reference, ids: [String]) -> String {
        switch self {
        case .unknownStep:
            let hint = PlanGraph.unknownStepHint(reference.step, ids: ids)
            return "step \"\(stepID)\" uses \(reference.text), but there is no step \"\(reference.step)\"\(hint)"
        case .ownOutput:
            return "step \"\(stepID)\" uses its own output \(reference.text); a step can only use the outputs of the steps it depends on"
        case .notADependency:
            return "step \"\(stepID)\" uses \(reference.text), but \"\(reference.step)\" is not among its dependencies "
                + "(add it to depends_on, directly or through a step it depends on)"
        }
    }
}

extension PlanGraph {
    /// The first reference of `references` that the DAG does not satisfy: each must name a step
    /// the referring step depends on, directly or transitively.
    ///
    /// Each referenced step's descendants are searched once, only as far as the latest
    /// referring step in topological order, so a plan of 100,000 steps that all use the first
    /// one's output costs one walk of the DAG.
    /// - Parameter references: (referring step index, reference), in the order to report.
    /// - Returns: the position in `references` of the first problem, and what it is.
    public func firstOutputReferenceIssue(_ references: [(step: Int, reference: OutputTemplate.Reference)])
        -> (position: Int, issue: OutputReferenceIssue)? {
        guard !references.isEmpty else { return nil }
        let descendants = boundedDescendants(references.compactMap { step, reference in
            indexByID[reference.step].map { (step: step, producer: $0) }
        })
        for (position, (step, reference)) in references.enumerated() {
            guard let producer = indexByID[reference.step] else { return (position, .unknownStep) }
            if producer == step { return (position, .ownOutput) }
            if !(descendants[producer]?.contains(step) ?? false) { return (position, .notADependency) }
        }
        return nil
    }

    /// For each producer of `pairs`, its descendants up to its latest consumer in topological
    /// order: `producer` is a transitive dependency of `step` exactly when
    /// `result[producer]` contains `step` (for every pair given). One walk per producer, so a
    /// plan of 100,000 steps that all read the first one's outputs or status costs one walk of
    /// the DAG, not one per reference.
    public func boundedDescendants(_ pairs: [(step: Int, producer: Int)]) -> [Int: Set<Int>] {
        guard !pairs.isEmpty else { return [:] }
        var rank = [Int](repeating: 0, count: count)
        for (position, node) in topologicalOrder.enumerated() { rank[node] = position }
        // The farthest (in topological order) step that uses each producer.
        var horizon: [Int: Int] = [:]
        for (step, producer) in pairs where producer != step {
            horizon[producer] = max(horizon[producer] ?? -1, rank[step])
        }
        var descendants: [Int: Set<Int>] = [:]
        for (producer, limit) in horizon {
            var seen = Set<Int>()
            var stack = [producer]
            while let node = stack.popLast() {
                for next in dependents[node].map(Int.init) where rank[next] <= limit && seen.insert(next).inserted {
                    stack.append(next)
                }
            }
            descendants[producer] = seen
        }
        return descendants
    }
}
