#!/usr/bin/env python3
"""The benchmark suite of issue 11: every performance target, ours vs the original.

One command generates the histories and schemas, makes sure the original
Flask-Migrate 4.1.0 is installed in a venv of its own (``_common.original_python``),
runs each scenario for this repository's package and for the original as whole,
fresh ``flask`` processes, interleaved in a rotating order, plus the raw-SQL
limit, on SQLite, PostgreSQL and MariaDB, prints min/median/max and the
ratios, and writes a Markdown report with a plot (SVG) and the raw numbers
(JSON).

Scenarios (numbered as the targets of issue 11):

1. SQLite, N revisions (each a table + an index), empty -> head, net of the
   app's own start-up (a no-op ``flask hello`` of the same app); ours by
   default and with ``transaction_per_migration=True``; original; raw SQL.
2. The same on PostgreSQL and MariaDB (our lock and journal on).
3. No-op commands at head (``upgrade``, ``current``, ``heads``, ``status``)
   with and without ``migrations/versions/__pycache__``, above start-up.
4. ``flask db check`` / ``flask db migrate`` with T tables at head (SQLite,
   PostgreSQL).
5. SQLite batch mode: (a) a batch operation at the end of a long foreign-key
   chain, upgrade and downgrade; (b) downgrading to base a history in which a
   third of the revisions alter, in batch mode, a table with a foreign key.
6. Cost per revision over the history sizes (least-squares slope per size
   range) and peak RSS of the N-revision upgrade.
7. ``import flask_migrate`` over ``import flask, flask_sqlalchemy``.

Usage: ``python3 benchmarks/run.py [--quick] [--only 1,3] [--out DIR] ...``
(any Python 3 launches it: it re-runs itself under our venv's interpreter).
"""

from __future__ import annotations

import argparse
import compileall
import functools
import json
import math
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
import typing as t
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    Sample,
    clean_env,
    original_python,
    ours_python,
    package_versions,
    run,
    run_under_ours,
    table,
)
from bench_upgrade import REVISION, rev_id  # noqa: E402

PACKAGES = ("ours", "original")
SCENARIOS = ("1", "2", "3", "4", "5", "6", "7")
DEFAULT_PG_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"
DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
#: depth of the foreign-key chains in scenario 5b: bounded, so that the
#: original's recursive reflection of referenced tables stays below Python's limit
BATCH_FK_DEPTH = 8

APP = '''\
"""A benchmark app: its models mirror the generated history (FM_BENCH_MODELS tables)."""
import os

import click
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_migrate import Migrate

db = SQLAlchemy()
app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["FM_BENCH_DB_URL"]
db.init_app(app)
options = {"transaction_per_migration": True} if os.environ.get("FM_BENCH_TPM") else {}
migrate = Migrate(app, db, **options)

for i in range(int(os.environ.get("FM_BENCH_MODELS", "0"))):
    sa.Table(
        f"t{i:05d}",
        db.metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50)),
        sa.Column("created", sa.DateTime),
        sa.Index(f"ix_t{i:05d}_name", "name"),
    )
if os.environ.get("FM_BENCH_EXTRA_TABLE"):
    sa.Table(
        "extra",
        db.metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("label", sa.String(20)),
    )


@app.cli.command()
def hello() -> None:
    """A no-op command: the app's own start-up."""
    click.echo("hello")
'''

RAW = '''\
import json, sys, time
t0 = time.perf_counter()
import sqlalchemy as sa
url, path, mode = sys.argv[1:4]
with open(path) as f:
    groups = json.load(f)  # the statements of each revision
engine = sa.create_engine(url)
if mode == "one":
    groups = [[sql for group in groups for sql in group]]
with engine.connect() as conn:
    for group in groups:
        if engine.dialect.name == "sqlite":
            # NOTE: pysqlite would autocommit DDL outside a transaction it began
            conn.exec_driver_sql("BEGIN")
        for sql in group:
            conn.exec_driver_sql(sql)
        conn.commit()
engine.dispose()
print(json.dumps({"seconds": time.perf_counter() - t0}))
'''

IMPORT_PROBE = '''\
import json, sys, time
t0 = time.perf_counter()
import flask, flask_sqlalchemy
t1 = time.perf_counter()
import flask_migrate
t2 = time.perf_counter()
print(json.dumps({"base": t1 - t0, "increment": t2 - t1, "alembic": "alembic" in sys.modules}))
'''


# -- generated histories ------------------------------------------------------


def _revision(i: int, message: str, upgrade: list[str], downgrade: list[str]) -> tuple[str, str]:
    rev, down = rev_id(i), (rev_id(i - 1) if i else None)
    source = REVISION.format(
        message=message,
        rev=rev,
        down=down or "",
        down_repr=repr(down),
        upgrade="\n".join(upgrade),
        downgrade="\n".join(downgrade),
    )
    return f"{rev}_{message.replace(' ', '_')}.py", source


def _create_table(name: str, fk: str | None = None) -> list[str]:
    parent = (
        [f"        sa.Column('parent_id', sa.Integer(), sa.ForeignKey('{fk}.id'), nullable=True),"]
        if fk
        else []
    )
    return [
        f"    op.create_table({name!r},",
        "        sa.Column('id', sa.Integer(), nullable=False),",
        "        sa.Column('name', sa.String(length=50), nullable=True),",
        "        sa.Column('created', sa.DateTime(), nullable=True),",
        *parent,
        "        sa.PrimaryKeyConstraint('id'),",
        "    )",
    ]


def tables_history(n: int) -> list[tuple[str, str]]:
    """Revision i creates table ``t{i:05d}`` and an index on its ``name``."""
    files = []
    for i in range(n):
        name = f"t{i:05d}"
        upgrade = _create_table(name) + [
            f"    op.create_index('ix_{name}_name', {name!r}, ['name'], unique=False)"
        ]
        downgrade = [f"    op.drop_index('ix_{name}_name', table_name={name!r})",
                     f"    op.drop_table({name!r})"]
        files.append(_revision(i, f"create table {name}", upgrade, downgrade))
    return files


