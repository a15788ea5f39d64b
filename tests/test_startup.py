"""Start-up cost: importing the package, creating ``Migrate(app, db)`` and running
unrelated ``flask`` commands must not import Alembic (or Mako).

Each check runs in a fresh interpreter, since the test process itself has
imported Alembic long ago.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import write_app

HEAVY = ("alembic", "mako")

# Prints, as the interpreter exits, which of the heavy modules were imported.
# Registered first, so it runs after everything else the program did,
# including a ``sys.exit`` from the flask command line.
REPORT = """\
import atexit, json, sys
atexit.register(lambda: print("MODULES=" + json.dumps(
    sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r}))))
""".format(heavy=set(HEAVY))


def run_python(code: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[list[str], str]:
    """Run ``code`` in a fresh interpreter; returns (heavy modules imported, stdout)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    full_env["PYTHONDONTWRITEBYTECODE"] = "1"
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", REPORT + textwrap.dedent(code)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    marker = [line for line in proc.stdout.splitlines() if line.startswith("MODULES=")]
    assert marker, (proc.returncode, proc.stdout, proc.stderr)
    modules: list[str] = json.loads(marker[-1][len("MODULES="):])
    return modules, proc.stdout


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A folder with an ``app.py`` that uses Flask-SQLAlchemy and Migrate."""
    write_app(tmp_path)
    return tmp_path


def _flask_env(app_dir: Path) -> dict[str, str]:
    return {"FLASK_APP": "app.py", "TEST_DATABASE_URL": f"sqlite:///{app_dir / 'app.db'}"}


def test_import_and_migrate_do_not_import_alembic(tmp_path: Path) -> None:
    """import flask_migrate and Migrate(app, db) load neither alembic nor mako."""
    modules, out = run_python(
        """
        from flask import Flask
        from flask_sqlalchemy import SQLAlchemy
        import flask_migrate
        from flask_migrate import Migrate, upgrade, catch_errors

        app = Flask("lazy")
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
        db = SQLAlchemy(app)

        class User(db.Model):
            id = db.Column(db.Integer, primary_key=True)

        migrate = Migrate(app, db)
        late = Migrate()
        late.init_app(Flask("late"), db)
        assert "db" in app.cli.commands
        print("OK")
        """,
        tmp_path,
    )
    assert "OK" in out
    assert modules == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], "routes"),
        (["db", "--help"], "upgrade"),
        (["routes"], "static"),
    ],
    ids=["flask --help", "flask db --help", "flask routes"],
)
def test_flask_commands_do_not_import_alembic(
    app_dir: Path, args: list[str], expected: str
) -> None:
    """The real flask entry point shows help and runs other commands without alembic."""
    modules, out = run_python(
        f"""
        import sys
        from flask.cli import main
        sys.argv = ["flask", *{args!r}]
        main()
        """,
        app_dir,
        env=_flask_env(app_dir),
    )
    assert expected in out
    if args == ["--help"]:
        assert any(line.split()[:1] == ["db"] for line in out.splitlines())
    assert modules == []


def test_loading_the_app_and_its_commands_does_not_import_alembic(app_dir: Path) -> None:
    """Loading the app via ScriptInfo and listing all commands imports no alembic."""
    modules, out = run_python(
        """
        import click
        from flask.cli import FlaskGroup, ScriptInfo

        info = ScriptInfo(app_import_path="app.py")
        app = info.load_app()
        group = FlaskGroup(create_app=lambda: app)
        with click.Context(group, obj=info) as ctx:
            names = group.list_commands(ctx)
            db = group.get_command(ctx, "db")
            sub = db.list_commands(ctx)
            for name in sub:
                db.get_command(ctx, name).get_help(ctx)
        print("COMMANDS=" + ",".join(names))
        print("DB=" + ",".join(sub))
        """,
        app_dir,
        env={"TEST_DATABASE_URL": f"sqlite:///{app_dir / 'app.db'}"},
    )
    assert "db" in out.split("COMMANDS=")[1].splitlines()[0].split(",")
    db_commands = set(out.split("DB=")[1].splitlines()[0].split(","))
    assert {"init", "migrate", "upgrade", "downgrade", "current", "check"} <= db_commands
    assert modules == []


def test_flask_db_command_does_import_alembic(app_dir: Path) -> None:
    """A real migration command does load alembic (the checks above are not vacuous)."""
    modules, out = run_python(
        """
        import sys
        from flask.cli import main
        sys.argv = ["flask", "db", "list-templates"]
        main()
        """,
        app_dir,
        env=_flask_env(app_dir),
    )
    assert "flask-multidb" in out
    assert "alembic" in modules


def test_lazy_names_import_alembic_on_access(tmp_path: Path) -> None:
    """flask_migrate.Config and alembic_version import alembic when used, and work."""
    modules, out = run_python(
        """
        import sys
        import flask_migrate
        assert "alembic" not in sys.modules
        version = flask_migrate.alembic_version
        assert "alembic" in sys.modules
        import alembic
        assert version == tuple(int(v) for v in alembic.__version__.split(".")[:3])
        from flask_migrate import Config
        from alembic.config import Config as AlembicConfig
        assert issubclass(Config, AlembicConfig)
        assert Config(template_directory="/x").get_template_directory() == "/x"
        from flask_migrate import MigrateError
        from alembic.util import CommandError
        assert issubclass(MigrateError, CommandError)
        print("OK", version)
        """,
        tmp_path,
    )
    assert "OK (" in out
    assert "alembic" in modules


def test_config_alone_imports_alembic_lazily(tmp_path: Path) -> None:
    """Accessing only flask_migrate.Config is enough to load alembic, on demand."""
    modules, out = run_python(
        """
        import sys
        import flask_migrate
        before = "alembic" in sys.modules
        cfg = flask_migrate.Config()
        print("BEFORE", before, cfg.get_template_directory())
        """,
        tmp_path,
    )
    assert "BEFORE False" in out
    assert out.strip().splitlines()[0].endswith(os.path.join("flask_migrate", "templates"))
    assert "alembic" in modules
