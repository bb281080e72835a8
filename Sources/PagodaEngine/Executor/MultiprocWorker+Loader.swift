/// The worker's model loader until `CausalLM` (PagodaModel) is in this build: none.
extension MultiprocWorker {
    static let defaultLoadStage: ((StageSpec) throws -> LoadedStage)? = nil
}
