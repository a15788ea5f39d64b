"""Drop-in both ways: our migrations folders run with the original Flask-Migrate 4.1.0,
and the original's folders run with ours.

The original lives in a venv of its own, with the same Flask, Flask-SQLAlchemy,
SQLAlchemy and Alembic as ours (``scripts/test.sh`` builds it and sets
``FLASK_MIGRATE_TEST_ORIGINAL_VENV``). Without it these tests are skipped, except
under ``CI=true``, where that is a failure. Every command runs through the real
``flask`` executable of one venv or the other, in the test's folder.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import FLASK, IN_CI, Database, Result, write_app

ORIGINAL_VERSION = "4.1.0"
NOTE_MODEL = """
class Note(db.Model):
    id = db.Column(db.Integer, primary_key=True)
"""


@pytest.fixture(scope="session")
def original_flask() -> str:
    """The ``flask`` executable of the venv that holds Flask-Migrate 4.1.0."""
    venv = os.environ.get("FLASK_MIGRATE_TEST_ORIGINAL_VENV")
    if not venv:
        message = (
            "FLASK_MIGRATE_TEST_ORIGINAL_VENV is not set: it names a venv with "
            f"Flask-Migrate=={ORIGINAL_VERSION} (scripts/test.sh builds .venv-original)"
        )
        if IN_CI:
            pytest.fail(message + " (CI=true: the two-way tests are required)")
        pytest.skip(message)
    flask = Path(venv, "bin", "flask")
    probe = subprocess.run(
        [str(Path(venv, "bin", "python")), "-c",
         "import flask_migrate, importlib.metadata as m;"
         "print(m.version('Flask-Migrate'), flask_migrate.__file__)"],
        capture_output=True, text=True, env=_clean_env(), check=False,
    )
    version, _, location = probe.stdout.strip().partition(" ")
    assert probe.returncode == 0 and flask.exists(), f"no usable venv at {venv}: {probe.stderr}"
    assert version == ORIGINAL_VERSION, f"{venv} has Flask-Migrate {version}"
    assert location.startswith(venv), f"{venv} imports flask_migrate from {location}"
    return str(flask)


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "TEST_BIND_", "PYTHONPATH", "VIRTUAL_ENV"))
    }


def run(
    flask: str, cwd: Path, *args: str, url: str, binds: dict[str, str] | None = None,
    app: str = "app.py", ok: bool = True,
) -> Result:
    """``flask <args>`` with the given executable (ours or the original's)."""
    env = _clean_env()
    env.update(FLASK_APP=app, TEST_DATABASE_URL=url, PYTHONDONTWRITEBYTECODE="1")
    for key, value in (binds or {}).items():
        env[f"TEST_BIND_{key.upper()}"] = value
    proc = subprocess.run(
        [flask, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    if ok:
        assert result.returncode == 0, f"{flask} {' '.join(args)}:\n{result.stderr}"
    return result


def revisions(folder: Path) -> dict[str, str]:
    """Revision id -> source of every revision file in the folder."""
    return {p.name.split("_")[0]: p.read_text() for p in (folder / "versions").glob("*.py")}


def aio(url: str) -> str:
    return url.replace("sqlite://", "sqlite+aiosqlite://", 1)


# -- our folders, the original's flask ------------------------------------------------


def test_our_folder_runs_with_the_original(
    original_flask: str, database: Database, tmp_path: Path
) -> None:
    """init by us; migrate, upgrade, check, --sql and downgrade by 4.1.0, on each backend."""
    write_app(tmp_path)
    write_app(tmp_path, extra=NOTE_MODEL, name="app_note.py")
    ours = functools.partial(run, FLASK, tmp_path, url=database.url)
    original = functools.partial(run, original_flask, tmp_path, url=database.url)
    folder = tmp_path / "migrations"
    ours("db", "init")

    original("db", "migrate", "-m", "initial")
    [(first, source)] = revisions(folder).items()
    assert "op.create_table('user'" in source
    original("db", "upgrade")
    assert database.table_names() == {"user", "alembic_version"}
    assert database.versions() == {first}

    # nothing changed: check passes, migrate writes no file
    original("db", "check")
    assert "No changes in schema detected." in original("db", "migrate").stderr
    assert list(revisions(folder)) == [first]

    # a new model: check fails, migrate writes it
    result = original("db", "check", app="app_note.py", ok=False)
    assert result.returncode == 1 and "New upgrade operations detected" in result.stderr
    original("db", "migrate", "-m", "note", app="app_note.py")
    [second] = set(revisions(folder)) - {first}
    assert "op.create_table('note'" in revisions(folder)[second]
    assert "'user'" not in revisions(folder)[second]

    sql = original("db", "upgrade", "--sql", f"{first}:{second}").stdout
    assert "CREATE TABLE note" in sql.replace('"', "").replace("`", "")
    original("db", "upgrade", app="app_note.py")
    assert database.versions() == {second}
    assert f"{second} (head)" in ours("db", "current", app="app_note.py").stdout

    original("db", "downgrade", "base")
    assert database.table_names() == {"alembic_version"}
    assert database.versions() == set()


@pytest.mark.parametrize("template", ["flask-multidb", "aioflask", "aioflask-multidb"])
def test_our_other_templates_run_with_the_original(
    template: str, original_flask: str, databases_on: Callable[[str], Database], tmp_path: Path
) -> None:
    """init -t TEMPLATE by us; migrate, upgrade, check and downgrade by 4.1.0 (SQLite files)."""
    default, bind = databases_on("sqlite"), databases_on("sqlite")
    url, bind_url = default.url, bind.url
    if template.startswith("aio"):
        url, bind_url = aio(url), aio(bind_url)
    binds = {"extra": bind_url} if template.endswith("multidb") else None
    ours = functools.partial(run, FLASK, tmp_path, url=url, binds=binds)
    original = functools.partial(run, original_flask, tmp_path, url=url, binds=binds)
    write_app(tmp_path)
    folder = tmp_path / "migrations"
    ours("db", "init", "-t", template)

    original("db", "migrate", "-m", "initial")
    [(revision, source)] = revisions(folder).items()
    original("db", "upgrade")
    assert default.table_names() == {"user", "alembic_version"}
    assert default.versions() == {revision}
    if binds:
        assert "def upgrade_extra():" in source
        assert bind.table_names() == {"group_extra", "alembic_version"}
        assert bind.versions() == {revision}

    original("db", "check")
    result = original("db", "migrate")
    assert "No changes in schema detected." in result.stderr
    assert list(revisions(folder)) == [revision]

    original("db", "downgrade")
    assert default.table_names() == {"alembic_version"}
    if binds:
        assert bind.table_names() == {"alembic_version"}


# -- the original's folders, our flask -------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "multidb"),
    [("sqlite", False), ("sqlite", True), ("postgresql", False)],
    indirect=["backend"],
    ids=["sqlite", "sqlite-multidb", "postgresql"],
)
def test_original_folder_runs_with_ours(
    multidb: bool, original_flask: str, make_database: Callable[[], Database], tmp_path: Path
) -> None:
    """init by 4.1.0; migrate, upgrade, current, check and downgrade by us."""
    default = make_database()
    bind = make_database() if multidb else None
    binds = {"extra": bind.url} if bind else None
    ours = functools.partial(run, FLASK, tmp_path, url=default.url, binds=binds)
    original = functools.partial(run, original_flask, tmp_path, url=default.url, binds=binds)
    write_app(tmp_path)
    folder = tmp_path / "migrations"
    original("db", "init", *(["--multidb"] if multidb else []))
    assert "config.set_main_option('sqlalchemy.url'" in (folder / "env.py").read_text()

    ours("db", "migrate", "-m", "initial")
    [revision] = revisions(folder)
    ours("db", "upgrade")
    assert default.table_names() == {"user", "alembic_version"}
    assert default.versions() == {revision}
    if bind:
        assert bind.table_names() == {"group_extra", "alembic_version"}
        assert bind.versions() == {revision}
    current = ours("db", "current").stdout
    assert current.count(f"{revision} (head)") == (2 if bind else 1)
    ours("db", "check")

    ours("db", "downgrade")
    assert default.table_names() == {"alembic_version"}
    if bind:
        assert bind.table_names() == {"alembic_version"}
