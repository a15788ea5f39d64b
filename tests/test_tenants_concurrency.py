"""``flask db upgrade --all-tenants`` against other processes: busy tenants, instances at once, Ctrl-C, --fail-fast.

Every test runs the real ``flask`` entry point in subprocesses against real
databases, with the tenants declared by the application (``Migrate(app, db,
tenants=...)``) in one of four ways (:data:`KINDS`): SQLite files, PostgreSQL
schemas of the application's database, PostgreSQL databases, MariaDB
databases.

The history is ``r1``..``r3``; each revision creates a table ``t_<rev>`` and
then calls ``_step()``, which, for the tenant it runs for, leaves a trace (a
file ``<tenant>.<rev>`` in ``FM_TEST_TRACE``) and follows the plan in
``FM_TEST_PLAN``: wait until a file exists (a gate), fail on purpose. The
interleavings are arranged with those traces and gates, with migration locks
the test holds itself, and with a barrier in the application's tenants
function; never with sleeps of the test (it only polls, with generous
deadlines, for things that must happen), so that the assertions hold on a
busy machine and for any interleaving the tests leave open.

The processes are the real ``flask`` console script, except in the race of
several instances, where they are forked from a process that has imported
the libraries and then call ``flask.cli.main()`` (what the script does), to
spare a second of CPU per process (see ``ZYGOTE``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import typing as t
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import FLASK, JOURNAL, Database, create_app, run_flask, write_revision
from flask_migrate import Tenant, locking, operations

REVISIONS = ["r1", "r2", "r3"]
HEAD = REVISIONS[-1]
WAIT_LINE = "Waiting for the migration lock"
#: How long the test waits for something that must happen (a busy machine is slow, not stuck).
DEADLINE = 120.0

#: How the tenants are declared: ``(backend of the tenants, schemas?)``
KINDS = {
    "sqlite": ("sqlite", False),
    "pg-schemas": ("postgresql", True),
    "pg-databases": ("postgresql", False),
    "mariadb-databases": ("mariadb", False),
}

APP = """\
import json
import os
import time

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_migrate import Migrate, Tenant

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["TEST_DATABASE_URL"]
db = SQLAlchemy(app)


def tenants():
    # FM_TEST_BARRIER: say "ready", then wait until the test says "go"
    barrier = os.environ.get("FM_TEST_BARRIER")
    if barrier:
        open(os.path.join(barrier, "ready-%d" % os.getpid()), "w").close()
        deadline = time.monotonic() + 120
        while not os.path.exists(os.path.join(barrier, "go")):
            if time.monotonic() > deadline:
                raise RuntimeError("the test never opened the barrier")
            time.sleep(0.005)
    return [
        Tenant(spec["name"], url=spec.get("url"), schema=spec.get("schema"))
        for spec in json.loads(os.environ["FM_TEST_TENANTS"])
    ]


migrate = Migrate(app, db, tenants=tenants)
"""

STEP = """\
import json

from flask import current_app


def _step():
    tenant = current_app.extensions["migrate"].tenant.name
    trace = os.environ.get("FM_TEST_TRACE")
    if trace:
        open(os.path.join(trace, tenant + "." + revision), "w").close()
    plan = json.loads(os.environ.get("FM_TEST_PLAN") or "{}").get(tenant + ":" + revision, {})
    gate = plan.get("gate")
    deadline = time.monotonic() + 120
    while gate and not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise RuntimeError("the test never opened the gate " + gate)
        time.sleep(0.01)
    if plan.get("fail"):
        raise RuntimeError("revision " + revision + " failed on purpose for " + tenant)
