import Orchestration
print("omnibase-agents \(Orchestration.version)")
