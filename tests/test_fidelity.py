"""Drop-in fidelity: a run touches exactly what env.py configures (issue 7).

Each test is one case that broke apps which work with Flask-Migrate 4.1:

1. an extra bind on the single-database template is never touched;
2. an env.py passing its own ``version_table`` / ``version_table_schema``;
6. a refusal on a later database of a multi-database env.py leaves no
   ``running`` journal rows on the earlier ones;
7. two histories in one database (two version tables) each have their own
   lock and journal: one never sees the other's live run;
8. async engines are locked and journaled through their own driver;
9. the SQLite lock follows the file the database really is, however its URL
   is spelled; a dialect without a lock gets one warning.

The env.py eras (4.1, 3.x, 2.x) and explicit configure keywords are in
``test_env_eras.py``; transactions in ``test_atomic.py``; the compat API's
error types in ``test_api.py``; the CLI registration in ``test_cli.py``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import textwrap
import time
import typing as t
from pathlib import Path

import pytest
import sqlalchemy as sa

from flask_migrate import locking, operations

from conftest import (
    FLASK,
    JOURNAL,
    Database,
    DatabaseFactory,
    create_app,
    run_flask,
    write_app,
    write_revision,
)


def ok(result: t.Any) -> t.Any:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def rows(url: str, sql: str) -> list[t.Any]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)))
    finally:
        engine.dispose()


def edit_env(migrations: Path, old: str, new: str, count: int = -1) -> None:
    env_py = migrations / "env.py"
    text = env_py.read_text()
    assert old in text, f"{old!r} not in env.py"
    env_py.write_text(text.replace(old, new, count))


# -- 1. an extra bind on the single-database template ---------------------------------


def test_extra_bind_on_single_database_template_is_never_touched(
    make_database: DatabaseFactory, tmp_path: Path
) -> None:
    """A bind env.py does not migrate gets no lock, no version table, no journal; status omits it."""
    main, reports = make_database(), make_database()
    # the reporting database already has the modelled table, built outside migrations
    execute(reports.url, "CREATE TABLE group_reports (id INTEGER PRIMARY KEY, name VARCHAR(64))")
    write_app(tmp_path)
    binds = {"reports": reports.url}

    ok(run_flask(tmp_path, "db", "init", url=main.url, binds=binds))
    ok(run_flask(tmp_path, "db", "migrate", "-m", "users", url=main.url, binds=binds))
    ok(run_flask(tmp_path, "db", "upgrade", url=main.url, binds=binds))
    status = json.loads(ok(run_flask(
        tmp_path, "db", "status", "--json", url=main.url, binds=binds
    )).stdout)
    ok(run_flask(tmp_path, "db", "downgrade", "base", url=main.url, binds=binds))

    assert table_names(reports.url) == {"group_reports"}
    assert {"alembic_version", JOURNAL} <= table_names(main.url)
    [shown] = [db["database"] for db in status["databases"]]
    assert sa.make_url(shown).database == sa.make_url(main.url).database
    assert status["databases"][0]["problems"] == []
    if reports.backend == "sqlite":
        assert not Path(sa.make_url(reports.url).database + ".migrate-lock").exists()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_extra_bind_through_the_python_api(make_database: DatabaseFactory, tmp_path: Path) -> None:
    """The same through flask_migrate.upgrade() and operations.status()."""
    import flask_migrate

    main, reports = make_database(), make_database()
    execute(reports.url, "CREATE TABLE group_reports (id INTEGER PRIMARY KEY, name VARCHAR(64))")
    app, db, _ = create_app(main.url, tmp_path / "migrations", binds={"reports": reports.url})
    with app.app_context():
        flask_migrate.init()
        flask_migrate.migrate(message="users")
        steps = flask_migrate.upgrade()
        status = operations.status()
        db.engine.dispose()
    assert [s.revision for s in steps] == [steps[0].revision]
    assert len(status.databases) == 1 and status.ok
    assert table_names(reports.url) == {"group_reports"}


# -- 2. env.py passing its own version table ----------------------------------------


def test_env_py_with_its_own_version_table_upgrades_again_and_again(
    database: Database, tmp_path: Path
) -> None:
    """version_table= passed by env.py: every upgrade works; lock and journal follow that table."""
    write_app(tmp_path)
    url = database.url
    ok(run_flask(tmp_path, "db", "init", url=url))
    migrations = tmp_path / "migrations"
    edit_env(migrations, "context.configure(", "context.configure(version_table='app_versions', ")
    versions = migrations / "versions"
    write_revision(versions, "v1", None, 'op.create_table("t1", sa.Column("id", sa.Integer, primary_key=True))',
                   'op.drop_table("t1")')
    ok(run_flask(tmp_path, "db", "upgrade", url=url))
    write_revision(versions, "v2", "v1", 'op.create_table("t2", sa.Column("id", sa.Integer, primary_key=True))',
                   'op.drop_table("t2")')
    ok(run_flask(tmp_path, "db", "upgrade", url=url, env={}))
    ok(run_flask(tmp_path, "db", "--no-lock", "upgrade", url=url))
    write_revision(versions, "v3", "v2", "pass")
    ok(run_flask(tmp_path, "db", "upgrade", "--no-lock", url=url))
    ok(run_flask(tmp_path, "db", "downgrade", "v1", url=url))

    names = table_names(url)
    assert "alembic_version" not in names and JOURNAL not in names
    assert {"app_versions", "flask_migrate_journal_app_versions", "t1"} <= names
    assert [r[0] for r in rows(url, "SELECT version_num FROM app_versions")] == ["v1"]
    runs = rows(url, "SELECT direction, state FROM flask_migrate_journal_app_versions "
                     "WHERE kind = 'run' ORDER BY id")
    assert [tuple(r) for r in runs] == [
        ("upgrade", "done"), ("upgrade", "done"), ("upgrade", "done"), ("downgrade", "done")
    ]
    status = json.loads(ok(run_flask(tmp_path, "db", "status", "--json", url=url)).stdout)
    [db] = status["databases"]
    assert db["current"] == ["v1"] and [p["revision"] for p in db["pending"]] == ["v2", "v3"]
    assert db["problems"] == []
    if database.backend == "sqlite":
        path = sa.make_url(url).database
        assert Path(path + ".migrate-lock-app_versions").exists()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_env_py_with_its_own_version_table_schema(database: Database, tmp_path: Path) -> None:
    """version_table_schema= passed by env.py: version table and journal live in that schema."""
    execute(database.url, "CREATE SCHEMA meta")
    write_app(tmp_path)
    url = database.url
    ok(run_flask(tmp_path, "db", "init", url=url))
    migrations = tmp_path / "migrations"
    edit_env(migrations, "context.configure(", "context.configure(version_table_schema='meta', ")
    write_revision(migrations / "versions", "v1", None, "pass")
    ok(run_flask(tmp_path, "db", "upgrade", url=url))
    write_revision(migrations / "versions", "v2", "v1", "pass")
    ok(run_flask(tmp_path, "db", "upgrade", url=url))

    assert [r[0] for r in rows(url, "SELECT version_num FROM meta.alembic_version")] == ["v2"]
    assert rows(url, "SELECT count(*) FROM meta.flask_migrate_journal WHERE kind = 'step'")[0][0] == 2
    assert "alembic_version" not in table_names(url)
    status = json.loads(ok(run_flask(tmp_path, "db", "status", "--json", url=url)).stdout)
    assert status["databases"][0]["current"] == ["v2"]
    assert status["databases"][0]["problems"] == []


# -- 6. a refusal on a later database ------------------------------------------------


def test_refusal_on_a_later_database_leaves_no_running_rows_on_the_earlier_ones(
    make_database: DatabaseFactory, tmp_path: Path
) -> None:
    """Multidb: the second database refuses (unversioned tables); the first keeps no 'running' row."""
    main, second = make_database(), make_database()
    write_app(tmp_path)
    binds = {"second": second.url}
    ok(run_flask(tmp_path, "db", "init", "--multidb", url=main.url, binds=binds))
    ok(run_flask(tmp_path, "db", "migrate", "-m", "both", url=main.url, binds=binds))
    # the second database gets the modelled table behind the migrations' back
    execute(second.url, "CREATE TABLE group_second (id INTEGER PRIMARY KEY, name VARCHAR(64))")

    result = run_flask(tmp_path, "db", "upgrade", url=main.url, binds=binds)
    assert result.returncode == 1
    assert "already has tables (group_second)" in result.stderr
    running = []
    if JOURNAL in table_names(main.url):
        running = rows(main.url, f"SELECT kind FROM {JOURNAL} WHERE state = 'running'")
    status = json.loads(run_flask(tmp_path, "db", "status", "--json", url=main.url, binds=binds).stdout)
    codes = [p["code"] for db in status["databases"] for p in db["problems"]]
    assert "interrupted-run" not in codes and "unversioned-tables" in codes
    if main.backend == "mariadb":
        # MariaDB committed the first database's DDL, but not its version row:
        # the journal keeps that revision's step open, and says so
        assert [r[0] for r in running] == ["step"]
        assert "interrupted-step" in codes
        return
    assert running == []
    # DDL rolled back: the first database is as it was
    assert "user" not in table_names(main.url)
    assert not rows(main.url, "SELECT * FROM alembic_version")
    assert codes == ["unversioned-tables"]

    # adopting the second database lets the next run go through, with no false notes
    execute(second.url, "DROP TABLE group_second")
    result = ok(run_flask(tmp_path, "db", "upgrade", url=main.url, binds=binds))
    assert "did not finish" not in result.stderr
    assert {"user", "alembic_version"} <= table_names(main.url)
    assert {"group_second", "alembic_version"} <= table_names(second.url)


# -- 7. two histories in one database -------------------------------------------------

HANG = """
op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True))
open(os.environ["HANG_MARKER"], "w").close()
while not os.path.exists(os.environ["HANG_RELEASE"]):
    time.sleep(0.01)