def chain_history(length: int) -> list[tuple[str, str]]:
    """Revision 0: ``length`` tables, table k referencing table k-1; revision 1:
    a batch ``add_column`` on the last one."""
    names = [f"c{k:04d}" for k in range(length)]
    upgrade: list[str] = []
    for k, name in enumerate(names):
        upgrade += _create_table(name, names[k - 1] if k else None)
    downgrade = [f"    op.drop_table({name!r})" for name in reversed(names)]
    last = names[-1]
    return [
        _revision(0, f"chain of {length} tables", upgrade, downgrade),
        _revision(
            1,
            f"batch add column to {last}",
            [f"    with op.batch_alter_table({last!r}) as batch_op:",
             "        batch_op.add_column(sa.Column('extra', sa.Integer(), nullable=True))"],
            [f"    with op.batch_alter_table({last!r}) as batch_op:",
             "        batch_op.drop_column('extra')"],
        ),
    ]


def batch_history(n: int) -> list[tuple[str, str]]:
    """Two revisions in three create a table (referencing the one created before
    it, in chains of at most BATCH_FK_DEPTH tables); every third adds a column,
    in batch mode, to the latest table that has a foreign key."""
    files = []
    created: list[str] = []
    for i in range(n):
        if i % 3 == 2:
            c = len(created) - 1
            target = created[c if c % BATCH_FK_DEPTH else c - 1]
            column = f"x{i:05d}"
            files.append(_revision(
                i,
                f"batch add {column} to {target}",
                [f"    with op.batch_alter_table({target!r}) as batch_op:",
                 f"        batch_op.add_column(sa.Column({column!r}, sa.Integer(), nullable=True))"],
                [f"    with op.batch_alter_table({target!r}) as batch_op:",
                 f"        batch_op.drop_column({column!r})"],
            ))
        else:
            c = len(created)
            name = f"b{i:05d}"
            fk = created[-1] if c % BATCH_FK_DEPTH else None
            created.append(name)
            files.append(_revision(
                i, f"create table {name}", _create_table(name, fk), [f"    op.drop_table({name!r})"]
            ))
    return files


