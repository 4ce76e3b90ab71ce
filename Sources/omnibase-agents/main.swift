import Foundation
import Orchestration

// Writing to a closed pipe (`omnibase-agents runs list | head`) must be an error, not a death.
// Steps get the default disposition back: the spawn resets every signal in the child.
signal(SIGPIPE, SIG_IGN)
StandardStreams.occupyClosedDescriptors()
let status = await CLI.main(Array(CommandLine.arguments.dropFirst()))
exit(status)