"""


def write_history(versions: Path) -> None:
    down = None
    for rev in REVISIONS:
        write_revision(
            versions, rev, down,
            upgrade=f'op.create_table("t_{rev}", sa.Column("id", sa.Integer, primary_key=True))\n_step()',
            downgrade=f'op.drop_table("t_{rev}")',
            preamble=STEP,
        )
        down = rev


# -- the tenants, as the test sees them --------------------------------------------------------


@dataclass
class Tenancy:
    """The application's database and its tenants, with ways to look at them from outside."""

    kind: str
    app_url: str
    #: name -> url (databases) or schema
    where: dict[str, str]
    schemas: bool
    engines: dict[str, sa.Engine] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.where)

    def spec(self) -> str:
        key = "schema" if self.schemas else "url"
        return json.dumps([{"name": name, key: value} for name, value in self.where.items()])

    def engine(self, name: str) -> sa.Engine:
        url = self.app_url if self.schemas else self.where[name]
        if url not in self.engines:
            # pooled: the tests poll; disposed before the databases are dropped
            self.engines[url] = sa.create_engine(url)
        return self.engines[url]

    def schema(self, name: str) -> str | None:
        return self.where[name] if self.schemas else None

    def _table(self, name: str, table: str) -> str:
        schema = self.schema(name)
        return f'"{schema}".{table}' if schema else table

    def versions(self, name: str) -> list[str]:
        """The tenant's version table ([] when it has none yet)."""
        with self.engine(name).connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version", schema=self.schema(name)):
                return []
            rows = conn.execute(sa.text(f"SELECT version_num FROM {self._table(name, 'alembic_version')}"))
            return sorted(r[0] for r in rows)

    def tables(self, name: str) -> set[str]:
        with self.engine(name).connect() as conn:
            return set(sa.inspect(conn).get_table_names(schema=self.schema(name)))

    def journal(self, name: str) -> list[tuple[str, str | None, str | None, str]]:
        """The tenant's journal rows: (kind, direction, revision, state)."""
        with self.engine(name).connect() as conn:
            if not sa.inspect(conn).has_table(JOURNAL, schema=self.schema(name)):
                return []
            return [
                tuple(row)  # type: ignore[misc]
                for row in conn.execute(sa.text(
                    f"SELECT kind, direction, revision, state FROM {self._table(name, JOURNAL)} ORDER BY id"
                ))
            ]

    def assert_at_head_once(self, name: str) -> None:
        """At head, each revision applied exactly once (one step row each), by one finished run."""
        assert self.versions(name) == [HEAD], name
        rows = self.journal(name)
        steps = [(rev, state) for kind, direction, rev, state in rows
                 if kind == "step" and direction == "upgrade"]
        counts = {rev: [s for r, s in steps if r == rev] for rev in REVISIONS}
        assert counts == {rev: ["applied"] for rev in REVISIONS}, (name, rows)
        assert [state for kind, _, _, state in rows if kind == "step" and state != "applied"] == [], rows

    @contextlib.contextmanager
    def hold_lock(self, name: str, timeout: float = 0) -> Iterator[None]:
        """Hold the tenant's migration lock on a connection of the test's own, as a run takes it."""
        with self.engine(name).connect() as conn:
            lock = locking.lock_for(conn, locking.lock_key("alembic_version", self.schema(name)))
            assert lock is not None
            lock.acquire(conn, timeout, None)
            try:
                yield
            finally:
                if isinstance(lock, locking.SQLiteFileLock):
                    lock.release()
                else:
                    lock.release_dbapi(conn.connection.dbapi_connection)

    def assert_locks_free(self) -> None:
        for name in self.names:
            try:
                with self.hold_lock(name):
                    pass
            except locking.LockTimeout as exc:  # pragma: no cover - the failure
                raise AssertionError(f"{name}: {exc}") from None

    def dispose(self) -> None:
        for engine in self.engines.values():
            engine.dispose()


@pytest.fixture
def make_tenancy(
    databases_on: Callable[[str], Database], tmp_path: Path
) -> Iterator[Callable[[str, list[str]], Tenancy]]:
    made: list[Tenancy] = []

    def make(kind: str, names: list[str]) -> Tenancy:
        backend, schemas = KINDS[kind]
        if schemas:
            app_url = databases_on(backend).url
            where = {name: f"tenant_{name}" for name in names}
        else:
            app_url = f"sqlite:///{tmp_path / 'app.db'}"
            where = {name: databases_on(backend).url for name in names}
        tenancy = Tenancy(kind, app_url, where, schemas)
        made.append(tenancy)
        return tenancy

    yield make
    for tenancy in made:
        tenancy.dispose()


# -- the project and its ``flask`` processes --------------------------------------------------


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"exited {self.returncode}\n--- stdout:\n{self.stdout}\n--- stderr:\n{self.stderr}"


