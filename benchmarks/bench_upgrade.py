#!/usr/bin/env python3
"""Cost of applying and inspecting long migration histories: ours vs the original.

For each history length N (default 50 and 500) and each package (this
repository's ``flask_migrate`` and Flask-Migrate 4.1.0, each in its own venv),
a project folder is made: an ``app.py`` with ``Migrate(app, db)``, a
``migrations/`` folder created by that package's own ``flask db init`` (so
each uses its own ``env.py`` and ``alembic.ini``), and N identical revision
files, each creating a small table (``--kind table``, the default) or adding a
column to one table (``--kind column``).

Then, as whole processes, interleaved ours/original(/raw) with a rotating order:

* ``flask db upgrade`` from an empty database to head;
* ``flask db history``, ``flask db heads``, ``flask db current`` on the upgraded
  database (``history`` and ``heads`` do not touch the database, so they run on
  SQLite only);
* a raw-SQL baseline for upgrade: one process that runs the same DDL and the same
  ``alembic_version`` INSERT/UPDATEs through SQLAlchemy's ``exec_driver_sql``
  on one connection, in one transaction (what the stock ``env.py`` does), with
  no Alembic.

Backends: SQLite (a file) always; PostgreSQL when it answers at
``--pg-url`` (default ``postgresql+psycopg://root@127.0.0.1:5432/test``), in a
database of its own that is created and dropped by this script.

Reported: median and min wall times, per-revision cost (median / N), the marginal
per-revision cost between the shortest and the longest history (which cancels
the fixed start-up cost), and the ratios ours/original and ours/raw.

Usage: ``python benchmarks/bench_upgrade.py [--sizes 50,500] [-r REPS] [--quick]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    Sample,
    clean_env,
    fmt_ms,
    machine_line,
    med,
    original_python,
    ours_python,
    package_versions,
    ratio,
    run,
    run_under_ours,
    table,
)

DEFAULT_PG_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"

APP = '''\
import os
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_migrate import Migrate

db = SQLAlchemy()
app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["FM_BENCH_DB_URL"]
db.init_app(app)
migrate = Migrate(app, db)
'''

REVISION = '''\
"""{message}

Revision ID: {rev}
Revises: {down}
Create Date: 2024-01-01 00:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = {rev!r}
down_revision = {down_repr}
branch_labels = None
depends_on = None


def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''

RAW = '''\
import json, sys, time
t0 = time.perf_counter()
import sqlalchemy as sa
url, path = sys.argv[1], sys.argv[2]
with open(path) as f:
    statements = json.load(f)
engine = sa.create_engine(url)
with engine.begin() as conn:
    for sql in statements:
        conn.exec_driver_sql(sql)
engine.dispose()
print(json.dumps({"seconds": time.perf_counter() - t0}))
'''


def rev_id(i: int) -> str:
    return hashlib.sha1(f"bench-{i}".encode()).hexdigest()[:12]


def revision_source(i: int, kind: str) -> tuple[str, str]:
    """(file name, source) of revision number i (0-based)."""
    rev = rev_id(i)
    down = rev_id(i - 1) if i else None
    if kind == "table" or i == 0:
        name = f"t{i:05d}" if kind == "table" else "wide"
        upgrade = (
            f"    op.create_table({name!r},\n"
            "        sa.Column('id', sa.Integer(), nullable=False),\n"
            "        sa.Column('name', sa.String(length=50), nullable=True),\n"
            "        sa.Column('created', sa.DateTime(), nullable=True),\n"
            "        sa.PrimaryKeyConstraint('id'),\n"
            "    )"
        )
        downgrade = f"    op.drop_table({name!r})"
        message = f"create table {name}"
    else:
        upgrade = f"    op.add_column('wide', sa.Column('c{i:05d}', sa.Integer(), nullable=True))"
        downgrade = f"    op.drop_column('wide', 'c{i:05d}')"
        message = f"add column c{i:05d}"
    source = REVISION.format(
        message=message,
        rev=rev,
        down=down or "",
        down_repr=repr(down),
        upgrade=upgrade,
        downgrade=downgrade,
    )
    return f"{rev}_{message.replace(' ', '_')}.py", source


