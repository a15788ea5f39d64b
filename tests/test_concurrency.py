"""The per-database migration lock, exercised by real concurrent ``flask db upgrade`` processes.

Every test runs the real ``flask`` entry point in subprocesses against real
databases (SQLite, PostgreSQL, MariaDB). For the races, the processes are
forked from one that has imported the libraries (see ``ZYGOTE``), wait for a
shared start signal, and only then call ``flask.cli.main()`` (exactly what the
``flask`` console script does), so they reach the lock within milliseconds of
each other, and a round costs little CPU.

The history is 20 revisions ``c01``..``c20``; ``c01`` creates a ``log`` table
without any key, and every revision inserts its own id into it, so a revision
applied twice shows up as a duplicate row. What a revision does besides is
driven by environment variables (see ``_step`` in ``REVISION``): write a
trace, wait at a gate (until a file the test creates exists), sleep, fail.
Interleavings are arranged with those gates, traces and the lock itself,
never with sleeps of the test.

The lock is taken on the connection ``env.py`` configures, keyed by the
version table; the tests look at it from outside with the same API
(:func:`held_lock`, :func:`lock_problem`). Races run in both transaction
modes: Alembic's default (a run is one transaction where DDL is
transactional) and ``transaction_per_migration=True`` (a commit per
revision, which the lock must outlive).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import typing as t
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

import flask_migrate
from conftest import Database, DatabaseFactory, create_app, run_flask, write_app
from flask_migrate import locking
from test_templates import write_original_style_folder

# races of 8 processes: one at a time, on one pytest worker (see tests/conftest.py)
pytestmark = pytest.mark.xdist_group("heavy")

REVISIONS = [f"c{i:02d}" for i in range(1, 21)]
HEAD = REVISIONS[-1]
HALF = REVISIONS[9]  # c10
# per transaction mode; raise with CONCURRENCY_ROUNDS for a longer soak
ROUNDS = int(os.environ.get("CONCURRENCY_ROUNDS", "2"))
PROCESSES = 8
WAIT_LINE = "Waiting for the migration lock"

#: ``Migrate()`` arguments of each transaction mode
MODES = {"default": "", "per-migration": "transaction_per_migration=True"}


def one_transaction(backend: str, mode: str) -> bool:
    """Whether a whole run is one transaction: the default mode where DDL is transactional."""
    return mode == "default" and backend in ("postgresql", "sqlite")


REVISION = '''\
"""step {rev}

Revision ID: {rev}
Revises: {down}
"""
import os
import time

import sqlalchemy as sa
from alembic import op

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def _step():
    trace = os.environ.get("FM_TEST_TRACE")
    if trace:
        with open(trace, "a") as f:
            f.write(revision + "\\n")
    # FM_TEST_GATE: wait until this file exists, in revision FM_TEST_GATE_AT,
    # or else in the first revision this process applies
    if os.environ.get("FM_TEST_GATE_AT", revision) == revision:
        gate = os.environ.pop("FM_TEST_GATE", None)
        deadline = time.monotonic() + 120
        while gate and not os.path.exists(gate):
            if time.monotonic() > deadline:
                raise RuntimeError("the test never opened the gate " + gate)
            time.sleep(0.005)
    time.sleep(float(os.environ.get("FM_TEST_SLEEP") or 0))
    if os.environ.get("FM_TEST_FAIL") == revision:
        raise RuntimeError("revision " + revision + " failed on purpose")


def _upgrade():
{create}    _step()
    op.execute("INSERT INTO log (rev) VALUES ('{rev}')")


def _downgrade():
    op.execute("DELETE FROM log WHERE rev = '{rev}'")
{drop}
{entry_points}'''

SINGLE = """

def upgrade():
    _upgrade()


def downgrade():
    _downgrade()
"""

# the shape the flask-multidb template gives a revision
MULTIDB = """

def upgrade(engine_name):
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name):
    globals()["downgrade_%s" % engine_name]()


def upgrade_():
    _upgrade()


def downgrade_():
    _downgrade()


def upgrade_extra():
    _upgrade()


def downgrade_extra():
    _downgrade()
