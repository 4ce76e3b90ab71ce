#!/bin/sh
# Creates a fresh git repository for the demo project and prints its path.
#
#   repo=$(plans/demo-project/setup.sh)            # a new folder under $TMPDIR (or /tmp)
#   repo=$(plans/demo-project/setup.sh ~/demo)     # or a folder of your choice (must not exist)
set -eu
if [ $# -ge 1 ]; then
    repo=$1
    [ ! -e "$repo" ] || { echo "setup.sh: $repo already exists" >&2; exit 2; }
    mkdir -p "$repo"
else
    repo=$(mktemp -d "${TMPDIR:-/tmp}/omnibase-demo-XXXXXX")
fi
cd "$repo"
repo=$(pwd -P)
git init -q
git symbolic-ref HEAD refs/heads/main
git config user.name "omnibase demo"
git config user.email "demo@omnibase.invalid"
printf '# Demo app\n\nA tiny shell web app, built by the scripted agents of plans/demo-project.\n' > README.md
mkdir -p src tests
printf '# Sources go here.\n' > src/README
git add -A
git commit -q -m "Initial commit"
printf '/.state/\n' >> .git/info/exclude
echo "$repo"
