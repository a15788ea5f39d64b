"""The pytest plugin: light to load, migrated scratch databases per test, verify as tests.

Each test writes a small project (an app, a migrations folder, a test suite)
and runs its suite with pytest in a subprocess, as a user's CI would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import sqlalchemy as sa

from conftest import SERVER_URLS, Database, run_flask, write_app, write_revision

CREATE_USER = """
op.create_table(
    "user",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128)),
)
"""

PROJECT_CONFTEST = """\
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def app():
    from app import app
    return app
"""

ROW_TESTS = """\
import sqlalchemy as sa

users = sa.table("user", sa.column("name"))


def insert_one(app):
    db = app.extensions["migrate"].db
    with app.app_context():
        db.session.execute(users.insert().values(name="a"))
        db.session.commit()
        return db.session.execute(sa.select(sa.func.count()).select_from(users)).scalar()


def test_first(migrated_app):
    assert insert_one(migrated_app) == 1


def test_second_gets_a_fresh_database(migrated_app):
    assert insert_one(migrated_app) == 1


def test_history_ran_once(migrated_app, flask_migrate_cache):
    with migrated_app.app_context():
        url = migrated_app.extensions["migrate"].db.engine.url
    assert "fm_scratch_" in str(url) or "flask-migrate-scratch-" in str(url)
    assert flask_migrate_cache.builds == 1
"""


def project(tmp_path: Path) -> Path:
    """A project with an app, one revision (the user table) and a conftest giving ``app``."""
    root = tmp_path / "project"
    root.mkdir()
    write_app(root)
    result = run_flask(root, "db", "init", url="sqlite://")
    assert result.returncode == 0, result.stderr
    write_revision(root / "migrations" / "versions", "r1", None, CREATE_USER, 'op.drop_table("user")')
    (root / "tests").mkdir()
    (root / "tests" / "conftest.py").write_text(PROJECT_CONFTEST)
    return root


def run_pytest(root: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "TEST_", "PYTEST_"))}
    env.update(TEST_DATABASE_URL=url, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )


def scratch_databases(backend: str) -> list[str]:
    """The scratch databases left on a server (there should be none)."""
    if backend == "sqlite":
        return []
    engine = sa.create_engine(SERVER_URLS[backend])
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                sql = "SELECT datname FROM pg_database WHERE datname LIKE 'fm_scratch_%'"
            else:
                sql = "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'fm_scratch_%'"
            return [row[0] for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def assert_no_new_scratch_databases(backend: str, before: set[str], within: float = 120) -> None:
    """No scratch database is left but those that were there ``before``.

    Compared with before, and waited for: other test runs on the server
    (another pytest worker's ``verify``, another developer's suite) make
    their own while this one runs, and drop them when they end; one that
    this run left behind stays.
    """
    deadline = time.monotonic() + within
    while (left := set(scratch_databases(backend)) - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"scratch databases left behind: {sorted(left)}"


def test_loading_the_plugin_imports_neither_flask_nor_alembic_nor_sqlalchemy() -> None:
    """The entry point is registered, and loading it imports no Flask, Alembic or SQLAlchemy."""
    code = textwrap.dedent("""\
        import sys
        from importlib.metadata import entry_points
        found = [e for e in entry_points(group="pytest11") if e.value == "flask_migrate.pytest_plugin"]
        assert found, "no pytest11 entry point"
        found[0].load()
        heavy = [m for m in ("alembic", "sqlalchemy", "flask_sqlalchemy", "flask") if m in sys.modules]
        assert not heavy, heavy
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_suite_that_does_not_ask_for_the_fixtures_pays_nothing(tmp_path: Path) -> None:
    """In a pytest run that uses no fixture of ours, Alembic is never imported."""
    (tmp_path / "test_plain.py").write_text(
        "import sys\n\ndef test_plain():\n    assert 'alembic' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_plain.py"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_migrated_app_gives_each_test_a_migrated_database(
    backend: str, database: Database, tmp_path: Path
) -> None:
    """Each test gets a fresh database at head; the history runs once; the app's own database stays empty."""
    root = project(tmp_path)
    (root / "tests" / "test_rows.py").write_text(ROW_TESTS)
    if backend == "mariadb":
        # MariaDB cannot clone a database: the history runs for each test
        (root / "tests" / "test_rows.py").write_text(
            ROW_TESTS.replace("assert flask_migrate_cache.builds == 1", "assert flask_migrate_cache.builds <= 1")
        )
    before = set(scratch_databases(backend))
    result = run_pytest(root, database.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
    assert database.table_names(journal=True) == set()
    assert_no_new_scratch_databases(backend, before)


def test_migrated_app_covers_every_bind(tmp_path: Path) -> None:
    """A multidb app gets a migrated scratch database for each bind."""
    root = tmp_path / "project"
    root.mkdir()
    write_app(root)
    binds = {"users": f"sqlite:///{tmp_path / 'users.db'}"}
    result = run_flask(root, "db", "init", "--multidb", url="sqlite://", binds=binds)
    assert result.returncode == 0, result.stderr
    write_revision(
        root / "migrations" / "versions", "m1", None,
        preamble=textwrap.dedent("""\
            def upgrade_():
                op.create_table("user", sa.Column("id", sa.Integer, primary_key=True),
                                sa.Column("name", sa.String(128)))

            def downgrade_():
                op.drop_table("user")

            def upgrade_users():
                op.create_table("group_users", sa.Column("id", sa.Integer, primary_key=True),
                                sa.Column("name", sa.String(64)))

            def downgrade_users():
                op.drop_table("group_users")
        """),
    )
    path = next((root / "migrations" / "versions").glob("m1_*.py"))
    source = path.read_text()
    source = source.replace("def upgrade():\n    pass", "def upgrade(engine_name=''):\n    globals()[f'upgrade_{engine_name}']()")
    source = source.replace("def downgrade():\n    pass", "def downgrade(engine_name=''):\n    globals()[f'downgrade_{engine_name}']()")
    path.write_text(source)
    (root / "tests" ).mkdir()
    (root / "tests" / "conftest.py").write_text(PROJECT_CONFTEST)
    (root / "tests" / "test_binds.py").write_text(textwrap.dedent("""\
        import sqlalchemy as sa

        def test_both_binds(migrated_app):
            db = migrated_app.extensions["migrate"].db
            with migrated_app.app_context():
                assert "user" in sa.inspect(db.engine).get_table_names()
                assert "group_users" in sa.inspect(db.engines["users"]).get_table_names()
                assert "scratch" in str(db.engines["users"].url)
    """))
    env_binds = {"TEST_BIND_USERS": binds["users"]}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "TEST_"))}
    env.update(TEST_DATABASE_URL=f"sqlite:///{tmp_path / 'main.db'}", PYTHONDONTWRITEBYTECODE="1", **env_binds)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp_path / "users.db").exists() and not (tmp_path / "main.db").exists()