"""


def write_history(versions: Path, count: int = 20, multidb: bool = False) -> None:
    """Revisions c01..c<count>, each inserting its id into ``log`` (created by c01)."""
    for path in versions.glob("*.py"):
        path.unlink()
    down = None
    for rev in REVISIONS[:count]:
        first = down is None
        create = (
            '    op.create_table("log", sa.Column("rev", sa.String(32), nullable=False))\n'
            if first
            else ""
        )
        drop = '    op.drop_table("log")\n' if first else ""
        (versions / f"{rev}_step.py").write_text(
            REVISION.format(
                rev=rev,
                down=down,
                create=create,
                drop=drop,
                entry_points=MULTIDB if multidb else SINGLE,
            )
        )
        down = rev


# Starting eight Python interpreters that import Flask, SQLAlchemy and Alembic
# costs about 4 s of CPU per round on two cores; 120 rounds of that is too slow.
# So a "zygote" imports those libraries once, and for each round forks the
# processes, each of which waits for the start signal (the closing of a pipe),
# then runs ``flask.cli.main()`` exactly as the ``flask`` console script does:
# real, separate processes, each loading the app, the migrations folder, its
# own connections and the lock. Nothing of the app is imported before forking.
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


def child(index, request, gate):
    os.environ.clear()
    os.environ.update(request["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, suffix in ((1, "out"), (2, "err")):
        out = os.open(os.path.join(request["dir"], f"{index}.{suffix}"),
                      os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.read(gate, 1)  # returns once the zygote closes the other end: go
    sys.argv = ["flask", *request["argv"]]
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
    sys.stdout.flush()
    gate, go = os.pipe()
    pids = []
    for index in range(request["count"]):
        pid = os.fork()
        if pid == 0:
            os.close(go)
            child(index, request, gate)
        pids.append(pid)
    os.close(gate)
    os.close(go)
    results = [[pid, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])] for pid in pids]
    print(json.dumps(results), flush=True)
"""

FLASK = str(Path(sys.executable).with_name("flask"))