@dataclass
class Project:
    root: Path
    #: the processes started, each with whether it leads a process group of its own
    started: list[tuple[subprocess.Popen[str], bool]] = field(default_factory=list)

    def env(self, tenancy: Tenancy, **extra: str) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("FLASK_", "TEST_BIND_", "FM_TEST_"))
        }
        env.update(
            FLASK_APP="app.py", TEST_DATABASE_URL=tenancy.app_url,
            FM_TEST_TENANTS=tenancy.spec(), PYTHONDONTWRITEBYTECODE="1",
        )
        env.update(extra)
        return env

    def start(
        self, tenancy: Tenancy, *args: str, new_session: bool = False, **extra: str
    ) -> subprocess.Popen[str]:
        """Start the real ``flask`` command now (in a session of its own: ``new_session``)."""
        proc = subprocess.Popen(
            [FLASK, *args],
            cwd=self.root,
            env=self.env(tenancy, **extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=new_session,
            # a child of a non-interactive shell may inherit SIGINT ignored
            preexec_fn=_sigint_default,
        )
        self.started.append((proc, new_session))
        return proc

    def kill_leftovers(self) -> None:
        """After a failed test: no process of its own outlives it."""
        for proc, group in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL) if group else proc.kill()
                proc.communicate()

    def run(self, tenancy: Tenancy, *args: str, **extra: str) -> Finished:
        return finish(self.start(tenancy, *args, **extra))


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def upgrade_in_process(project: Project, tenancy: Tenancy, revision: str) -> None:
    """Bring every tenant to ``revision`` through the API, in the test process (cheaper than a ``flask``)."""
    key = "schema" if tenancy.schemas else "url"
    declared = [Tenant(name, **{key: value}) for name, value in tenancy.where.items()]
    app, db, _ = create_app(
        tenancy.app_url, project.root / "migrations", models="none", tenants=lambda: declared
    )
    try:
        with app.app_context():
            results = operations.upgrade(
                str(project.root / "migrations"), revision, tenants="all", jobs=1
            )
    finally:
        with app.app_context():
            db.engine.dispose()
    assert [(r.tenant, r.outcome) for r in results] == [(n, "migrated") for n in tenancy.names], results


# Starting a ``flask`` process costs about a second of CPU, mostly imports;
# for the races, a "zygote" imports the libraries once and forks the
# processes, each of which then calls ``flask.cli.main()``, exactly what the
# ``flask`` console script does (as in test_concurrency.py): real, separate
# processes, each loading the app, the migrations folder and its connections.
ZYGOTE = """\
import json
import os
import signal
import sys

import alembic.command
import flask.cli
import sqlalchemy

import flask_migrate.cli

for driver in ("psycopg", "pymysql"):
    __import__(driver)


def child(index, request, spec):
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(spec["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, suffix in ((1, "out"), (2, "err")):
        out = os.open(os.path.join(request["dir"], f"{index}.{suffix}"),
                      os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.argv = ["flask", *spec["argv"]]
    try:
        code = flask.cli.main()
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


for line in sys.stdin:
    request = json.loads(line)
    pids = []
    for index, spec in enumerate(request["children"]):
        pid = os.fork()
        if pid == 0:
            child(index, request, spec)
        pids.append(pid)
    results = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    print(json.dumps(results), flush=True)
"""


class Zygote:
    """Forks ``flask`` processes from one that has imported the libraries (see ``ZYGOTE``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "zygote.py").write_text(ZYGOTE)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "FM_TEST_"))}
        self.proc = subprocess.Popen(
            [sys.executable, "zygote.py"], cwd=root, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def start(self, cwd: Path, children: list[tuple[list[str], dict[str, str]]]) -> Callable[[], list[Finished]]:
        """Fork a process per (argv, environment) now; returns what waits for them all."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        out = self.root / f"run-{uuid.uuid4().hex[:8]}"
        out.mkdir()
        request = {"cwd": str(cwd), "dir": str(out),
                   "children": [{"argv": argv, "env": env} for argv, env in children]}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

        def wait() -> list[Finished]:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            assert line, "the zygote died"
            finished = [
                Finished(code, (out / f"{i}.out").read_text(), (out / f"{i}.err").read_text())
                for i, code in enumerate(json.loads(line))
            ]
            shutil.rmtree(out)
            return finished

        return wait

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    made = Zygote(tmp_path_factory.mktemp("tenants-zygote"))
    yield made
    made.close()