def test_verify_checks_run_as_tests_in_one_line(tmp_path: Path) -> None:
    """``from flask_migrate.pytest_plugin import test_migrations`` adds one test per check."""
    root = project(tmp_path)
    (root / "tests" / "test_history.py").write_text(
        "from flask_migrate.pytest_plugin import test_migrations  # noqa: F401\n"
    )
    url = f"sqlite:///{tmp_path / 'app.db'}"
    result = run_pytest(root, url, "-vv")
    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("heads", "upgrade", "stairway", "models"):
        assert f"test_migrations[{check}] PASSED" in result.stdout
    # a downgrade that forgets the table fails the stairway test, with the reason
    path = next((root / "migrations" / "versions").glob("r1_*.py"))
    path.write_text(path.read_text().replace('op.drop_table("user")', "pass"))
    result = run_pytest(root, url, "-vv")
    assert result.returncode == 1
    assert "test_migrations[stairway] FAILED" in result.stdout
    assert "r1: downgrade does not undo the upgrade: left table 'user' behind" in result.stdout
    assert not (tmp_path / "app.db").exists()


def test_the_plugin_knows_every_check_of_verify() -> None:
    """The plugin's own list of check names (kept to load without Alembic) is verify's."""
    from flask_migrate.pytest_plugin import CHECK_NAMES
    from flask_migrate.verify import CHECKS

    assert CHECK_NAMES == tuple(check.name for check in CHECKS)
