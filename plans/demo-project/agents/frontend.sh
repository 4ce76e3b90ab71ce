#!/bin/sh
# A scripted "coding agent" for the frontend role: it needs three iterations for its page.
set -eu
cd "$WORKSPACE"
echo "frontend agent: task $TASK_ID, iteration $ITERATION"
mkdir -p web
greeting=$(sh src/greet.sh World)
# Like a real agent it looks at the worktree, not at the iteration number: an iteration that was
# lost (the engine killed before it ran, its changes never committed) is made up by the next one.
if [ ! -f web/index.html ]; then
    printf '<!doctype html>\n<html>\n<head><title>Demo</title></head>\n' > web/index.html
    echo "Started web/index.html (head only)."
elif ! grep -q '<h1>' web/index.html; then
    printf '<body>\n<h1>%s</h1>\n' "$greeting" >> web/index.html
    echo "Added the greeting; the page is not closed yet."
else
    grep -q '</html>' web/index.html || printf '</body>\n</html>\n' >> web/index.html
    echo "Closed the page."
fi
