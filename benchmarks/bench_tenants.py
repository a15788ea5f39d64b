#!/usr/bin/env python3
"""Multi-tenant upgrades (issue 12): all tenants at once, per-tenant cost, concurrent instances, RSS.

One project (``Migrate(app, db, tenants=fn)``, its ``migrations/`` made by
``flask db init``) with a generated tenant history of R revisions (default
30; each creates a table with a foreign key and an index, adds columns, or
adds an index), and T tenants (default 200 and 50) of two kinds:

* **PostgreSQL schemas**: ``Tenant(name, schema=...)`` in one database of
  the server at ``--pg-url`` (created as ``fm_bench_<random>_schemas``
  before each run and dropped at the end);
* **SQLite databases**: ``Tenant(name, url="sqlite:///tenant_0001.db")``,
  relative to the app's instance folder, a fresh folder for each run.

Measured, as whole, fresh processes (``_common.run``: wall time, CPU time of
the command and its workers, peak RSS from ``wait4`` through a small
launcher), the cases of one backend interleaved in a rotating order:

1. ``flask db upgrade --all-tenants -j 1`` and ``-j 4`` of T tenants, empty
   to head, then the ``-j 1`` command again with every tenant at head (the
   deploy with nothing to do); on SQLite (and on PostgreSQL with
   ``--pg-small``) the same for the smaller T, for the marginal cost per
   tenant and the RSS;
2. one lone ``flask db upgrade`` of the same history on one database of the
   same backend, and the app's start-up (a no-op ``flask hello``), so that
   the per-tenant cost at ``-j 1``, ``(upgrade of T tenants - start-up) /
   T``, compares with the lone upgrade's ``upgrade - start-up`` (target <=
   1.2x);
3. PostgreSQL: 4 instances started together (each waits, once its app is
   loaded, for a file to appear, inside the app's tenants function) on the
   same T fresh schemas; every tenant must be migrated exactly once (its
   journal: R applied step rows, all from one run, one run row) and every
   instance must exit 0;
4. peak RSS: the whole command's (``wait4``: the maximum over the main
   process and its reaped workers), and, from an ``atexit`` hook that a
   ``sitecustomize`` module installs in the measured process only, the main
   process's own (``RUSAGE_SELF``) and its largest worker's
   (``RUSAGE_CHILDREN``).

After each run the journal of every tenant is checked (R applied steps in
one run, version table at head); any other outcome stops the benchmark.

Until ``flask db upgrade`` has ``--all-tenants``, the tenant runs (and, for
consistency, the lone upgrade and the start-up) go through a small runner
script that calls ``flask_migrate.operations.upgrade(tenants="all",
jobs=N)`` in the app context; ``--api`` forces that runner.

Usage: ``python3 benchmarks/bench_tenants.py [--quick] [--rounds N]
[--pg-url URL | --no-pg] [--no-sqlite] [--report FILE]``
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import typing as t
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    Sample,
    clean_env,
    machine_line,
    ours_python,
    package_versions,
    run,
    run_under_ours,
    table,
)
from bench_upgrade import REVISION, rev_id  # noqa: E402

DEFAULT_PG_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"
TARGET = 1.2  # per-tenant cost at -j 1 / a lone upgrade

APP = '''\
"""A benchmark app with FM_BENCH_TENANTS tenants (schemas or SQLite files)."""
import os
import time

import click
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_migrate import Migrate, Tenant

db = SQLAlchemy()
app = Flask(__name__, instance_path=os.environ.get("FM_BENCH_INSTANCE") or None)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["FM_BENCH_DB_URL"]
db.init_app(app)

_waited = False


def barrier():
    """With FM_BENCH_BARRIER: say we are ready, then wait for the file 'go'."""
    global _waited
    folder = os.environ.get("FM_BENCH_BARRIER")
    if not folder or _waited:
        return
    _waited = True
    open(os.path.join(folder, f"ready-{os.getpid()}"), "w").close()
    go = os.path.join(folder, "go")
    deadline = time.monotonic() + 300
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            raise SystemExit("barrier: no go after 300 s")
        time.sleep(0.002)


def tenants():
    barrier()
    n = int(os.environ.get("FM_BENCH_TENANTS", "0"))
    if os.environ.get("FM_BENCH_KIND", "schema") == "schema":
        return [Tenant(f"t{i:04d}", schema=f"tenant_{i:04d}") for i in range(n)]
    return [Tenant(f"t{i:04d}", url=f"sqlite:///tenant_{i:04d}.db") for i in range(n)]


migrate = Migrate(app, db, tenants=tenants)


@app.cli.command()
def hello():
    """A no-op command: the app's own start-up."""
    click.echo("hello")
'''

# The runner used until the CLI has --all-tenants (or with --api):
#   runner.py hello | lone | tenants JOBS
RUNNER = '''\
import json, os, sys
from collections import Counter
sys.path.insert(0, os.getcwd())
from app import app
what = sys.argv[1]
if what == "hello":
    print("hello")
    sys.exit(0)
