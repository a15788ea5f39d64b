"""How long ``flask db verify`` takes, against a plain ``flask db upgrade`` of the same history.

Generates an app and a history of ``--revisions`` revisions (each a table with
an index) and times, as fresh processes, interleaved, median of ``-r`` runs:

* ``upgrade``: ``flask db upgrade`` of an empty database to head;
* ``verify``: ``flask db verify`` (each revision up, down and up again on
  scratch databases, the schema reflected after each run, then the models
  compared).

on SQLite and, when it answers, PostgreSQL. Prints the medians, the cost per
revision and the ratio. Standard library only; runs under the repository's
``.venv``.

    python3 benchmarks/bench_verify.py [--revisions 100] [-r 3] [--no-pg]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from _common import clean_env, machine_line, ours_python, run

APP = """\
import os
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_migrate import Migrate

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["BENCH_DB"]
db = SQLAlchemy(app)
Migrate(app, db)
for n in range(1, int(os.environ["BENCH_N"]) + 1):
    type(f"T{n}", (db.Model,), {
        "__tablename__": f"t{n:05d}",
        "id": db.Column(db.Integer, primary_key=True),
        "name": db.Column(db.String(50), index=True),
    })
"""

REVISION = '''\
"""table {n}"""
from alembic import op
import sqlalchemy as sa

revision = "r{n:05d}"
down_revision = {down!r}


def upgrade():
    op.create_table("t{n:05d}", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(50)))
    op.create_index("ix_t{n:05d}_name", "t{n:05d}", ["name"])


def downgrade():
    op.drop_index("ix_t{n:05d}_name", "t{n:05d}")
    op.drop_table("t{n:05d}")
'''

PG_URL = os.environ.get("FM_BENCH_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")


def make_project(root: Path, revisions: int) -> None:
    (root / "app.py").write_text(APP)
    flask = str(ours_python().with_name("flask"))
    env = clean_env(FLASK_APP="app.py", BENCH_DB="sqlite://", BENCH_N="0")
    subprocess.run([flask, "db", "init"], cwd=root, env=env, check=True, capture_output=True)
    versions = root / "migrations" / "versions"
    for n in range(1, revisions + 1):
        down = f"r{n - 1:05d}" if n > 1 else None
        (versions / f"r{n:05d}_table.py").write_text(REVISION.format(n=n, down=down))


def admin(url: str, sql: str) -> None:
    code = (
        "import sqlalchemy as sa, sys\n"
        "e = sa.create_engine(sys.argv[1], isolation_level='AUTOCOMMIT')\n"
        "with e.connect() as c: c.exec_driver_sql(sys.argv[2])\n"
    )
    subprocess.run([str(ours_python()), "-c", code, url, sql], check=True)


def pg_available() -> bool:
    code = "import sqlalchemy as sa, sys\nsa.create_engine(sys.argv[1]).connect().close()\n"
    return subprocess.run([str(ours_python()), "-c", code, PG_URL], capture_output=True).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=100)
    parser.add_argument("-r", "--rounds", type=int, default=3)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    flask = str(ours_python().with_name("flask"))
    backends = ["sqlite"] + ([] if args.no_pg or not pg_available() else ["postgresql"])
    print(machine_line())
    print(f"a history of {args.revisions} revisions (a table and an index each), "
          f"median of {args.rounds} interleaved runs")
    with tempfile.TemporaryDirectory(prefix="fm-bench-verify-") as tmp:
        root = Path(tmp)
        make_project(root, args.revisions)
        for backend in backends:
            times: dict[str, list[float]] = {"upgrade": [], "verify": []}
            for round_ in range(args.rounds):
                for variant in (["upgrade", "verify"] if round_ % 2 == 0 else ["verify", "upgrade"]):
                    name = f"fm_bench_{uuid.uuid4().hex[:8]}"
                    if backend == "sqlite":
                        url = f"sqlite:///{root / (name + '.db')}"
                    else:
                        admin(PG_URL, f"CREATE DATABASE {name}")
                        url = PG_URL.rsplit("/", 1)[0] + "/" + name
                    env = clean_env(FLASK_APP="app.py", BENCH_DB=url, BENCH_N=str(args.revisions))
                    try:
                        result = run([flask, "db", variant], cwd=root, env=env, check=False)
                    finally:
                        if backend != "sqlite":
                            admin(PG_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                    if result.returncode != 0:
                        sys.exit(f"{backend} {variant} failed:\n{result.stderr[-2000:]}")
                    times[variant].append(result.wall)
            up = statistics.median(times["upgrade"])
            ver = statistics.median(times["verify"])
            print(f"  {backend:<10} upgrade {up:6.2f} s   verify {ver:6.2f} s   "
                  f"verify/upgrade {ver / up:5.2f}   {ver / args.revisions * 1000:6.1f} ms per revision")


if __name__ == "__main__":
    main()
