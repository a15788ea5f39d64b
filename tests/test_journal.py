"""The journal (``flask_migrate_journal``), interrupted runs, checksums and ``flask db status``.

Everything runs against real databases (SQLite files, PostgreSQL, MariaDB),
mostly through the real ``flask`` command in a subprocess:

1. journal rows of ``upgrade``, ``downgrade`` and ``stamp`` (checksums with
   line endings normalised, timings, origin), next to an ``alembic_version``
   that stock Alembic still reads; a failing revision's run is ``failed``;
2. a database migrated before the journal existed gets ``baseline`` rows;
3. each applied step is printed with its duration as it finishes;
4. runs killed with SIGKILL: a run that is one transaction leaves nothing;
   one committed per revision is noted and carried on from on PostgreSQL and
   SQLite; on MariaDB, 5 kills per transaction mode (JOURNAL_KILL_TRIALS) at random moments of a
   20-revision DDL upgrade, each ending either consistent or refused until
   stamped (the outcome counts are printed: run pytest with ``-s`` to see them);
5. applied revision files edited, deleted or renamed;
6. the ``flask db status`` screen, ``--json``, ``--check`` and the API.

Where the outcome depends on the transaction mode, the tests run in both:
Alembic's default, where a run is one transaction on databases with
transactional DDL (its run row, step rows and end commit with it or vanish
with it, and a failed run is recorded afterwards), and
``transaction_per_migration=True``, where the run row is committed before
the first step and each step row with its revision (MariaDB always works
that way).

The kill trials are seeded (``JOURNAL_KILL_SEED``); their number per mode can
be raised with ``JOURNAL_KILL_TRIALS``.
"""

from __future__ import annotations

import collections
import functools
import concurrent.futures
import dataclasses
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import typing as t
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

import flask_migrate
from flask_migrate.journal import journal_table

import conftest
from conftest import (
    FLASK,
    JOURNAL,
    Database,
    DatabaseFactory,
    Result,
    create_app,
    run_flask,
    write_app,
)

TRANSACTIONAL = ["sqlite", "postgresql"]

#: ``Migrate()`` arguments of each transaction mode
MODES = {"default": "", "per-migration": "transaction_per_migration=True"}


# kill tests: each revision tells the test where it is
LOG_HELPER = '''
def _log(line):
    if os.environ.get("JOURNAL_LOG"):
        fd = os.open(os.environ["JOURNAL_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, (line + "\\n").encode())
        os.close(fd)
'''

write_revision = functools.partial(conftest.write_revision, preamble=LOG_HELPER)


def write_standard_revisions(versions: Path, sleep: float = 0.06) -> dict[str, Path]:
    """a1 (create user, sleeps ``sleep`` s) -> a2 (create post) -> a3 (add email)."""
    return {
        "a1": write_revision(
            versions, "a1", None,
            f"""
            op.create_table("user", sa.Column("id", sa.Integer, primary_key=True),
                            sa.Column("name", sa.String(128)))
            time.sleep({sleep})
            """,
            'op.drop_table("user")', "create user",
        ),
        "a2": write_revision(
            versions, "a2", "a1",
            'op.create_table("post", sa.Column("id", sa.Integer, primary_key=True))',
            'op.drop_table("post")', "create post",
        ),
        "a3": write_revision(
            versions, "a3", "a2",
            'op.add_column("user", sa.Column("email", sa.String(128)))',
            'op.drop_column("user", "email")', "add email",
        ),
    }


def normalised_sha256(path: Path) -> str:
    """What the journal should store: SHA-256 of the file with CRLF read as LF."""
    return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


# -- the project every test starts from ----------------------------------------------


@pytest.fixture(scope="session")
def migrations_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrations folder made once by ``flask db init``, without revisions."""
    root = tmp_path_factory.mktemp("journal-init")
    write_app(root)
    result = run_flask(root, "db", "init", url=f"sqlite:///{root / 'init.db'}")
    assert result.returncode == 0, result.stderr
    return root / "migrations"


@dataclass
class Project:
    """A working folder (app module, migrations folder) and its database."""

    root: Path
    database: Database
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.database.url

    @property
    def migrations(self) -> Path:
        return self.root / "migrations"

    @property
    def versions(self) -> Path:
        return self.migrations / "versions"

    def flask(self, *args: str, url: str | None = None, app: str = "app.py") -> Result:
        return run_flask(self.root, *args, url=url or self.url, env=self.env, app=app, timeout=90)

    def ok(self, *args: str, url: str | None = None) -> Result:
        result = self.flask(*args, url=url)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert "Error" not in result.stderr, (args, result.stderr)
        return result

    def status(self, *flags: str, ok: bool, url: str | None = None, app: str = "app.py") -> str:
        """The ``flask db status --check`` screen; asserts the exit status ``--check`` gives."""
        result = self.flask("db", "status", "--check", *flags, url=url, app=app)
        assert result.returncode == (0 if ok else 1), (result.returncode, result.stdout, result.stderr)
        assert result.stderr == "", result.stderr
        return result.stdout

    def status_json(
        self, ok: bool | None = None, url: str | None = None, app: str = "app.py"
    ) -> dict[str, t.Any]:
        """``flask db status --json --check``, parsed; its exit status must agree with ``ok``."""
        result = self.flask("db", "status", "--json", "--check", url=url, app=app)
        assert result.stderr == "", result.stderr
        data = t.cast(dict[str, t.Any], json.loads(result.stdout))
        assert result.returncode == (0 if data["ok"] else 1), (result.returncode, data)
        if ok is not None:
            assert data["ok"] is ok, data
        return data

    def sql(self, *statements: str, url: str | None = None) -> None:
        engine = sa.create_engine(url or self.url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(sa.text(statement))
        finally:
            engine.dispose()


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    """The transaction mode of the test's app (a key of MODES): ``default`` unless parametrized."""
    return str(getattr(request, "param", "default"))


@pytest.fixture
def project(migrations_template: Path, database: Database, tmp_path: Path, mode: str) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(migrations_template, root / "migrations")
    write_app(root, migrate_args=MODES[mode])
    return Project(root, database)


def journal_rows(url: str) -> list[dict[str, t.Any]]:
    """Every journal row, oldest first (an empty list when there is no journal)."""
    table = journal_table()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(JOURNAL):
                return []
            return [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]
    finally:
        engine.dispose()


def of_kind(rows: list[dict[str, t.Any]], kind: str) -> list[dict[str, t.Any]]:
    return [r for r in rows if r["kind"] == kind]


