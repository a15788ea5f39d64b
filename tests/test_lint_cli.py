"""``flask db lint`` and ``flask db migrate``'s lint pass, through the CLI.

The rules themselves are tested in ``test_lint.py``; here: which revisions
are linted (pending by default, ``-r``, ``--all``, everything when the
database cannot be read), the dialect the rules are chosen for, the exit
codes, ``--json``, configured severities, and ``migrate`` printing warnings.
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from flask import Flask

from conftest import Database, create_app, run_flask, write_app, write_revision
from flask_migrate import operations

CREATE_T = 'op.create_table("t", sa.Column("id", sa.Integer, primary_key=True), sa.Column("a", sa.Integer), sa.Column("c", sa.Integer))'
DROP_A = (
    'with op.batch_alter_table("t") as batch_op:\n    batch_op.drop_column("a")',
    'with op.batch_alter_table("t") as batch_op:\n    batch_op.add_column(sa.Column("a", sa.Integer), sa.Column("c", sa.Integer))',
)
RENAME_A = (
    'with op.batch_alter_table("t") as batch_op:\n    batch_op.alter_column("c", new_column_name="d")',
    'with op.batch_alter_table("t") as batch_op:\n    batch_op.alter_column("d", new_column_name="c")',
)
INDEX_A = ('op.create_index("ix_t_a", "t", ["a"])', 'op.drop_index("ix_t_a", "t")')


def history(app: Flask, migrations: Path, *revisions: tuple[str, tuple[str, str]]) -> None:
    """``init``, then a chain of revisions: r1 creates table t, then the given ones."""
    with app.app_context():
        operations.init(migrations)
    versions = migrations / "versions"
    write_revision(versions, "r1", None, CREATE_T, 'op.drop_table("t")')
    down = "r1"
    for rev, (upgrade, downgrade) in revisions:
        write_revision(versions, rev, down, upgrade, downgrade)
        down = rev


@pytest.fixture
def sqlite_app(tmp_path: Path) -> t.Iterator[tuple[Flask, Path]]:
    migrations = tmp_path / "migrations"
    app, db, _ = create_app(f"sqlite:///{tmp_path / 'app.db'}", migrations, models="none")
    yield app, migrations
    with app.app_context():
        db.engine.dispose()


def lines(output: str, marker: str = ": FM") -> list[str]:
    return [line for line in output.splitlines() if marker in line]


def test_by_default_only_revisions_not_applied_are_linted(sqlite_app: tuple[Flask, Path]) -> None:
    """An applied revision's findings are not repeated; the pending one fails the command."""
    app, migrations = sqlite_app
    history(app, migrations, ("r2", RENAME_A), ("r3", DROP_A))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade", "r2"]).exit_code == 0
    result = runner.invoke(args=["db", "lint"])
    assert result.exit_code == 1
    found = lines(result.output)
    assert len(found) == 1
    path, line, rest = found[0].split(":", 2)
    assert path.endswith("r3_step.py") and line.isdigit()
    assert rest.strip().startswith("FM102 error:")
    assert "1 error(s), 0 warning(s) in 1 revision not yet applied (rules for sqlite)." in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: Lint found 1 error(s)")


def test_all_and_a_range(sqlite_app: tuple[Flask, Path]) -> None:
    """``--all`` lints the whole history; ``-r`` a range of it."""
    app, migrations = sqlite_app
    history(app, migrations, ("r2", RENAME_A), ("r3", DROP_A))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    everything = runner.invoke(args=["db", "lint", "--all"])
    assert {line.split(": ")[1].split()[0] for line in lines(everything.output)} == {"FM102", "FM301"}
    only_r2 = runner.invoke(args=["db", "lint", "-r", "r2:r2"])
    assert only_r2.exit_code == 0  # a warning only
    assert [line.split(": ")[1].split()[0] for line in lines(only_r2.output)] == ["FM301"]
    assert runner.invoke(args=["db", "lint", "-r", "r2:r2", "--strict"]).exit_code == 1
    nothing = runner.invoke(args=["db", "lint"])
    assert nothing.exit_code == 0 and "0 error(s), 0 warning(s) in 0 revisions" in nothing.output