def finish(proc: subprocess.Popen[str], out: str = "", err: str = "") -> Finished:
    """Wait for the process; ``out``/``err``: what the test already read of its output."""
    try:
        stdout, stderr = proc.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:  # pragma: no cover - the failure
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(f"still running after {DEADLINE} s:\n{out}{stdout}\n{err}{stderr}") from None
    return Finished(proc.returncode, out + stdout, err + stderr)


def read_until(stream: t.IO[str] | None, text: str, proc: subprocess.Popen[str]) -> str:
    """Read ``stream`` up to the first line containing ``text``; returns what was read.

    Every process of these tests ends on its own (the gates and lock waits
    are bounded), so a blocking read cannot hang the test for good.
    """
    assert stream is not None
    read = ""
    while True:
        line = stream.readline()
        if not line:
            rest = finish(proc)
            raise AssertionError(f"exited {rest.returncode} without saying {text!r}:\n{read}\n{rest.describe()}")
        read += line
        if text in line:
            return read


def wait_until(
    condition: Callable[[], bool], procs: list[subprocess.Popen[str]], what: str
) -> None:
    """Poll ``condition`` until it holds, while the processes still run."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"exited before {what}:\n{finish(proc).describe()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {DEADLINE} s")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def project_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tenants-concurrency") / "project"
    root.mkdir()
    (root / "app.py").write_text(APP)
    result = run_flask(
        root, "db", "init", url=f"sqlite:///{root / 'init.db'}", env={"FM_TEST_TENANTS": "[]"}
    )
    assert result.returncode == 0, result.stderr
    write_history(root / "migrations" / "versions")
    return root


@pytest.fixture
def project(
    project_template: Path, tmp_path: Path, databases_on: Callable[[str], Database]
) -> Iterator[Project]:
    # (after databases_on: its processes are gone before the databases are dropped)
    root = tmp_path / "project"
    shutil.copytree(project_template, root, ignore=shutil.ignore_patterns("*.db", "*-lock", "__pycache__"))
    made = Project(root)
    yield made
    made.kill_leftovers()


# -- what the command printed ------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    before: str
    after: str
    duration: str
    result: str


def table(output: str) -> dict[str, Row]:
    """The summary table of a command for tenants: tenant -> its row."""
    lines = output.splitlines()
    [start] = [i for i, line in enumerate(lines) if re.match(r"^tenant\s+from\s+to\s+duration\s+result$", line)]
    rows: dict[str, Row] = {}
    for line in lines[start + 1:]:
        if re.match(r"^\d+ tenants?: ", line):
            break
        name, before, after, duration, result = re.split(r"\s{2,}", line.strip(), maxsplit=4)
        rows[name] = Row(before, after, duration, result)
    return rows


def error_lines(result: Finished) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("Error: ")]


def traces(trace: Path) -> set[str]:
    return {p.name for p in trace.iterdir()}


def assert_group_gone(pgid: int) -> None:
    """No process of the command's process group (its forked workers) is left."""
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


# -- 1. a tenant whose lock another process holds -------------------------------------------

BUSY_CASES = [
    ("sqlite", 1), ("sqlite", 2),
    ("pg-schemas", 2),
    ("pg-databases", 1),
    ("mariadb-databases", 2),
]