def raw_statements(n: int, kind: str, dialect_name: str) -> list[str]:
    """The DDL and version-table statements an upgrade to head runs, as SQL text."""
    import sqlalchemy as sa
    from sqlalchemy.schema import AddConstraint, CreateTable  # noqa: F401

    dialect = sa.create_engine(
        "sqlite://" if dialect_name == "sqlite" else "postgresql+psycopg://"
    ).dialect
    md = sa.MetaData()
    version = sa.Table(
        "alembic_version",
        md,
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
    )
    out = [str(CreateTable(version).compile(dialect=dialect)).strip()]
    for i in range(n):
        if kind == "table" or i == 0:
            name = f"t{i:05d}" if kind == "table" else "wide"
            table_ = sa.Table(
                name,
                md,
                sa.Column("id", sa.Integer(), nullable=False),
                sa.Column("name", sa.String(50), nullable=True),
                sa.Column("created", sa.DateTime(), nullable=True),
                sa.PrimaryKeyConstraint("id"),
            )
            out.append(str(CreateTable(table_).compile(dialect=dialect)).strip())
        else:
            out.append(f"ALTER TABLE wide ADD COLUMN c{i:05d} INTEGER")
        if i == 0:
            out.append(f"INSERT INTO alembic_version (version_num) VALUES ('{rev_id(i)}')")
        else:
            out.append(
                f"UPDATE alembic_version SET version_num='{rev_id(i)}' "
                f"WHERE alembic_version.version_num = '{rev_id(i - 1)}'"
            )
    return out