"""


def wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"process ended first: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_two_histories_in_one_database_never_see_each_others_runs(
    database: Database, tmp_path: Path
) -> None:
    """History A is mid-run (holding its lock); history B upgrades at once, with no note and no refusal."""
    url = database.url
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir(), b_dir.mkdir()
    write_app(a_dir, "transaction_per_migration=True")
    write_app(b_dir, "version_table='b_version'")
    ok(run_flask(a_dir, "db", "init", url=url))
    ok(run_flask(b_dir, "db", "init", url=url))
    write_revision(a_dir / "migrations" / "versions", "a1", None,
                   'op.create_table("a1", sa.Column("id", sa.Integer, primary_key=True))')
    write_revision(a_dir / "migrations" / "versions", "a2", "a1", HANG.format(table="a2"),
                   preamble="import os, time")
    write_revision(b_dir / "migrations" / "versions", "b1", None,
                   'op.create_table("b1", sa.Column("id", sa.Integer, primary_key=True))')

    marker, release = tmp_path / "hanging", tmp_path / "release"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env.update(FLASK_APP="app.py", TEST_DATABASE_URL=url,
               HANG_MARKER=str(marker), HANG_RELEASE=str(release))
    proc = subprocess.Popen([FLASK, "db", "upgrade"], cwd=a_dir, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(marker, proc)
        b_run = run_flask(b_dir, "db", "upgrade", "--lock-timeout", "0", url=url)
        b_status = json.loads(run_flask(b_dir, "db", "status", "--json", url=url).stdout)
        a_status = json.loads(run_flask(a_dir, "db", "status", "--json", url=url).stdout)
    finally:
        release.touch()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert b_run.returncode == 0, b_run.stderr
    assert "did not finish" not in b_run.stderr
    assert b_status["databases"][0]["problems"] == [] and b_status["ok"]
    assert a_status["databases"][0]["in_progress"] is not None
    assert a_status["databases"][0]["problems"] == []
    a_runs = rows(url, f"SELECT state FROM {JOURNAL} WHERE kind = 'run'")
    b_runs = rows(url, "SELECT state FROM flask_migrate_journal_b_version WHERE kind = 'run'")
    assert [r[0] for r in a_runs] == ["done"] and [r[0] for r in b_runs] == ["done"]


# -- 8. async engines ---------------------------------------------------------------

ASYNC_APP = """
import os