@pytest.mark.parametrize("kind,jobs", BUSY_CASES, ids=[f"{k}-j{j}" for k, j in BUSY_CASES])
def test_a_busy_tenant_is_put_aside_and_taken_up_at_the_end(
    kind: str, jobs: int, project: Project, make_tenancy: Callable[[str, list[str]], Tenancy]
) -> None:
    """While the test holds tenant x's lock, every other tenant is migrated; x waits for its lock at the end, and is migrated once it is released."""
    # x comes first: a first pass that waited for it would hold up all the others
    tenancy = make_tenancy(kind, ["x", "b", "c", "d"])
    others = ["b", "c", "d"]
    with tenancy.hold_lock("x"):
        proc = project.start(
            tenancy, "db", "upgrade", "--all-tenants", "-j", str(jobs), "--lock-timeout", str(int(DEADLINE))
        )
        wait_until(
            lambda: all(tenancy.versions(name) == [HEAD] for name in others),
            [proc], "every other tenant is at head",
        )
        assert tenancy.versions("x") == []
        # then it takes x up again, waiting for its lock as any run does
        waited = read_until(proc.stderr, WAIT_LINE, proc)
        [wait_line] = [line for line in waited.splitlines() if WAIT_LINE in line]
        if kind != "mariadb-databases":  # (MariaDB names the server connection)
            assert f"pid {os.getpid()} on host {socket.gethostname()}" in wait_line, wait_line
        assert tenancy.versions("x") == []
    result = finish(proc, err=waited)
    assert result.returncode == 0, result.describe()
    assert error_lines(result) == []
    assert result.stderr.count(WAIT_LINE) == 1, result.stderr

    rows = table(result.stdout)
    assert list(rows) == ["x", *others]
    assert rows["x"] == Row("<base>", HEAD, rows["x"].duration, "migrated (waited for another process)")
    for name in others:
        assert rows[name] == Row("<base>", HEAD, rows[name].duration, "migrated"), rows[name]
    # x finished last, and its line says why
    progress = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(progress) == 4 and progress[-1].startswith("[4/4] x: migrated"), progress
    assert progress[-1].endswith(", after another process released it"), progress[-1]
    assert re.search(r"^4 tenants: 4 migrated \(.*, %d workers?\)$" % jobs, result.stdout, re.M), result.stdout

    for name in tenancy.names:
        tenancy.assert_at_head_once(name)
    tenancy.assert_locks_free()


@pytest.mark.parametrize("kind,jobs", [("sqlite", 2), ("mariadb-databases", 1)])
def test_interrupted_while_waiting_for_a_busy_tenant(
    kind: str, jobs: int, project: Project, make_tenancy: Callable[[str, list[str]], Tenancy]
) -> None:
    """Ctrl-C while the put-aside tenant waits for its lock at the end: exit 1, the others stay migrated, that tenant is 'interrupted' and untouched, no worker left."""
    tenancy = make_tenancy(kind, ["x", "b", "c"])
    with tenancy.hold_lock("x"):
        proc = project.start(tenancy, "db", "upgrade", "--all-tenants", "-j", str(jobs), new_session=True)
        waited = read_until(proc.stderr, WAIT_LINE, proc)
        os.killpg(proc.pid, signal.SIGINT)
        result = finish(proc, err=waited)
        assert result.returncode == 1, result.describe()
        assert error_lines(result) == [
            "Error: Interrupted by SIGINT. What was in progress was rolled back where the database "
            "allows it; locks were released."
        ], result.describe()
        assert_group_gone(proc.pid)
        rows = table(result.stdout)
        assert list(rows) == tenancy.names
        assert rows["x"].result.startswith("interrupted"), rows["x"]
        for name in ("b", "c"):
            assert rows[name] == Row("<base>", HEAD, rows[name].duration, "migrated"), rows[name]
            tenancy.assert_at_head_once(name)
        assert tenancy.versions("x") == [] and tenancy.journal("x") == []
    tenancy.assert_locks_free()


# -- 2. several instances at once ---------------------------------------------------------------

INSTANCE_JOBS = ["1", "2", "2", "1"]


@pytest.mark.xdist_group("heavy")
@pytest.mark.parametrize("kind", list(KINDS))
def test_instances_at_once_share_the_tenants(
    kind: str, project: Project, make_tenancy: Callable[[str, list[str]], Tenancy], tmp_path: Path,
    zygote: Zygote,
) -> None:
    """4 'upgrade --all-tenants' released together: all exit 0, each tenant migrated by exactly one of them, each revision applied once."""
    tenancy = make_tenancy(kind, [f"t{i}" for i in range(5)])
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = project.env(tenancy, FM_TEST_BARRIER=str(barrier))
    wait = zygote.start(project.root, [
        (["db", "upgrade", "--all-tenants", "-j", jobs], env) for jobs in INSTANCE_JOBS
    ])
    try:
        # every instance has loaded the app and asked for the tenants: let them all go at once
        wait_until(lambda: len(list(barrier.glob("ready-*"))) == len(INSTANCE_JOBS), [], "every instance is ready")
    finally:
        (barrier / "go").touch()
    results = wait()

    migrated_by: dict[str, list[int]] = {name: [] for name in tenancy.names}
    waited = 0
    for index, result in enumerate(results):
        assert result.returncode == 0, f"instance {index}: {result.describe()}"
        assert error_lines(result) == []
        rows = table(result.stdout)
        assert list(rows) == tenancy.names, result.stdout
        for name, row in rows.items():
            assert row.after == HEAD, (index, name, row)
            if row.result == "migrated":
                migrated_by[name].append(index)
            else:
                assert row.result in ("up to date", "up to date (waited for another process)"), (index, name, row)
                waited += row.result.endswith("(waited for another process)")
    assert all(len(who) == 1 for who in migrated_by.values()), migrated_by
    for name in tenancy.names:
        tenancy.assert_at_head_once(name)
        # one run changed it; the others found it at head and wrote nothing
        runs = [state for kind_, _, _, state in tenancy.journal(name) if kind_ == "run"]
        assert runs == ["done"], (name, tenancy.journal(name))
    tenancy.assert_locks_free()
    print(f"{kind}: tenants migrated by instance {migrated_by}, {waited} taken up again after a wait")