def test_json(sqlite_app: tuple[Flask, Path]) -> None:
    """``--json`` prints the findings as data and keeps the exit status."""
    app, migrations = sqlite_app
    history(app, migrations, ("r2", DROP_A))
    result = app.test_cli_runner().invoke(args=["db", "lint", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["scope"] == "pending" and data["revisions"] == ["r1", "r2"]
    assert data["errors"] == 1
    [finding] = [f for f in data["findings"] if f["rule"] == "FM102"]
    assert finding["revision"] == "r2" and finding["severity"] == "error" and finding["line"] > 0


def test_severities_come_from_the_config(sqlite_app: tuple[Flask, Path]) -> None:
    """``MIGRATE_LINT_SEVERITY`` turns a rule off or changes its severity."""
    app, migrations = sqlite_app
    history(app, migrations, ("r2", DROP_A))
    app.config["MIGRATE_LINT_SEVERITY"] = {"FM102": "warning"}
    result = app.test_cli_runner().invoke(args=["db", "lint"])
    assert result.exit_code == 0 and "FM102 warning:" in result.output
    app.config["MIGRATE_LINT_SEVERITY"] = {"FM102": "off"}
    assert "FM102" not in app.test_cli_runner().invoke(args=["db", "lint"]).output
    app.config["MIGRATE_LINT_SEVERITY"] = {"FM999": "off"}
    result = app.test_cli_runner().invoke(args=["db", "lint"])
    assert result.exit_code == 1 and "FM999" in result.output and "Traceback" not in result.output


def test_rules_follow_the_dialect(database: Database, tmp_path: Path) -> None:
    """A blocking index build is a finding on PostgreSQL only."""
    migrations = tmp_path / "migrations"
    app, db, _ = create_app(database.url, migrations, models="none")
    history(app, migrations, ("r2", INDEX_A))
    result = app.test_cli_runner().invoke(args=["db", "lint", "--all"])
    with app.app_context():
        db.engine.dispose()
    rules = {line.split(": ")[1].split()[0] for line in lines(result.output)}
    if database.backend == "postgresql":
        assert "FM203" in rules
    else:
        assert "FM203" not in rules


def test_an_unreachable_database_lints_everything(tmp_path: Path) -> None:
    """When the database cannot be read, every revision is linted, and the output says why."""
    migrations = tmp_path / "migrations"
    app, _, _ = create_app("postgresql+psycopg://nobody:secret@127.0.0.1:1/none", migrations, models="none")
    history(app, migrations, ("r2", DROP_A))
    result = app.test_cli_runner().invoke(args=["db", "lint"])
    assert result.exit_code == 1
    assert "in 2 revisions in the history" in result.output
    assert "Note: the database could not be read" in result.output
    assert "secret" not in result.output


def test_migrate_prints_the_findings_of_the_new_revision(tmp_path: Path) -> None:
    """``flask db migrate`` writes the revision, warns about it on stderr and succeeds (real entry point)."""
    thing = "class Thing(db.Model):\n    id = db.Column(db.Integer, primary_key=True)\n"
    write_app(tmp_path, extra=thing)
    url = f"sqlite:///{tmp_path / 'app.db'}"
    assert run_flask(tmp_path, "db", "init", url=url).returncode == 0
    assert run_flask(tmp_path, "db", "migrate", "-m", "first", url=url).returncode == 0
    assert run_flask(tmp_path, "db", "upgrade", url=url).returncode == 0
    write_app(tmp_path, extra=thing + "    age = db.Column(db.Integer, nullable=False)\n")
    result = run_flask(tmp_path, "db", "migrate", "-m", "age", url=url)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert any(": FM201 error:" in line and "'thing.age'" in line for line in warnings), result.stderr
    assert "Error:" not in result.stderr