def raw_statements(n: int, backend: str) -> list[list[str]]:
    """Per revision of ``tables_history(n)``, the DDL and version-table SQL it runs."""
    import sqlalchemy as sa
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = sa.create_engine(
        {"sqlite": "sqlite://", "postgresql": "postgresql+psycopg://",
         "mariadb": "mariadb+pymysql://"}[backend]
    ).dialect
    md = sa.MetaData()
    version = sa.Table(
        "alembic_version",
        md,
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
    )
    groups = []
    for i in range(n):
        name = f"t{i:05d}"
        tbl = sa.Table(
            name,
            md,
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("name", sa.String(50), nullable=True),
            sa.Column("created", sa.DateTime(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        index = sa.Index(f"ix_{name}_name", tbl.c.name)
        group = [str(CreateTable(version).compile(dialect=dialect)).strip()] if i == 0 else []
        group += [str(CreateTable(tbl).compile(dialect=dialect)).strip(),
                  str(CreateIndex(index).compile(dialect=dialect)).strip()]
        if i == 0:
            group.append(f"INSERT INTO alembic_version (version_num) VALUES ('{rev_id(i)}')")
        else:
            group.append(f"UPDATE alembic_version SET version_num='{rev_id(i)}' "
                         f"WHERE alembic_version.version_num = '{rev_id(i - 1)}'")
        groups.append(group)
    return groups


# -- databases ----------------------------------------------------------------


class Databases:
    """Uniquely named databases on one backend, all dropped by :meth:`drop_all`.

    SQLite databases are files in ``folder``; server databases are created on
    the server at ``admin_url`` as ``fm_bench_<tag>_<label>``.
    """

    def __init__(self, backend: str, admin_url: str, tag: str, folder: Path) -> None:
        self.backend, self.admin_url, self.tag, self.folder = backend, admin_url, tag, folder
        self.created: set[str] = set()

    def name(self, label: str) -> str:
        return f"fm_bench_{self.tag}_{label}".replace("-", "_")

    def _admin(self) -> t.Any:
        import sqlalchemy as sa

        return sa.create_engine(
            self.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool,
            connect_args={"connect_timeout": 5},
        )

    def problem(self) -> str | None:
        """None when the server answers, else why not."""
        if self.backend == "sqlite":
            return None
        try:
            engine = self._admin()
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            engine.dispose()
            return None
        except Exception as exc:  # noqa: BLE001 - any failure means not reachable
            return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    def server_version(self) -> str:
        if self.backend == "sqlite":
            return f"SQLite {sqlite3.sqlite_version}"
        engine = self._admin()
        with engine.connect() as conn:
            version = str(conn.exec_driver_sql("SELECT version()").scalar())
        engine.dispose()
        return version if self.backend == "postgresql" else f"MariaDB {version}"

    def url(self, label: str) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.folder / (self.name(label) + '.db')}"
        import sqlalchemy as sa

        url = sa.make_url(self.admin_url).set(database=self.name(label))
        return url.render_as_string(hide_password=False)

    def fresh(self, label: str) -> str:
        """(Re)create the empty database ``label``; return its URL."""
        name = self.name(label)
        if self.backend == "sqlite":
            (self.folder / f"{name}.db").unlink(missing_ok=True)
        elif self.backend == "postgresql" and name in self.created:
            # NOTE: CREATE DATABASE costs ~1 s on PostgreSQL (a checkpoint); a
            # fresh schema is as empty and much cheaper
            import sqlalchemy as sa

            engine = sa.create_engine(self.url(label), isolation_level="AUTOCOMMIT",
                                      poolclass=sa.pool.NullPool)
            with engine.connect() as conn:
                conn.exec_driver_sql("DROP SCHEMA public CASCADE")
                conn.exec_driver_sql("CREATE SCHEMA public")
            engine.dispose()
        else:
            self.created.add(name)
            engine = self._admin()
            with engine.connect() as conn:
                conn.exec_driver_sql(self._drop_sql(name))
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
            engine.dispose()
        return self.url(label)

    def copy_file(self, source: str, label: str) -> str:
        """SQLite: the database ``label`` becomes a copy of ``source``."""
        assert self.backend == "sqlite"
        shutil.copyfile(self.folder / f"{self.name(source)}.db",
                        self.folder / f"{self.name(label)}.db")
        return self.url(label)

    def _drop_sql(self, name: str) -> str:
        force = " WITH (FORCE)" if self.backend == "postgresql" else ""
        return f"DROP DATABASE IF EXISTS {name}{force}"

    def drop_all(self) -> None:
        if self.backend == "sqlite":
            for leftover in self.folder.glob(f"fm_bench_{self.tag}_*"):
                leftover.unlink()
            return
        if not self.created:
            return
        engine = self._admin()
        with engine.connect() as conn:
            for name in sorted(self.created):
                conn.exec_driver_sql(self._drop_sql(name))
        engine.dispose()


# -- projects and measured cases ---------------------------------------------


class Workspace:
    """Project folders (app + migrations of each package) in a temporary folder."""

    def __init__(self, root: Path, pythons: dict[str, Path]) -> None:
        self.root, self.pythons = root, pythons
        self.projects: dict[tuple[str, str], Path] = {}

    def flask(self, pkg: str) -> str:
        return str(self.pythons[pkg].parent / "flask")

    def _initialised(self, pkg: str) -> Path:
        """A project whose ``migrations/`` its own package's ``flask db init`` made."""
        project = self.root / f"init-{pkg}"
        if not project.exists():
            project.mkdir()
            (project / "app.py").write_text(APP)
            run([self.flask(pkg), "db", "init"], cwd=project,
                env=clean_env(FLASK_APP="app.py", FM_BENCH_DB_URL="sqlite:///init.db"))
        return project

    def project(self, pkg: str, history: str, files: Callable[[], list[tuple[str, str]]]) -> Path:
        """The project of ``pkg`` with the revision files of ``history`` (made once)."""
        key = (pkg, history)
        if key not in self.projects:
            project = self.root / f"{pkg}-{history}"
            shutil.copytree(self._initialised(pkg), project,
                            ignore=shutil.ignore_patterns("*.db", "__pycache__"))
            versions = project / "migrations" / "versions"
            for name, source in files():
                (versions / name).write_text(source)
            # byte-compile now (both venvs run this Python), so no timed run pays for it
            compileall.compile_dir(versions, quiet=1)
            self.projects[key] = project
        return self.projects[key]

    def env(self, url: str, **extra: str) -> dict[str, str]:
        return clean_env(FLASK_APP="app.py", FM_BENCH_DB_URL=url, **extra)


@dataclass
class Case:
    """One thing to time, as a whole process; ``prepare`` runs untimed before it."""

    key: str
    argv: list[str]
    cwd: Path | None = None
    env: dict[str, str] | None = None
    prepare: Callable[[], object] | None = None
    cleanup: Callable[[], None] | None = None


class Recorder:
    """All samples of the run, by scenario and case key; also what failed."""

    def __init__(self) -> None:
        self.samples: dict[str, dict[str, list[Sample]]] = {}
        self.errors: dict[str, str] = {}

    def measure(self, scenario: str, cases: Sequence[Case], rounds: int, warmup: bool) -> None:
        """Run every case ``rounds`` times, rotating their order each round."""
        store = self.samples.setdefault(scenario, {})
        for r in range(-1 if warmup else 0, rounds):
            shift = r % len(cases)
            for case in list(cases[shift:]) + list(cases[:shift]):
                if case.prepare:
                    case.prepare()
                sample = run(case.argv, cwd=case.cwd, env=case.env)
                if case.cleanup:
                    case.cleanup()
                if r >= 0:
                    store.setdefault(case.key, []).append(sample)
            progress(f"scenario {scenario}: " + (f"round {r + 1}/{rounds}" if r >= 0 else "warm-up"))

    def walls(self, scenario: str, key: str) -> list[float]:
        return [s.wall for s in self.samples.get(scenario, {}).get(key, [])]


def progress(message: str) -> None:
    print(f"\r{message:<70}", end="", file=sys.stderr, flush=True)


def inprocess(sample: Sample) -> float:
    """The in-process seconds the raw-SQL replay prints."""
    return float(json.loads(sample.stdout)["seconds"])


# -- the run ------------------------------------------------------------------


@dataclass
class Settings:
    revisions: int
    sizes: list[int]
    server_sizes: list[int]
    tables: int
    chain: int
    batch_revisions: int
    rounds: int
    import_rounds: int
    warmup: bool
    scenarios: list[str]


@dataclass
class Bench:
    settings: Settings
    work: Workspace
    dbs: dict[str, Databases]  # the reachable backends
    recorder: Recorder = field(default_factory=Recorder)
    results: dict[str, t.Any] = field(default_factory=dict)
    heads: dict[tuple[str, str, str], str] = field(default_factory=dict)

    # upgrade sweeps: scenarios 1, 2 and 6 -----------------------------------

    def sweep(self, backend: str, sizes: Sequence[int]) -> None:
        """Upgrade empty -> head for each size: ours, original, raw SQL (both
        ways); at the main size also ours with a transaction per migration and
        the app's start-up (``hello``)."""
        s, dbs = self.settings, self.dbs[backend]
        for n in sizes:
            scenario = f"upgrade/{backend}/{n}"
            groups = self.work.root / f"raw-{backend}-{n}.json"
            groups.write_text(json.dumps(raw_statements(n, backend)))
            cases = []
            variants: list[tuple[str, str, dict[str, str]]] = [
                ("ours", "ours", {}), ("original", "original", {})]
            if n == s.revisions and backend == "sqlite":
                variants.append(("ours-tpm", "ours", {"FM_BENCH_TPM": "1"}))
            for key, pkg, extra in variants:
                project = self.work.project(pkg, f"tables-{n}", functools.partial(tables_history, n))
                label = f"{key}_{n}"
                cases.append(Case(
                    key, [self.work.flask(pkg), "db", "upgrade"], project,
                    self.work.env(dbs.url(label), **extra),
                    prepare=functools.partial(dbs.fresh, label),
                ))
            for mode in ("one", "each"):
                label = f"raw_{mode}_{n}"
                cases.append(Case(
                    f"raw-{mode}",
                    [str(self.work.pythons["ours"]), "-c", RAW, dbs.url(label), str(groups), mode],
                    env=clean_env(),
                    prepare=functools.partial(dbs.fresh, label),
                ))
            if n == s.revisions:
                cases += self.hello_cases(backend)
            # NOTE: one warm-up round, at the smallest size, warms the page cache
            # and the server; at thousands of revisions it would cost minutes
            self.recorder.measure(scenario, cases, s.rounds, s.warmup and n == min(sizes))
            # each package's last upgrade left its database at head: reuse it
            for pkg in PACKAGES:
                self.heads[(pkg, backend, f"tables-{n}")] = dbs.url(f"{pkg}_{n}")

    def hello_cases(self, backend: str = "sqlite") -> list[Case]:
        """The app's own start-up: a no-op ``flask hello`` of each package's app
        (configured for ``backend``, whose driver Flask-SQLAlchemy imports)."""
        cases = []
        for pkg in PACKAGES:
            project = self.work.project(pkg, "empty", list)
            env = self.work.env(self.dbs[backend].url("unused"))
            cases.append(Case(f"hello-{pkg}", [self.work.flask(pkg), "hello"], project, env))
        return cases

    def at_head(self, pkg: str, backend: str, history: str, project: Path) -> str:
        """A database of ``backend`` upgraded to head by ``pkg`` itself (untimed),
        made once: the commands run on it do not change its schema."""
        key = (pkg, backend, history)
        if key not in self.heads:
            url = self.dbs[backend].fresh(f"head_{pkg}_{history}")
            run([self.work.flask(pkg), "db", "upgrade"], cwd=project, env=self.work.env(url))
            self.heads[key] = url
        return self.heads[key]

    # scenario 3 ---------------------------------------------------------------

    def noop(self) -> None:
        n = self.settings.revisions
        cases = self.hello_cases()
        for pkg in PACKAGES:
            project = self.work.project(pkg, f"tables-{n}", lambda: tables_history(n))
            url = self.at_head(pkg, "sqlite", f"tables-{n}", project)
            pycache = project / "migrations" / "versions" / "__pycache__"
            commands = ["upgrade", "current", "heads"] + (["status"] if pkg == "ours" else [])
            for command in commands:
                for cached in (True, False):
                    def prepare(pycache: Path = pycache, cached: bool = cached) -> None:
                        if not cached:
                            shutil.rmtree(pycache, ignore_errors=True)
                        elif not pycache.exists():
                            compileall.compile_dir(pycache.parent, quiet=1)

                    key = f"{command}-{pkg}-{'pyc' if cached else 'nopyc'}"
                    cases.append(Case(key, [self.work.flask(pkg), "db", command], project,
                                      self.work.env(url), prepare=prepare))
        self.recorder.measure("noop", cases, self.settings.rounds, self.settings.warmup)

    # scenario 4 ---------------------------------------------------------------

    def autogenerate(self, backend: str) -> None:
        n = self.settings.tables
        cases = []
        for pkg in PACKAGES:
            project = self.work.project(pkg, f"tables-{n}", lambda: tables_history(n))
            url = self.at_head(pkg, backend, f"tables-{n}", project)
            versions = project / "migrations" / "versions"
            known = {p.name for p in versions.glob("*.py")}

            def forget_new_revision(versions: Path = versions, known: set[str] = known) -> None:
                for path in versions.glob("*.py"):
                    if path.name not in known:
                        path.unlink()
                        for pyc in (versions / "__pycache__").glob(f"{path.stem}.*"):
                            pyc.unlink()

            cases.append(Case(f"check-{pkg}", [self.work.flask(pkg), "db", "check"], project,
                              self.work.env(url, FM_BENCH_MODELS=str(n))))
            cases.append(Case(
                f"migrate-{pkg}", [self.work.flask(pkg), "db", "migrate", "-m", "extra"], project,
                self.work.env(url, FM_BENCH_MODELS=str(n), FM_BENCH_EXTRA_TABLE="1"),
                cleanup=forget_new_revision,
            ))
        self.recorder.measure(f"autogen/{backend}", cases, self.settings.rounds,
                              self.settings.warmup)

    # scenario 5 ---------------------------------------------------------------

    def batch_chain(self) -> None:
        """5a: outcome (and time) of upgrade, then downgrade -1, for each package."""
        length = self.settings.chain
        outcomes: dict[str, dict[str, t.Any]] = {}
        for pkg in PACKAGES:
            project = self.work.project(pkg, f"chain-{length}", lambda: chain_history(length))
            url = self.dbs["sqlite"].fresh(f"chain_{pkg}")
            for step, argv in (("upgrade", ["upgrade"]), ("downgrade", ["downgrade"])):
                sample = run([self.work.flask(pkg), "db", *argv], cwd=project,
                             env=self.work.env(url), check=False)
                outcomes[f"{step}-{pkg}"] = {
                    "ok": sample.returncode == 0,
                    "seconds": sample.wall,
                    "error": "" if sample.returncode == 0 else failure_line(sample),
                }
            progress(f"scenario 5a: {pkg} done")
        self.results["5a"] = outcomes

    def batch_downgrade(self) -> None:
        """5b: ``flask db downgrade base`` from head, on a copy of a head database."""
        n = self.settings.batch_revisions
        dbs = self.dbs["sqlite"]
        cases = []
        for pkg in PACKAGES:
            project = self.work.project(pkg, f"batch-{n}", lambda: batch_history(n))
            self.at_head(pkg, "sqlite", f"batch-{n}", project)
            url = dbs.url(f"batch_{pkg}")
            cases.append(Case(
                f"downgrade-{pkg}", [self.work.flask(pkg), "db", "downgrade", "base"], project,
                self.work.env(url),
                prepare=functools.partial(dbs.copy_file, f"head_{pkg}_batch-{n}", f"batch_{pkg}"),
            ))
        self.recorder.measure("batch-downgrade", cases, self.settings.rounds, self.settings.warmup)

    # scenario 7 ---------------------------------------------------------------

    def imports(self) -> None:
        rounds = self.settings.import_rounds
        found: dict[str, list[dict[str, t.Any]]] = {pkg: [] for pkg in PACKAGES}
        for r in range(rounds):
            for pkg in (PACKAGES if r % 2 == 0 else PACKAGES[::-1]):
                sample = run([str(self.work.pythons[pkg]), "-c", IMPORT_PROBE],
                             cwd=self.work.root, env=clean_env())
                found[pkg].append(json.loads(sample.stdout))
            progress(f"scenario 7: round {r + 1}/{rounds}")
        self.results["7"] = found


def failure_line(sample: Sample) -> str:
    """The gist of a failed command: the recursion error if any, else its last line."""
    lines = [line.strip() for line in sample.stderr.splitlines() if line.strip()]
    for line in lines:
        if "recursion" in line.lower():
            return line[:200]
    return (lines[-1] if lines else f"exit status {sample.returncode}")[:200]


# -- figures --------------------------------------------------------------------


@dataclass
class Stat:
    values: list[float]

    @property
    def med(self) -> float:
        return statistics.median(self.values) if self.values else math.nan

    def cell(self, scale: float = 1.0, digits: int = 2) -> str:
        """``median [min-max]``, scaled (1000 for ms)."""
        if not self.values:
            return "n/a"
        lo, hi = min(self.values) * scale, max(self.values) * scale
        return f"{self.med * scale:.{digits}f} [{lo:.{digits}f}-{hi:.{digits}f}]"


def verdict(value: float, limit: float) -> str:
    if value != value:
        return "n/a"
    return "PASS" if value <= limit else "MISS"


def fx(value: float, digits: int = 2) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    if len({x for x, _ in points}) < 2:
        return math.nan
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    num = sum((x - mx) * (y - my) for x, y in points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return num / den


def nice_ticks(top: float, count: int = 5) -> list[float]:
    if top <= 0 or top != top:
        return [0.0, 1.0]
    raw = top / count
    base = 10 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= raw)
    return [i * step for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def svg_plot(panels: dict[str, dict[str, list[tuple[int, float]]]]) -> str:
    """Time against history size, one panel per database, a line per variant."""
    colours = {"ours": "#1f6fb4", "original": "#e0701b", "raw SQL, one transaction": "#2a9d3a"}
    pw, ph, left, top, bottom, right = 330, 250, 58, 34, 46, 14
    width = max(1, len(panels)) * (pw + left + right) + 10
    height = ph + top + bottom + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for p, (backend, series) in enumerate(panels.items()):
        x0, y0 = 10 + p * (pw + left + right) + left, top
        xs = [x for line in series.values() for x, _ in line] or [1]
        ys = [y for line in series.values() for _, y in line] or [1.0]
        # a little room beyond the largest value, so its point is not on the frame
        xticks, yticks = nice_ticks(max(xs) * 1.04), nice_ticks(max(ys) * 1.04)
        xmax, ymax = xticks[-1] or 1, yticks[-1] or 1

        def px(x: float) -> float:
            return x0 + x / xmax * pw

        def py(y: float) -> float:
            return y0 + ph - y / ymax * ph

        out.append(f'<text x="{x0 + pw / 2}" y="{y0 - 14}" text-anchor="middle" '
                   f'font-size="13" font-weight="bold">{escape(backend)}: upgrade, empty to head</text>')
        for tick in yticks:
            out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{py(tick):.1f}" y2="{py(tick):.1f}" '
                       'stroke="#ddd"/>')
            out.append(f'<text x="{x0 - 5}" y="{py(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
        for tick in xticks:
            out.append(f'<line x1="{px(tick):.1f}" x2="{px(tick):.1f}" y1="{y0 + ph}" '
                       f'y2="{y0 + ph + 4}" stroke="#333"/>')
            out.append(f'<text x="{px(tick):.1f}" y="{y0 + ph + 16}" text-anchor="middle">'
                       f'{tick:g}</text>')
        out.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
        out.append(f'<text x="{x0 + pw / 2}" y="{y0 + ph + 34}" text-anchor="middle">'
                   'revisions in the history</text>')
        out.append(f'<text transform="translate({x0 - 42},{y0 + ph / 2}) rotate(-90)" '
                   'text-anchor="middle">seconds (median, whole process)</text>')
        for i, (name, line) in enumerate(series.items()):
            colour = colours.get(name, "#555")
            pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(line))
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
            out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>'
                    for x, y in line]
            ly = y0 + 14 + i * 15
            out.append(f'<line x1="{x0 + 10}" x2="{x0 + 28}" y1="{ly - 4}" y2="{ly - 4}" '
                       f'stroke="{colour}" stroke-width="2"/>')
            out.append(f'<text x="{x0 + 33}" y="{ly}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# -- the report -------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpus": str(os.cpu_count()),
        "cpu model": model or "unknown",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
    }


class Report:
    """Renders the Markdown report (and the data behind it) from a finished run."""

    def __init__(self, bench: Bench, context: dict[str, t.Any]) -> None:
        self.bench, self.context = bench, context
        self.rec, self.s = bench.recorder, bench.settings
        self.lines: list[str] = []
        self.summary: dict[str, t.Any] = {}

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def cpu(self, scenario: str, key: str) -> float:
        """Median CPU seconds (user + sys): steadier than wall time on a busy machine."""
        return Stat([x.cpu for x in self.rec.samples.get(scenario, {}).get(key, [])]).med

    def stat(self, scenario: str, key: str, scale: float = 1.0) -> Stat:
        return Stat([w * scale for w in self.rec.walls(scenario, key)])

    def render(self) -> str:
        s, ctx = self.s, self.context
        self.add("# Flask-Migrate benchmarks (issue 11): ours vs Flask-Migrate 4.1.0", "")
        self.add(
            "Whole, fresh processes, interleaved in a rotating order; figures are wall "
            "seconds, `median [min-max]` over "
            f"{s.rounds} round(s){', after a warm-up round' if s.warmup else ' (no warm-up)'}. "
            "The machine may be shared: read the ratios, not the absolute times.",
            "",
        )
        self.add("## Machine and versions", "")
        self.add(table(["", ""], [[k, v] for k, v in ctx["machine"].items()]), "")
        versions = ctx["versions"]
        names = sorted(set(versions["ours"]) | set(versions["original"]), key=str.lower)
        self.add(table(["package", "ours (" + ctx["venvs"]["ours"] + ")",
                        "original (" + ctx["venvs"]["original"] + ")"],
                       [[n, versions["ours"].get(n, "-"), versions["original"].get(n, "-")]
                        for n in names]), "")
        self.add(table(["database", "server / status"],
                       [[k, v] for k, v in ctx["servers"].items()]), "")
        self.add(
            f"Sizes: N = {s.revisions} revisions (scenarios 1-3), sweep {s.sizes} on SQLite and "
            f"{s.server_sizes} on the servers, {s.tables} tables (4), a {s.chain}-table "
            f"foreign-key chain (5a), {s.batch_revisions} revisions (5b), "
            f"{s.import_rounds} import rounds (7).", "",
        )
        self.add("![time against history size](plot.svg)", "")
        for number, method in (("1", self.target1), ("2", self.target2), ("3", self.target3),
                               ("4", self.target4), ("5", self.target5), ("6", self.target6),
                               ("7", self.target7)):
            if number in s.scenarios:
                try:
                    method()
                except Exception as exc:  # noqa: BLE001 - a report section must not hide others
                    self.add(f"(could not render target {number}: {exc!r})", "")
        if self.rec.errors:
            self.add("## Errors", "")
            for name, text in self.rec.errors.items():
                last = [line for line in text.splitlines() if line.strip()][-1:] or [""]
                self.add(f"* scenario {name}: `{last[0].strip()}` (traceback in results.json)")
            self.add("")
        return "\n".join(self.lines) + "\n"

    def upgrade_rows(self, backend: str, n: int) -> tuple[list[list[str]], float]:
        """Rows of the upgrade at size ``n``: whole process, net of the app's
        start-up, net ratio to the original; and the raw-SQL replays."""
        sc = f"upgrade/{backend}/{n}"
        hello = {pkg: self.stat(sc, f"hello-{pkg}").med for pkg in PACKAGES}
        variants = [(key, pkg) for key, pkg in (("ours", "ours"), ("ours-tpm", "ours"),
                                                ("original", "original"))
                    if self.stat(sc, key).values]
        net = {key: self.stat(sc, key).med - hello[pkg] for key, pkg in variants}
        original = net.get("original", math.nan)
        rows = [[key, self.stat(sc, key).cell(), fx(self.cpu(sc, key)), fx(net[key]),
                 fx(net[key] / original)] for key, _ in variants]
        for mode, label in (("one", "raw SQL, one transaction"),
                            ("each", "raw SQL, a transaction per revision")):
            samples = self.rec.samples.get(sc, {}).get(f"raw-{mode}", [])
            inproc = Stat([inprocess(x) for x in samples])
            rows.append([label, self.stat(sc, f"raw-{mode}").cell(),
                         fx(self.cpu(sc, f"raw-{mode}")), f"{fx(inproc.med)} in-process", ""])
        return rows, net.get("ours", math.nan) / original

    def target1(self) -> None:
        n = self.s.revisions
        self.add(f"## 1. SQLite, {n} revisions, empty -> head, net of start-up", "")
        rows, value = self.upgrade_rows("sqlite", n)
        sc = f"upgrade/sqlite/{n}"
        for pkg in PACKAGES:
            rows.append([f"app start-up (`flask hello`), {pkg}",
                         self.stat(sc, f"hello-{pkg}").cell(), fx(self.cpu(sc, f"hello-{pkg}")),
                         "", ""])
        self.add(table(["variant", "whole process, s", "CPU, s", "net of start-up, s",
                        "net / original net"], rows), "")
        self.target_line("1", "ours net / original net (default: one transaction)", value, 0.45)

    def target2(self) -> None:
        n = self.s.revisions
        self.add(f"## 2. PostgreSQL and MariaDB, {n} revisions, empty -> head (lock and journal on)",
                 "")
        for backend in ("postgresql", "mariadb"):
            if backend not in self.bench.dbs:
                self.add(f"{backend}: skipped ({self.context['servers'].get(backend)})", "")
                continue
            rows, _ = self.upgrade_rows(backend, n)
            sc = f"upgrade/{backend}/{n}"
            whole = self.stat(sc, "ours").med / self.stat(sc, "original").med
            self.add(f"**{backend}**", "")
            self.add(table(["variant", "whole process, s", "CPU, s", "net of start-up, s",
                            "net / original net"], rows), "")
            self.target_line(f"2-{backend}", f"{backend}: ours / original, whole process",
                             whole, 0.9)

    def target3(self) -> None:
        n = self.s.revisions
        self.add(f"## 3. No-op commands at head, {n} revisions (SQLite), above the app's start-up",
                 "")
        hello = {pkg: self.stat("noop", f"hello-{pkg}").med for pkg in PACKAGES}
        rows = []
        for command in ("upgrade", "current", "heads", "status"):
            for cached in ("pyc", "nopyc"):
                ours = self.stat("noop", f"{command}-ours-{cached}")
                orig = self.stat("noop", f"{command}-original-{cached}")
                above = ours.med - hello["ours"]
                above_orig = orig.med - hello["original"] if orig.values else math.nan
                label = "with" if cached == "pyc" else "without"
                rows.append([f"`flask db {command}`, {label} `__pycache__`", ours.cell(),
                             fx(above, 3), orig.cell() if orig.values else "(no such command)",
                             fx(above_orig, 3), verdict(above, 0.15)])
                self.summary[f"3-{command}-{cached}"] = {"value": above, "limit": 0.15}
        rows.append(["app start-up (`flask hello`)", self.stat("noop", "hello-ours").cell(),
                     "", self.stat("noop", "hello-original").cell(), "", ""])
        self.add(table(["command", "ours, s", "ours above start-up, s", "original, s",
                        "original above start-up, s", "target <= 0.15 s"], rows), "")

    def target4(self) -> None:
        n = self.s.tables
        self.add(f"## 4. `check` and `migrate` with {n} tables at head", "")
        rows = []
        for backend in ("sqlite", "postgresql"):
            sc = f"autogen/{backend}"
            if sc not in self.rec.samples:
                rows.append([backend, "skipped", "", "", "", "", ""])
                continue
            for command in ("check", "migrate"):
                ours, orig = self.stat(sc, f"{command}-ours"), self.stat(sc, f"{command}-original")
                value = ours.med / orig.med
                cpu = self.cpu(sc, f"{command}-ours") / self.cpu(sc, f"{command}-original")
                rows.append([backend, f"`flask db {command}`", ours.cell(), orig.cell(), fx(value),
                             fx(cpu), verdict(value, 0.9)])
                self.summary[f"4-{backend}-{command}"] = {"value": value, "limit": 0.9}
        self.add(table(["database", "command", "ours, s", "original, s", "ours / original",
                        "CPU ours / original", "target <= 0.9"], rows), "")
        self.add("`migrate` runs with one extra model table, so it writes a revision; the file "
                 "is deleted after each run.", "")

    def target5(self) -> None:
        self.add("## 5. SQLite batch mode", "")
        outcomes = self.bench.results.get("5a", {})
        rows = []
        for pkg in PACKAGES:
            for step in ("upgrade", "downgrade"):
                o = outcomes.get(f"{step}-{pkg}")
                if o is None:
                    continue
                rows.append([pkg, step, "ok" if o["ok"] else "FAILED", fx(o["seconds"]),
                             f"`{o['error']}`" if o["error"] else ""])
        ours_ok = all(outcomes.get(f"{step}-ours", {}).get("ok") for step in ("upgrade",
                                                                             "downgrade"))
        self.summary["5a"] = {"value": ours_ok, "limit": "upgrade and downgrade succeed"}
        self.add(f"(a) `batch_alter_table(...).add_column` on the last table of a "
                 f"{self.s.chain}-table foreign-key chain: `upgrade`, then `downgrade` (one step)",
                 "")
        self.add(table(["package", "command", "outcome", "seconds", "error"], rows), "")
        self.add(f"Target: ours upgrades and downgrades cleanly: **{'PASS' if ours_ok else 'MISS'}**",
                 "")
        sc = "batch-downgrade"
        ours, orig = self.stat(sc, "downgrade-ours"), self.stat(sc, "downgrade-original")
        value = ours.med / orig.med
        self.add(f"(b) `flask db downgrade base` of a {self.s.batch_revisions}-revision history: "
                 "two revisions in three create a table with a foreign key to the table created "
                 f"before it (chains of at most {BATCH_FK_DEPTH} tables, so that the original's "
                 "recursive reflection stays below Python's recursion limit), every third adds a "
                 "column in batch mode to the latest table with a foreign key.", "")
        self.add(table(["variant", "whole process, s", "CPU, s", "ours / original"],
                       [["ours", ours.cell(), fx(self.cpu(sc, "downgrade-ours")), fx(value)],
                        ["original", orig.cell(), fx(self.cpu(sc, "downgrade-original")), ""]]),
                 "")
        self.target_line("5b", "ours / original, whole process", value, 0.6)

    def sweep_points(self, backend: str, key: str) -> list[tuple[int, float]]:
        sizes = self.s.sizes if backend == "sqlite" else self.s.server_sizes
        out = []
        for n in sizes:
            values = self.rec.walls(f"upgrade/{backend}/{n}", key)
            if values:
                out.append((n, statistics.median(values)))
        return out

    def target6(self) -> None:
        sizes = self.s.sizes
        self.add(f"## 6. Cost per revision (SQLite upgrade, sizes {sizes})", "")
        rows, slopes = [], {}
        ranges = list(zip(sizes, sizes[1:]))
        for key in ("ours", "original", "raw-one"):
            cells = []
            for lo, hi in ranges + [(sizes[0], sizes[-1])]:
                points = [(float(n), w) for n in sizes if lo <= n <= hi
                          for w in self.rec.walls(f"upgrade/sqlite/{n}", key)]
                value = slope(points) * 1000
                slopes[(key, lo, hi)] = value
                cells.append(fx(value, 3))
            rows.append([key, *cells])
        headers = ["variant", *[f"{lo}-{hi}" for lo, hi in ranges], f"all ({sizes[0]}-{sizes[-1]})"]
        self.add("Least-squares slope of wall time over history size, ms per revision:", "")
        self.add(table(headers, rows), "")
        if ranges:
            first, last = ranges[0], ranges[-1]
            flat = slopes[("ours", last[0], last[1])] / slopes[("ours", first[0], first[1])]
            self.add(f"Flatness: ours' slope over {last[0]}-{last[1]} / over {first[0]}-{first[1]}"
                     f" = {fx(flat)} (PASS when <= 1.5).", "")
            self.summary["6-flat"] = {"value": flat, "limit": 1.5}
        n = self.s.revisions
        sc = f"upgrade/sqlite/{n}"
        rss = {key: Stat([x.maxrss_kb / 1024 for x in self.rec.samples.get(sc, {}).get(key, [])])
               for key in ("ours", "ours-tpm", "original")}
        self.add(table([f"peak RSS of the {n}-revision upgrade, MB", "median [min-max]"],
                       [[k, v.cell(digits=1)] for k, v in rss.items() if v.values]), "")
        self.target_line("6-rss", "ours' peak RSS / original's", rss["ours"].med / rss["original"].med,
                         1.0)

    def target7(self) -> None:
        found = self.bench.results.get("7", {})
        self.add("## 7. `import flask_migrate` after `import flask, flask_sqlalchemy`", "")
        rows = []
        for pkg in PACKAGES:
            inc = Stat([r["increment"] for r in found.get(pkg, [])])
            base = Stat([r["base"] for r in found.get(pkg, [])])
            alembic = any(r["alembic"] for r in found.get(pkg, []))
            rows.append([pkg, inc.cell(1000, 1), base.cell(1000, 1), "yes" if alembic else "no"])
        self.add(f"Fresh interpreters, {self.s.import_rounds} rounds each, in-process "
                 "`perf_counter`, ms:", "")
        self.add(table(["package", "import flask_migrate", "import flask, flask_sqlalchemy",
                        "imports alembic"], rows), "")
        value = Stat([r["increment"] for r in found.get("ours", [])]).med * 1000
        self.target_line("7", "ours' median increment, ms", value, 3.0)

    def target_line(self, key: str, what: str, value: float, limit: float) -> None:
        self.summary[key] = {"value": value, "limit": limit}
        self.add(f"Target: {what} = **{fx(value)}** (<= {limit:g}): **{verdict(value, limit)}**", "")

    def plot(self) -> str:
        panels: dict[str, dict[str, list[tuple[int, float]]]] = {}
        for backend in self.bench.dbs:
            series = {name: self.sweep_points(backend, key)
                      for name, key in (("ours", "ours"), ("original", "original"),
                                        ("raw SQL, one transaction", "raw-one"))}
            if any(series.values()):
                panels[backend] = {k: v for k, v in series.items() if v}
        return svg_plot(panels)


# -- main -----------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (5 and 20 revisions, 20 tables, a 10-table chain), "
                        "1 round, no warm-up")
    parser.add_argument("--rounds", type=int, help="timed rounds per case (default 3)")
    parser.add_argument("--revisions", type=int,
                        help="N of scenarios 1-3 and of the peak RSS (default 1000)")
    parser.add_argument("--sizes", help="history sizes of the SQLite sweep (scenario 6), "
                        "comma-separated (default 100,500,1000,2000,5000)")
    parser.add_argument("--server-sizes", help="history sizes on PostgreSQL/MariaDB, "
                        "N is always one (default: the smallest size and N; --quick: N)")
    parser.add_argument("--tables", type=int, help="tables at head for scenario 4 (default 500)")
    parser.add_argument("--chain", type=int, help="foreign-key chain length, 5a (default 300)")
    parser.add_argument("--batch-revisions", type=int, help="history of 5b (default 500)")
    parser.add_argument("--import-rounds", type=int, help="interpreters per package, 7 "
                        "(default 40)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed first round")
    parser.add_argument("--only", help="scenarios to run, e.g. 1,3 (default: all)")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--no-mysql", action="store_true", help="skip MariaDB")
    parser.add_argument("--pg-url", default=os.environ.get("FM_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--mysql-url",
                        default=os.environ.get("FM_BENCH_MYSQL_URL", DEFAULT_MYSQL_URL))
    parser.add_argument("--out", default=str(HERE / "results"),
                        help="folder for report.md, plot.svg and results.json "
                        "(default benchmarks/results)")
    parser.add_argument("--db-dir", help="folder for the SQLite files (default: a temporary "
                        "folder; /dev/shm removes the disk's fsync latency)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    quick = args.quick

    def pick(value: int | None, default: int, tiny: int) -> int:
        return value if value is not None else (tiny if quick else default)

    def sizes(text: str | None, default: str) -> list[int]:
        return sorted({int(x) for x in (text or default).split(",") if x.strip()})

    revisions = pick(args.revisions, 1000, 20)
    sweep = sizes(args.sizes, "5,20" if quick else "100,500,1000,2000,5000")
    only = [x.strip() for x in (args.only or ",".join(SCENARIOS)).split(",") if x.strip()]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        sys.exit(f"--only: unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
    return Settings(
        revisions=revisions,
        sizes=sweep,
        server_sizes=sorted({revisions, *sizes(args.server_sizes, str(revisions if quick
                                                                      else sweep[0]))}),
        tables=pick(args.tables, 500, 20),
        chain=pick(args.chain, 300, 10),
        batch_revisions=pick(args.batch_revisions, 500, 20),
        rounds=pick(args.rounds, 3, 1),
        import_rounds=pick(args.import_rounds, 40, 3),
        warmup=not (quick or args.no_warmup),
        scenarios=only,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    s = settings_from(args)
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # NOTE: a venv named by FM_BENCH_ORIGINAL_VENV belongs to someone else (the
    # test command's .venv-original): use it as it is instead of re-pinning it
    pythons = {"ours": ours_python(),
               "original": original_python(sync="FM_BENCH_ORIGINAL_VENV" not in os.environ)}
    tag = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="fm-bench-run-"))
    db_dir = Path(args.db_dir) if args.db_dir else tmp
    candidates = {"sqlite": "sqlite://"}
    servers: dict[str, str] = {}
    if args.no_pg:
        servers["postgresql"] = "skipped: --no-pg"
    else:
        candidates["postgresql"] = args.pg_url
    if args.no_mysql:
        servers["mariadb"] = "skipped: --no-mysql"
    else:
        candidates["mariadb"] = args.mysql_url
    dbs: dict[str, Databases] = {}
    for backend, url in candidates.items():
        candidate = Databases(backend, url, tag, db_dir)
        problem = candidate.problem()
        if problem is None:
            dbs[backend] = candidate
            servers[backend] = candidate.server_version()
        else:
            servers[backend] = f"skipped, not reachable at {url}: {problem}"
            print(f"{backend}: {servers[backend]}", file=sys.stderr)
    bench = Bench(s, Workspace(tmp, pythons), dbs)
    extra = ["psycopg", "PyMySQL", "Pygments", "typing_extensions"]
    context: dict[str, t.Any] = {
        "machine": machine(),
        "versions": {pkg: package_versions(pythons[pkg], extra) for pkg in PACKAGES},
        "venvs": {pkg: str(pythons[pkg].parent.parent) for pkg in PACKAGES},
        "servers": servers,
        "settings": vars(s),
        "durations": {},  # seconds per step of the run
    }
    servers_here = [b for b in ("postgresql", "mariadb") if b in dbs]
    steps: list[tuple[str, Callable[[], None]]] = []
    sqlite_sizes = set(s.sizes if "6" in s.scenarios else [])
    if "1" in s.scenarios or "6" in s.scenarios:
        sqlite_sizes.add(s.revisions)
    if sqlite_sizes:
        steps.append(("upgrade/sqlite", lambda: bench.sweep("sqlite", sorted(sqlite_sizes))))
    if "2" in s.scenarios:
        for backend in servers_here:
            steps.append((f"upgrade/{backend}",
                          functools.partial(bench.sweep, backend, s.server_sizes)))
    if "3" in s.scenarios:
        steps.append(("3", bench.noop))
    if "4" in s.scenarios:
        for backend in ("sqlite", "postgresql"):
            if backend in dbs:
                steps.append((f"4/{backend}", functools.partial(bench.autogenerate, backend)))
    if "5" in s.scenarios:
        steps += [("5a", bench.batch_chain), ("5b", bench.batch_downgrade)]
    if "7" in s.scenarios:
        steps.append(("7", bench.imports))
    try:
        for name, step in steps:
            begun = time.perf_counter()
            try:
                step()
            except Exception:  # noqa: BLE001 - record it, run the other scenarios, exit 1
                bench.recorder.errors[name] = traceback.format_exc()
                print(f"\nscenario {name} failed:\n{bench.recorder.errors[name]}",
                      file=sys.stderr)
            context["durations"][name] = round(time.perf_counter() - begun, 1)
        print(file=sys.stderr)
    finally:
        for databases in dbs.values():
            try:
                databases.drop_all()
            except Exception as exc:  # noqa: BLE001 - report, keep cleaning up
                print(f"could not drop the {databases.backend} databases: {exc}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)

    context["seconds"] = round(time.perf_counter() - started, 1)
    report = Report(bench, context)
    text = report.render()
    text += f"\nThe whole run took {context['seconds']:.0f} s.\n"
    (out / "report.md").write_text(text)
    (out / "plot.svg").write_text(report.plot())
    data = {
        **context,
        "targets": report.summary,
        "outcomes": bench.results,
        "errors": bench.recorder.errors,
        "samples": {
            scenario: {
                key: [{"wall": x.wall, "cpu": x.cpu, "maxrss_kb": x.maxrss_kb,
                       "returncode": x.returncode} for x in samples]
                for key, samples in cases.items()
            }
            for scenario, cases in bench.recorder.samples.items()
        },
    }
    (out / "results.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    print(text)
    print(f"wrote {out / 'report.md'}, {out / 'plot.svg'}, {out / 'results.json'}",
          file=sys.stderr)
    return 1 if bench.recorder.errors else 0


if __name__ == "__main__":
    run_under_ours("psycopg", "pymysql", "sqlalchemy")
    sys.exit(main())