def versions_in(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return set()
            return {r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")}
    finally:
        engine.dispose()


def assert_one_error_line(result: Result, *expected: str) -> str:
    """Exit status 1, no traceback, exactly one ``Error:`` line (the last), containing ``expected``."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == errors[0], result.stderr
    for text in expected:
        assert text.lower() in errors[0].lower(), (text, errors[0])
    return errors[0]


def problem_codes(status: dict[str, t.Any], index: int = 0) -> list[str]:
    return [p["code"] for p in status["databases"][index]["problems"]]


# -- stock Alembic on the same database ----------------------------------------------

STOCK_ENV = """\
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
engine = engine_from_config(
    config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
"""


def stock_alembic(root: Path, url: str, versions: Path) -> t.Any:
    """A plain Alembic config (no Flask) for the project's revisions and database."""
    from alembic.config import Config

    location = root / "stock-alembic"
    location.mkdir(exist_ok=True)
    (location / "env.py").write_text(STOCK_ENV)
    config = Config(stdout=io.StringIO())
    config.set_main_option("script_location", str(location))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(versions))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# -- 1. journal rows -------------------------------------------------------------------


def test_upgrade_journals_a_run_and_a_step_per_revision(project: Project) -> None:
    """An upgrade writes one run row (done) and one step row per revision with checksum, timing and origin."""
    paths = write_standard_revisions(project.versions, sleep=0.06)
    # a2's file with CRLF line endings: its checksum is that of the LF file
    lf_bytes = paths["a2"].read_bytes()
    paths["a2"].write_bytes(lf_bytes.replace(b"\n", b"\r\n"))
    assert b"\r\n" in paths["a2"].read_bytes()

    project.ok("db", "upgrade")

    rows = journal_rows(project.url)
    [run] = of_kind(rows, "run")
    assert (run["direction"], run["revision"], run["state"]) == ("upgrade", "head", "done")
    assert run["finished_at"] is not None and run["duration_ms"] >= 60
    steps = of_kind(rows, "step")
    assert [s["revision"] for s in steps] == ["a1", "a2", "a3"]
    pids = {r["pid"] for r in rows}
    assert len(pids) == 1 and pids != {os.getpid()}  # the flask process, for every row
    for step in steps:
        path = paths[step["revision"]]
        assert step["run_id"] == run["run_id"]
        assert (step["direction"], step["state"]) == ("upgrade", "applied")
        assert step["checksum"] == normalised_sha256(path)
        assert step["filename"] == path.name
        assert step["started_at"] <= step["finished_at"]
        assert step["duration_ms"] is not None and step["duration_ms"] >= 0
        assert step["host"] == socket.gethostname()
        assert step["version"] == flask_migrate.__version__
    assert steps[0]["duration_ms"] >= 60  # a1 sleeps 60 ms
    assert steps[0]["message"] == "create user"
    assert steps[1]["checksum"] == hashlib.sha256(lf_bytes).hexdigest()
    assert steps[1]["checksum"] != hashlib.sha256(paths["a2"].read_bytes()).hexdigest()

    # alembic_version is exactly what Alembic expects, and stock Alembic reads it
    assert project.database.column_names("alembic_version") == {"version_num"}
    assert versions_in(project.url) == {"a3"}
    from alembic import command

    config = stock_alembic(project.root, project.url, project.versions)
    command.current(config)
    assert config.stdout.getvalue().strip() == "a3 (head)"
    # and stock Alembic can move it without tripping over the journal
    command.downgrade(config, "a2")
    assert versions_in(project.url) == {"a2"}
    assert len(journal_rows(project.url)) == len(rows)


def test_downgrade_and_stamp_steps_are_journaled(project: Project) -> None:
    """downgrade and stamp write their own run and step rows (direction downgrade/stamp)."""
    paths = write_standard_revisions(project.versions, sleep=0)
    project.ok("db", "upgrade")
    project.ok("db", "downgrade")
    project.ok("db", "stamp", "a1")

    rows = journal_rows(project.url)
    runs = of_kind(rows, "run")
    assert [(r["direction"], r["revision"], r["state"]) for r in runs] == [
        ("upgrade", "head", "done"), ("downgrade", "-1", "done"), ("stamp", "a1", "done"),
    ]
    steps = of_kind(rows, "step")
    assert [(s["direction"], s["revision"], s["state"]) for s in steps] == [
        ("upgrade", "a1", "applied"), ("upgrade", "a2", "applied"), ("upgrade", "a3", "applied"),
        ("downgrade", "a3", "applied"), ("stamp", "a1", "applied"),
    ]
    down, stamped = steps[3], steps[4]
    assert down["run_id"] == runs[1]["run_id"] and stamped["run_id"] == runs[2]["run_id"]
    assert down["checksum"] == normalised_sha256(paths["a3"])
    assert down["filename"] == paths["a3"].name
    assert stamped["finished_at"] is not None and stamped["duration_ms"] is not None
    assert versions_in(project.url) == {"a1"}
    # a command that changes nothing writes nothing
    project.ok("db", "stamp", "a1")
    assert len(journal_rows(project.url)) == len(rows)


FAILING_A4 = """
op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True))
raise RuntimeError("gave up half-way")
"""


@pytest.mark.parametrize("backend", TRANSACTIONAL, indirect=True)
def test_failing_one_transaction_run_leaves_only_a_failed_run_row(project: Project) -> None:
    """Default mode (PostgreSQL, SQLite): a run failing at its last revision changes nothing; its rows vanish, one run row 'failed' is recorded."""
    write_standard_revisions(project.versions, sleep=0)
    write_revision(project.versions, "a4", "a3", FAILING_A4, message="failing")

    # from an empty database: the journal is created afterwards, for the failure alone
    assert_one_error_line(project.flask("db", "upgrade"), "gave up half-way")
    assert versions_in(project.url) == set()
    assert project.database.table_names() == set()  # no user, post, audit, alembic_version
    rows = journal_rows(project.url)
    assert [(r["kind"], r["direction"], r["revision"], r["state"]) for r in rows] == [
        ("run", "upgrade", "head", "failed"),
    ]
    [run] = rows
    assert run["message"].startswith("RuntimeError: gave up half-way"), run["message"]
    assert run["finished_at"] is not None and run["duration_ms"] is not None
    assert run["pid"] not in (None, os.getpid()) and run["host"] == socket.gethostname()
    # nothing is left "running": status sees no interrupted run (a1..a4 are pending)
    assert problem_codes(project.status_json(ok=False)) == []

    # from a migrated database: its earlier runs stay, the failing run's steps vanish
    project.ok("db", "upgrade", "a2")
    assert_one_error_line(project.flask("db", "upgrade"), "gave up half-way")
    assert versions_in(project.url) == {"a2"}
    assert project.database.column_names("user") == {"id", "name"}  # a3 rolled back with the run
    assert "audit" not in project.database.table_names()
    rows = journal_rows(project.url)
    assert [(r["kind"], r["revision"], r["state"]) for r in rows] == [
        ("run", "head", "failed"),
        ("run", "a2", "done"), ("step", "a1", "applied"), ("step", "a2", "applied"),
        ("run", "head", "failed"),
    ]
    assert rows[-1]["run_id"] not in {r["run_id"] for r in rows[:-1]}
    assert problem_codes(project.status_json(ok=False)) == []


@pytest.mark.parametrize("mode", ["per-migration"], indirect=True)
@pytest.mark.parametrize("backend", TRANSACTIONAL, indirect=True)
def test_failing_revision_per_migration_leaves_run_failed_and_no_step(project: Project) -> None:
    """transaction_per_migration (PostgreSQL, SQLite): a failing revision leaves its run row failed, the steps before it applied and no step row of its own."""
    write_standard_revisions(project.versions, sleep=0)
    write_revision(project.versions, "a4", "a3", FAILING_A4, message="failing")
    assert_one_error_line(project.flask("db", "upgrade"), "gave up half-way")

    rows = journal_rows(project.url)
    [run] = of_kind(rows, "run")
    assert run["state"] == "failed"
    assert "RuntimeError" in run["message"] and "gave up half-way" in run["message"]
    assert run["finished_at"] is not None
    assert [s["revision"] for s in of_kind(rows, "step")] == ["a1", "a2", "a3"]
    assert {s["state"] for s in of_kind(rows, "step")} == {"applied"}
    assert {s["run_id"] for s in of_kind(rows, "step")} == {run["run_id"]}
    assert versions_in(project.url) == {"a3"}
    assert "audit" not in project.database.table_names()
    # nothing is left "running": status sees no interrupted run (a4 is still pending)
    assert problem_codes(project.status_json(ok=False)) == []


@pytest.mark.parametrize("mode", list(MODES), indirect=True)
@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_failing_revision_after_ddl_on_mariadb_is_refused_until_stamped(project: Project) -> None:
    """On MariaDB (either mode: a commit per revision) a revision failing after DDL leaves its step running: the next upgrade refuses until stamp."""
    write_standard_revisions(project.versions, sleep=0)
    write_revision(project.versions, "a4", "a3", FAILING_A4, 'op.drop_table("audit")', message="failing")
    assert_one_error_line(project.flask("db", "upgrade"), "gave up half-way")
    rows = journal_rows(project.url)
    assert of_kind(rows, "run")[0]["state"] == "failed"
    assert [(s["revision"], s["state"]) for s in of_kind(rows, "step")] == [
        ("a1", "applied"), ("a2", "applied"), ("a3", "applied"), ("a4", "running"),
    ]
    assert versions_in(project.url) == {"a3"}  # a1..a3 were committed one by one
    assert "audit" in project.database.table_names()  # MariaDB cannot roll DDL back

    assert_one_error_line(project.flask("db", "upgrade"), "a4", "flask db stamp")
    project.sql("DROP TABLE audit")
    project.ok("db", "stamp", "a3")
    assert problem_codes(project.status_json(ok=False)) == []  # a4 pending, nothing else


# -- 2. baseline --------------------------------------------------------------------------


def test_database_migrated_before_the_journal_gets_baseline_rows(project: Project) -> None:
    """A database migrated by plain Alembic gets a baseline row for its revision on the next upgrade or stamp."""
    from alembic import command

    paths = write_standard_revisions(project.versions, sleep=0)
    command.upgrade(stock_alembic(project.root, project.url, project.versions), "a2")
    assert versions_in(project.url) == {"a2"}
    assert JOURNAL not in project.database.table_names(journal=True)

    screen = project.status(ok=False)  # a3 is pending
    assert "Journal:  empty (it starts with the next upgrade, downgrade or stamp)" in screen
    assert "No problems." in screen

    project.ok("db", "upgrade")
    rows = journal_rows(project.url)
    assert [(r["kind"], r["revision"], r["state"]) for r in rows] == [
        ("baseline", "a2", "done"), ("run", "head", "done"), ("step", "a3", "applied"),
    ]
    baseline = rows[0]
    assert baseline["checksum"] == normalised_sha256(paths["a2"])
    assert baseline["filename"] == paths["a2"].name
    assert baseline["run_id"] != rows[1]["run_id"]
    assert "journal started" in baseline["message"]
    screen = project.status(ok=True)
    assert re.search(r"^    \S+ \S+ UTC  baseline  a2 .* done  journal started at this revision$",
                     screen, re.M), screen

    # the same when the journal is dropped and the next command is a stamp
    project.sql(f"DROP TABLE {JOURNAL}")
    project.ok("db", "stamp", "a1")
    rows = journal_rows(project.url)
    assert [(r["kind"], r["direction"], r["revision"]) for r in rows] == [
        ("baseline", None, "a3"), ("run", "stamp", "a1"), ("step", "stamp", "a1"),
    ]
    assert rows[0]["checksum"] == normalised_sha256(paths["a3"])
    status = project.status_json(ok=False)  # a2 and a3 pending
    assert [(e["kind"], e["revision"]) for e in status["databases"][0]["recent"]] == [
        ("step", "a1"), ("baseline", "a3"),
    ]


# -- 3. steps printed as they finish ----------------------------------------------------

STEP_LINE = re.compile(r"^(Upgrade|Downgrade|Stamp) (.+) -> (.+?)(?:, (.+))? \((\d+\.\d\d) s\)$")


def test_each_step_is_printed_with_its_duration_as_it_finishes(project: Project) -> None:
    """upgrade/downgrade/stamp print one line per step with its duration, each as soon as it is done."""
    write_standard_revisions(project.versions, sleep=0.05)
    write_revision(project.versions, "a4", "a3", "time.sleep(1.5)", message="slow one")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "TEST_BIND_"))}
    env.update(FLASK_APP="app.py", TEST_DATABASE_URL=project.url, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen(
        [FLASK, "db", "upgrade"], cwd=project.root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        still_running = proc.poll() is None  # a4 is still sleeping: the line came as a1 finished
        # NOTE: not communicate(): it reads the pipe's file descriptor and
        # would miss what readline() buffered beyond the first line
        out = proc.stdout.read()
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert still_running, "the first step was printed only when the command ended"
    lines = (first + out).splitlines()
    assert lines[:3] == [
        f"Upgrade <base> -> a1, create user ({lines[0].rsplit('(', 1)[1]}",
        f"Upgrade a1 -> a2, create post ({lines[1].rsplit('(', 1)[1]}",
        f"Upgrade a2 -> a3, add email ({lines[2].rsplit('(', 1)[1]}",
    ]
    parsed = [STEP_LINE.match(line) for line in lines]
    assert all(parsed) and len(lines) == 4, lines
    durations = [float(m.group(5)) for m in parsed if m]
    assert durations[0] >= 0.05 and durations[3] >= 1.5, lines
    assert lines[3].startswith("Upgrade a3 -> a4, slow one (")

    down = project.ok("db", "downgrade", "a2").stdout.splitlines()
    assert [STEP_LINE.match(line) is not None for line in down] == [True, True], down
    assert down[0].startswith("Downgrade a4 -> a3, slow one (")
    assert down[1].startswith("Downgrade a3 -> a2, add email (")
    stamped = project.ok("db", "stamp", "a1").stdout.splitlines()
    assert len(stamped) == 1 and stamped[0].startswith("Stamp a2 -> a1"), stamped
    assert STEP_LINE.match(stamped[0]), stamped


# -- 4. interrupted runs ---------------------------------------------------------------------


def flask_env(root: Path, url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "TEST_BIND_"))}
    env.update(FLASK_APP="app.py", TEST_DATABASE_URL=url, PYTHONDONTWRITEBYTECODE="1")
    env.update(extra or {})
    return env


