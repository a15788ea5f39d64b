#!/usr/bin/env python3
"""Building a fresh database before and after ``flask db squash``.

A project is generated with a history of ``--revisions`` revisions (default
200): every fourth revision creates a table, the others add an index, add a
column, or add a foreign key to the previous table. For each backend (SQLite
always; PostgreSQL when it answers at ``--pg-url``), the time of one whole
``flask db upgrade`` process on an empty database is measured:

* **before**: the project as generated, replaying every revision;
* **after**: a copy of the project after ``flask db squash`` (run once, timed
  too), upgrading with the one squashed revision.

The two run interleaved, ``-r`` times each (default 5), each on a new empty
database; medians are printed, with the ratio before/after. Standard library
only; re-runs itself under the repository's ``.venv`` when the interpreter
that launched it lacks SQLAlchemy.

    python3 benchmarks/bench_squash.py [--revisions 200] [-r 5] [--no-pg] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import clean_env, fmt_ms, machine_line, med, ours_python, ratio, run, run_under_ours, table  # noqa: E402

DEFAULT_PG_URL = os.environ.get("FM_BENCH_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")

APP = """\
import os
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_migrate import Migrate

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["FM_BENCH_DB_URL"]
db = SQLAlchemy(app)
Migrate(app, db)
"""

REVISION = '''\
"""step {n}

Revision ID: {rev}
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''


def rev_id(n: int) -> str:
    return f"r{n:05d}"


def step(n: int) -> tuple[str, str]:
    """The upgrade and downgrade of revision ``n`` (1-based), indented."""
    table = f"t{(n - 1) // 4:04d}"
    kind = (n - 1) % 4
    if kind == 0:
        up = (f'op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True), '
              f'sa.Column("name", sa.String(50), nullable=False, server_default="x"))')
        down = f'op.drop_table("{table}")'
    elif kind == 1:
        up = f'op.create_index("ix_{table}_name", "{table}", ["name"])'
        down = f'op.drop_index("ix_{table}_name", table_name="{table}")'
    elif kind == 2:
        up = (f'with op.batch_alter_table("{table}") as b:\n'
              f'        b.add_column(sa.Column("parent_id", sa.Integer))')
        down = f'with op.batch_alter_table("{table}") as b:\n        b.drop_column("parent_id")'
    else:
        parent = f"t{(n - 1) // 4 - 1:04d}" if n > 4 else table
        up = (f'with op.batch_alter_table("{table}") as b:\n'
              f'        b.create_foreign_key("fk_{table}_parent", "{parent}", ["parent_id"], ["id"])')
        down = (f'with op.batch_alter_table("{table}") as b:\n'
                f'        b.drop_constraint("fk_{table}_parent", type_="foreignkey")')
    return "    " + up, "    " + down


def make_project(root: Path, revisions: int) -> None:
    (root / "app.py").write_text(APP)
    flask = str(ours_python().with_name("flask"))
    run([flask, "--app", "app", "db", "init"], cwd=root, env=clean_env(FM_BENCH_DB_URL="sqlite://"))
    versions = root / "migrations" / "versions"
    for n in range(1, revisions + 1):
        up, down = step(n)
        down_rev = rev_id(n - 1) if n > 1 else None
        (versions / f"{rev_id(n)}_step.py").write_text(
            REVISION.format(n=n, rev=rev_id(n), down=down_rev, upgrade=up, downgrade=down)
        )


class Backend:
    """Fresh empty databases on one backend."""

    def __init__(self, name: str, root: Path, pg_url: str | None = None) -> None:
        self.name = name
        self.root = root
        self.pg_url = pg_url
        self.made: list[str] = []

    def fresh(self) -> str:
        name = f"fm_bench_{uuid.uuid4().hex[:12]}"
        if self.name == "sqlite":
            return f"sqlite:///{self.root / (name + '.db')}"
        import sqlalchemy as sa

        assert self.pg_url is not None
        engine = sa.create_engine(self.pg_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine.dispose()
        self.made.append(name)
        return sa.make_url(self.pg_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if not self.made:
            return
        import sqlalchemy as sa

        assert self.pg_url is not None
        engine = sa.create_engine(self.pg_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for name in self.made:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


def pg_problem(url: str) -> str | None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means not reachable
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        engine.dispose()


def measure(backend: Backend, before: Path, after: Path, rounds: int) -> dict[str, float]:
    flask = str(ours_python().with_name("flask"))

    def upgrade(project: Path) -> float:
        url = backend.fresh()
        sample = run([flask, "--app", "app", "db", "upgrade"], cwd=project, env=clean_env(FM_BENCH_DB_URL=url))
        return sample.wall

    squash_url = backend.fresh()
    squash = run([flask, "--app", "app", "db", "squash"], cwd=after, env=clean_env(FM_BENCH_DB_URL=squash_url))
    upgrade(before)  # warm-up: file caches, bytecode
    upgrade(after)
    times: dict[str, list[float]] = {"before": [], "after": []}
    for round_ in range(rounds):
        order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
        for variant in order:
            times[variant].append(upgrade(before if variant == "before" else after))
    return {"before": med(times["before"]), "after": med(times["after"]), "squash": squash.wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=200)
    parser.add_argument("-r", "--rounds", type=int, default=5)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fm-bench-squash-") as tmp:
        root = Path(tmp)
        before = root / "before"
        before.mkdir()
        make_project(before, args.revisions)
        backends = [Backend("sqlite", root)]
        if not args.no_pg:
            problem = pg_problem(args.pg_url)
            if problem is None:
                backends.append(Backend("postgresql", root, args.pg_url))
            else:
                print(f"PostgreSQL skipped: {problem}", file=sys.stderr)
        rows = []
        for backend in backends:
            # each backend squashes its own copy (the squash runs the history on that backend)
            squashed = root / f"after-{backend.name}"
            shutil.copytree(before, squashed)
            try:
                result = measure(backend, before, squashed, args.rounds)
            finally:
                backend.drop_all()
            rows.append([
                backend.name, str(args.revisions), fmt_ms(result["before"]), fmt_ms(result["after"]),
                ratio(result["before"], result["after"]), fmt_ms(result["squash"]),
            ])
    print(machine_line())
    print(f"Fresh database built by 'flask db upgrade' (whole process, median of {args.rounds}), "
          f"a history of {args.revisions} revisions before and after 'flask db squash'")
    print(table(["db", "revisions", "before ms", "after ms", "before/after", "squash ms"], rows))


if __name__ == "__main__":
    run_under_ours("sqlalchemy")
    main()
