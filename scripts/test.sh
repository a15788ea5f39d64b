#!/usr/bin/env bash
# The whole test suite: type checks, the documentation build and the tests.
# Creates .venv (if needed) and installs the package with its test extras.
# PostgreSQL and MariaDB tests run when the servers answer (URLs in
# FLASK_MIGRATE_TEST_POSTGRESQL_URL / FLASK_MIGRATE_TEST_MYSQL_URL); with
# CI=true they are required. Extra arguments go to pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
cd "$root"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 \
    | grep -v "is ignored" || true
echo "== mypy"
"$venv/bin/mypy"
echo "== docs"
"$venv/bin/sphinx-build" -W --keep-going -q -b html docs docs/_build/html
echo "== pytest"
PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest "$@"
