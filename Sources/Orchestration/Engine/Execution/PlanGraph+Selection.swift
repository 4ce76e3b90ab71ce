// Here rather than in Plan/PlanGraph.swift: the states are the scheduler's, and Plan sits below
// Execution.

extension PlanGraph {
    /// The initial states of `--from` / `--to`: steps outside the selection are excluded.
    /// - Throws: ``EngineError`` exit 3 for an unknown id, exit 2 when the selection is empty.
    public func initialStates(from: String?, to: String?) throws(EngineError) -> [SchedulerStateMachine.InitialState]? {
        guard from != nil || to != nil else { return nil }
        func index(_ id: String?, _ option: String) throws(EngineError) -> Int? {
            guard let id else { return nil }
            guard let index = indexByID[id] else {
                let hint = Suggestion.closest(to: id, among: ids).map { " (did you mean \"\($0)\"?)" } ?? ""
                throw EngineError(.unknownReference, "\(option) names unknown step \"\(id)\"\(hint)")
            }
            return index
        }
        let selected = selection(from: try index(from, "--from"), to: try index(to, "--to"))
        guard selected.contains(true) else {
            throw EngineError(.usage, "--from \(from ?? "") and --to \(to ?? "") select no step: \(to ?? "") is not downstream of \(from ?? "")")
        }
        return selected.map { $0 ? .pending : .excluded }
    }
}