def kill_when_logged(root: Path, url: str, log: Path, marker: str, delay: float = 0.0) -> int:
    """Start ``flask db upgrade``, SIGKILL it ``delay`` s after ``marker`` is logged; returns its pid."""
    proc = subprocess.Popen(
        [FLASK, "db", "upgrade"], cwd=root, env=flask_env(root, url, {"JOURNAL_LOG": str(log)}),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if log.exists() and marker + "\n" in log.read_text():
                time.sleep(delay)
                break
            time.sleep(0.002)
        assert proc.poll() is None, "the upgrade ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        return proc.pid
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


HANGING_REVISION = """
op.create_table("k2", sa.Column("id", sa.Integer, primary_key=True))
_log("k2 created")
if os.environ.get("JOURNAL_LOG"):
    time.sleep(60)
op.add_column("k2", sa.Column("extra", sa.Integer))
"""


def write_hanging_revisions(versions: Path) -> None:
    """k1 -> k2 (hangs after creating its table while JOURNAL_LOG is set) -> k3."""
    write_revision(versions, "k1", None,
                   'op.create_table("k1", sa.Column("id", sa.Integer, primary_key=True))',
                   'op.drop_table("k1")', "first")
    write_revision(versions, "k2", "k1", HANGING_REVISION, 'op.drop_table("k2")', "hangs")
    write_revision(versions, "k3", "k2",
                   'op.create_table("k3", sa.Column("id", sa.Integer, primary_key=True))',
                   'op.drop_table("k3")', "third")


@pytest.mark.parametrize("backend", TRANSACTIONAL, indirect=True)
def test_killed_one_transaction_upgrade_leaves_nothing_behind(project: Project, tmp_path: Path) -> None:
    """SIGKILL mid-revision of a default run (PostgreSQL, SQLite): no run row, no step row, no table; status sees no problem; the next upgrade applies everything."""
    write_hanging_revisions(project.versions)
    kill_when_logged(project.root, project.url, tmp_path / "kill.log", "k2 created")
    # k1 was applied, and k2 begun, in the run's transaction: all gone with it
    assert project.database.table_names(journal=True) == set()
    assert journal_rows(project.url) == [] and versions_in(project.url) == set()

    status = project.status_json(ok=False)  # k1..k3 pending
    assert problem_codes(status) == []
    assert [p["revision"] for p in status["databases"][0]["pending"]] == ["k1", "k2", "k3"]

    result = project.ok("db", "upgrade")
    assert "did not finish" not in result.stderr, result.stderr
    assert versions_in(project.url) == {"k3"}
    rows = journal_rows(project.url)
    assert [(r["kind"], r["revision"], r["state"]) for r in rows] == [
        ("run", "head", "done"), ("step", "k1", "applied"), ("step", "k2", "applied"),
        ("step", "k3", "applied"),
    ]
    assert "No problems." in project.status(ok=True)


@pytest.mark.parametrize("mode", ["per-migration"], indirect=True)
@pytest.mark.parametrize("backend", TRANSACTIONAL, indirect=True)
def test_killed_per_migration_upgrade_is_noted_and_the_next_one_carries_on(
    project: Project, tmp_path: Path
) -> None:
    """SIGKILL mid-revision with transaction_per_migration (PostgreSQL, SQLite): k1 stays, status shows interrupted-run; the next upgrade notes it and finishes."""
    write_hanging_revisions(project.versions)
    pid = kill_when_logged(project.root, project.url, tmp_path / "kill.log", "k2 created")
    assert versions_in(project.url) == {"k1"}
    assert "k2" not in project.database.table_names()  # rolled back with its revision

    status = project.status_json(ok=False)
    assert problem_codes(status) == ["interrupted-run"]
    [problem] = status["databases"][0]["problems"]
    assert f"pid {pid} on host {socket.gethostname()}" in problem["message"]
    assert "flask db upgrade" in problem["fix"]
    screen = project.status(ok=False)
    assert f"    - An upgrade to head did not finish (pid {pid} on host" in screen
    assert "      What to do: Run 'flask db upgrade' again" in screen

    result = project.ok("db", "upgrade")
    notes = [line for line in result.stderr.splitlines() if "did not finish" in line]
    assert len(notes) == 1, result.stderr
    assert f"pid {pid}" in notes[0] and "carrying on" in notes[0]
    assert versions_in(project.url) == {"k3"}
    rows = journal_rows(project.url)
    runs = of_kind(rows, "run")
    assert [(r["pid"], r["state"]) for r in runs] == [(pid, "interrupted"), (runs[1]["pid"], "done")]
    assert [s["revision"] for s in of_kind(rows, "step")] == ["k1", "k2", "k3"]
    assert "running" not in {r["state"] for r in rows}
    assert "No problems." in project.status(ok=True)


LIVE = [("sqlite", "default"), ("sqlite", "per-migration"), ("postgresql", "default"),
        ("postgresql", "per-migration"), ("mariadb", "default")]


@pytest.mark.parametrize("backend,mode", LIVE, indirect=True, ids=["-".join(c) for c in LIVE])
def test_status_during_a_live_upgrade_reports_no_interruption(
    project: Project, tmp_path: Path, backend: str, mode: str
) -> None:
    """While an upgrade is running (holding the lock; its run row committed 'running' when per migration), status shows it in progress, not interrupted."""
    write_hanging_revisions(project.versions)
    log = tmp_path / "live.log"
    proc = subprocess.Popen(
        [FLASK, "db", "upgrade"], cwd=project.root,
        env=flask_env(project.root, project.url, {"JOURNAL_LOG": str(log)}),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and "k2 created" in log.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        status = project.status_json(ok=False)
        running = [r["state"] for r in of_kind(journal_rows(project.url), "run")]
    finally:
        proc.kill()
        proc.wait()
    assert problem_codes(status) == []
    in_progress = status["databases"][0]["in_progress"]
    assert in_progress is not None, status
    if backend != "mariadb":  # (MariaDB names the server connection)
        assert f"pid {proc.pid} on host {socket.gethostname()}" in in_progress, in_progress
    if backend == "mariadb" or mode == "per-migration":
        assert running == ["running"]  # committed before the first step
    else:
        assert running == []  # one transaction: only the run itself sees its row


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_half_applied_revision_on_mariadb_is_refused_until_stamped(project: Project, tmp_path: Path) -> None:
    """SIGKILL inside a MariaDB revision: status shows interrupted-step; upgrade and downgrade refuse; stamp resolves it."""
    write_hanging_revisions(project.versions)
    pid = kill_when_logged(project.root, project.url, tmp_path / "kill.log", "k2 created")
    assert versions_in(project.url) == {"k1"}
    assert project.database.column_names("k2") == {"id"}  # half of k2: DDL commits on its own

    status = project.status_json(ok=False)
    assert sorted(problem_codes(status)) == ["interrupted-run", "interrupted-step"]
    step_problem = next(p for p in status["databases"][0]["problems"] if p["code"] == "interrupted-step")
    assert "Revision k2 (upgrade) was interrupted" in step_problem["message"]
    assert f"pid {pid}" in step_problem["message"] and "half-applied" in step_problem["message"]
    assert "flask db stamp" in step_problem["fix"]
    screen = project.status(ok=False)
    assert "    - Revision k2 (upgrade) was interrupted" in screen
    assert "      What to do: Fix the schema by hand, then run 'flask db stamp <revision>'" in screen

    for args in (("db", "upgrade"), ("db", "downgrade")):
        line = assert_one_error_line(project.flask(*args), "revision k2", "fix the schema", "flask db stamp")
        assert f"pid {pid}" in line and "half-applied" in line
    assert versions_in(project.url) == {"k1"}
    assert project.database.column_names("k2") == {"id"}

    # fixed by hand: the schema is put back to k1, and stamp records that
    project.sql("DROP TABLE k2")
    result = project.ok("db", "stamp", "k1")
    assert "recorded as resolved by this stamp" in result.stderr
    assert problem_codes(project.status_json(ok=False)) == []  # k2, k3 pending
    project.ok("db", "upgrade")
    assert versions_in(project.url) == {"k3"}
    assert project.database.column_names("k2") == {"id", "extra"}
    states = {(r["kind"], r["revision"]): r["state"] for r in journal_rows(project.url)}
    assert "running" not in states.values()
    assert "No problems." in project.status(ok=True)


# -- MariaDB: SIGKILL at random moments -------------------------------------------------------

KILL_REVISIONS = 20
KILL_TRIALS = int(os.environ.get("JOURNAL_KILL_TRIALS", "5"))  # per transaction mode
KILL_SEED = os.environ.get("JOURNAL_KILL_SEED", "20240612")
KILL_WORKERS = int(os.environ.get("JOURNAL_KILL_WORKERS", "2"))
COMPLETE = ["id", "name", "extra"]


def ddl_revision_body(i: int) -> str:
    """Revision ``i``: creates table t<i>, sleeps, adds a column to it, sleeps (8-20 ms in all)."""
    pause = 0.008 + 0.012 * ((i * 7) % 10) / 9
    return f"""
    _log("start {i}")
    op.create_table("t{i:02d}", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(20)))
    time.sleep({pause / 2:.4f})
    op.add_column("t{i:02d}", sa.Column("extra", sa.Integer))
    time.sleep({pause / 2:.4f})
    _log("end {i}")
    """


def expected_schema(n: int) -> dict[str, list[str]]:
    return {f"t{i:02d}": COMPLETE for i in range(1, n + 1)}


def ddl_state(url: str) -> tuple[int, dict[str, list[str]], list[str]]:
    """(recorded revision number, the t tables with their columns, every other table)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            columns = sa.inspect(conn).get_multi_columns()
            recorded: list[str] = []
            if any(name == "alembic_version" for _, name in columns):
                recorded = [r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
    finally:
        engine.dispose()
    tables = {name: [c["name"] for c in cols] for (_, name), cols in columns.items()
              if name.startswith("t")}
    others = sorted(name for _, name in columns
                    if not name.startswith("t") and name not in ("alembic_version", JOURNAL))
    assert len(recorded) <= 1, recorded
    return (int(recorded[0][1:]) if recorded else 0), dict(sorted(tables.items())), others


def matching_revision(tables: dict[str, list[str]]) -> int | None:
    """The revision whose schema the tables are, or None (half-applied)."""
    for n in range(KILL_REVISIONS + 1):
        if tables == expected_schema(n):
            return n
    return None


@dataclass
class KillPlan:
    """Kill ``delay`` s after revision ``after_start`` logs its start, or after launch if None."""

    after_start: int | None
    delay: float


def kill_at(root: Path, url: str, log: Path, plan: KillPlan) -> int:
    env = flask_env(root, url, {"JOURNAL_LOG": str(log)})
    proc = subprocess.Popen([FLASK, "db", "upgrade"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if plan.after_start is None:
            deadline = time.monotonic() + plan.delay
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.001)
        else:
            marker = f"start {plan.after_start}\n"
            while proc.poll() is None:
                if log.exists() and marker in log.read_text():
                    time.sleep(plan.delay)
                    break
                time.sleep(0.001)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def where_killed(log: Path, status: int) -> str:
    if status != -signal.SIGKILL:
        return "no kill (the upgrade had finished)"
    words = log.read_text().split() if log.exists() else []
    if not words:
        return "before revision 1 began"
    what = words[-2]
    return "inside a revision's upgrade()" if what == "start" else "after a revision's upgrade()"


@pytest.mark.xdist_group("heavy")  # 2 trials at a time: see tests/conftest.py
@pytest.mark.parametrize("mode", list(MODES), indirect=True)
@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_sigkill_on_mariadb_never_leaves_a_silent_half_applied_revision(
    project: Project, make_database: DatabaseFactory, tmp_path: Path, mode: str
) -> None:
    """15 SIGKILLs per transaction mode at random moments of a 20-revision DDL upgrade on MariaDB: consistent, or refused until stamped."""
    down = None
    for i in range(1, KILL_REVISIONS + 1):
        write_revision(project.versions, f"r{i:02d}", down, ddl_revision_body(i),
                       f'op.drop_table("t{i:02d}")', f"ddl {i}")
        down = f"r{i:02d}"
    rng = random.Random(f"{KILL_SEED}-mariadb-{mode}")
    plans = []
    for _ in range(KILL_TRIALS):
        if rng.random() < 0.2:  # anywhere from launch on, start-up included
            plans.append(KillPlan(None, round(rng.uniform(0.0, 2.0), 4)))
        else:
            plans.append(KillPlan(rng.randint(1, KILL_REVISIONS), round(rng.uniform(0.0, 0.03), 4)))
    urls = [project.url] + [make_database().url for _ in plans[1:]]
    head = expected_schema(KILL_REVISIONS)

    def trial(number: int) -> tuple[str, str]:
        plan, url = plans[number], urls[number]
        log = tmp_path / f"kill-{number}.log"
        context = f"trial {number} (seed {KILL_SEED}, {plan})"
        status = kill_at(project.root, url, log, plan)
        recorded, tables, others = ddl_state(url)
        assert others == [], context
        matches = matching_revision(tables)
        consistent = matches == recorded

        result = run_flask(project.root, "db", "upgrade", url=url, timeout=90)
        if result.returncode == 0:
            # carrying on is only allowed when the schema was what the version table said
            if not consistent:
                return where_killed(log, status), "SILENT HALF-APPLIED"
            assert "Error" not in result.stderr, (context, result.stderr)
            assert ddl_state(url) == (KILL_REVISIONS, head, []), context
            return where_killed(log, status), "consistent: the next upgrade carried on"

        interrupted = f"r{recorded + 1:02d}"
        line = assert_one_error_line(result, f"revision {interrupted}", "fix the schema", "flask db stamp")
        assert ddl_state(url) == (recorded, tables, []), context  # the refusal changed nothing
        # fix by hand: a half-applied revision is undone, then stamp records the truth
        if matches is None:
            assert tables.get(f"t{recorded + 1:02d}") == ["id", "name"], (context, tables)
            engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP TABLE t{recorded + 1:02d}")
            engine.dispose()
            fixed, outcome = recorded, "refused: half-applied (table without its column), undone by hand"
        else:
            assert matches in (recorded, recorded + 1), (context, matches, recorded)
            fixed = matches
            outcome = ("refused: fully applied but not recorded" if matches == recorded + 1
                       else "refused: schema still at the recorded revision")
        stamp = run_flask(project.root, "db", "stamp", f"r{fixed:02d}" if fixed else "base",
                          url=url, timeout=90)
        assert stamp.returncode == 0, (context, line, stamp.stderr)
        again = run_flask(project.root, "db", "upgrade", url=url, timeout=90)
        assert again.returncode == 0, (context, again.stderr)
        assert ddl_state(url) == (KILL_REVISIONS, head, []), context
        return where_killed(log, status), outcome

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(KILL_WORKERS) as pool:
        results = list(pool.map(trial, range(KILL_TRIALS)))
    elapsed = time.monotonic() - started
    outcomes = collections.Counter(outcome for _, outcome in results)
    landings = collections.Counter(where for where, _ in results)
    print(f"\n[mariadb, {mode}] {KILL_TRIALS} SIGKILL trials in {elapsed:.1f} s "
          f"(seed {KILL_SEED}, {KILL_WORKERS} at a time)")
    print("  where the kill landed:")
    for where, count in sorted(landings.items()):
        print(f"    {count:3d}  {where}")
    print("  outcome:")
    for outcome, count in sorted(outcomes.items()):
        print(f"    {count:3d}  {outcome}")
    assert outcomes["SILENT HALF-APPLIED"] == 0, outcomes
    inside = sum(c for w, c in landings.items() if w.startswith(("inside", "after")))
    assert inside >= KILL_TRIALS // 2, landings  # most kills hit a revision in progress
    assert sum(c for o, c in outcomes.items() if o.startswith("refused")) >= 1, outcomes


# -- 5. checksums ------------------------------------------------------------------------------


def test_edited_applied_revision_is_listed_warned_about_and_fails_check(project: Project) -> None:
    """An applied file edited afterwards: status lists it with both hashes, upgrade warns once, --check fails."""
    paths = write_standard_revisions(project.versions, sleep=0)
    project.ok("db", "upgrade")
    applied = normalised_sha256(paths["a2"])

    # line endings alone are not an edit
    paths["a1"].write_bytes(paths["a1"].read_bytes().replace(b"\n", b"\r\n"))
    assert "No problems." in project.status(ok=True)

    paths["a2"].write_text(paths["a2"].read_text() + "\n# edited after it was applied\n")
    edited = normalised_sha256(paths["a2"])
    status = project.status_json(ok=False)
    assert problem_codes(status) == ["edited-file"]
    assert status["databases"][0]["changed_files"] == [{
        "revision": "a2", "change": "edited",
        "applied_file": paths["a2"].name, "current_file": paths["a2"].name,
        "applied_checksum": applied, "current_checksum": edited,
    }]
    assert status["ok"] is False and status["databases"][0]["at_head"] is True
    screen = project.status(ok=False)
    assert (f"    - Revision a2 was applied from {paths['a2'].name} (sha256 {applied[:12]}), "
            f"but the file is now different (sha256 {edited[:12]}).") in screen
    assert "      What to do: Restore the applied file from version control" in screen

    # upgrade warns once: one line, even with steps to apply after it
    write_revision(project.versions, "a4", "a3", message="more")
    result = project.ok("db", "upgrade")
    warnings = [line for line in result.stderr.splitlines() if "changed since" in line]
    assert len(warnings) == 1, result.stderr
    assert "a2 (edited)" in warnings[0] and "a1 (" not in warnings[0]
    assert sum("a2" in line for line in result.stderr.splitlines()) == 1, result.stderr
    assert versions_in(project.url) == {"a4"}
    # restoring the file clears it
    paths["a2"].write_text(paths["a2"].read_text().replace("\n# edited after it was applied\n", ""))
    assert "No problems." in project.status(ok=True)


def test_renamed_and_deleted_applied_revisions_are_detected(project: Project) -> None:
    """An applied file renamed (same content) or deleted (the current head's) is listed by status; --check fails."""
    paths = write_standard_revisions(project.versions, sleep=0)
    project.ok("db", "upgrade")
    checksum = {rev: normalised_sha256(path) for rev, path in paths.items()}

    renamed = paths["a1"].with_name("a1_users.py")
    paths["a1"].rename(renamed)
    status = project.status_json(ok=False)
    assert problem_codes(status) == ["renamed-file"]
    assert status["databases"][0]["changed_files"] == [{
        "revision": "a1", "change": "renamed",
        "applied_file": paths["a1"].name, "current_file": "a1_users.py",
        "applied_checksum": checksum["a1"], "current_checksum": checksum["a1"],
    }]
    screen = project.status(ok=False)
    assert (f"    - Revision a1 was applied from {paths['a1'].name} (sha256 {checksum['a1'][:12]}), "
            "but the file is now named a1_users.py.") in screen
    renamed.rename(paths["a1"])

    paths["a3"].unlink()
    status = project.status_json(ok=False)
    assert sorted(problem_codes(status)) == ["missing-file", "unknown-revision"]
    assert status["databases"][0]["changed_files"] == [{
        "revision": "a3", "change": "missing",
        "applied_file": paths["a3"].name, "current_file": None,
        "applied_checksum": checksum["a3"], "current_checksum": None,
    }]
    screen = project.status(ok=False)
    assert (f"    - Revision a3 was applied from {paths['a3'].name} (sha256 {checksum['a3'][:12]}), "
            "but the file is now gone.") in screen


# -- 6. flask db status ----------------------------------------------------------------------

WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
DATABASE_KEYS = {
    "bind", "database", "current", "heads", "pending", "recent", "changed_files",
    "problems", "has_journal", "messages", "in_progress", "last_run", "at_head",
}
ENTRY_KEYS = {
    "id", "run_id", "kind", "direction", "revision", "state", "checksum", "filename",
    "message", "started_at", "finished_at", "duration_ms", "host", "pid", "version",
}


def test_status_at_head(project: Project) -> None:
    """At head: current = head, up to date, the last steps with when and duration, no problems; --check 0."""
    write_standard_revisions(project.versions, sleep=0.05)
    project.ok("db", "upgrade")
    data = project.status_json(ok=True)
    label = data["databases"][0]["database"]  # the URL, password hidden (MariaDB's with its charset)
    assert label.startswith(sa.make_url(project.url).render_as_string(hide_password=True))
    lines = project.status(ok=True).splitlines()
    assert lines[:4] == [
        f"Database: {label}",
        "  Current:  a3 (add email)",
        "  Head:     a3 (add email)",
        "  Up to date.",
    ]
    assert lines[4] == "  Last applied:"
    for line, rev, message in zip(lines[5:8], ["a3", "a2", "a1"], ["add email", "create post", "create user"]):
        assert re.fullmatch(rf"    {WHEN}  upgrade   {rev} +\d+\.\d\d s  applied  {message}", line), line
    assert float(lines[7].split()[5]) >= 0.05  # a1's duration
    assert lines[8:] == ["  No problems.", ""]

    assert set(data) == {"databases", "ok"} and data["ok"] is True
    [db] = data["databases"]
    assert set(db) == DATABASE_KEYS
    assert (db["bind"], db["database"], db["current"], db["heads"]) == ("", label, ["a3"], ["a3"])
    assert db["at_head"] is True and db["pending"] == [] and db["problems"] == []
    assert db["has_journal"] is True and db["messages"] == {"a3": "add email"}
    assert [e["revision"] for e in db["recent"]] == ["a3", "a2", "a1"]
    assert all(set(e) == ENTRY_KEYS for e in db["recent"])
    assert db["recent"][2]["duration_ms"] >= 50
    import datetime as dt

    dt.datetime.fromisoformat(db["recent"][0]["started_at"])  # ISO 8601


def test_status_behind_with_two_pending(project: Project) -> None:
    """Two revisions behind: both pending in upgrade order with id, message and file; --check 1."""
    write_standard_revisions(project.versions, sleep=0)
    project.ok("db", "upgrade", "a1")
    lines = project.status(ok=False).splitlines()
    assert lines[1:7] == [
        "  Current:  a1 (create user)",
        "  Head:     a3 (add email)",
        "  Pending:  2 revisions, in the order 'upgrade' applies them:",
        "    a2  create post  (migrations/versions/a2_create_post.py)",
        "    a3  add email  (migrations/versions/a3_add_email.py)",
        "  Last applied:",
    ]
    assert re.fullmatch(rf"    {WHEN}  upgrade   a1 +\d+\.\d\d s  applied  create user", lines[7])
    assert lines[8:] == ["  No problems.", ""]

    data = project.status_json(ok=False)
    [db] = data["databases"]
    assert db["at_head"] is False and db["problems"] == []
    assert db["pending"] == [
        {"revision": "a2", "message": "create post", "file": "migrations/versions/a2_create_post.py"},
        {"revision": "a3", "message": "add email", "file": "migrations/versions/a3_add_email.py"},
    ]
    # --recent limits the journal entries shown
    write_revision(project.versions, "a4", "a3", message="more")
    project.ok("db", "upgrade", "a2")
    limited = project.status("--recent", "1", ok=False).splitlines()
    assert limited[3:7] == [
        "  Pending:  2 revisions, in the order 'upgrade' applies them:",
        "    a3  add email  (migrations/versions/a3_add_email.py)",
        "    a4  more  (migrations/versions/a4_more.py)",
        "  Last applied:",
    ]
    assert re.fullmatch(rf"    {WHEN}  upgrade   a2 +\d+\.\d\d s  applied  create post", limited[7])
    assert limited[8:] == ["  No problems.", ""]


def test_status_multiple_heads(project: Project) -> None:
    """Two heads: the problem says to run 'flask db merge heads'; --check 1."""
    write_standard_revisions(project.versions, sleep=0)
    write_revision(project.versions, "b1", "a1", message="branch")
    project.ok("db", "upgrade", "a3")
    screen = project.status(ok=False)
    assert "  Head:     a3 (add email); b1 (branch)\n" in screen or \
        "  Head:     b1 (branch); a3 (add email)\n" in screen
    assert "    - The migrations folder has 2 heads: " in screen
    assert "      What to do: Run 'flask db merge heads' to join them into one." in screen
    data = project.status_json(ok=False)
    assert problem_codes(data) == ["multiple-heads"]
    assert [p["revision"] for p in data["databases"][0]["pending"]] == ["b1"]


def test_status_database_at_an_unknown_revision(project: Project) -> None:
    """A version table naming a revision the folder lacks: unknown-revision problem, no pending; --check 1."""
    write_standard_revisions(project.versions, sleep=0)
    project.sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
                "INSERT INTO alembic_version (version_num) VALUES ('zz9999')")
    screen = project.status(ok=False)
    assert "  Current:  zz9999\n" in screen
    assert ("    - The database is at revision zz9999, which the migrations folder does not have."
            in screen)
    assert "flask db stamp --purge <revision>" in screen
    data = project.status_json(ok=False)
    assert problem_codes(data) == ["unknown-revision"]
    assert data["databases"][0]["pending"] == [] and data["databases"][0]["current"] == ["zz9999"]


def test_status_tables_without_version_table(project: Project) -> None:
    """Tables but no alembic_version: the problem says 'flask db stamp' adopts it; --check 1."""
    write_standard_revisions(project.versions, sleep=0)
    metadata = sa.MetaData()
    sa.Table("user", metadata, sa.Column("id", sa.Integer, primary_key=True))
    engine = project.database.engine()
    metadata.create_all(engine)
    engine.dispose()
    screen = project.status(ok=False)
    assert "    - The database has tables (user) but no alembic_version table." in screen
    assert "      What to do: If its schema matches the models, run 'flask db stamp head' to adopt it." in screen
    assert problem_codes(project.status_json(ok=False)) == ["unversioned-tables"]


NO_MODELS_APP = """\
import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_migrate import Migrate

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["TEST_DATABASE_URL"]
db = SQLAlchemy(app)
migrate = Migrate(app, db)
# the module that defines the models is never imported
"""


def test_status_app_without_models(project: Project) -> None:
    """An app whose metadata has no tables: the no-models problem names the cause; --check 1."""
    write_standard_revisions(project.versions, sleep=0)
    (project.root / "nomodels.py").write_text(NO_MODELS_APP)
    screen = project.status(ok=False, app="nomodels.py")
    assert "    - The application's metadata has no tables for this database." in screen
    assert ("      What to do: Import the module that defines the models where the app is created; "
            "otherwise 'flask db migrate' finds no changes, or proposes dropping every table.") in screen
    data = project.status_json(ok=False, app="nomodels.py")
    assert problem_codes(data) == ["no-models"]


def test_status_api_returns_the_dataclass(project: Project) -> None:
    """operations.status() returns a frozen Status of DatabaseStatus entries with journal entries."""
    from flask_migrate import operations
    from flask_migrate.journal import JournalEntry
    from flask_migrate.status import DatabaseStatus, PendingRevision, Status

    write_standard_revisions(project.versions, sleep=0)
    project.ok("db", "upgrade", "a2")
    app, db, _ = create_app(project.url, project.migrations)
    try:
        with app.app_context():
            result = operations.status()
            limited = operations.status(recent=1)
    finally:
        with app.app_context():
            db.engine.dispose()
    assert isinstance(result, Status) and dataclasses.is_dataclass(result)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.databases = ()  # type: ignore[misc]
    [status] = result.databases
    assert isinstance(status, DatabaseStatus)
    assert (status.bind, status.current, status.heads) == ("", ("a2",), ("a3",))
    # (file paths are relative to the working directory when they are under it)
    assert status.pending == (
        PendingRevision("a3", "add email", str(project.versions / "a3_add_email.py")),
    )
    assert not status.at_head and not result.ok and status.problems == ()
    assert all(isinstance(e, JournalEntry) for e in status.recent)
    assert [e.revision for e in status.recent] == ["a2", "a1"]
    assert [e.revision for e in limited.databases[0].recent] == ["a2"]
    assert result.to_dict()["databases"][0]["current"] == ["a2"]


MULTIDB_PAIRS = [("sqlite", "sqlite"), ("postgresql", "mariadb")]


@pytest.mark.parametrize("pair", MULTIDB_PAIRS, ids=["-".join(p) for p in MULTIDB_PAIRS])
def test_status_multidb_shows_one_block_per_database(
    pair: tuple[str, str], databases_on: Callable[[str], Database], tmp_path: Path
) -> None:
    """flask-multidb: status has one block per database (default and bind), journals in each; --json, --check."""
    default, extra = databases_on(pair[0]), databases_on(pair[1])
    root = tmp_path / "multidb"
    root.mkdir()
    write_app(root)
    binds = {"extra": extra.url}

    def flask(*args: str) -> Result:
        return run_flask(root, *args, url=default.url, binds=binds, timeout=90)

    for args in (("db", "init", "--multidb"), ("db", "migrate", "-m", "create tables"),
                 ("db", "upgrade")):
        result = flask(*args)
        assert result.returncode == 0, (args, result.stderr)
    [revision] = [p.name.split("_")[0] for p in (root / "migrations" / "versions").glob("*.py")]
    # both databases' steps were printed, each with its database
    labels = [sa.make_url(u).render_as_string(hide_password=True) for u in (default.url, extra.url)]
    step_lines = result.stdout.splitlines()
    assert len(step_lines) == 2 and all(STEP_LINE.match(line) for line in step_lines), step_lines
    assert any(labels[0] in line for line in step_lines) and any(labels[1] in line for line in step_lines)
    for database in (default, extra):
        rows = journal_rows(database.url)
        assert [(r["kind"], r["revision"], r["state"]) for r in rows] == [
            ("run", "head", "done"), ("step", revision, "applied"),
        ]

    screen = flask("db", "status", "--check")  # at head everywhere: exit status 0
    assert screen.returncode == 0, screen.stderr
    blocks = screen.stdout.split("\n\n")
    # (Flask-SQLAlchemy adds ?charset=utf8mb4 to MariaDB URLs)
    assert blocks[0].startswith(f"Database: {labels[0]}")
    assert blocks[1].startswith(f"Database 'extra': {labels[1]}")
    assert len(blocks) == 3 and blocks[2] == "", blocks
    for block in blocks[:2]:
        assert f"  Current:  {revision} (create tables)" in block
        assert "  Up to date." in block and "  No problems." in block
        assert re.search(rf"    {WHEN}  upgrade   {revision} +\d+\.\d\d s  applied  create tables", block)

    # one more (empty) revision: pending in both blocks
    result = flask("db", "revision", "-m", "second")
    assert result.returncode == 0, result.stderr
    result = flask("db", "status", "--json", "--check")
    assert result.returncode == 1, result.stderr  # not at head
    data = json.loads(result.stdout)
    assert [d["bind"] for d in data["databases"]] == ["", "extra"]
    assert all(d["database"].startswith(label) for d, label in zip(data["databases"], labels))
    for db in data["databases"]:
        assert set(db) == DATABASE_KEYS
        assert db["current"] == [revision] and [p["message"] for p in db["pending"]] == ["second"]
        assert db["at_head"] is False and db["problems"] == []
    assert data["ok"] is False