class Postgres:
    """A database of our own on the PostgreSQL server, reset between runs."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.url = sa.make_url(url)
        self.engine = sa.create_engine(
            self.url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
        )
        self.names: set[str] = set()

    def available(self) -> str | None:
        import sqlalchemy as sa

        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return None
        except Exception as exc:  # noqa: BLE001 - any failure means not reachable
            return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    def fresh(self, name: str) -> str:
        """(Re)create database ``name``; return its URL."""
        self.names.add(name)
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.engine.connect() as conn:
            for name in self.names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="50,500", help="history lengths (default 50,500)")
    parser.add_argument("-r", "--reps", type=int, default=3, help="timed upgrades per case")
    parser.add_argument(
        "--read-reps", type=int, default=5, help="timed history/heads/current per case"
    )
    parser.add_argument("--kind", choices=("table", "column"), default="table")
    parser.add_argument("--pg-url", default=os.environ.get("FM_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument(
        "--db-dir",
        default=None,
        help="folder for the SQLite files (default: the temporary folder; "
        "/dev/shm takes the disk's fsync latency out of the figures)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="sizes 10,100, 1 rep, no warm-up (~30 s)"
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.reps, args.read_reps = "10,100", 1, 1
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})

    pythons = {"ours": ours_python(), "original": original_python()}
    packages = ("ours", "original")
    tmp = Path(tempfile.mkdtemp(prefix="fm-bench-upgrade-"))
    pg: Postgres | None = None
    backends = ["sqlite"]
    pg_note = "PostgreSQL: not asked for (--no-pg)"
    if not args.no_pg:
        pg = Postgres(args.pg_url)
        problem = pg.available()
        if problem is None:
            backends.append("postgresql")
            pg_note = f"PostgreSQL: {pg.url.render_as_string(hide_password=True)}"
        else:
            pg_note = f"PostgreSQL: skipped, not reachable ({problem})"
            pg = None
    tag = uuid.uuid4().hex[:8]
    db_dir = Path(args.db_dir) if args.db_dir else tmp

    # results[(backend, n, what, variant)] -> list of seconds
    results: dict[tuple[str, int, str, str], list[float]] = {}
    cpu: dict[tuple[str, int, str, str], list[float]] = {}
    raw_inproc: dict[tuple[str, int], list[float]] = {}

    def record(key: tuple[str, int, str, str], sample: Sample) -> None:
        results.setdefault(key, []).append(sample.wall)
        cpu.setdefault(key, []).append(sample.cpu)

    try:
        for n in sizes:
            projects: dict[str, Path] = {}
            for pkg in packages:
                project = tmp / f"{pkg}-{n}"
                project.mkdir()
                (project / "app.py").write_text(APP)
                env = clean_env(FLASK_APP="app.py", FM_BENCH_DB_URL="sqlite:///init.db")
                flask = str(pythons[pkg].parent / "flask")
                run([flask, "db", "init"], cwd=project, env=env)
                versions = project / "migrations" / "versions"
                for i in range(n):
                    fname, source = revision_source(i, args.kind)
                    (versions / fname).write_text(source)
                # byte-compile now, so that no timed run pays for it
                run([str(pythons[pkg]), "-m", "compileall", "-q", str(versions)])
                projects[pkg] = project
            for backend in backends:
                sql_file = tmp / f"raw-{backend}-{n}.json"
                sql_file.write_text(json.dumps(raw_statements(n, args.kind, backend)))

                def db_url(variant: str) -> str:
                    if backend == "sqlite":
                        path = db_dir / f"fm-bench-{tag}-{variant}-{n}.db"
                        path.unlink(missing_ok=True)
                        return f"sqlite:///{path}"
                    assert pg is not None
                    return pg.fresh(f"fm_bench_{tag}_{variant}")

                variants = ("ours", "original", "raw")
                urls: dict[str, str] = {}
                # a warm-up round (not with --quick), then the timed ones
                first = 1 if args.quick else 0
                for rep in range(first, args.reps + 1):
                    order = variants[rep % 3:] + variants[: rep % 3]
                    for variant in order:
                        urls[variant] = url = db_url(variant)
                        if variant == "raw":
                            s = run(
                                [str(pythons["ours"]), "-c", RAW, url, str(sql_file)],
                                env=clean_env(),
                            )
                            if rep:
                                raw_inproc.setdefault((backend, n), []).append(
                                    json.loads(s.stdout)["seconds"]
                                )
                        else:
                            env = clean_env(FLASK_APP="app.py", FM_BENCH_DB_URL=url)
                            flask = str(pythons[variant].parent / "flask")
                            s = run([flask, "db", "upgrade"], cwd=projects[variant], env=env)
                        if rep:
                            record((backend, n, "upgrade", variant), s)
                    print(
                        f"\r{backend} N={n}: upgrade {rep}/{args.reps}    ",
                        end="", file=sys.stderr, flush=True,
                    )
                # the databases are now at head: check it, then time the read commands
                head = rev_id(n - 1)
                reads = ["history", "heads", "current"] if backend == "sqlite" else ["current"]
                for pkg in packages:
                    env = clean_env(FLASK_APP="app.py", FM_BENCH_DB_URL=urls[pkg])
                    flask = str(pythons[pkg].parent / "flask")
                    out = run([flask, "db", "current"], cwd=projects[pkg], env=env).stdout
                    if head not in out:
                        raise RuntimeError(f"{pkg} {backend} N={n}: not at head: {out!r}")
                for what in reads:
                    for rep in range(args.read_reps):
                        order = packages if rep % 2 == 0 else packages[::-1]
                        for pkg in order:
                            env = clean_env(FLASK_APP="app.py", FM_BENCH_DB_URL=urls[pkg])
                            flask = str(pythons[pkg].parent / "flask")
                            s = run([flask, "db", what], cwd=projects[pkg], env=env)
                            record((backend, n, what, pkg), s)
                    print(
                        f"\r{backend} N={n}: {what} done         ",
                        end="", file=sys.stderr, flush=True,
                    )
        print(file=sys.stderr)
    finally:
        if pg is not None:
            pg.drop_all()
        for leftover in db_dir.glob(f"fm-bench-{tag}-*"):
            leftover.unlink()
        shutil.rmtree(tmp, ignore_errors=True)

    # -- report ---------------------------------------------------------------
    print(
        f"# bench_upgrade  ({machine_line()}; kind={args.kind}; sizes={sizes}; "
        f"{args.reps} upgrade reps, {args.read_reps} read reps"
        f"{'' if args.quick else ', after a warm-up'})"
    )
    ov = package_versions(pythons["original"])
    print(
        "shared versions: "
        + ", ".join(f"{k} {v}" for k, v in ov.items() if k != "Flask-Migrate")
    )
    print(pg_note)
    print(f"SQLite files in: {'the temporary folder' if db_dir == tmp else db_dir}")
    print("times are medians of whole processes, in ms; wall (CPU = user+sys)")
    print()
    print("## flask db upgrade, empty database -> head")
    print()

    def wc(key: tuple[str, int, str, str]) -> str:
        return f"{fmt_ms(med(results[key]))} ({fmt_ms(med(cpu[key]))})"

    rows = []
    for backend in backends:
        for n in sizes:
            ko, kg, kr = ((backend, n, "upgrade", v) for v in ("ours", "original", "raw"))
            ri = raw_inproc[(backend, n)]
            rows.append(
                [
                    backend,
                    str(n),
                    wc(ko),
                    wc(kg),
                    f"{wc(kr)} [{fmt_ms(med(ri))}]",
                    f"{med(results[ko]) / n * 1000:.2f}",
                    f"{med(results[kg]) / n * 1000:.2f}",
                    ratio(med(results[ko]), med(results[kg])),
                    ratio(med(cpu[ko]), med(cpu[kg])),
                    ratio(med(results[ko]), med(results[kr])),
                ]
            )
    print(
        table(
            [
                "db",
                "N",
                "ours wall (CPU)",
                "original wall (CPU)",
                "raw SQL wall (CPU) [in-process]",
                "ours wall/rev",
                "original wall/rev",
                "ours/original wall",
                "ours/original CPU",
                "ours/raw wall",
            ],
            rows,
        )
    )
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        print()
        print(
            f"## marginal cost per revision, (T(N={hi}) - T(N={lo})) / {hi - lo}, ms "
            "(cancels the fixed start-up)"
        )
        print()
        rows = []
        for backend in backends:

            def marginal(data: dict[tuple[str, int, str, str], list[float]],
                         variant: str, what: str) -> float:
                return (
                    med(data[(backend, hi, what, variant)])
                    - med(data[(backend, lo, what, variant)])
                ) / (hi - lo)

            for what in ("upgrade", "history", "heads", "current"):
                if (backend, hi, what, "ours") not in results:
                    continue
                if what != "upgrade" and hi - lo < 200:
                    continue  # a read's per-revision cost is lost in noise at this size
                mo, mg = marginal(results, "ours", what), marginal(results, "original", what)
                co, cg = marginal(cpu, "ours", what), marginal(cpu, "original", what)
                raw = ""
                if what == "upgrade":
                    rm = marginal(results, "raw", what)
                    ri = (med(raw_inproc[(backend, hi)]) - med(raw_inproc[(backend, lo)])) / (
                        hi - lo
                    )
                    raw = f"{rm * 1000:.3f} [{ri * 1000:.3f}]"
                rows.append(
                    [
                        backend,
                        what,
                        f"{mo * 1000:.2f} ({co * 1000:.2f})",
                        f"{mg * 1000:.2f} ({cg * 1000:.2f})",
                        raw,
                        ratio(mo, mg),
                        ratio(co, cg),
                    ]
                )
        print(
            table(
                [
                    "db",
                    "command",
                    "ours wall (CPU)",
                    "original wall (CPU)",
                    "raw SQL wall [in-process]",
                    "ours/original wall",
                    "ours/original CPU",
                ],
                rows,
            )
        )
    print()
    print("## read commands on the upgraded database")
    print()
    rows = []
    for backend in backends:
        for n in sizes:
            for what in ("history", "heads", "current"):
                ko, kg = ((backend, n, what, v) for v in ("ours", "original"))
                if ko not in results:
                    continue
                rows.append(
                    [
                        backend,
                        str(n),
                        f"flask db {what}",
                        wc(ko),
                        wc(kg),
                        ratio(med(results[ko]), med(results[kg])),
                        ratio(med(cpu[ko]), med(cpu[kg])),
                    ]
                )
    print(
        table(
            ["db", "N", "command", "ours wall (CPU)", "original wall (CPU)",
             "ours/original wall", "ours/original CPU"],
            rows,
        )
    )


if __name__ == "__main__":
    run_under_ours("sqlalchemy", "psycopg")
    main()
