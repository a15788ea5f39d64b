"""Fixtures: a fresh database per test on each backend, apps, CLI runners.

SQLite always runs. PostgreSQL and MariaDB run when their servers answer
(URLs from ``FLASK_MIGRATE_TEST_POSTGRESQL_URL`` and
``FLASK_MIGRATE_TEST_MYSQL_URL``); when one does not, its tests are skipped
with the reason, except under ``CI=true``, where that is a failure.

``scripts/test.sh`` runs the tests in 2 worker processes (pytest-xdist,
``-n 2 --dist loadgroup``; ``PYTEST_WORKERS`` changes the number, 0 runs them
in one process), so tests must not share anything outside their own
``tmp_path`` and uniquely named databases: no fixed file or folder, no
server-wide lock or count that another test could touch (the migration lock
is per database; filter ``pg_locks``, ``pg_stat_activity`` and the process
list by the test's own database), no change to this process's environment
or working directory that outlives the test (``monkeypatch``). Tests that
start many processes at once (the races of ``test_concurrency.py``, the
SIGKILL trials) carry ``@pytest.mark.xdist_group("heavy")``: they run one
after the other on one worker, while the other worker runs the rest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner
from flask_sqlalchemy import SQLAlchemy

from flask_migrate import Migrate

SERVER_URLS = {
    "postgresql": os.environ.get(
        "FLASK_MIGRATE_TEST_POSTGRESQL_URL",
        "postgresql+psycopg://root@127.0.0.1:5432/test",
    ),
    "mariadb": os.environ.get(
        "FLASK_MIGRATE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
    ),
}
BACKENDS = ["sqlite", "postgresql", "mariadb"]
#: Flask-Migrate's own bookkeeping table, beside alembic_version
JOURNAL = "flask_migrate_journal"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_reachable: dict[str, str | None] = {}


def server_problem(backend: str) -> str | None:
    """None when the server answers, else why not (checked once per run)."""
    if backend not in _reachable:
        engine = sa.create_engine(SERVER_URLS[backend], connect_args=_timeout(backend))
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            _reachable[backend] = None
        except Exception as exc:  # noqa: BLE001 - any failure means unreachable
            _reachable[backend] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        finally:
            engine.dispose()
    return _reachable[backend]


def _timeout(backend: str) -> dict[str, int]:
    return {"connect_timeout": 5}


def require_server(backend: str) -> None:
    problem = server_problem(backend)
    if problem is None:
        return
    message = f"{backend} server not reachable at {SERVER_URLS[backend]}: {problem}"
    if IN_CI:
        pytest.fail(message + " (CI=true: the servers are required)")
    pytest.skip(message)


@dataclass
class Database:
    """A database made for one test, and dropped after it."""

    backend: str
    url: str

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.url, poolclass=sa.pool.NullPool)

    def table_names(self, journal: bool = False) -> set[str]:
        """The tables of the database; Flask-Migrate's journal only if asked for."""
        engine = self.engine()
        try:
            names = set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()
        return names if journal else names - {JOURNAL}

    def column_names(self, table: str) -> set[str]:
        engine = self.engine()
        try:
            return {c["name"] for c in sa.inspect(engine).get_columns(table)}
        finally:
            engine.dispose()

    def versions(self, table: str = "alembic_version") -> set[str]:
        engine = self.engine()
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text(f"SELECT version_num FROM {table}"))
                return {r[0] for r in rows}
        finally:
            engine.dispose()

    def scalar(self, sql: str) -> object:
        engine = self.engine()
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(sql)).scalar()
        finally:
            engine.dispose()


