"""The ``aioflask`` and ``aioflask-multidb`` templates, on real async drivers.

Flask-SQLAlchemy builds a synchronous ``Engine`` even for an asyncio driver;
the templates wrap it in an ``AsyncEngine`` and run Alembic in ``asyncio.run``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from conftest import Database, create_app, run_flask, write_app

# the asyncio driver for each backend's synchronous test URL
ASYNC_DRIVERS = {
    "sqlite://": "sqlite+aiosqlite://",
    "postgresql+psycopg://": "postgresql+psycopg_async://",
}


def async_url(database: Database) -> str:
    """The URL of ``database`` with its asyncio driver."""
    for sync, asynchronous in ASYNC_DRIVERS.items():
        if database.url.startswith(sync):
            return asynchronous + database.url[len(sync):]
    raise AssertionError(f"no async driver for {database.url}")


def invoke(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


@pytest.fixture
def make_app(migrations: Path) -> Iterator[Callable[..., Flask]]:
    """Builds apps in process, disposing of their engines afterwards."""
    dbs = []

    def make(url: str, binds: dict[str, str] | None = None) -> Flask:
        app, db, _ = create_app(url, migrations, binds=binds)
        dbs.append((app, db))
        return app

    yield make
    for app, db in dbs:
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()


@pytest.mark.parametrize(
    ("backend", "lock_args"),
    [
        pytest.param("sqlite", (), id="sqlite"),
        pytest.param("postgresql", ("--no-lock",), id="postgresql-no-lock"),
        pytest.param("postgresql", (), id="postgresql-locked"),
    ],
)
def test_aioflask_workflow(
    backend: str,
    lock_args: tuple[str, ...],
    databases_on: Callable[[str], Database],
    make_app: Callable[..., Flask],
    migrations: Path,
) -> None:
    """init -t aioflask, migrate, upgrade and downgrade run on an async engine."""
    database = databases_on(backend)
    app = make_app(async_url(database))
    with app.app_context():
        assert app.extensions["sqlalchemy"].engine.dialect.is_async
    runner = app.test_cli_runner()

    invoke(runner, "db", "init", "-t", "aioflask")
    assert "AsyncEngine" in (migrations / "env.py").read_text()
    invoke(runner, "db", "migrate", "-m", "create user")
    [script] = (migrations / "versions").glob("*_create_user.py")
    assert "op.create_table('user'" in script.read_text()
    revision = script.name.split("_")[0]

    invoke(runner, "db", "upgrade", *lock_args)
    assert {"user", "alembic_version"} <= database.table_names()
    assert database.versions() == {revision}
    assert f"{revision} (head)" in invoke(runner, "db", "current")
    assert "No changes in schema detected." in invoke(runner, "db", "migrate")

    invoke(runner, "db", "downgrade", *lock_args)
    assert "user" not in database.table_names()
    assert database.versions() == set()


def test_aioflask_offline_sql(
    databases_on: Callable[[str], Database],
    make_app: Callable[..., Flask],
) -> None:
    """upgrade --sql with the aioflask template prints the DDL without connecting."""
    database = databases_on("sqlite")
    runner = make_app(async_url(database)).test_cli_runner()
    invoke(runner, "db", "init", "-t", "aioflask")
    invoke(runner, "db", "migrate", "-m", "create user")
    sql = invoke(runner, "db", "upgrade", "--sql")
    assert "CREATE TABLE user" in sql or 'CREATE TABLE "user"' in sql
    assert "user" not in database.table_names()


def test_aioflask_multidb_workflow(
    databases_on: Callable[[str], Database],
    make_app: Callable[..., Flask],
    migrations: Path,
) -> None:
    """aioflask-multidb migrates two aiosqlite databases, each with its own tables and version."""
    default, bind = databases_on("sqlite"), databases_on("sqlite")
    app = make_app(async_url(default), binds={"extra": async_url(bind)})
    runner = app.test_cli_runner()

    invoke(runner, "db", "init", "-t", "aioflask-multidb")
    invoke(runner, "db", "migrate", "-m", "initial")
    [script] = (migrations / "versions").glob("*_initial.py")
    source = script.read_text()
    assert "def upgrade_extra():" in source and "def downgrade_():" in source
    revision = script.name.split("_")[0]

    invoke(runner, "db", "upgrade")
    assert default.table_names() == {"user", "alembic_version"}
    assert bind.table_names() == {"group_extra", "alembic_version"}
    assert default.versions() == bind.versions() == {revision}
    assert "No changes in schema detected." in invoke(runner, "db", "migrate")

    invoke(runner, "db", "downgrade")
    assert default.table_names() == {"alembic_version"}
    assert bind.table_names() == {"alembic_version"}
    assert default.versions() == bind.versions() == set()


@pytest.mark.parametrize(
    "lock_args",
    [
        pytest.param(("--no-lock",), id="no-lock"),
        pytest.param((), id="locked"),
    ],
)
def test_aioflask_multidb_mixes_servers(
    lock_args: tuple[str, ...],
    databases_on: Callable[[str], Database],
    make_app: Callable[..., Flask],
    migrations: Path,
) -> None:
    """aioflask-multidb drives an async PostgreSQL default and an aiosqlite bind together."""
    default, bind = databases_on("postgresql"), databases_on("sqlite")
    runner = make_app(async_url(default), binds={"extra": async_url(bind)}).test_cli_runner()
    invoke(runner, "db", "init", "-t", "aioflask-multidb")
    invoke(runner, "db", "migrate", "-m", "initial")
    invoke(runner, "db", "upgrade", *lock_args)
    assert default.table_names() == {"user", "alembic_version"}
    assert bind.table_names() == {"group_extra", "alembic_version"}
    invoke(runner, "db", "downgrade", *lock_args)
    assert default.table_names() == {"alembic_version"}
    assert bind.table_names() == {"alembic_version"}


@pytest.mark.parametrize("template", ["aioflask", "aioflask-multidb"])
def test_async_env_runs_without_deprecation_warnings(
    template: str, tmp_path: Path, databases_on: Callable[[str], Database]
) -> None:
    """The async env.py uses asyncio.run: no DeprecationWarning (get_event_loop) under -W error."""
    default, bind = databases_on("sqlite"), databases_on("sqlite")
    binds = {"extra": async_url(bind)} if template.endswith("multidb") else None
    write_app(tmp_path)

    def flask(*args: str) -> None:
        result = run_flask(
            tmp_path, "db", *args, url=async_url(default), binds=binds,
            env={"PYTHONWARNINGS": "error::DeprecationWarning"},
        )
        assert result.returncode == 0, result.stderr
        assert "Warning" not in result.stderr

    flask("init", "-t", template)
    env_py = (tmp_path / "migrations" / "env.py").read_text()
    assert "asyncio.run(" in env_py
    assert "get_event_loop" not in env_py
    flask("migrate", "-m", "initial")
    flask("upgrade")
    assert "user" in default.table_names()
    flask("current")
    flask("downgrade")
    assert "user" not in default.table_names()