from flask_migrate import operations
with app.app_context():
    if what == "lone":
        steps = operations.upgrade()
        print(json.dumps({"steps": len(steps)}))
        sys.exit(0)
    results = operations.upgrade(tenants="all", jobs=int(sys.argv[2]))
for r in results:
    if not r.ok:
        print(f"{r.tenant}: {r.outcome}: {r.error}", file=sys.stderr)
print(json.dumps({"outcomes": Counter(r.outcome for r in results),
                  "waited": sum(1 for r in results if r.waited)}))
sys.exit(0 if all(r.ok for r in results) else 1)
'''

# Imported at start-up by the measured processes only (PYTHONPATH), active when
# FM_BENCH_FIGURES names a folder: the main process writes its own peak RSS and
# its reaped children's (the workers') at exit; each forked child notes its pid.
SITECUSTOMIZE = '''\
import os

_folder = os.environ.get("FM_BENCH_FIGURES")
if _folder:
    import atexit
    import json
    import resource
    import time

    _main = os.getpid()

    def _forked():
        with open(os.path.join(_folder, f"forks-{_main}"), "a") as f:
            f.write(f"{os.getpid()}\\n")

    def _at_exit():
        if os.getpid() != _main:
            return
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(os.path.join(_folder, f"exit-{_main}.json"), "w") as f:
            json.dump({"pid": _main, "exit": time.time(), "self_kb": own.ru_maxrss,
                       "children_kb": children.ru_maxrss}, f)

    os.register_at_fork(after_in_child=_forked)
    atexit.register(_at_exit)
