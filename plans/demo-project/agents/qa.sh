#!/bin/sh
# A scripted "coding agent" for the qa role. Its smoke test needs the staging deployment, which
# an external system announces with 'omnibase-agents ci emit staging.deployed'. Until that event
# arrived the agent exits 42 (blocked): the engine then waits on its CI-event bus, without
# polling, and runs the agent again when the event is published.
#
# So that the demo finishes unattended, the first iteration starts a stand-in for the deployment
# pipeline in the background: it publishes the event two seconds later, from another process,
# exactly as an external CI system would. After a crash, `agents run --resume` tears down what
# the dead engine's agents left running (this stand-in too) and runs the task again with
# RESUMED=1, so the agent asks for the deployment again.
set -eu
cd "$WORKSPACE"
echo "qa agent: task $TASK_ID, iteration $ITERATION${RESUMED:+ (resumed)}"
cli="${OMNIBASE_AGENTS_CLI:-omnibase-agents}"
if [ -z "${CI_EVENT:-}" ]; then
    if [ "$ITERATION" -eq 1 ] || [ "${RESUMED:-}" = 1 ]; then
        (sleep 2; "$cli" ci emit staging.deployed --data '{"url": "http://staging.invalid/"}' --format json) \
            >/dev/null 2>&1 </dev/null &
        echo "Asked for a staging deployment; waiting for staging.deployed."
    fi
    exit 42
fi
echo "Woken by $CI_EVENT: $CI_EVENT_DATA"
mkdir -p tests
cat > tests/smoke.sh <<'TEST'
#!/bin/sh
# Smoke test: the greeting and the page agree.
set -eu
[ "$(sh src/greet.sh World)" = "Hello, World!" ]
grep -q 'Hello, World!' web/index.html
. ./src/config.sh
[ "$GREETING_NAME" = World ]
echo "smoke test passed"
TEST
echo "Wrote tests/smoke.sh."
