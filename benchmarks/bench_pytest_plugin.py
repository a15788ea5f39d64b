"""The pytest plugin's saving: a migrated SQLite database copied per test, not replayed.

Generates a project (an app, a history of ``--revisions`` revisions, each a
table with an index, and a test module of ``--tests`` tests that each insert a
row) and runs its suite with pytest, as fresh processes, interleaved:

* ``migrated_app``: the plugin's fixture (history run once per session, the
  database file copied for each test);
* ``replay``: a fixture that does what a suite without the plugin does, a new
  SQLite file per test and ``flask_migrate.upgrade()`` on it;
* ``empty``: the same tests on a fixture that creates nothing (the floor:
  pytest, the app and the tests themselves).

Prints the median wall time of each, the cost per test above the floor, and
the ratio. Standard library only; runs under the repository's ``.venv``.

    python3 benchmarks/bench_pytest_plugin.py [--revisions 50] [--tests 200] [-r 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from _common import clean_env, machine_line, ours_python, run

APP = """\
import os
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_migrate import Migrate

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("BENCH_DB", "sqlite:///unused.db")
db = SQLAlchemy(app)
Migrate(app, db)
"""

REVISION = '''\
"""table {n}

Revision ID: r{n:05d}
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = "r{n:05d}"
down_revision = {down_repr}


def upgrade():
    op.create_table(
        "t{n:05d}",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50)),
    )
    op.create_index("ix_t{n:05d}_name", "t{n:05d}", ["name"])


def downgrade():
    op.drop_index("ix_t{n:05d}_name", "t{n:05d}")
    op.drop_table("t{n:05d}")
'''

CONFTEST = '''\
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARIANT = os.environ["BENCH_VARIANT"]


@pytest.fixture
def app():
    from app import app
    return app


if VARIANT == "replay":
    @pytest.fixture
    def db_app(app, tmp_path):
        import flask_migrate
        from flask_migrate import scratch
        from sqlalchemy import make_url
        url = make_url("sqlite:///" + str(tmp_path / "test.db"))
        database = scratch.ScratchDatabase(None, url, directory=tmp_path)
        with scratch.pointed_at(app, app.extensions["migrate"].db, {None: database}):
            with app.app_context():
                flask_migrate.upgrade(directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))
            yield app
elif VARIANT == "migrated_app":
    @pytest.fixture
    def db_app(migrated_app):
        return migrated_app
else:
    @pytest.fixture
    def db_app(app):
        return app
'''

TESTS = '''\
import os

import pytest
import sqlalchemy as sa

TABLE = "t{last:05d}"


@pytest.mark.parametrize("i", range({tests}))
def test_insert(db_app, i):
    if os.environ["BENCH_VARIANT"] == "empty":
        return
    db = db_app.extensions["migrate"].db
    with db_app.app_context():
        db.session.execute(sa.text(f"INSERT INTO {{TABLE}} (name) VALUES ('x')"))
        assert db.session.execute(sa.text(f"SELECT count(*) FROM {{TABLE}}")).scalar() == 1
        db.session.rollback()
'''


def make_project(root: Path, revisions: int, tests: int) -> None:
    (root / "app.py").write_text(APP)
    migrations = root / "migrations"
    versions = migrations / "versions"
    python = ours_python()
    subprocess.run(
        [str(python.with_name("flask")), "--app", "app", "db", "init"],
        cwd=root, check=True, capture_output=True,
    )
    for n in range(1, revisions + 1):
        down = f"r{n - 1:05d}" if n > 1 else None
        (versions / f"r{n:05d}_table.py").write_text(
            REVISION.format(n=n, down=down or "", down_repr=repr(down))
        )
    (root / "tests").mkdir()
    (root / "tests" / "conftest.py").write_text(CONFTEST)
    (root / "tests" / "test_bench.py").write_text(textwrap.dedent(TESTS.format(last=revisions, tests=tests)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=50)
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("-r", "--rounds", type=int, default=3)
    args = parser.parse_args()
    python = ours_python()
    with tempfile.TemporaryDirectory(prefix="fm-bench-plugin-") as tmp:
        root = Path(tmp)
        make_project(root, args.revisions, args.tests)
        variants = ["empty", "migrated_app", "replay"]
        times: dict[str, list[float]] = {v: [] for v in variants}
        for round_ in range(args.rounds):
            order = variants[round_ % 3:] + variants[: round_ % 3]
            for variant in order:
                result = run(
                    [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                    cwd=root, env=clean_env(BENCH_VARIANT=variant), check=False,
                )
                if result.returncode != 0:
                    sys.exit(f"{variant}: pytest failed:\n{(result.stdout + result.stderr)[-2000:]}")
                times[variant].append(result.wall)
        median = {v: statistics.median(times[v]) for v in variants}
        floor = median["empty"]
        print(machine_line())
        print(f"{args.tests} tests, a history of {args.revisions} revisions, SQLite, "
              f"median of {args.rounds} interleaved runs")
        for variant in variants:
            per_test = (median[variant] - floor) / args.tests * 1000
            print(f"  {variant:<13} {median[variant]:7.2f} s   {per_test:7.2f} ms per test above the floor")
        saving = median["replay"] - median["migrated_app"]
        ratio = (median["migrated_app"] - floor) / max(median["replay"] - floor, 1e-9)
        print(f"  migrated_app saves {saving:.2f} s; its cost above the floor is "
              f"{ratio:.3f}x the replay's")


if __name__ == "__main__":
    main()
