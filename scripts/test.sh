#!/usr/bin/env bash
# The whole test suite: type checks, the documentation build and the tests.
# Creates .venv (if needed) and installs the package with its test extras.
# PostgreSQL and MariaDB tests run when the servers answer (URLs in
# FLASK_MIGRATE_TEST_POSTGRESQL_URL / FLASK_MIGRATE_TEST_MYSQL_URL); with
# CI=true they are required. Extra arguments go to pytest.
#
# pytest runs in PYTEST_WORKERS worker processes (pytest-xdist; default 2, 0
# runs in one process): most tests wait on `flask` subprocesses and database
# servers. Tests marked xdist_group("heavy") (races of many processes) run one
# after the other on one worker (--dist loadgroup); see tests/conftest.py.
#
# Two more venvs are built (and rebuilt when their pins change):
# - .venv-original holds the original Flask-Migrate 4.1.0 with the same Flask,
#   Flask-SQLAlchemy, SQLAlchemy and Alembic as .venv, for the two-way drop-in
#   tests (tests/test_two_way.py, told where it is by
#   FLASK_MIGRATE_TEST_ORIGINAL_VENV);
# - .venv-oldest holds this package with the lowest versions of its
#   dependencies that pyproject.toml allows (and the latest drivers), where the
#   tests marked "smoke" run after the full suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
cd "$root"
# quiet_pip VENV ARGS...: pip install into VENV; fails when pip fails
quiet_pip() {
    "$1/bin/python" -m pip install -q --disable-pip-version-check "${@:2}" 2>&1 \
        | { grep -v "is ignored" || true; }
}
# make_venv DIR KEY REQUIREMENTS...: a venv at DIR with REQUIREMENTS
# installed; rebuilt when KEY differs from the one it was built for
make_venv() {
    local dir=$1 key="$2 ${*:3}"
    if [ "$(cat "$dir/built-for" 2>/dev/null)" != "$key" ]; then
        echo "== building $dir"
        rm -rf "$dir"
        python3 -m venv "$dir"
        quiet_pip "$dir" "${@:3}"
        "$dir/bin/python" -m pip check >/dev/null
        echo "$key" >"$dir/built-for"
    fi
}

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
quiet_pip "$venv" -e ".[test]"

original=$root/.venv-original
# shellcheck disable=SC2046 # one word per pin
make_venv "$original" - Flask-Migrate==4.1.0 $("$venv/bin/python" scripts/pins.py same)
export FLASK_MIGRATE_TEST_ORIGINAL_VENV=$original

oldest=$root/.venv-oldest
# keyed on pyproject.toml too: a change of entry points reinstalls the package
# shellcheck disable=SC2046
make_venv "$oldest" "$(sha1sum pyproject.toml | cut -c1-12)" \
    -e ".[postgresql,mysql,async]" $("$venv/bin/python" scripts/pins.py floors) pytest pytest-xdist

echo "== mypy"
"$venv/bin/mypy"
echo "== docs"
"$venv/bin/sphinx-build" -W --keep-going -q -b html docs docs/_build/html
workers=${PYTEST_WORKERS:-2}
echo "== pytest ($workers workers)"
PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest -n "$workers" --dist loadgroup --durations=15 "$@"
echo "== pytest -m smoke, on the oldest supported versions ($oldest)"
PATH="$oldest/bin:$PATH" "$oldest/bin/python" -m pytest -m smoke -q -n "$workers" --dist loadgroup
