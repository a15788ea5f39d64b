"""The everyday commands, end to end: the quick subset also run on the oldest versions.

``scripts/test.sh`` runs the tests marked ``smoke`` (these, and a few others such
as the per-template smoke tests) a second time in ``.venv-oldest``, which holds the
lowest versions of Flask, Flask-SQLAlchemy, SQLAlchemy, Alembic and click that
pyproject.toml allows. They run the real ``flask`` executable, or call the
Python API, and need nothing from newer versions of the test tools.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

import flask_migrate
from conftest import Database, create_app, run_flask, write_app

pytestmark = pytest.mark.smoke

NOTE_MODEL = """
class Note(db.Model):
    id = db.Column(db.Integer, primary_key=True)
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_everyday_commands_through_flask(database: Database, tmp_path: Path) -> None:
    """init, migrate, upgrade, current, check, status, history and downgrade through `flask db`."""
    write_app(tmp_path)
    write_app(tmp_path, extra=NOTE_MODEL, name="app_note.py")
    flask = functools.partial(run_flask, tmp_path, url=database.url)

    def ok(*args: str, app: str = "app.py") -> str:
        result = flask(*args, app=app)
        assert result.returncode == 0, f"flask {' '.join(args)}:\n{result.stderr}"
        return result.stdout

    ok("db", "init")
    ok("db", "migrate", "-m", "create user")
    [script] = (tmp_path / "migrations" / "versions").glob("*_create_user.py")
    assert "op.create_table('user'" in script.read_text()
    revision = script.name.split("_")[0]

    ok("db", "upgrade")
    assert database.table_names() == {"user", "alembic_version"}
    assert database.versions() == {revision}
    assert f"{revision} (head)" in ok("db", "current")
    assert "No new upgrade operations detected." in ok("db", "check")
    status = json.loads(ok("db", "status", "--json", "--check"))
    assert status["ok"] is True and status["databases"][0]["current"] == [revision]
    assert revision in ok("db", "history")

    # a model without a revision: check fails, naming the change
    result = flask("db", "check", app="app_note.py")
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: New upgrade operations detected: add_table note"), error

    ok("db", "downgrade")
    assert database.table_names() == {"alembic_version"}
    assert database.versions() == set()
    assert flask("db", "status", "--check").returncode == 1


def test_python_api(tmp_path: Path) -> None:
    """The Flask-Migrate functions, called in an app context, return what they did."""
    database = Database("sqlite", f"sqlite:///{tmp_path / 'app.db'}")
    app, db, _ = create_app(database.url, tmp_path / "migrations")
    try:
        with app.app_context():
            flask_migrate.init()
            script = flask_migrate.migrate(message="create user")
            assert script is not None
            steps = flask_migrate.upgrade()
            assert [step.revision for step in steps] == [script.revision]
            assert database.versions() == {script.revision}
            assert flask_migrate.migrate(message="nothing") is None
            flask_migrate.downgrade()
            assert database.versions() == set()
    finally:
        with app.app_context():
            db.engine.dispose()