# -- 3. Ctrl-C (or SIGTERM) in the middle ------------------------------------------------------

INTERRUPTS = [
    ("sqlite", 1, "SIGINT", "group"), ("sqlite", 2, "SIGINT", "group"),
    ("pg-schemas", 1, "SIGINT", "group"), ("pg-schemas", 2, "SIGINT", "group"),
    ("pg-databases", 2, "SIGTERM", "group"),
    # as a container's PID 1 gets it: the command passes it on to its workers
    ("sqlite", 2, "SIGTERM", "command"),
    # one worker alone: the command stops the other and says which signal it was
    ("sqlite", 2, "SIGINT", "worker"),
]


@pytest.mark.parametrize(
    "kind,jobs,how,to", INTERRUPTS, ids=[f"{k}-j{j}-{h}-to-{to}" for k, j, h, to in INTERRUPTS]
)
def test_interrupted_in_the_middle(
    kind: str, jobs: int, how: str, to: str, project: Project,
    make_tenancy: Callable[[str, list[str]], Tenancy], tmp_path: Path,
) -> None:
    """A signal (to the command's process group, as Ctrl-C sends it, to the command alone, or to one worker) while tenants run r2: exit 1, one Error line, the table (interrupted / not started), their runs rolled back, no lock and no worker left; the next run finishes."""
    names = ["t0", "t1", "t2", "t3"]
    tenancy = make_tenancy(kind, names)
    upgrade_in_process(project, tenancy, "r1")

    trace = tmp_path / "trace"
    trace.mkdir()
    never = str(tmp_path / "never")
    # t1 and t2 wait in r2 for a file that never comes: with -j 1, t0 is
    # migrated and t1 is caught in r2; with -j 2, the first worker migrates t0
    # then is caught in t2, the other in t1; t3 never starts
    plan = {"t1:r2": {"gate": never}, "t2:r2": {"gate": never}}
    stuck = ["t1"] if jobs == 1 else ["t1", "t2"]
    proc = project.start(
        tenancy, "db", "upgrade", "--all-tenants", "-j", str(jobs), new_session=True,
        FM_TEST_TRACE=str(trace), FM_TEST_PLAN=json.dumps(plan),
    )
    wait_until(
        lambda: all((trace / f"{name}.r2").exists() for name in stuck), [proc],
        f"{' and '.join(stuck)} started r2",
    )
    if to == "group":
        os.killpg(proc.pid, getattr(signal, how))
    elif to == "command":
        os.kill(proc.pid, getattr(signal, how))
    else:
        workers = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(workers) == jobs, workers
        os.kill(int(workers[0]), getattr(signal, how))
    result = finish(proc)
    assert result.returncode == 1, result.describe()
    [line] = error_lines(result)
    assert line == (
        f"Error: Interrupted by {how}. What was in progress was rolled back where the database "
        "allows it; locks were released."
    ), result.describe()
    assert_group_gone(proc.pid)

    rows = table(result.stdout)
    assert list(rows) == names, result.stdout
    assert rows["t0"] == Row("r1", HEAD, rows["t0"].duration, "migrated")
    for name in stuck:
        assert rows[name] == Row("r1", "r1", rows[name].duration, "interrupted"), result.stdout
    not_started = [name for name in names if name not in ("t0", *stuck)]
    for name in not_started:
        assert rows[name] == Row("?", "?", "-", "not started"), rows[name]
    # which tenants ran at all
    assert traces(trace) == {"t0.r2", "t0.r3"} | {f"{name}.r2" for name in stuck}

    # the interrupted runs rolled back; the others never began
    tenancy.assert_locks_free()
    for name in (*stuck, *not_started):
        assert tenancy.versions(name) == ["r1"], name
        assert "t_r2" not in tenancy.tables(name), name
        # the journal: r1's run, and for an interrupted tenant a run that did not finish, without steps
        rows_ = tenancy.journal(name)
        assert rows_[:2] == [("run", "upgrade", "r1", "done"), ("step", "upgrade", "r1", "applied")], rows_
        if name in stuck:
            assert len(rows_) == 3 and rows_[2][0] == "run" and rows_[2][3] in ("failed", "interrupted"), rows_
        else:
            assert len(rows_) == 2, rows_

    # nothing is left behind that would stop the next run, not even for a moment
    after = project.run(tenancy, "db", "upgrade", "--all-tenants", "-j", str(jobs), "--lock-timeout", "0")
    assert after.returncode == 0, after.describe()
    rows = table(after.stdout)
    assert rows["t0"].result == "up to date"
    for name in (*stuck, *not_started):
        assert rows[name] == Row("r1", HEAD, rows[name].duration, "migrated"), rows[name]
    for name in names:
        tenancy.assert_at_head_once(name)
    tenancy.assert_locks_free()