'''


# -- the tenant history -----------------------------------------------------------


def history(n: int) -> list[tuple[str, str]]:
    """``n`` revisions in groups of three per table ``tbl<k>``: create it (with a
    foreign key to the previous table, a unique constraint and an index); add
    two columns; add a text column and a composite index."""
    files = []
    for i in range(n):
        k, phase = divmod(i, 3)
        name = f"tbl{k:02d}"
        if phase == 0:
            parent = (
                [f"        sa.Column('parent_id', sa.Integer(), sa.ForeignKey('tbl{k - 1:02d}.id'),"
                 " nullable=True),"] if k else []
            )
            up = [
                f"    op.create_table({name!r},",
                "        sa.Column('id', sa.Integer(), nullable=False),",
                "        sa.Column('name', sa.String(length=80), nullable=False),",
                "        sa.Column('created_at', sa.DateTime(), server_default=sa.func.now(),"
                " nullable=False),",
                *parent,
                "        sa.PrimaryKeyConstraint('id'),",
                f"        sa.UniqueConstraint('name', name='uq_{name}_name'),",
                "    )",
                f"    op.create_index('ix_{name}_created_at', {name!r}, ['created_at'])",
            ]
            down = [f"    op.drop_index('ix_{name}_created_at', table_name={name!r})",
                    f"    op.drop_table({name!r})"]
            message = f"create {name}"
        elif phase == 1:
            up = [
                f"    op.add_column({name!r}, sa.Column('status', sa.String(length=20),"
                " server_default='new', nullable=False))",
                f"    op.add_column({name!r}, sa.Column('amount', sa.Numeric(12, 2),"
                " nullable=True))",
            ]
            down = [f"    op.drop_column({name!r}, 'amount')",
                    f"    op.drop_column({name!r}, 'status')"]
            message = f"{name} status and amount"
        else:
            up = [
                f"    op.add_column({name!r}, sa.Column('note', sa.Text(), nullable=True))",
                f"    op.create_index('ix_{name}_status', {name!r}, ['status', 'created_at'])",
            ]
            down = [f"    op.drop_index('ix_{name}_status', table_name={name!r})",
                    f"    op.drop_column({name!r}, 'note')"]
            message = f"{name} note and status index"
        rev, down_rev = rev_id(i), (rev_id(i - 1) if i else None)
        source = REVISION.format(message=message, rev=rev, down=down_rev or "",
                                 down_repr=repr(down_rev), upgrade="\n".join(up),
                                 downgrade="\n".join(down))
        files.append((f"{rev}_{message.replace(' ', '_')}.py", source))
    return files


# -- databases ----------------------------------------------------------------------


def _engine(url: str, **kwargs: t.Any) -> t.Any:
    import sqlalchemy as sa

    return sa.create_engine(url, poolclass=sa.pool.NullPool, **kwargs)


class Postgres:
    """The server's databases of this run: ``fm_bench_<tag>_<label>``, dropped at the end."""

    def __init__(self, admin_url: str, tag: str) -> None:
        self.admin_url, self.tag = admin_url, tag
        self.created: set[str] = set()

    def _admin(self) -> t.Any:
        return _engine(self.admin_url, isolation_level="AUTOCOMMIT",
                       connect_args={"connect_timeout": 5})

    def problem(self) -> str | None:
        try:
            engine = self._admin()
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            engine.dispose()
            return None
        except Exception as exc:  # noqa: BLE001 - any failure means not reachable
            return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    def version(self) -> str:
        engine = self._admin()
        with engine.connect() as conn:
            text = str(conn.exec_driver_sql("SHOW server_version").scalar())
        engine.dispose()
        return f"PostgreSQL {text.split()[0]}"

    def url(self, label: str) -> str:
        import sqlalchemy as sa

        name = f"fm_bench_{self.tag}_{label}"
        return sa.make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def fresh(self, label: str) -> str:
        """An empty database ``label`` (dropped and created again: hundreds of
        schemas are slower to drop one by one)."""
        name = f"fm_bench_{self.tag}_{label}"
        engine = self._admin()
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        engine.dispose()
        self.created.add(name)
        return self.url(label)

    def drop_all(self) -> None:
        if not self.created:
            return
        engine = self._admin()
        with engine.connect() as conn:
            for name in sorted(self.created):
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        engine.dispose()


@dataclass
class Journal:
    """What one tenant's journal and version table say."""

    steps: int  # applied upgrade step rows
    step_runs: int  # distinct runs among them
    runs: int  # run rows
    version: str | None
    pids: tuple[int, ...]
    run_seconds: float | None  # the run row's finished_at - started_at


def _journal_of(conn: t.Any, schema: str | None) -> Journal:
    prefix = f'"{schema}".' if schema else ""
    rows = conn.exec_driver_sql(
        f"SELECT kind, state, direction, run_id, pid, started_at, finished_at "
        f"FROM {prefix}flask_migrate_journal"
    ).fetchall()
    steps = [r for r in rows if r[0] == "step" and r[1] == "applied" and r[2] == "upgrade"]
    runs = [r for r in rows if r[0] == "run"]
    seconds = None
    if len(runs) == 1 and runs[0][6] is not None:
        seconds = _as_seconds(runs[0][6]) - _as_seconds(runs[0][5])
    version = conn.exec_driver_sql(f"SELECT version_num FROM {prefix}alembic_version").scalar()
    return Journal(len(steps), len({r[3] for r in steps}), len(runs), version,
                   tuple(sorted({int(r[4]) for r in steps})), seconds)


def _as_seconds(value: t.Any) -> float:
    import datetime as dt

    if isinstance(value, str):  # SQLite
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return float(value.timestamp())


def journals_pg(url: str, count: int) -> dict[str, Journal]:
    engine = _engine(url)
    out = {}
    with engine.connect() as conn:
        for i in range(count):
            out[f"t{i:04d}"] = _journal_of(conn, f"tenant_{i:04d}")
    engine.dispose()
    return out


def journals_sqlite(folder: Path, count: int) -> dict[str, Journal]:
    out = {}
    for i in range(count):
        engine = _engine(f"sqlite:///{folder / f'tenant_{i:04d}.db'}")
        with engine.connect() as conn:
            out[f"t{i:04d}"] = _journal_of(conn, None)
        engine.dispose()
    return out


def check_journals(found: dict[str, Journal], count: int, revisions: int) -> list[str]:
    """What is wrong: every tenant migrated exactly once, to head."""
    head = rev_id(revisions - 1)
    problems = []
    if len(found) != count:
        problems.append(f"{len(found)} tenants found, {count} expected")
    for name, j in found.items():
        if (j.steps, j.step_runs, j.runs, j.version) != (revisions, 1, 1, head):
            problems.append(f"{name}: {j.steps} applied steps in {j.step_runs} run(s), "
                            f"{j.runs} run row(s), at {j.version} (expected {revisions} "
                            f"in 1, 1, at {head})")
    return problems


# -- the project and its commands -------------------------------------------------------


@dataclass
class Measured:
    """One measured command: the launcher's figures and the hook's."""

    sample: Sample
    self_kb: int | None = None  # the main process's own peak RSS
    children_kb: int | None = None  # its largest reaped child's (a worker)
    workers: int = 0


class Project:
    def __init__(self, root: Path, revisions: int, api: bool | None) -> None:
        self.root = root
        self.python = ours_python()
        self.flask = str(self.python.parent / "flask")
        self.dir = root / "project"
        self.dir.mkdir()
        (self.dir / "app.py").write_text(APP)
        (self.dir / "runner.py").write_text(RUNNER)
        self.site = root / "site"
        self.site.mkdir()
        (self.site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        run([self.flask, "db", "init"], cwd=self.dir,
            env=clean_env(FLASK_APP="app.py", FM_BENCH_DB_URL="sqlite:///init.db"))
        versions = self.dir / "migrations" / "versions"
        for name, source in history(revisions):
            (versions / name).write_text(source)
        # byte-compile now, so that no timed run pays for it
        compileall.compile_dir(versions, quiet=1)
        if api is None:
            help_text = run([self.flask, "db", "upgrade", "--help"], cwd=self.dir,
                            env=clean_env(FLASK_APP="app.py",
                                          FM_BENCH_DB_URL="sqlite:///init.db")).stdout
            api = "--all-tenants" not in help_text
        self.api = api
        self.figures = root / "figures"
        self.figures.mkdir()

    def argv(self, what: str, jobs: int = 1) -> list[str]:
        if self.api:
            runner = [str(self.python), "runner.py"]
            return runner + {"hello": ["hello"], "lone": ["lone"],
                             "tenants": ["tenants", str(jobs)]}[what]
        return {"hello": [self.flask, "hello"], "lone": [self.flask, "db", "upgrade"],
                "tenants": [self.flask, "db", "upgrade", "--all-tenants", "-j", str(jobs)]}[what]

    def env(self, url: str | None = None, **extra: str) -> dict[str, str]:
        if url is not None:
            extra["FM_BENCH_DB_URL"] = url
        return clean_env(FLASK_APP="app.py", PYTHONPATH=str(self.site), **extra)

    def measure(self, argv: list[str], env: dict[str, str]) -> Measured:
        figures = Path(tempfile.mkdtemp(dir=self.figures))
        sample = run(argv, cwd=self.dir, env={**env, "FM_BENCH_FIGURES": str(figures)})
        hooks = [json.loads(p.read_text()) for p in figures.glob("exit-*.json")]
        forks = sum(len(p.read_text().split()) for p in figures.glob("forks-*"))
        shutil.rmtree(figures)
        if len(hooks) != 1:
            return Measured(sample, workers=forks)
        return Measured(sample, hooks[0]["self_kb"], hooks[0]["children_kb"] or None, forks)


# -- the benchmark ------------------------------------------------------------------------


@dataclass
class Settings:
    tenants: int
    small: int
    revisions: int
    rounds: int
    reps: int  # runs of the lone upgrade and of the start-up per round
    small_backends: tuple[str, ...]
    jobs: int
    instances: int
    instance_jobs: int


@dataclass
class Backend:
    """One backend's databases: where the tenants live, and the lone database."""

    name: str  # "postgresql" or "sqlite"
    kind: str  # the tenants' kind: "schema" or "url"
    project: Project
    pg: Postgres | None = None
    folder: Path | None = None  # SQLite: where the instance folders go

    @property
    def sqlite_folder(self) -> Path:
        assert self.folder is not None
        return self.folder

    def fresh_tenants(self, label: str) -> tuple[dict[str, str], t.Callable[[int], dict[str, Journal]]]:
        """Fresh, empty tenants; the environment of a run for them; a journal reader."""
        if self.pg is not None:
            url = self.pg.fresh(label)
            return {"FM_BENCH_DB_URL": url, "FM_BENCH_KIND": "schema"}, \
                lambda n: journals_pg(url, n)
        assert self.folder is not None
        instance = self.folder / f"instance-{label}"
        shutil.rmtree(instance, ignore_errors=True)
        instance.mkdir()
        return ({"FM_BENCH_DB_URL": f"sqlite:///{self.folder / 'app.db'}",
                 "FM_BENCH_KIND": "url", "FM_BENCH_INSTANCE": str(instance)},
                lambda n: journals_sqlite(instance, n))

    def fresh_lone(self) -> tuple[str, t.Callable[[], Journal]]:
        if self.pg is not None:
            url = self.pg.fresh("lone")
        else:
            assert self.folder is not None
            path = self.folder / "lone.db"
            path.unlink(missing_ok=True)
            url = f"sqlite:///{path}"

        def journal() -> Journal:
            engine = _engine(url)
            with engine.connect() as conn:
                found = _journal_of(conn, None)
            engine.dispose()
            return found

        return url, journal


@dataclass
class Results:
    samples: dict[tuple[str, str], list[Measured]] = field(default_factory=dict)
    journal_runs: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    instances: dict[str, t.Any] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)

    def add(self, backend: str, key: str, m: Measured) -> None:
        self.samples.setdefault((backend, key), []).append(m)

    def walls(self, backend: str, key: str) -> list[float]:
        return [m.sample.wall for m in self.samples.get((backend, key), [])]


def progress(message: str) -> None:
    print(f"\r{message:<78}", end="", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, s: Settings, backends: list[Backend]) -> None:
        self.s, self.backends = s, backends
        self.results = Results()

    def cases(self, backend: str) -> list[tuple[str, int, int]]:
        """(key, tenants, jobs) of the tenant runs; the lone upgrade and start-up are extra."""
        s = self.s
        cases = [(f"tenants-{s.tenants}-j1", s.tenants, 1), (f"tenants-{s.tenants}-j{s.jobs}",
                                                              s.tenants, s.jobs)]
        if s.small != s.tenants and backend in s.small_backends:
            cases += [(f"tenants-{s.small}-j1", s.small, 1),
                      (f"tenants-{s.small}-j{s.jobs}", s.small, s.jobs)]
        return cases

    def run_backend(self, b: Backend) -> None:
        """Items 1, 2 and 4: the cases in a rotating order, ``rounds`` times."""
        s, p = self.s, b.project
        cases: list[tuple[str, t.Callable[[], None]]] = []
        for key, count, jobs in self.cases(b.name):
            def tenants_case(key: str = key, count: int = count, jobs: int = jobs) -> None:
                env, read = b.fresh_tenants("schemas" if b.pg else key)
                argv, env = p.argv("tenants", jobs), p.env(FM_BENCH_TENANTS=str(count), **env)
                m = p.measure(argv, env)
                self.verify(b, key, m, read(count), count)
                if count == s.tenants and jobs == 1:
                    # the same command again: every tenant is at head, nothing to do
                    again = p.measure(argv, env)
                    if again.sample.returncode or _outcome(again.sample).get("outcomes") not in (
                        None, {"up to date": count}
                    ):
                        raise SystemExit(f"{b.name}: the no-op run went wrong:\n"
                                         f"{again.sample.stdout[-1000:]}{again.sample.stderr[-2000:]}")
                    self.results.add(b.name, f"at-head-{count}-j1", again)
            cases.append((key, tenants_case))

        def lone_case() -> None:
            url, read = b.fresh_lone()
            m = p.measure(p.argv("lone"), p.env(url))
            j = read()
            problems = check_journals({"lone": j}, 1, s.revisions)
            if m.sample.returncode or problems:
                raise SystemExit(f"{b.name}: the lone upgrade went wrong: {problems}\n"
                                 f"{m.sample.stderr[-3000:]}")
            self.results.add(b.name, "lone", m)
            if j.run_seconds is not None:
                self.results.journal_runs.setdefault((b.name, "lone"), []).append(j.run_seconds)
            # the database is at head now: a no-op upgrade
            self.results.add(b.name, "noop-upgrade", p.measure(p.argv("lone"), p.env(url)))

        def hello_case() -> None:
            url = b.pg.url("lone") if b.pg else f"sqlite:///{b.sqlite_folder / 'app.db'}"
            self.results.add(b.name, "hello", p.measure(p.argv("hello"), p.env(url)))

        def repeated(case: t.Callable[[], None]) -> t.Callable[[], None]:
            def again() -> None:
                for _ in range(s.reps):
                    case()
            return again

        cases += [("lone", repeated(lone_case)), ("hello", repeated(hello_case))]
        began = time.perf_counter()
        for r in range(s.rounds):
            shift = r % len(cases)
            for name, case in cases[shift:] + cases[:shift]:
                progress(f"{b.name}: round {r + 1}/{s.rounds}: {name}")
                case()
        self.results.durations[b.name] = time.perf_counter() - began

    def verify(self, b: Backend, key: str, m: Measured, found: dict[str, Journal], count: int) -> None:
        problems = check_journals(found, count, self.s.revisions)
        if m.sample.returncode or problems:
            raise SystemExit(
                f"\n{b.name} {key}: exit status {m.sample.returncode}; "
                f"{len(problems)} tenant(s) wrong: {problems[:5]}\n{m.sample.stderr[-3000:]}"
            )
        self.results.add(b.name, key, m)
        seconds = [j.run_seconds for j in found.values() if j.run_seconds is not None]
        self.results.journal_runs.setdefault((b.name, key), []).extend(seconds)

    def instances(self, b: Backend) -> None:
        """Item 3: ``instances`` processes started together on the same fresh tenants."""
        s, p = self.s, b.project
        began = time.perf_counter()
        env, read = b.fresh_tenants("schemas")
        barrier = Path(tempfile.mkdtemp(dir=p.root))
        figures = [Path(tempfile.mkdtemp(dir=p.figures)) for _ in range(s.instances)]
        samples: list[Sample | BaseException] = [RuntimeError("not run")] * s.instances

        def start(i: int) -> None:
            try:
                samples[i] = run(
                    p.argv("tenants", s.instance_jobs), cwd=p.dir, check=False,
                    env=p.env(FM_BENCH_TENANTS=str(s.tenants), FM_BENCH_BARRIER=str(barrier),
                              FM_BENCH_FIGURES=str(figures[i]), **env),
                )
            except BaseException as exc:  # noqa: BLE001 - reported below
                samples[i] = exc

        threads = [threading.Thread(target=start, args=(i,)) for i in range(s.instances)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 300
        while len(list(barrier.glob("ready-*"))) < s.instances:
            if time.monotonic() > deadline or not all(th.is_alive() for th in threads):
                (barrier / "go").touch()
                for thread in threads:
                    thread.join()
                raise SystemExit(f"the instances did not all get ready: {samples}")
            time.sleep(0.005)
        go = time.time()
        (barrier / "go").touch()
        for thread in threads:
            thread.join()
        exits: list[dict[str, t.Any] | None] = []
        owner: dict[int, int] = {}  # pid (instance or worker) -> instance number
        for i, folder in enumerate(figures):
            hooks = [json.loads(x.read_text()) for x in folder.glob("exit-*.json")]
            exits.append(hooks[0] if len(hooks) == 1 else None)
            for x in folder.glob("exit-*.json"):
                owner[int(json.loads(x.read_text())["pid"])] = i
            for x in folder.glob("forks-*"):
                owner.update({int(pid): i for pid in x.read_text().split()})
        found = read(s.tenants)
        problems = check_journals(found, s.tenants, s.revisions)
        migrated: Counter[int] = Counter()
        for name, j in found.items():
            by = {owner.get(pid, -1) for pid in j.pids}
            if len(by) != 1:
                problems.append(f"{name}: steps from processes {j.pids}")
            for i in by:
                migrated[i] += 1
        if migrated.get(-1):
            problems.append(f"{migrated[-1]} tenants migrated by an unknown process")
        rows: list[dict[str, t.Any]] = []
        for i, sample in enumerate(samples):
            if isinstance(sample, BaseException):
                problems.append(f"instance {i + 1}: {sample!r}")
                rows.append({"exit": None, "migrated": migrated.get(i, 0), "seconds": None})
                continue
            if sample.returncode:
                problems.append(f"instance {i + 1} exited {sample.returncode}: "
                                f"{sample.stderr[-1500:]}")
            outcome = _outcome(sample)
            hook = exits[i]
            rows.append({
                "exit": sample.returncode,
                "migrated": migrated.get(i, 0),
                "outcomes": outcome.get("outcomes"),
                "waited": outcome.get("waited"),
                "seconds": hook["exit"] - go if hook else None,
                "cpu": sample.cpu,
            })
        walls = [r["seconds"] for r in rows if r["seconds"] is not None]
        self.results.instances = {
            "rows": rows,
            "wall": max(walls) if len(walls) == s.instances else float("nan"),
            "problems": problems,
            "exactly_once": sum(1 for j in found.values()
                                if (j.steps, j.step_runs, j.runs) == (s.revisions, 1, 1)),
        }
        shutil.rmtree(barrier)
        for folder in figures:
            shutil.rmtree(folder)
        self.results.durations["instances"] = time.perf_counter() - began


def _outcome(sample: Sample) -> dict[str, t.Any]:
    """The outcome counts and the tenants waited for, as the command reported them."""
    lines = sample.stdout.strip().splitlines()
    try:  # the runner: a JSON line
        return dict(json.loads(lines[-1]))
    except (ValueError, IndexError):
        pass
    # the CLI: "200 tenants: 150 up to date, 50 migrated (12.3 s, 1 worker)", and a
    # table whose result column says "... (waited for another process)"
    found = re.match(r"^\d+ tenants?: (.*) \([^()]*\)$", lines[-1]) if lines else None
    if not found:
        return {}
    outcomes = {}
    for part in found.group(1).split(", "):
        n, _, outcome = part.partition(" ")
        outcomes[outcome] = int(n)
    return {"outcomes": outcomes,
            "waited": sum(1 for line in lines if line.endswith("(waited for another process)"))}


# -- the report ------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cell(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0] * scale:.{digits}f}"
    return (f"{med(values) * scale:.{digits}f} [{min(values) * scale:.{digits}f}-"
            f"{max(values) * scale:.{digits}f}]")


def mb(kb: list[int | None]) -> str:
    values = [k / 1024 for k in kb if k]
    return f"{max(values):.1f}" if values else "n/a"


def fx(value: float, digits: int = 2) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def report(bench: Bench, context: dict[str, t.Any]) -> str:
    s, res = bench.s, bench.results
    lines = [
        f"# Multi-tenant upgrade (issue 12), {context['date']}",
        "",
        f"{context['machine']}; {context['versions']}; {context['servers']}.",
        f"History: {s.revisions} revisions (a table with a foreign key, a unique constraint "
        f"and an index; two columns; a column and an index). Commands: "
        f"{context['commands']}. Rounds: {s.rounds} ({s.reps} runs of the lone upgrade and of the "
        "start-up per round; medians [min-max] where there are several); each run starts from empty tenants and is "
        "checked afterwards (journal: every tenant's revisions applied once, in one run).",
        "",
        "## 1. Whole upgrade of all tenants, empty to head",
        "",
    ]
    rows = []
    for b in bench.backends:
        keys = [(key, count, jobs, "empty to head") for key, count, jobs in bench.cases(b.name)]
        keys.insert(1, (f"at-head-{s.tenants}-j1", s.tenants, 1, "at head: nothing to do"))
        for key, count, jobs, what in keys:
            ms = res.samples.get((b.name, key), [])
            if not ms:
                continue
            walls = [m.sample.wall for m in ms]
            journal = res.journal_runs.get((b.name, key), [])
            rows.append([
                f"{b.name} ({'schemas' if b.kind == 'schema' else 'databases'})", str(count),
                str(jobs), what, cell(walls), cell([m.sample.cpu for m in ms]),
                fx(med(walls) / count * 1000, 1), fx(med(journal) * 1000, 1) if journal else "-",
                mb([m.sample.maxrss_kb for m in ms]), mb([m.self_kb for m in ms]),
                mb([m.children_kb for m in ms]) if jobs > 1 else "-",
            ])
    lines += [table(["backend (tenants)", "tenants", "-j", "upgrade", "wall, s",
                     "CPU, s (all processes)", "wall per tenant, ms",
                     "journal run per tenant, ms (median)", "peak RSS, MB",
                     "main process, MB", "largest worker, MB"], rows), ""]
    speedups = []
    for b in bench.backends:
        one = med(res.walls(b.name, f"tenants-{s.tenants}-j1"))
        many = med(res.walls(b.name, f"tenants-{s.tenants}-j{s.jobs}"))
        speedups.append(f"{b.name} {fx(one / many)}x")
    lines += [f"Speed-up of -j {s.jobs} over -j 1 at {s.tenants} tenants: "
              + ", ".join(speedups) + f" (on {os.cpu_count()} CPUs).", "",
              "Peak RSS: the whole command's from `wait4` (the maximum of the main process and "
              "its reaped workers); the main process's own (`RUSAGE_SELF`) and its largest "
              "worker's (`RUSAGE_CHILDREN`) from an exit hook. A forked worker's RSS counts the "
              "pages it shares, copy-on-write, with the main process. The journal's run rows "
              "time each tenant's run inside the process, from its start to its end.", ""]

    lines += ["## 2. Per-tenant cost at -j 1 against a lone upgrade", ""]
    rows = []
    summary = {}
    for b in bench.backends:
        hello = med(res.walls(b.name, "hello"))
        lone = med(res.walls(b.name, "lone"))
        noop = med(res.walls(b.name, "noop-upgrade"))
        big = med(res.walls(b.name, f"tenants-{s.tenants}-j1"))
        small = med(res.walls(b.name, f"tenants-{s.small}-j1"))
        per = (big - hello) / s.tenants
        marginal = (big - small) / (s.tenants - s.small) if s.tenants != s.small else float("nan")
        value = per / (lone - hello)
        summary[b.name] = value
        lone_journal = med(res.journal_runs.get((b.name, "lone"), []))
        tenant_journal = med(res.journal_runs.get((b.name, f"tenants-{s.tenants}-j1"), []))
        rows.append([
            b.name, cell(res.walls(b.name, "hello")), cell(res.walls(b.name, "lone")),
            fx((lone - hello) * 1000, 1), fx(per * 1000, 1), fx(value),
            "PASS" if value <= TARGET else "MISS",
            fx(marginal * 1000, 1), fx((lone - noop) * 1000, 1),
            f"{fx(tenant_journal * 1000, 1)} / {fx(lone_journal * 1000, 1)}",
        ])
    lines += [table(["backend", "start-up (no-op command), s", "lone upgrade, s",
                     "lone - start-up, ms", f"per tenant: ({s.tenants} tenants - start-up) / "
                     f"{s.tenants}, ms", "ratio", f"target <= {TARGET}",
                     f"marginal per tenant ({s.small} to {s.tenants}), ms",
                     "lone - no-op upgrade, ms", "journal run, tenant / lone, ms"], rows), ""]
    lines += ["The target compares whole processes net of the app's start-up (a no-op command "
              "of the same app, timed in the same rotation): the tenants' fixed cost (importing "
              "Alembic, loading the migrations folder) is shared by all of them. The marginal "
              "cost per tenant, `(T(" + str(s.tenants) + ") - T(" + str(s.small) + ")) / "
              + str(s.tenants - s.small) + "`, cancels every fixed cost; beside it, the lone "
              "upgrade net of a no-op `upgrade` on the same database (which pays the imports, "
              "the migrations folder, the connection and the lock).", ""]

    inst = res.instances
    if inst:
        lines += [f"## 3. {s.instances} instances started together on the {s.tenants} PostgreSQL "
                  f"schema tenants (each `-j {s.instance_jobs}`)", ""]
        rows = []
        for i, r in enumerate(inst["rows"]):
            found = (s.tenants - r["migrated"]) if r["migrated"] is not None else None
            outcomes = r.get("outcomes") or {}
            others = ", ".join(f"{v} {k}" for k, v in sorted(outcomes.items()) if k != "migrated")
            detail = (f" ({others}; {r['waited']} found busy first, taken up again at the end)"
                      if outcomes else "")
            rows.append([str(i + 1), str(r["exit"]), str(r["migrated"]),
                         f"{found}{detail}", fx(r["seconds"] or float("nan")),
                         fx(r.get("cpu") or float("nan"))])
        lines += [table(["instance", "exit status", "tenants migrated", "found done",
                         "go to exit, s", "CPU, s"], rows), ""]
        ok = not inst["problems"]
        cpu = sum(r.get("cpu") or 0.0 for r in inst["rows"])
        one = med([m.sample.cpu for m in res.samples.get(
            ("postgresql", f"tenants-{s.tenants}-j{s.jobs}"), [])])
        lines += [f"Wall time from the barrier's release to the last exit: {fx(inst['wall'])} s "
                  f"(one command with -j {s.jobs}: "
                  f"{fx(med(res.walls('postgresql', f'tenants-{s.tenants}-j{s.jobs}')))} s); "
                  f"CPU of the {s.instances} instances together: {fx(cpu)} s (one command "
                  f"with -j {s.jobs}: {fx(one)} s). "
                  f"Tenants migrated exactly once ({s.revisions} applied steps, one run): "
                  f"{inst['exactly_once']}/{s.tenants}; every instance exited 0: "
                  f"{'yes' if all(r['exit'] == 0 for r in inst['rows']) else 'NO'}: "
                  f"**{'PASS' if ok else 'FAIL'}**", ""]
        if not ok:
            lines += ["Problems: " + "; ".join(inst["problems"][:10]), ""]
        lines += ["Tenants migrated per instance come from the journal (each step row's process "
                  "id, a worker's mapped to its instance); \"found done\" is the rest of the "
                  "tenants, with the outcomes the command's summary counts.", ""]
    lines += ["Seconds per part of the run: "
              + ", ".join(f"{k} {v:.0f}" for k, v in res.durations.items()) + ".", ""]
    context["targets"] = summary
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="10 tenants (and 4 on SQLite), 5 revisions, 1 round, 1 run of the lone "
                        "upgrade and of the start-up")
    parser.add_argument("--tenants", type=int, help="tenants of the main runs (default 200)")
    parser.add_argument("--small", type=int,
                        help="tenants of the smaller runs, for the marginal cost and RSS "
                        "(default 50)")
    parser.add_argument("--revisions", type=int, help="revisions in the history (default 30)")
    parser.add_argument("--pg-small", action="store_true",
                        help="also run the smaller number of tenants on PostgreSQL (~1 min more; "
                        "by default only on SQLite)")
    parser.add_argument("--rounds", type=int, help="rounds of each case (default 1)")
    parser.add_argument("--reps", type=int, help="runs of the lone upgrade (and its no-op "
                        "upgrade) and of the start-up per round (default 3)")
    parser.add_argument("-j", "--jobs", type=int, default=4, help="the parallel runs' -j (4)")
    parser.add_argument("--instances", type=int, default=4,
                        help="instances started together, item 3 (4)")
    parser.add_argument("--instance-jobs", type=int, default=1, help="each instance's -j (1)")
    parser.add_argument("--pg-url", default=os.environ.get("FM_BENCH_PG_URL", DEFAULT_PG_URL),
                        help="PostgreSQL server (default FM_BENCH_PG_URL or " + DEFAULT_PG_URL
                        + "); databases fm_bench_<random>_* are created and dropped")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--no-sqlite", action="store_true", help="skip SQLite")
    parser.add_argument("--db-dir", help="folder for the SQLite files (default: a temporary "
                        "folder; /dev/shm removes the disk's fsync latency)")
    parser.add_argument("--api", action="store_true",
                        help="run operations.upgrade() through a runner script even when the "
                        "CLI has --all-tenants")
    parser.add_argument("--report", help="also write the Markdown report to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    def pick(value: int | None, default: int, tiny: int) -> int:
        return value if value is not None else (tiny if args.quick else default)

    tenants = pick(args.tenants, 200, 10)
    s = Settings(tenants=tenants, small=min(tenants, pick(args.small, 50, 4)),
                 revisions=pick(args.revisions, 30, 5), rounds=pick(args.rounds, 1, 1),
                 reps=pick(args.reps, 3, 1),
                 small_backends=("postgresql", "sqlite") if args.pg_small
                 else ("sqlite",),
                 jobs=args.jobs, instances=args.instances, instance_jobs=args.instance_jobs)
    tag = uuid.uuid4().hex[:8]
    root = Path(tempfile.mkdtemp(prefix="fm-bench-tenants-"))
    folder = Path(tempfile.mkdtemp(prefix=f"fm-bench-tenants-{tag}-", dir=args.db_dir or root))
    servers = []
    pg = None
    try:
        project = Project(root, s.revisions, None if not args.api else True)
        backends = []
        if not args.no_pg:
            candidate = Postgres(args.pg_url, tag)
            problem = candidate.problem()
            if problem is None:
                pg = candidate
                servers.append(pg.version())
                backends.append(Backend("postgresql", "schema", project, pg=pg))
            else:
                servers.append(f"PostgreSQL skipped, not reachable at {args.pg_url}: {problem}")
                print(servers[-1], file=sys.stderr)
        else:
            servers.append("PostgreSQL skipped (--no-pg)")
        if not args.no_sqlite:
            import sqlite3

            servers.append(f"SQLite {sqlite3.sqlite_version}"
                           + (f" in {args.db_dir}" if args.db_dir else ""))
            backends.append(Backend("sqlite", "url", project, folder=folder))
        if not backends:
            sys.exit("no backend to run")
        bench = Bench(s, backends)
        for b in backends:
            bench.run_backend(b)
        if pg is not None:
            progress(f"postgresql: {s.instances} instances together")
            bench.instances(backends[0])
        print(file=sys.stderr)
    finally:
        if pg is not None:
            pg.drop_all()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
    versions = package_versions(ours_python(), ["psycopg"])
    commands = (
        "`python runner.py tenants N` (`operations.upgrade(tenants=\"all\", jobs=N)` in the app "
        "context; the lone upgrade and the start-up through the same runner)" if project.api
        else "`flask db upgrade --all-tenants -j N`, `flask db upgrade`, `flask hello`"
    )
    context = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_line(),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "servers": "; ".join(servers),
        "commands": commands,
    }
    text = report(bench, context)
    text += f"\nThe whole benchmark took {time.perf_counter() - started:.0f} s.\n"
    print(text)
    if args.report:
        Path(args.report).write_text(text)
    failed = bool(bench.results.instances.get("problems"))
    return 1 if failed else 0


if __name__ == "__main__":
    run_under_ours("psycopg", "sqlalchemy")
    sys.exit(main())
