"""DDL lock time-outs: a migration never queues the application behind it.

A second connection holds a lock on a table in an open transaction while
``upgrade`` alters that table. The order of events is arranged, never timed:
the blocker is released from the ``on_retry`` callback, or once
``pg_stat_activity`` shows the migration waiting for its lock.
"""

from __future__ import annotations

import threading
import time
import typing as t
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from conftest import Database, DatabaseFactory, create_app, require_server, write_revision
from flask_migrate import operations
from flask_migrate.lock_timeouts import DDLLockTimeout, table_of
from flask_migrate.operations import LockOptions

CREATE_T = 'op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))'
ADD_X = 'op.add_column("t", sa.Column("x", sa.Integer))'

@pytest.fixture
def pg(tmp_path: Path) -> t.Iterator[Database]:
    require_server("postgresql")
    factory = DatabaseFactory("postgresql", tmp_path)
    yield factory()
    factory.drop_all()

@pytest.fixture
def maria(tmp_path: Path) -> t.Iterator[Database]:
    require_server("mariadb")
    factory = DatabaseFactory("mariadb", tmp_path)
    yield factory()
    factory.drop_all()

def make_app(database: Database, tmp_path: Path, **migrate_kwargs: t.Any) -> Flask:
    """An app whose history is: a1 creates table t, a2 adds column t.x."""
    migrations = tmp_path / "migrations"
    app, _, _ = create_app(database.url, migrations, models="none", **migrate_kwargs)
    with app.app_context():
        operations.init(migrations)
    versions = migrations / "versions"
    write_revision(versions, "a1", None, CREATE_T, 'op.drop_table("t")')
    write_revision(versions, "a2", "a1", ADD_X, 'op.drop_column("t", "x")')
    with app.app_context():
        operations.upgrade(revision="a1")
    return app

class Blocker:
    """A transaction on another connection that has read table ``t`` and stays open."""

    def __init__(self, database: Database) -> None:
        self.engine = sa.create_engine(database.url, poolclass=sa.pool.NullPool)
        self.conn = self.engine.connect()
        self.conn.execute(sa.text("SELECT * FROM t")).all()
        if self.engine.dialect.name == "postgresql":
            self.pid = self.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        else:
            self.pid = self.conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()
            self.engine.dispose()

def columns(database: Database) -> set[str]:
    return database.column_names("t")

def wait_until_waiting(database: Database, statement_prefix: str, timeout: float = 60) -> None:
    """Return once a session of ``database`` waits for a lock in a statement starting so."""
    engine = sa.create_engine(database.url, poolclass=sa.pool.NullPool)
    deadline = time.monotonic() + timeout
    try:
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                waiting = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE :prefix AND datname = current_database()"
                    ),
                    {"prefix": statement_prefix + "%"},
                ).scalar()
                if waiting:
                    return
                conn.rollback()
                time.sleep(0.02)
    finally:
        engine.dispose()
    raise AssertionError(f"no session waited in {statement_prefix!r}")

def test_postgresql_retries_and_succeeds_once_the_blocker_ends(pg: Database, tmp_path: Path) -> None:
    """The statement gives up after the time-out, the run is retried, and succeeds after the blocker ends."""
    app = make_app(pg, tmp_path)
    blocker = Blocker(pg)
    retries: list[tuple[DDLLockTimeout, int, float]] = []

    def on_retry(error: t.Any, attempt: int, pause: float) -> None:
        retries.append((error, attempt, pause))
        blocker.release()

    try:
        with app.app_context():
            steps = operations.upgrade(lock=LockOptions(ddl_timeout=0.5, ddl_retries=3, on_retry=on_retry))
    finally:
        blocker.release()
    assert [s.revision for s in steps] == ["a2"]
    assert len(retries) == 1
    error, attempt, pause = retries[0]
    assert attempt == 1 and pause == 1
    assert error.revision == "a2" and error.table == "t"
    assert any(f"pid {blocker.pid}" in holder for holder in error.holders), error.holders
    assert "x" in columns(pg)
    # the connection went back to the pool with its own time-out again
    with app.app_context():
        db = app.extensions["migrate"].db
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "0"

def test_postgresql_fails_cleanly_when_the_blocker_never_ends(pg: Database, tmp_path: Path) -> None:
    """After the retries, one error names the revision, the table and the blocking process; nothing changed."""
    app = make_app(pg, tmp_path)
    blocker = Blocker(pg)
    try:
        with app.app_context(), pytest.raises(DDLLockTimeout) as caught:
            operations.upgrade(lock=LockOptions(ddl_timeout=0.2, ddl_retries=1, on_retry=lambda *a: None))
    finally:
        blocker.release()
    error = caught.value
    assert error.attempts == 2
    message = str(error)
    assert "revision a2" in message and "table 't'" in message and f"pid {blocker.pid}" in message
    assert "(2 attempts)" in message
    assert "x" not in columns(pg)
    assert pg.versions() == {"a1"}

def test_the_cli_prints_the_retry_and_one_error_line(pg: Database, tmp_path: Path) -> None:
    """``--ddl-lock-timeout``/``--ddl-lock-retries`` on the command; the failure is one ``Error:`` line."""
    app = make_app(pg, tmp_path)
    blocker = Blocker(pg)
    try:
        result = app.test_cli_runner().invoke(
            args=["db", "upgrade", "--ddl-lock-timeout", "0.2", "--ddl-lock-retries", "1"]
        )
    finally:
        blocker.release()
    assert result.exit_code == 1
    assert "trying again in 1 s (retry 1)" in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "revision a2" in errors[0] and "Traceback" not in result.output
    assert pg.versions() == {"a1"}

