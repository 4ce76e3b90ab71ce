// Here rather than in Plan/PlanGraph.swift: the states are the scheduler's, and Plan sits below
// Execution.

extension PlanGraph {
    /// The initial states of `--from` / `--to` (each may be repeated: the union of what is
    /// downstream of the `--from`s, intersected with the union of what is upstream of the
    /// `--to`s): steps outside the selection are excluded; nil when neither is given. A matrix
    /// step's id names all its expansions.
    /// - Throws: ``EngineError`` exit 3 for an unknown id, exit 2 when the selection is empty.
    public func initialStates(from: [String], to: [String]) throws(EngineError) -> [SchedulerStateMachine.InitialState]? {
        guard !from.isEmpty || !to.isEmpty else { return nil }
        func indices(_ names: [String], _ option: String) throws(EngineError) -> [Int] {
            var result: [Int] = []
            for id in names {
                if let index = indexByID[id] {
                    result.append(index)
                } else if let expansions = matrixGroups[id] {
                    result += expansions
                } else {
                    throw EngineError(.unknownReference, "\(option) names unknown step \"\(id)\"\(PlanGraph.unknownStepHint(id, ids: ids))")
                }
            }
            return result
        }
        let selected = selection(from: try indices(from, "--from"), to: try indices(to, "--to"))
        guard selected.contains(true) else {
            let froms = from.map { "--from \($0)" }.joined(separator: " ")
            let tos = to.map { "--to \($0)" }.joined(separator: " ")
            throw EngineError(.usage, "\(froms) and \(tos) select no step: \(to.joined(separator: " or ")) is not downstream of "
                              + from.joined(separator: " or "))
        }
        return selected.map { $0 ? .pending : .excluded }
    }
}