def _sigint_default() -> None:
    # a child of a non-interactive shell may inherit SIGINT ignored; Ctrl-C must work
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Project:
    """A folder with an app and a migrations folder, run with ``flask`` subprocesses."""

    root: Path
    zygote: subprocess.Popen[str] | None = None

    @property
    def migrations(self) -> Path:
        return self.root / "migrations"

    def use_mode(self, mode: str) -> None:
        """Run the app in the transaction mode ``mode`` (its ``Migrate()`` arguments, see MODES)."""
        write_app(self.root, migrate_args=MODES[mode])

    def env(self, url: str, binds: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("FLASK_", "TEST_BIND_", "FM_TEST_"))
        }
        env.update(FLASK_APP="app.py", TEST_DATABASE_URL=url, PYTHONDONTWRITEBYTECODE="1")
        for key, value in (binds or {}).items():
            env[f"TEST_BIND_{key.upper()}"] = value
        env.update(extra)
        return env

    def start(
        self, url: str, *args: str, binds: dict[str, str] | None = None, **extra: str
    ) -> subprocess.Popen[str]:
        """Start the real ``flask`` command now."""
        return subprocess.Popen(
            [FLASK, *args],
            cwd=self.root,
            env=self.env(url, binds, **extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_sigint_default,
        )

    def race(
        self,
        url: str,
        *args: str,
        count: int = PROCESSES,
        binds: dict[str, str] | None = None,
        **extra: str,
    ) -> list[Finished]:
        """Run ``count`` ``flask`` commands released at the same moment."""
        if self.zygote is None:
            (self.root / "zygote.py").write_text(ZYGOTE)
            self.zygote = subprocess.Popen(
                [sys.executable, "zygote.py"],
                cwd=self.root,
                env=self.env("unused"),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        assert self.zygote.stdin is not None and self.zygote.stdout is not None
        out = self.root / f"race-{uuid.uuid4().hex[:8]}"
        out.mkdir()
        request = {"count": count, "argv": list(args), "env": self.env(url, binds, **extra),
                   "dir": str(out)}
        self.zygote.stdin.write(json.dumps(request) + "\n")
        self.zygote.stdin.flush()
        line = self.zygote.stdout.readline()
        assert line, "the zygote died"
        results = [
            Finished(pid, code, (out / f"{i}.out").read_text(), (out / f"{i}.err").read_text())
            for i, (pid, code) in enumerate(json.loads(line))
        ]
        shutil.rmtree(out)
        return results

    def close(self) -> None:
        if self.zygote is not None:
            assert self.zygote.stdin is not None
            self.zygote.stdin.close()
            self.zygote.wait(timeout=60)
            self.zygote = None


@dataclass
class Finished:
    pid: int
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"pid {self.pid} exited {self.returncode}:\n{self.stderr}"


def finish(proc: subprocess.Popen[str], timeout: float = 120, read: str = "") -> Finished:
    """Wait for the process; ``read``: what the test already read of its standard error."""
    stdout, stderr = proc.communicate(timeout=timeout)
    return Finished(proc.pid, proc.returncode, stdout, read + stderr)


def read_until(proc: subprocess.Popen[str], text: str) -> str:
    """Read the process's standard error up to the first line containing ``text``; returns what was read."""
    assert proc.stderr is not None
    read = ""
    while True:
        line = proc.stderr.readline()
        if not line:
            raise AssertionError(f"exited {proc.wait()} without saying {text!r}:\n{read}")
        read += line
        if text in line:
            return read


def open_gate(gate: Path) -> None:
    gate.write_text("go")


def make_project(root: Path, multidb: bool = False) -> Project:
    """An app, ``flask db init`` and the 20-revision history."""
    root.mkdir(parents=True, exist_ok=True)
    write_app(root)
    args = ["db", "init", *(["--multidb"] if multidb else [])]
    result = run_flask(root, *args, url=f"sqlite:///{root / 'init.db'}")
    assert result.returncode == 0, result.stderr
    write_history(root / "migrations" / "versions", multidb=multidb)
    return Project(root)


def upgrade_in_process(
    project: Project, url: str, revision: str, binds: dict[str, str] | None = None
) -> None:
    """Bring a database to ``revision`` through the API, in the test process."""
    app, db, _ = create_app(url, project.migrations, binds=binds, models="none")
    try:
        with app.app_context():
            flask_migrate.upgrade(str(project.migrations), revision)
    finally:
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()


# -- what a database looks like afterwards -------------------------------------------------


def log_counts(database: Database) -> dict[str, int]:
    engine = database.engine()
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("log"):
                return {}
            rows = conn.execute(sa.text("SELECT rev, COUNT(*) FROM log GROUP BY rev"))
            return {rev: n for rev, n in rows}
    finally:
        engine.dispose()


def versions(database: Database) -> list[str]:
    engine = database.engine()
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return []
            return sorted(r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version")))
    finally:
        engine.dispose()


def state(database: Database) -> dict[str, list[tuple[str, ...]]]:
    """The rows of every table: everything a migration could change."""
    engine = database.engine()
    try:
        with engine.connect() as conn:
            metadata = sa.MetaData()
            metadata.reflect(conn)
            return {
                name: sorted(tuple(map(str, row)) for row in conn.execute(sa.select(table)))
                for name, table in metadata.tables.items()
            }
    finally:
        engine.dispose()


def assert_clean(database: Database, upto: str = HEAD) -> None:
    """Every revision up to ``upto`` applied exactly once, the version table says so."""
    expected = REVISIONS[: REVISIONS.index(upto) + 1]
    counts = log_counts(database)
    assert counts == {rev: 1 for rev in expected}, f"log rows per revision: {counts}"
    assert versions(database) == [upto]


@contextlib.contextmanager
def held_lock(database: Database, timeout: float = 0) -> Iterator[locking.MigrationLock]:
    """Hold the database's migration lock (``alembic_version``) on a connection of the test's own.

    The same lock ``flask db upgrade`` takes on the connection ``env.py``
    configures; raises :class:`locking.LockTimeout` if it is taken.
    """
    engine = database.engine()
    try:
        with engine.connect() as conn:
            lock = locking.lock_for(conn, locking.lock_key("alembic_version", None))
            assert lock is not None, "a database file always has a lock"
            lock.acquire(conn, timeout, None)
            try:
                yield lock
            finally:
                if isinstance(lock, locking.SQLiteFileLock):
                    lock.release()
                else:
                    lock.release_dbapi(conn.connection.dbapi_connection)
    finally:
        engine.dispose()


def mysql_lock_name(database: Database) -> str:
    """The ``GET_LOCK()`` name of the database's migration lock (MariaDB)."""
    engine = database.engine()
    try:
        with engine.connect() as conn:
            lock = locking.lock_for(conn, locking.lock_key("alembic_version", None))
            assert isinstance(lock, locking.MySQLLock)
            name = lock._name(conn)
    finally:
        engine.dispose()
    assert name.startswith("flask-migrate:") and len(name) == len("flask-migrate:") + 40, name
    return name


def mysql_lock_holder(database: Database) -> int | None:
    """The server connection that holds the migration lock (MariaDB), if any."""
    name = mysql_lock_name(database)
    engine = database.engine()
    try:
        with engine.connect() as conn:
            return t.cast("int | None", conn.execute(
                sa.text("SELECT IS_USED_LOCK(:n)"), {"n": name}).scalar())
    finally:
        engine.dispose()


def sqlite_lock_path(database: Database) -> str:
    """The lock file beside the real path of the SQLite database file."""
    return os.path.realpath(str(sa.make_url(database.url).database)) + ".migrate-lock"


def lock_problem(database: Database, killed: bool = False) -> str | None:
    """None when no migration lock of the database is held, else what is left.

    ``killed``: the last holder was SIGKILLed, so the SQLite lock file may
    still name it (harmless: the OS dropped the lock itself).
    """
    if database.backend == "postgresql":
        engine = database.engine()
        try:
            with engine.connect() as conn:
                left = conn.execute(
                    sa.text(
                        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database())"
                    )
                ).scalar()
        finally:
            engine.dispose()
        if left:
            return f"{left} advisory lock(s) in pg_locks"
    elif database.backend == "mariadb":
        holder = mysql_lock_holder(database)
        if holder is not None:
            return f"GET_LOCK({mysql_lock_name(database)!r}) held by connection {holder}"
    else:
        path = sqlite_lock_path(database)
        if os.path.exists(path):
            fd = os.open(path, os.O_RDWR)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return f"{path} is flock()ed"
                fcntl.flock(fd, fcntl.LOCK_UN)
                content = os.pread(fd, 4096, 0)
                if content and not killed:
                    return f"{path} still names a holder: {content!r}"
            finally:
                os.close(fd)
    # and the library itself can take it at once
    try:
        with held_lock(database, timeout=0):
            pass
    except locking.LockTimeout as exc:
        return str(exc)
    return None


def assert_lock_free(database: Database, within: float = 0, killed: bool = False) -> None:
    deadline = time.monotonic() + within
    while (problem := lock_problem(database, killed)) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert problem is None, problem


def error_lines(result: Finished) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("Error: ")]


def one_error(result: Finished, *expected: str) -> str:
    """Exit status 1 and exactly one ``Error:`` line, containing every ``expected`` text."""
    assert result.returncode == 1, result.describe()
    [line] = error_lines(result)
    for text in expected:
        assert text in line, line
    return line


def wait_for_trace(trace: Path, revision: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Wait until the process has started applying ``revision``."""
    deadline = time.monotonic() + timeout
    while not (trace.exists() and revision in trace.read_text().split()):
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} early:\n{proc.communicate()[1]}")
        assert time.monotonic() < deadline, f"{revision} never started"
        time.sleep(0.005)


@pytest.fixture(scope="session")
def project_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("concurrency") / "project").root


@pytest.fixture
def project(project_template: Path, tmp_path: Path) -> Iterator[Project]:
    """A copy of the project (app, migrations folder, 20 revisions) for one test."""
    root = tmp_path / "project"
    shutil.copytree(project_template, root, ignore=shutil.ignore_patterns("*.db", "*-lock"))
    project = Project(root)
    yield project
    project.close()


# -- 1. eight processes at the same moment -----------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("start", ["empty", "half-way"])
def test_eight_concurrent_upgrades(
    start: str, mode: str, project: Project, make_database: DatabaseFactory
) -> None:
    """8 simultaneous 'flask db upgrade' runs, 10 rounds per transaction mode: all exit 0, each revision applied once, no lock left."""
    project.use_mode(mode)
    waited = 0
    for round_number in range(ROUNDS):
        database = make_database()
        if start == "half-way":
            upgrade_in_process(project, database.url, HALF)
            assert_clean(database, HALF)
        results = project.race(database.url, "db", "upgrade", FM_TEST_SLEEP="0.02")
        for result in results:
            assert result.returncode == 0, f"round {round_number}: {result.describe()}"
            assert WAIT_LINE not in result.stdout
            waited += result.stderr.count(WAIT_LINE)
        assert_clean(database)
        assert_lock_free(database)
    # not vacuous: the processes did meet at the lock
    assert waited > 0


def test_without_the_lock_the_race_shows(project: Project, make_database: DatabaseFactory) -> None:
    """With --no-lock the same race goes wrong (a failing process or a revision applied twice): the lock is what prevents it."""
    # Observed: on every backend nearly every round has failing processes
    # (PostgreSQL, MariaDB: "expected to match one row when updating ...";
    # SQLite: "database is locked"); duplicate rows did not show, as a run's
    # transaction is rolled back when its version-table update fails.
    outcomes = []
    for _ in range(5):
        database = make_database()
        upgrade_in_process(project, database.url, HALF)
        results = project.race(database.url, "db", "upgrade", "--no-lock", FM_TEST_SLEEP="0.02")
        failed = sum(r.returncode != 0 for r in results)
        counts = log_counts(database)
        duplicated = sorted(rev for rev, n in counts.items() if n > 1)
        outcomes.append((failed, duplicated, versions(database)))
        if failed or duplicated:
            break
    assert any(failed or duplicated for failed, duplicated, _ in outcomes), outcomes


# -- 2. --lock-timeout 0, and a process that waits ------------------------------------------


def only_error_line(result: Finished) -> str:
    """The one ``Error:`` line, last; nothing else on standard error but Alembic's INFO lines."""
    line = one_error(result)
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == line, result.stderr
    assert all(other.startswith("INFO  [alembic.") for other in lines[:-1]), result.stderr
    return line


def test_lock_timeout_zero_fails_at_once_naming_the_holder(
    project: Project, database: Database
) -> None:
    """While one upgrade holds the lock, --lock-timeout 0 runs exit 1 with one line naming it and change nothing; a default run waits, says so once, then succeeds."""
    upgrade_in_process(project, database.url, HALF)
    trace, gate = project.root / "holder-trace", project.root / "holder-gate"
    holder = project.start(
        database.url, "db", "upgrade", "c15", FM_TEST_GATE=str(gate), FM_TEST_TRACE=str(trace)
    )
    try:
        wait_for_trace(trace, "c11", holder)  # it holds the lock, and waits at the gate in c11
        before = state(database)
        # the holder as the database sees it
        if database.backend == "mariadb":
            names_holder = [f"server connection {mysql_lock_holder(database)}", "on host "]
        else:
            names_holder = [f"pid {holder.pid}", f"on host {socket.gethostname()}"]

        losers = [
            project.start(database.url, "db", "upgrade", "--lock-timeout", "0"),
            project.start(database.url, "db", "upgrade", "--lock-timeout=0", "c20"),
            project.start(database.url, "db", "--lock-timeout", "0", "upgrade"),  # the group's option
            project.start(database.url, "db", "downgrade", "--lock-timeout", "0", "c05"),
            project.start(database.url, "db", "stamp", "--lock-timeout", "0", "c20"),
        ]
        impatient = project.start(database.url, "db", "upgrade", "--lock-timeout", "1")
        waiter_trace = project.root / "waiter-trace"
        waiter = project.start(database.url, "db", "upgrade", FM_TEST_TRACE=str(waiter_trace))
        for loser in map(finish, losers):
            line = only_error_line(loser)
            for text in ("Another migration holds the lock", "--lock-timeout is 0", *names_holder):
                assert text in line, line
        # one that waits a little: says it waits, then gives up in one line
        gave_up = finish(impatient)
        one_error(gave_up, "did not release it within 1 s", *names_holder)
        assert gave_up.stderr.count(WAIT_LINE) == 1, gave_up.stderr
        # the waiter is waiting (it said so) before the holder may go on
        waited = read_until(waiter, WAIT_LINE)
        assert state(database) == before
        # the holder was still inside c11 all along
        assert trace.read_text().split() == ["c11"]
        assert not waiter_trace.exists()
    finally:
        open_gate(gate)
        holder_result = finish(holder)
    assert holder_result.returncode == 0, holder_result.describe()
    waiter_result = finish(waiter, read=waited)
    assert waiter_result.returncode == 0, waiter_result.describe()
    assert waiter_result.stderr.count(WAIT_LINE) == 1, waiter_result.stderr
    [wait_line] = [line for line in waiter_result.stderr.splitlines() if WAIT_LINE in line]
    assert names_holder[0] in wait_line
    # the waiter did the rest once the holder was done
    assert trace.read_text().split() == REVISIONS[10:15]
    assert waiter_trace.read_text().split() == REVISIONS[15:]
    assert_clean(database)
    assert_lock_free(database)


def test_a_lock_held_on_another_connection_makes_upgrade_wait(
    project: Project, database: Database
) -> None:
    """The lock held on a connection of the test's own: --lock-timeout 0 fails naming this process, a waiting upgrade goes on once it is released."""
    upgrade_in_process(project, database.url, HALF)
    with held_lock(database):
        loser = finish(project.start(database.url, "db", "upgrade", "--lock-timeout", "0"))
        line = only_error_line(loser)
        assert "Another migration holds the lock" in line, line
        if database.backend != "mariadb":  # (MariaDB names the server connection)
            assert f"pid {os.getpid()} on host {socket.gethostname()}" in line, line
        waiter = project.start(database.url, "db", "upgrade")
        waited = read_until(waiter, WAIT_LINE)
        assert_clean(database, HALF)
    result = finish(waiter, read=waited)
    assert result.returncode == 0, result.describe()
    assert_clean(database)
    assert_lock_free(database)


# -- 3. the lock is released on every exit path ---------------------------------------------

EXIT_PATHS = [
    ("error", "default"), ("error", "per-migration"),
    ("SIGINT", "default"), ("SIGTERM", "per-migration"),
    ("SIGKILL", "default"), ("SIGKILL", "per-migration"),
]


@pytest.mark.parametrize("how,mode", EXIT_PATHS, ids=["-".join(p) for p in EXIT_PATHS])
def test_lock_is_released_on_every_exit_path(
    how: str, mode: str, backend: str, project: Project, database: Database
) -> None:
    """An upgrade that fails, or is interrupted or killed in mid-revision, leaves no lock; what it applied is rolled back as its mode says; the next upgrade --lock-timeout 0 finishes."""
    project.use_mode(mode)
    upgrade_in_process(project, database.url, HALF)
    trace = project.root / "trace"
    proc = project.start(
        database.url,
        "db",
        "upgrade",
        FM_TEST_TRACE=str(trace),
        FM_TEST_FAIL="c12" if how == "error" else "",
        # else c12 waits at a gate that is never opened, until the signal comes
        FM_TEST_GATE="" if how == "error" else str(project.root / "gate"),
        FM_TEST_GATE_AT="c12",
    )
    wait_for_trace(trace, "c12", proc)
    if how != "error":
        proc.send_signal(getattr(signal, how))
    result = finish(proc)
    if how == "error":
        one_error(result, "RuntimeError: revision c12 failed on purpose")
    elif how == "SIGKILL":
        assert result.returncode == -signal.SIGKILL
    else:
        one_error(result, f"Interrupted by {how}.", "locks were released")

    # a killed process's session is ended by the server once it sees the socket close
    killed = how == "SIGKILL"
    assert_lock_free(database, within=10 if killed else 0, killed=killed)
    # c11 was committed on its own, or rolled back with the whole run; c12 never is
    assert_clean(database, HALF if one_transaction(backend, mode) else "c11")
    after = project.start(database.url, "db", "upgrade", "--lock-timeout", "0")
    finished = finish(after)
    assert finished.returncode == 0, finished.describe()
    assert_clean(database)
    assert_lock_free(database)


def server_waits_in_get_lock(database: Database) -> int:
    """MariaDB: how many server connections of this database wait in GET_LOCK() right now."""
    name = sa.make_url(database.url).database
    engine = database.engine()
    try:
        with engine.connect() as conn:
            return int(conn.execute(
                sa.text(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                    "WHERE DB = :db AND INFO LIKE 'SELECT GET_LOCK(%'"
                ),
                {"db": name},
            ).scalar() or 0)
    finally:
        engine.dispose()


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_interrupting_a_waiting_process(how: str, project: Project, database: Database) -> None:
    """A process waiting for the lock stops at once when interrupted, with one Error line, and the holder goes on."""
    upgrade_in_process(project, database.url, HALF)
    trace, gate = project.root / "trace", project.root / "gate"
    holder = project.start(database.url, "db", "upgrade", FM_TEST_GATE=str(gate), FM_TEST_TRACE=str(trace))
    try:
        wait_for_trace(trace, "c11", holder)
        waiter = project.start(database.url, "db", "upgrade")
        waited = read_until(waiter, WAIT_LINE)  # the waiter says so before it blocks
        interrupted_at = time.monotonic()
        waiter.send_signal(getattr(signal, how))
        result = finish(waiter, timeout=5, read=waited)
        assert time.monotonic() - interrupted_at < 3
        one_error(result, f"Interrupted by {how}.")
        if database.backend == "mariadb":
            # NOTE: the waiter polls GET_LOCK(name, 0): it leaves no statement
            # behind in the server, which would take the lock for a client
            # that is gone once the holder releases it
            assert server_waits_in_get_lock(database) == 0
        assert trace.read_text().split() == ["c11"]
    finally:
        open_gate(gate)
        holder_result = finish(holder)
    assert holder_result.returncode == 0, holder_result.describe()
    assert_clean(database)
    assert_lock_free(database)


# -- 4. every database of a multidb app --------------------------------------------------


def test_concurrent_upgrades_of_a_multidb_app(
    tmp_path: Path, databases_on: Callable[[str], Database], request: pytest.FixtureRequest
) -> None:
    """4 simultaneous upgrades of a flask-multidb app (PostgreSQL default, MariaDB bind), 10 rounds: one clean result in both."""
    project = make_project(tmp_path / "multidb", multidb=True)
    request.addfinalizer(project.close)
    waited = 0
    for round_number in range(10):
        default, bind = databases_on("postgresql"), databases_on("mariadb")
        binds = {"extra": bind.url}
        if round_number % 2:
            upgrade_in_process(project, default.url, HALF, binds=binds)
            assert_clean(default, HALF)
            assert_clean(bind, HALF)
        results = project.race(default.url, "db", "upgrade", count=4, binds=binds, FM_TEST_SLEEP="0.02")
        for result in results:
            assert result.returncode == 0, f"round {round_number}: {result.describe()}"
            waited += result.stderr.count(WAIT_LINE)
        for database in (default, bind):
            assert_clean(database)
            assert_lock_free(database)
    assert waited > 0


# -- 5. a migrations folder made by the original Flask-Migrate -------------------------------


def test_original_style_migrations_folder_is_locked(
    tmp_path: Path, make_database: DatabaseFactory, request: pytest.FixtureRequest
) -> None:
    """An env.py written for the original (current_app...db.engine, configure_args) is locked without any change."""
    root = tmp_path / "original"
    root.mkdir()
    write_app(root)
    write_original_style_folder(root / "migrations")
    write_history(root / "migrations" / "versions")
    project = Project(root)
    request.addfinalizer(project.close)

    waited = 0
    for round_number in range(5):
        database = make_database()
        results = project.race(database.url, "db", "upgrade", FM_TEST_SLEEP="0.02")
        for result in results:
            assert result.returncode == 0, f"round {round_number}: {result.describe()}"
            waited += result.stderr.count(WAIT_LINE)
        assert_clean(database)
        assert_lock_free(database)
    assert waited > 0

    # and a run that finds the lock taken fails at once, changing nothing
    database = make_database()
    trace, gate = root / "trace", root / "gate"
    holder = project.start(database.url, "db", "upgrade", FM_TEST_GATE=str(gate), FM_TEST_TRACE=str(trace))
    try:
        wait_for_trace(trace, "c01", holder)
        before = state(database)
        loser = finish(project.start(database.url, "db", "upgrade", "--lock-timeout", "0"))
        one_error(loser, "Another migration holds the lock")
        assert state(database) == before
        assert trace.read_text().split() == ["c01"]
    finally:
        open_gate(gate)
        holder_result = finish(holder)
    assert holder_result.returncode == 0, holder_result.describe()
    assert_clean(database)
    assert_lock_free(database)
