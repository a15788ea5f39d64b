#!/usr/bin/env bash
# The demo: an example app on SQLite, migrated from nothing to head.
# Creates .venv (if needed), installs this package, and runs the commands a
# new user runs: flask db init, migrate, upgrade, current.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
if [ ! -x "$venv/bin/flask" ] || ! "$venv/bin/python" -c "import flask_migrate" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -e "$root"
fi
cd "$root/examples/quickstart"
rm -rf migrations demo.db
export FLASK_APP=app.py
run() { echo "\$ flask $*"; "$venv/bin/flask" "$@"; echo; }
run db init
run db migrate -m "authors and books"
run db upgrade
run db current
run seed
