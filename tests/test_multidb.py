"""The ``flask-multidb`` template: a default database plus binds, on one server or several."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from conftest import Database, create_app, run_flask, write_app

# (default database, bind "extra"): two SQLite files, and two servers both ways round.
PAIRS = [("sqlite", "sqlite"), ("postgresql", "mariadb"), ("mariadb", "postgresql")]

CREATE_TABLE = r"CREATE TABLE [`\"]?{}[`\"]? \("


def invoke(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


@pytest.fixture(params=PAIRS, ids=["-".join(p) for p in PAIRS])
def pair(
    request: pytest.FixtureRequest, databases_on: Callable[[str], Database]
) -> tuple[Database, Database]:
    """A fresh default database and a fresh database for the bind ``extra``."""
    default_backend, bind_backend = request.param
    return databases_on(default_backend), databases_on(bind_backend)


@pytest.fixture
def multidb_app(pair: tuple[Database, Database], migrations: Path) -> Iterator[Flask]:
    default, bind = pair
    app, db, _ = create_app(default.url, migrations, binds={"extra": bind.url})
    yield app
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture
def runner(multidb_app: Flask) -> FlaskCliRunner:
    return multidb_app.test_cli_runner()


def function_body(source: str, name: str) -> str:
    """The text of the top-level function ``name`` in a revision file."""
    match = re.search(rf"^def {name}\(\):\n(.*?)(?=^def |\Z)", source, re.M | re.S)
    assert match, f"no function {name}() in:\n{source}"
    return match.group(1)


def migrate_once(runner: FlaskCliRunner, migrations: Path) -> str:
    """init --multidb and a first migrate; returns the new revision id."""
    invoke(runner, "db", "init", "--multidb")
    invoke(runner, "db", "migrate", "-m", "create tables")
    [script] = (migrations / "versions").glob("*_create_tables.py")
    return script.name.split("_")[0]


def test_revision_has_upgrade_and_downgrade_per_database(
    runner: FlaskCliRunner, migrations: Path
) -> None:
    """A generated revision has upgrade_/downgrade_ functions per database with that database's operations."""
    migrate_once(runner, migrations)
    [script] = (migrations / "versions").glob("*.py")
    source = script.read_text()
    assert "def upgrade(engine_name):" in source
    assert "def downgrade(engine_name):" in source
    assert "op.create_table('user'" in function_body(source, "upgrade_")
    assert "group_extra" not in function_body(source, "upgrade_")
    assert "op.create_table('group_extra'" in function_body(source, "upgrade_extra")
    assert "'user'" not in function_body(source, "upgrade_extra")
    assert "op.drop_table('user')" in function_body(source, "downgrade_")
    assert "op.drop_table('group_extra')" in function_body(source, "downgrade_extra")


def test_upgrade_and_downgrade_reach_each_database(
    runner: FlaskCliRunner, pair: tuple[Database, Database], migrations: Path
) -> None:
    """Each table lands in its own database, each version table holds the revision, downgrade empties both."""
    default, bind = pair
    revision = migrate_once(runner, migrations)
    assert "user" not in default.table_names()
    assert "group_extra" not in bind.table_names()

    invoke(runner, "db", "upgrade")
    assert default.table_names() == {"user", "alembic_version"}
    assert bind.table_names() == {"group_extra", "alembic_version"}
    assert default.versions() == {revision}
    assert bind.versions() == {revision}

    invoke(runner, "db", "downgrade")
    assert default.table_names() == {"alembic_version"}
    assert bind.table_names() == {"alembic_version"}
    assert default.versions() == set()
    assert bind.versions() == set()


def test_migrate_without_changes_writes_no_file(
    runner: FlaskCliRunner, migrations: Path
) -> None:
    """After upgrade, migrate finds no change in any database and writes nothing."""
    migrate_once(runner, migrations)
    invoke(runner, "db", "upgrade")
    before = set((migrations / "versions").iterdir())
    assert "No changes in schema detected." in invoke(runner, "db", "migrate")
    assert set((migrations / "versions").iterdir()) == before


def test_current_lists_each_database(
    runner: FlaskCliRunner, pair: tuple[Database, Database], migrations: Path
) -> None:
    """current names every database and its revision."""
    default, bind = pair
    revision = migrate_once(runner, migrations)
    invoke(runner, "db", "upgrade")

    output = invoke(runner, "db", "current")
    assert output.count(f"{revision} (head)") == 2

    verbose = invoke(runner, "db", "current", "-v")
    headers = [line for line in verbose.splitlines() if line.startswith("Current revision(s) for")]
    assert len(headers) == 2
    default_name = default.url.rsplit("/", 1)[1]
    bind_name = bind.url.rsplit("/", 1)[1]
    assert default_name in headers[0] and bind_name in headers[1]
    assert verbose.count(f"Rev: {revision} (head)") == 2


def test_offline_sql_writes_a_file_per_database(
    runner: FlaskCliRunner,
    pair: tuple[Database, Database],
    migrations: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """upgrade --sql writes <bind>.sql files in the working directory with each database's DDL, running nothing."""
    default, bind = pair
    revision = migrate_once(runner, migrations)
    monkeypatch.chdir(tmp_path)
    invoke(runner, "db", "upgrade", "--sql")

    default_sql = (tmp_path / ".sql").read_text()
    bind_sql = (tmp_path / "extra.sql").read_text()
    assert re.search(CREATE_TABLE.format("user"), default_sql)
    assert "group_extra" not in default_sql
    assert re.search(CREATE_TABLE.format("group_extra"), bind_sql)
    assert not re.search(CREATE_TABLE.format("user"), bind_sql)
    for sql, db in ((default_sql, default), (bind_sql, bind)):
        assert re.search(CREATE_TABLE.format("alembic_version"), sql)
        assert f"INSERT INTO alembic_version (version_num) VALUES ('{revision}')" in sql
        # the SQL is written in each database's own dialect
        assert ("AUTO_INCREMENT" in sql) == (db.backend == "mariadb")
        assert ("SERIAL" in sql) == (db.backend == "postgresql")
    assert default.table_names() <= {"alembic_version"}
    assert bind.table_names() <= {"alembic_version"}


def test_multidb_through_the_flask_command(
    tmp_path: Path, pair: tuple[Database, Database]
) -> None:
    """The real 'flask db' entry point runs init --multidb, migrate, upgrade, current and downgrade."""
    default, bind = pair
    write_app(tmp_path)
    binds = {"extra": bind.url}

    def flask(*args: str) -> str:
        result = run_flask(tmp_path, "db", *args, url=default.url, binds=binds)
        assert result.returncode == 0, result.stderr
        return result.stdout

    flask("init", "--multidb")
    assert "def upgrade_${db_name}():" in (tmp_path / "migrations" / "script.py.mako").read_text()
    flask("migrate", "-m", "initial")
    [script] = (tmp_path / "migrations" / "versions").glob("*_initial.py")
    revision = script.name.split("_")[0]
    assert "def upgrade_extra():" in script.read_text()

    flask("upgrade")
    assert default.table_names() == {"user", "alembic_version"}
    assert bind.table_names() == {"group_extra", "alembic_version"}
    assert default.versions() == bind.versions() == {revision}
    assert flask("current").count(revision) == 2

    flask("downgrade", "base")
    assert default.table_names() == {"alembic_version"}
    assert bind.table_names() == {"alembic_version"}
