#!/bin/sh
# A scripted "coding agent" for the backend role. Like a real agent CLI it is started once per
# iteration in the task's worktree ($WORKSPACE) with TASK_ID, TASK_PROMPT, ITERATION (and CI_LOG
# after a failed CI run) in its environment, edits files, and reports on stdout.
set -eu
cd "$WORKSPACE"
echo "backend agent: task $TASK_ID, iteration $ITERATION"
mkdir -p src
case "$TASK_ID" in
api-greet)
    if [ "$ITERATION" -eq 1 ]; then
        # First attempt: a draft with a TODO, so the done_when check fails and the loop goes on.
        printf '#!/bin/sh\n# TODO: handle a missing name\necho "Hello, $1!"\n' > src/greet.sh
        echo "Drafted src/greet.sh; the missing-name case is still a TODO."
    else
        printf '#!/bin/sh\n# Prints the greeting for a name (default: World).\necho "Hello, ${1:-World}!"\n' > src/greet.sh
        echo "Finished src/greet.sh."
    fi
    ;;
api-config)
    if [ -z "${CI_LOG:-}" ]; then
        # First attempt: a syntax error that only the CI plan catches (the agent believes it is done).
        printf 'GREETING_NAME=World\nif [ -n "$GREETING_NAME" ]; then\n  export GREETING_NAME\n' > src/config.sh
        echo "Wrote src/config.sh."
    else
        echo "CI failed; its log says:"
        sed -n '1,3p' "$CI_LOG"
        printf 'GREETING_NAME=World\nif [ -n "$GREETING_NAME" ]; then\n  export GREETING_NAME\nfi\n' > src/config.sh
        echo "Fixed the missing 'fi' in src/config.sh."
    fi
    echo "I print <promise>DONE</promise> when I am finished (this sentence does not count)."
    echo "<promise>DONE</promise>"
    ;;
*)
    echo "backend agent: unknown task $TASK_ID" >&2
    exit 1
    ;;
esac
