// Library users get the support types the engine's API speaks (JSONValue, EngineError, StoreError,
// Timestamp, ...) with `import Orchestration` alone, as before the split into targets.
@_exported import OmnibaseSupport
