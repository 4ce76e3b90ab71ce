#!/bin/sh
# A scripted "coding agent" for the frontend role: it needs three iterations for its page.
set -eu
cd "$WORKSPACE"
echo "frontend agent: task $TASK_ID, iteration $ITERATION"
mkdir -p web
greeting=$(sh src/greet.sh World)
case "$ITERATION" in
1)
    printf '<!doctype html>\n<html>\n<head><title>Demo</title></head>\n' > web/index.html
    echo "Started web/index.html (head only)."
    ;;
2)
    printf '<body>\n<h1>%s</h1>\n' "$greeting" >> web/index.html
    echo "Added the greeting; the page is not closed yet."
    ;;
*)
    grep -q '</html>' web/index.html || printf '</body>\n</html>\n' >> web/index.html
    echo "Closed the page."
    ;;
esac
