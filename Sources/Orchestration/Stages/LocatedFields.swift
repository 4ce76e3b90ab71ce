import Orchestration

/// One JSON object of a configuration file (the stage registry) being decoded strictly, with
/// every error an ``EngineError`` (`invalidPlan`, exit 2) starting with `FILE:LINE:COLUMN: PATH:`,
/// like plan errors; see ``StrictFields``.
typealias LocatedFields = StrictFields<EngineError>