def test_other_sessions_wait_no_longer_than_the_time_out(pg: Database, tmp_path: Path) -> None:
    """A query queued behind the migration's waiting ALTER runs once the ALTER gives up."""
    app = make_app(pg, tmp_path)
    blocker = Blocker(pg)
    outcome: list[BaseException | None] = []

    def migrate() -> None:
        try:
            with app.app_context():
                operations.upgrade(lock=LockOptions(ddl_timeout=1, ddl_retries=0))
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=migrate)
    thread.start()
    try:
        wait_until_waiting(pg, "ALTER TABLE")
        reader = sa.create_engine(pg.url, poolclass=sa.pool.NullPool)
        with reader.connect() as conn:
            conn.exec_driver_sql("SET statement_timeout = '30s'")
            began = time.monotonic()
            conn.execute(sa.text("SELECT count(*) FROM t")).scalar()
            waited = time.monotonic() - began
        reader.dispose()
        thread.join(60)
    finally:
        blocker.release()
        thread.join(60)
    assert isinstance(outcome[0], DDLLockTimeout)
    # queued behind the ALTER at most until it gave up (1 s), not until the blocker ended
    assert waited < 10, waited

def test_zero_waits_for_the_lock_as_before(pg: Database, tmp_path: Path) -> None:
    """``ddl_timeout=0`` sets no time-out: the migration waits until the blocker ends."""
    app = make_app(pg, tmp_path)
    blocker = Blocker(pg)
    releaser = threading.Thread(target=lambda: (wait_until_waiting(pg, "ALTER TABLE"), blocker.release()))
    releaser.start()
    try:
        with app.app_context():
            steps = operations.upgrade(lock=LockOptions(ddl_timeout=0))
    finally:
        releaser.join(60)
        blocker.release()
    assert [s.revision for s in steps] == ["a2"]

def test_a_revision_that_left_its_transaction_is_not_run_twice(pg: Database, tmp_path: Path) -> None:
    """What an ``autocommit_block()`` committed is never run again: no retry for that revision."""
    app = make_app(pg, tmp_path)
    path = tmp_path / "migrations" / "versions"
    next(path.glob("a2_*.py")).unlink()
    write_revision(
        path, "a2", "a1",
        """
        with op.get_context().autocommit_block():
            op.execute("CREATE TABLE side (id integer)")
        op.add_column("t", sa.Column("x", sa.Integer))
        """,
        'op.drop_column("t", "x")\nop.execute("DROP TABLE side")',
    )
    blocker = Blocker(pg)
    retried: list[int] = []
    try:
        with app.app_context(), pytest.raises(DDLLockTimeout) as caught:
            operations.upgrade(
                lock=LockOptions(ddl_timeout=0.2, ddl_retries=3, on_retry=lambda e, n, p: retried.append(n))
            )
    finally:
        blocker.release()
    assert retried == []
    assert "not retried" in str(caught.value) and "autocommit_block" in str(caught.value)
    assert "side" in pg.table_names()

def test_per_migration_runs_keep_what_committed_and_retry_the_rest(pg: Database, tmp_path: Path) -> None:
    """With ``transaction_per_migration`` the revisions before the blocked one stay applied and run once."""
    app = make_app(pg, tmp_path, transaction_per_migration=True)
    versions = tmp_path / "migrations" / "versions"
    next(versions.glob("a2_*.py")).unlink()
    write_revision(versions, "a2", "a1", 'op.create_table("u", sa.Column("id", sa.Integer, primary_key=True))',
                   'op.drop_table("u")')
    write_revision(versions, "a3", "a2", ADD_X, 'op.drop_column("t", "x")')
    blocker = Blocker(pg)
    try:
        with app.app_context():
            steps = operations.upgrade(
                lock=LockOptions(ddl_timeout=0.3, ddl_retries=2, on_retry=lambda *a: blocker.release())
            )
    finally:
        blocker.release()
    assert [s.revision for s in steps] == ["a2", "a3"]
    assert pg.versions() == {"a3"} and "x" in columns(pg)

def test_mariadb_sets_lock_wait_timeout_and_does_not_retry(maria: Database, tmp_path: Path) -> None:
    """On MariaDB the ALTER gives up after ``lock_wait_timeout``; DDL commits itself, so no retry."""
    app = make_app(maria, tmp_path)
    blocker = Blocker(maria)
    retried: list[int] = []
    try:
        with app.app_context(), pytest.raises(DDLLockTimeout) as caught:
            operations.upgrade(
                lock=LockOptions(ddl_timeout=1, ddl_retries=3, on_retry=lambda e, n, p: retried.append(n))
            )
    finally:
        blocker.release()
    assert retried == []
    assert "revision a2" in str(caught.value) and "MariaDB" in str(caught.value)
    with app.app_context():
        db = app.extensions["migrate"].db
        with db.engine.connect() as conn:
            default = conn.exec_driver_sql("SELECT @@GLOBAL.lock_wait_timeout").scalar()
            assert conn.exec_driver_sql("SELECT @@SESSION.lock_wait_timeout").scalar() == default

@pytest.mark.parametrize(
    ("statement", "table"),
    [
        ('ALTER TABLE "user" ADD COLUMN x INTEGER', "user"),
        ("ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK (x > 0)", "public.t"),
        ("CREATE UNIQUE INDEX CONCURRENTLY ix_t_x ON t (x)", "t"),
        ("DROP TABLE IF EXISTS `t`", "t"),
        ("SELECT 1", None),
    ],
)
def test_the_table_is_read_from_the_statement(statement: str, table: str | None) -> None:
    """The error names the table the statement was working on."""
    assert table_of(statement) == table