import sqlalchemy
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_migrate import Migrate

app = Flask(__name__)
# an asyncio driver, with connect arguments only this engine knows
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["TEST_ASYNC_URL"]
app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {connect_args}
db = SQLAlchemy(app)
migrate = Migrate(app, db)


class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(128))


def refuse(*args, **kwargs):
    raise AssertionError("a second engine was created during a migration command")


# the migration must not build engines (or drivers) of its own
sqlalchemy.create_engine = refuse
sqlalchemy.engine.create_engine = refuse
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_async_engine_is_locked_and_journaled_through_its_own_driver(
    database: Database, tmp_path: Path
) -> None:
    """No second engine or driver: the lock, checks and journal use env.py's async connection."""
    url = sa.make_url(database.url)
    if database.backend == "sqlite":
        async_url = url.set(drivername="sqlite+aiosqlite")
        connect_args = "{'connect_args': {'timeout': 7}}"
    else:
        async_url = url.set(drivername="postgresql+psycopg_async")
        connect_args = "{'connect_args': {'application_name': 'from-connect-args'}}"
    (tmp_path / "app.py").write_text(ASYNC_APP.replace("{connect_args}", connect_args))
    env = {"TEST_ASYNC_URL": async_url.render_as_string(hide_password=False)}
    ok(run_flask(tmp_path, "db", "init", "-t", "aioflask", url=database.url, env=env))
    versions = tmp_path / "migrations" / "versions"
    write_revision(versions, "x1", None,
                   'op.create_table("x1", sa.Column("id", sa.Integer, primary_key=True))',
                   'op.drop_table("x1")')
    write_revision(versions, "x2", "x1", "pass")
    ok(run_flask(tmp_path, "db", "upgrade", url=database.url, env=env))
    status = json.loads(ok(run_flask(tmp_path, "db", "status", "--json", url=database.url, env=env)).stdout)
    ok(run_flask(tmp_path, "db", "downgrade", "base", url=database.url, env=env))

    steps = rows(database.url, f"SELECT direction, revision, state FROM {JOURNAL} "
                               "WHERE kind = 'step' ORDER BY id")
    assert [tuple(r) for r in steps] == [
        ("upgrade", "x1", "applied"), ("upgrade", "x2", "applied"),
        ("downgrade", "x2", "applied"), ("downgrade", "x1", "applied"),
    ]
    assert status["ok"] and status["databases"][0]["current"] == ["x2"]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_async_engine_waits_for_the_lock_like_any_other(database: Database, tmp_path: Path) -> None:
    """While another session holds the migration lock, an async upgrade with --lock-timeout 0 refuses."""
    url = sa.make_url(database.url)
    (tmp_path / "app.py").write_text(ASYNC_APP.replace("{connect_args}", "{}"))
    env = {"TEST_ASYNC_URL": url.set(drivername="postgresql+psycopg_async").render_as_string(
        hide_password=False)}
    ok(run_flask(tmp_path, "db", "init", "-t", "aioflask", url=database.url, env=env))
    write_revision(tmp_path / "migrations" / "versions", "x1", None, "pass")
    engine = sa.create_engine(database.url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            lock = locking.lock_for(conn, locking.lock_key())
            assert lock is not None
            lock.acquire(conn, 0, None)
            conn.commit()
            result = run_flask(tmp_path, "db", "upgrade", "--lock-timeout", "0",
                               url=database.url, env=env)
    finally:
        engine.dispose()
    assert result.returncode == 1
    assert "Another migration holds the lock" in result.stderr
    assert "alembic_version" not in table_names(database.url)


# -- 9. the SQLite lock ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_lock_is_one_lock_however_the_url_spells_the_file(
    database: Database, tmp_path: Path
) -> None:
    """A relative URL, an absolute one and one through a symlink all meet the same lock."""
    path = Path(sa.make_url(database.url).database)
    write_app(tmp_path)
    ok(run_flask(tmp_path, "db", "init", url=database.url))
    write_revision(tmp_path / "migrations" / "versions", "s1", None, "pass")
    link_dir = tmp_path / "elsewhere"
    link_dir.mkdir()
    (link_dir / "same.db").symlink_to(path)
    engine = sa.create_engine(database.url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            lock = locking.lock_for(conn, locking.lock_key())
            assert isinstance(lock, locking.SQLiteFileLock)
            lock.acquire(conn, 0, None)
            try:
                spellings = [
                    # Flask-SQLAlchemy reads relative paths from the instance folder
                    f"sqlite:///{os.path.relpath(path, tmp_path / 'instance')}",
                    f"sqlite:///{path}",
                    f"sqlite:///{link_dir / 'same.db'}",
                    f"sqlite:///{tmp_path / 'elsewhere' / '..' / path.name}",
                ]
                results = [
                    run_flask(tmp_path, "db", "upgrade", "--lock-timeout", "0", url=spelling)
                    for spelling in spellings
                ]
            finally:
                lock.release()
    finally:
        engine.dispose()
    for spelling, result in zip(spellings, results):
        assert result.returncode == 1, (spelling, result.stderr)
        assert "Another migration holds the lock" in result.stderr, (spelling, result.stderr)
        assert f"pid {os.getpid()}" in result.stderr
    ok(run_flask(tmp_path, "db", "upgrade", url=f"sqlite:///{link_dir / 'same.db'}"))


def test_sqlite_lock_writes_its_holder_without_pwrite() -> None:
    """The lock file is written with portable calls (os.pwrite does not exist on Windows)."""
    source = Path(locking.__file__).read_text()
    assert "pwrite" not in source


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_dialect_without_a_lock_gets_one_warning(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No lock known for the dialect: the upgrade runs and says so once, as a warning."""
    monkeypatch.delitem(locking._REGISTRY, "sqlite")
    monkeypatch.setattr(locking, "_warned", set())
    app, db, _ = create_app(database.url, tmp_path / "migrations")
    with app.app_context():
        operations.init()
        write_revision(tmp_path / "migrations" / "versions", "w1", None, "pass")
        write_revision(tmp_path / "migrations" / "versions", "w2", "w1", "pass")
        with caplog.at_level(logging.WARNING, logger="flask_migrate"):
            operations.upgrade(revision="w1")
            operations.upgrade()
        db.engine.dispose()
    warnings = [r for r in caplog.records if "No migration lock is known" in r.getMessage()]
    assert len(warnings) == 1
    assert "sqlite" in warnings[0].getMessage()