# -- 4. --fail-fast ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "mariadb-databases"])
def test_fail_fast_starts_no_new_tenant_and_lets_the_running_one_finish(
    kind: str, project: Project, make_tenancy: Callable[[str, list[str]], Tenancy], tmp_path: Path
) -> None:
    """-j 2 --fail-fast: t0 fails while t1 runs; no tenant starts after the failure, t1 finishes, t2..t4 are 'not started'."""
    names = ["t0", "t1", "t2", "t3", "t4"]
    tenancy = make_tenancy(kind, names)
    trace = tmp_path / "trace"
    trace.mkdir()
    go = tmp_path / "t1-go"
    # the two workers take t0 and t1; t0 fails once t1 has begun, t1 waits for the test
    plan = {
        "t0:r1": {"gate": str(trace / "t1.r1"), "fail": True},
        "t1:r1": {"gate": str(go)},
    }
    proc = project.start(
        tenancy, "db", "upgrade", "--all-tenants", "-j", "2", "--fail-fast",
        FM_TEST_TRACE=str(trace), FM_TEST_PLAN=json.dumps(plan),
    )
    try:
        # the command reported t0's failure (it stopped the schedule before that)
        out = read_until(proc.stdout, "t0: failed", proc)
        assert traces(trace) == {"t0.r1", "t1.r1"}
        assert tenancy.versions("t1") == []
    finally:
        go.touch()
    result = finish(proc, out=out)
    assert result.returncode == 1, result.describe()
    errors = error_lines(result)
    assert len(errors) == 2, result.stderr
    assert errors[0].startswith("Error: Tenant t0") and "revision r1 failed on purpose for t0" in errors[0], errors
    assert errors[1] == "Error: 3 tenants not started (--fail-fast).", errors

    rows = table(result.stdout)
    assert list(rows) == names
    assert rows["t0"].result == "failed"
    assert rows["t1"] == Row("<base>", HEAD, rows["t1"].duration, "migrated")
    for name in ("t2", "t3", "t4"):
        assert rows[name].result == "not started" and rows[name].duration == "-", rows[name]
    assert re.search(r"^5 tenants: .*\b1 failed\b", result.stdout, re.M), result.stdout

    # only t0 and t1 ever ran
    assert traces(trace) == {"t0.r1", "t1.r1", "t1.r2", "t1.r3"}
    tenancy.assert_at_head_once("t1")
    for name in ("t2", "t3", "t4"):
        assert tenancy.versions(name) == [] and tenancy.journal(name) == [], name
    if kind != "mariadb-databases":  # (MariaDB's DDL commits on its own)
        assert tenancy.versions("t0") == [] and "t_r1" not in tenancy.tables("t0")
    tenancy.assert_locks_free()
