import Foundation
import Orchestration

// Writing to a closed pipe (`omnibase-agents runs list | head`) must be an error, not a death.
// Steps get the default disposition back through POSIX_SPAWN_SETSIGDEF.
signal(SIGPIPE, SIG_IGN)
let status = await CLI.main(Array(CommandLine.arguments.dropFirst()))
exit(status)
