"""The everyday workflow, on every backend: init, migrate, upgrade, downgrade."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskCliRunner

from conftest import Database


def invoke(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, (result.output, result.stderr, result.exception)
    return result.output


def test_init_migrate_upgrade_downgrade(
    runner: FlaskCliRunner, database: Database, migrations: Path
) -> None:
    """The quickstart works and each step leaves the database as described."""
    invoke(runner, "db", "init")
    assert (migrations / "env.py").is_file()
    assert (migrations / "versions").is_dir()

    invoke(runner, "db", "migrate", "-m", "create user")
    [script] = list((migrations / "versions").glob("*_create_user.py"))
    assert "op.create_table('user'" in script.read_text()
    assert "user" not in database.table_names()

    invoke(runner, "db", "upgrade")
    assert {"user", "alembic_version"} <= database.table_names()
    revision = script.name.split("_")[0]
    assert database.versions() == {revision}
    assert revision in invoke(runner, "db", "current")

    invoke(runner, "db", "downgrade")
    assert "user" not in database.table_names()
    assert database.versions() == set()


def test_migrate_without_changes_writes_no_file(
    runner: FlaskCliRunner, database: Database, migrations: Path
) -> None:
    """A second migrate after upgrade says so and creates nothing."""
    invoke(runner, "db", "init")
    invoke(runner, "db", "migrate")
    invoke(runner, "db", "upgrade")
    before = set((migrations / "versions").iterdir())
    output = invoke(runner, "db", "migrate")
    assert "No changes in schema detected." in output
    assert set((migrations / "versions").iterdir()) == before