class DatabaseFactory:
    """Creates uniquely named databases on one backend; drops them at the end."""

    def __init__(self, backend: str, tmp_path: Path) -> None:
        self.backend = backend
        self.tmp_path = tmp_path
        self.created: list[str] = []

    def __call__(self) -> Database:
        name = f"fmtest_{uuid.uuid4().hex[:12]}"
        if self.backend == "sqlite":
            return Database("sqlite", f"sqlite:///{self.tmp_path / (name + '.db')}")
        require_server(self.backend)
        admin = sa.create_engine(SERVER_URLS[self.backend], isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f"CREATE DATABASE {name}"))
        finally:
            admin.dispose()
        self.created.append(name)
        url = sa.make_url(SERVER_URLS[self.backend]).set(database=name)
        return Database(self.backend, url.render_as_string(hide_password=False))

    def drop_all(self) -> None:
        if not self.created:
            return
        admin = sa.create_engine(SERVER_URLS[self.backend], isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                for name in self.created:
                    if self.backend == "postgresql":
                        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    else:
                        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        finally:
            admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each test that uses this runs once per database backend."""
    name: str = request.param
    if name != "sqlite":
        require_server(name)
    return name


@pytest.fixture
def make_database(backend: str, tmp_path: Path) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(backend, tmp_path)
    yield factory
    factory.drop_all()


@pytest.fixture
def database(make_database: DatabaseFactory) -> Database:
    """A fresh, empty database on the backend under test."""
    return make_database()


@pytest.fixture
def databases_on(tmp_path: Path) -> Iterator[Callable[[str], Database]]:
    """Fresh databases on named backends, for tests that mix servers."""
    factories: dict[str, DatabaseFactory] = {}

    def make(backend: str) -> Database:
        if backend not in factories:
            factories[backend] = DatabaseFactory(backend, tmp_path)
        return factories[backend]()

    yield make
    for factory in factories.values():
        factory.drop_all()


# -- applications -------------------------------------------------------------


def create_app(
    url: str,
    migrations: Path,
    binds: dict[str, str] | None = None,
    models: str = "user",
    **migrate_kwargs: object,
) -> tuple[Flask, SQLAlchemy, Migrate]:
    """A Flask app with Flask-SQLAlchemy and Flask-Migrate, built in process.

    ``models`` picks the model set: ``user`` (one table), ``user+email``
    (the same table with one more column), ``none`` (no models).
    """
    app = Flask(f"test_app_{uuid.uuid4().hex[:6]}")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    if binds:
        app.config["SQLALCHEMY_BINDS"] = binds
    db = SQLAlchemy(app)
    define_models(db, models, binds)
    migrate = Migrate(app, db, directory=migrations, **migrate_kwargs)
    return app, db, migrate


def define_models(db: SQLAlchemy, models: str, binds: dict[str, str] | None) -> None:
    if models == "none":
        return

    class User(db.Model):  # type: ignore[name-defined]
        __tablename__ = "user"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(128))
        if "email" in models:
            email = db.Column(db.String(128))

    for key in binds or {}:
        type(
            f"Group_{key}",
            (db.Model,),
            {
                "__tablename__": f"group_{key}",
                "__bind_key__": key,
                "id": db.Column(db.Integer, primary_key=True),
                "name": db.Column(db.String(64)),
            },
        )


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    """Where the test's migrations folder goes (not created yet)."""
    return tmp_path / "migrations"


@pytest.fixture
def app(database: Database, migrations: Path) -> Iterator[Flask]:
    """An app on the fresh database of the backend under test."""
    flask_app, db, _ = create_app(database.url, migrations)
    yield flask_app
    with flask_app.app_context():
        db.engine.dispose()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """Invokes ``flask`` commands of ``app`` in process."""
    return app.test_cli_runner()


# -- the real ``flask`` entry point ---------------------------------------------

FLASK = str(Path(sys.executable).with_name("flask"))


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


APP_SOURCE = """\
import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_migrate import Migrate

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["TEST_DATABASE_URL"]
binds = {{k[len("TEST_BIND_"):].lower(): v for k, v in os.environ.items()
         if k.startswith("TEST_BIND_")}}
if binds:
    app.config["SQLALCHEMY_BINDS"] = binds
db = SQLAlchemy(app)
migrate = Migrate(app, db{migrate_args})


class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(128))
{extra}

for key in binds:
    type("Group_" + key, (db.Model,), {{
        "__tablename__": "group_" + key,
        "__bind_key__": key,
        "id": db.Column(db.Integer, primary_key=True),
        "name": db.Column(db.String(64)),
    }})
"""


def write_app(
    directory: Path, migrate_args: str = "", extra: str = "", name: str = "app.py"
) -> Path:
    """Write an app module that takes its database URLs from the environment."""
    path = directory / name
    source = APP_SOURCE.format(
        migrate_args=(", " + migrate_args) if migrate_args else "",
        extra=textwrap.indent(textwrap.dedent(extra), ""),
    )
    path.write_text(source)
    return path


def run_flask(
    cwd: Path,
    *args: str,
    url: str,
    binds: dict[str, str] | None = None,
    app: str = "app.py",
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> Result:
    """Run ``flask <args>`` in a subprocess, the way a user would."""
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "TEST_BIND_"))
    }
    full_env.update(FLASK_APP=app, TEST_DATABASE_URL=url, PYTHONDONTWRITEBYTECODE="1")
    for key, value in (binds or {}).items():
        full_env[f"TEST_BIND_{key.upper()}"] = value
    full_env.update(env or {})
    proc = subprocess.run(
        [FLASK, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


# -- database users with passwords and limited privileges -----------------------


@pytest.fixture
def make_user(backend: str, database: Database) -> Iterator[Callable[..., str]]:
    """Create a user on the test's database server; returns a URL for it.

    ``privileges`` is ``"all"`` (on the test database), ``"read"`` (may
    connect and read, not create tables) or ``"none"`` (may log in only).
    Users are dropped afterwards.
    """
    assert backend != "sqlite", "SQLite has no users"
    made: list[str] = []
    admin = sa.create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    in_db = sa.create_engine(database.url, isolation_level="AUTOCOMMIT")
    name = sa.make_url(database.url).database

    def make(password: str, privileges: str = "all") -> str:
        user = f"fm_user_{uuid.uuid4().hex[:8]}"
        made.append(user)
        quoted = password.replace("'", "''")
        if backend == "postgresql":
            with admin.connect() as conn:
                conn.execute(sa.text(f"CREATE ROLE {user} LOGIN PASSWORD '{quoted}'"))
                if privileges != "none":
                    conn.execute(sa.text(f"GRANT CONNECT ON DATABASE {name} TO {user}"))
            if privileges == "all":
                with in_db.connect() as conn:
                    conn.execute(sa.text(f"GRANT ALL ON SCHEMA public TO {user}"))
        else:
            quoted = quoted.replace("\\", "\\\\")
            with admin.connect() as conn:
                conn.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{quoted}'"))
                grant = {"all": "ALL", "read": "SELECT"}.get(privileges)
                if grant:
                    conn.execute(sa.text(f"GRANT {grant} ON {name}.* TO '{user}'@'%'"))
        url = sa.make_url(database.url).set(username=user, password=password)
        return url.render_as_string(hide_password=False)

    yield make
    for user in made:
        if backend == "postgresql":
            with in_db.connect() as conn:
                conn.execute(sa.text(f"DROP OWNED BY {user}"))
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP ROLE {user}"))
        else:
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP USER '{user}'@'%'"))
    admin.dispose()
    in_db.dispose()


# -- revision files written by hand ------------------------------------------------

REVISION = '''\
"""{message}

Revision ID: {rev}
Revises: {down}
"""
import os
import time

from alembic import op
import sqlalchemy as sa

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None
{preamble}

def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''


def write_revision(
    versions: Path,
    rev: str,
    down: str | None,
    upgrade: str = "pass",
    downgrade: str = "pass",
    message: str = "step",
    preamble: str = "",
) -> Path:
    """Write a revision file whose upgrade()/downgrade() bodies are given as code.

    ``preamble`` is module-level code placed before ``upgrade()``.
    """
    path = versions / f"{rev}_{message.replace(' ', '_')}.py"
    path.write_text(
        REVISION.format(
            message=message,
            rev=rev,
            down=down,
            upgrade=textwrap.indent(textwrap.dedent(upgrade).strip(), "    "),
            downgrade=textwrap.indent(textwrap.dedent(downgrade).strip(), "    "),
            preamble=("\n\n" + textwrap.dedent(preamble).strip() + "\n") if preamble else "",
        )
    )
    return path
