"""Every expected failure ends with one ``Error:`` line, exit status 1, and changes nothing.

Each case runs the real ``flask`` command in a subprocess against a prepared
migrations folder and database, then checks the output and that neither the
database nor the migrations folder changed.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import Database, Result, run_flask, write_app, write_revision

# -- the project every case starts from ------------------------------------------

@pytest.fixture(scope="session")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrations folder made by ``flask db init``, with two revisions."""
    root = tmp_path_factory.mktemp("errors-project")
    write_app(root)
    result = run_flask(root, "db", "init", url=f"sqlite:///{root / 'init.db'}")
    assert result.returncode == 0, result.stderr
    versions = root / "migrations" / "versions"
    write_revision(
        versions,
        "a1",
        None,
        "op.create_table('user', sa.Column('id', sa.Integer, primary_key=True),"
        " sa.Column('name', sa.String(128)))",
        "op.drop_table('user')",
        "create user",
    )
    write_revision(
        versions,
        "a2",
        "a1",
        "op.create_table('post', sa.Column('id', sa.Integer, primary_key=True))",
        "op.drop_table('post')",
        "create post",
    )
    return root / "migrations"


@dataclass
class Project:
    """One case's working folder, database and migrations folder."""

    root: Path
    database: Database
    url: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def migrations(self) -> Path:
        return self.root / "migrations"

    @property
    def versions(self) -> Path:
        return self.migrations / "versions"

    def flask(self, *args: str) -> Result:
        return run_flask(self.root, *args, url=self.url, env=self.env, timeout=60)

    def sql(self, *statements: str) -> None:
        engine = self.database.engine()
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(sa.text(statement))
        finally:
            engine.dispose()


@pytest.fixture
def project(initialised: Path, database: Database, tmp_path: Path) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(initialised, root / "migrations")
    write_app(root)
    return Project(root, database, database.url)


# -- what "nothing changed" means --------------------------------------------------


def folder_state(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        # caches (Python's, and the revision cache) are not state
        if p.is_file() and not {"__pycache__", ".flask-migrate-cache"} & set(p.parts)
    }


def database_state(database: Database) -> dict[str, object]:
    engine = database.engine()
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            state: dict[str, object] = {}
            for table in sorted(inspector.get_table_names()):
                columns = [c["name"] for c in inspector.get_columns(table)]
                rows = sorted(
                    map(repr, conn.execute(sa.text(f'SELECT * FROM "{table}"' if database.backend != "mariadb" else f"SELECT * FROM `{table}`")))
                )
                state[table] = (columns, rows)
            return state
    finally:
        engine.dispose()


def assert_one_error_line(result: Result, expected: str) -> str:
    """Exit status 1, no traceback, and exactly one ``Error:`` line, the last one."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == errors[0], result.stderr
    assert expected.lower() in errors[0].lower(), errors[0]
    return errors[0]


# -- the cases ----------------------------------------------------------------------

ALL = ("sqlite", "postgresql", "mariadb")
SERVERS = ("postgresql", "mariadb")


@dataclass
class Case:
    name: str
    args: tuple[str, ...]
    expected: str
    setup: Callable[[Project], None] | None = None
    backends: tuple[str, ...] = ALL
    #: bring the database to this revision before the setup ("" = untouched)
    start_at: str = ""


def at(p: Project, revision: str) -> None:
    result = p.flask("db", "upgrade", revision)
    assert result.returncode == 0, result.stderr


def add_branch(p: Project) -> None:
    write_revision(p.versions, "b1", "a1", message="branch")


def add_ambiguous(p: Project) -> None:
    write_revision(p.versions, "abc111", "a2", message="one")
    write_revision(p.versions, "abc222", "abc111", message="two")


def set_version(*values: str) -> Callable[[Project], None]:
    def setup(p: Project) -> None:
        p.sql("DELETE FROM alembic_version")
        for value in values:
            p.sql(f"INSERT INTO alembic_version (version_num) VALUES ('{value}')")

    return setup


def wrong_column(p: Project) -> None:
    p.sql(
        "CREATE TABLE alembic_version (version VARCHAR(32) NOT NULL)",
        "INSERT INTO alembic_version (version) VALUES ('a1')",
    )


def unversioned_tables(p: Project) -> None:
    p.sql("CREATE TABLE user (id INTEGER PRIMARY KEY, name VARCHAR(128))"
          if p.database.backend != "postgresql"
          else 'CREATE TABLE "user" (id INTEGER PRIMARY KEY, name VARCHAR(128))')


def remove(relative: str) -> Callable[[Project], None]:
    def setup(p: Project) -> None:
        path = p.migrations / relative
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return setup


def append_to(relative: str, text: str) -> Callable[[Project], None]:
    def setup(p: Project) -> None:
        path = p.migrations / relative
        path.write_text(path.read_text() + text)

    return setup


def broken_revision(p: Project) -> None:
    path = next(p.versions.glob("a2_*.py"))
    path.write_text(path.read_text() + "\nif:\n")


def duplicate_a2(p: Project) -> None:
    source = next(p.versions.glob("a2_*.py"))
    shutil.copy(source, p.versions / "a2_copy.py")


def dangling_down_revision(p: Project) -> None:
    write_revision(p.versions, "c1", "nowhere", message="dangling")


def cycle(p: Project) -> None:
    path = next(p.versions.glob("a1_*.py"))
    path.write_text(path.read_text().replace("down_revision = None", "down_revision = 'a2'"))


def corrupt_ini(p: Project) -> None:
    (p.migrations / "alembic.ini").write_text("[alembic\nthis is = not [ini\n")


def url(make: Callable[[Project], str]) -> Callable[[Project], None]:
    def setup(p: Project) -> None:
        p.url = make(p)

    return setup


def server_url(p: Project, **parts: object) -> str:
    return sa.make_url(p.database.url).set(**parts).render_as_string(hide_password=False)


def env(**values: str) -> Callable[[Project], None]:
    def setup(p: Project) -> None:
        p.env.update(values)

    return setup


CASES = [
    # revisions
    Case("upgrade-unknown-revision", ("db", "upgrade", "nosuchrev"), "can't locate revision", start_at="a1"),
    Case("downgrade-unknown-revision", ("db", "downgrade", "nosuchrev"), "can't locate revision", start_at="a2"),
    Case("ambiguous-prefix", ("db", "upgrade", "abc"), "abc", add_ambiguous, start_at="a1"),
    Case("upgrade-too-far", ("db", "upgrade", "+999"), "999", start_at="a1"),
    Case("downgrade-too-far", ("db", "downgrade", "-999"), "999", start_at="a2"),
    Case("upgrade-multiple-heads", ("db", "upgrade"), "multiple head", add_branch, start_at="a1"),
    Case("stamp-unknown-revision", ("db", "stamp", "nosuchrev"), "can't locate revision", start_at="a1"),
    Case("show-unknown-revision", ("db", "show", "nosuchrev"), "can't locate revision"),
    Case("revision-unknown-head", ("db", "revision", "--head", "nosuchrev", "-m", "x"), "nosuchrev"),
    Case("sql-invalid-range", ("db", "upgrade", "--sql", "nosuch:a2"), "nosuch"),
    Case("downgrade-at-base", ("db", "downgrade"), "-1"),
    # version table
    Case("version-unknown", ("db", "upgrade"), "not in the migrations folder", set_version("deadbeef"), start_at="a1"),
    Case("version-two-related-rows", ("db", "upgrade"), "cannot both be current", set_version("a1", "a2"), start_at="a1"),
    Case("version-empty-string", ("db", "upgrade"), "empty revision", set_version(""), start_at="a1"),
    Case("version-wrong-column", ("db", "upgrade"), "version_num", wrong_column),
    Case("tables-but-no-version-table", ("db", "upgrade"), "flask db stamp head", unversioned_tables),
    # files
    Case("no-migrations-folder", ("db", "upgrade"), "flask db init", remove("")),
    Case("no-versions-folder", ("db", "upgrade"), "versions", remove("versions")),
    Case("no-env-py", ("db", "upgrade"), "env.py", remove("env.py")),
    Case("syntax-error-env-py", ("db", "upgrade"), "syntax error in", append_to("env.py", "\ndef (:\n")),
    Case("syntax-error-revision", ("db", "upgrade"), "syntax error in", broken_revision),
    Case("duplicate-revision-id", ("db", "upgrade"), "a2", duplicate_a2),
    Case("down-revision-nowhere", ("db", "upgrade"), "down_revision names 'nowhere'", dangling_down_revision),
    Case("cycle", ("db", "upgrade"), "cycle", cycle),
    Case("corrupt-alembic-ini", ("db", "upgrade"), "ini", corrupt_ini),
    Case("init-non-empty", ("db", "init"), "not empty"),
    Case("init-unknown-template", ("db", "init", "-d", "fresh", "-t", "nosuch"), "no template"),
    # connection
    Case("refused-port", ("db", "upgrade"), "refused", url(lambda p: server_url(p, port=1)), SERVERS),
    Case("unknown-host", ("db", "upgrade"), "host", url(lambda p: server_url(p, host="no-such-host.invalid")), SERVERS),
    Case("unknown-user", ("db", "upgrade"), "user", url(lambda p: server_url(p, username="no_such_user_fm")), SERVERS),
    Case("missing-database", ("db", "upgrade"), "does not exist", url(lambda p: server_url(p, database="no_such_db_fm")), SERVERS),
    # SQLite
    Case("sqlite-missing-directory", ("db", "upgrade"), "folder", url(lambda p: f"sqlite:///{p.root / 'no-such-dir' / 'x.db'}"), ("sqlite",)),
    Case("sqlite-read-only", ("db", "upgrade"), "read-only", url(lambda p: f"sqlite:///file:{p.database.url[len('sqlite:///'):]}?mode=ro&uri=true"), ("sqlite",)),
]


def case_params() -> Iterator[object]:
    for case in CASES:
        for backend in case.backends:
            yield pytest.param(case, backend, id=f"{case.name}-{backend}")


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    # overrides conftest's parametrized fixture: each case names its backends
    name: str = request.param
    if name != "sqlite":
        from conftest import require_server

        require_server(name)
    return name


@pytest.mark.parametrize(("case", "backend"), list(case_params()), indirect=["backend"])
def test_failure_is_one_clean_line(case: Case, backend: str, project: Project) -> None:
    """The command fails with one ``Error:`` line and leaves database and folder as they were."""
    if case.start_at:
        at(project, case.start_at)
    if case.setup is not None:
        case.setup(project)
    before_db = database_state(project.database)
    before_files = folder_state(project.migrations)
    result = project.flask(*case.args)
    assert_one_error_line(result, case.expected)
    assert database_state(project.database) == before_db
    assert folder_state(project.migrations) == before_files


# -- cases that need more than a URL ----------------------------------------------


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_wrong_password(project: Project, make_user: Callable[..., str]) -> None:
    """A wrong password is one line saying the server refused the credentials.

    (PostgreSQL here trusts local connections and ignores passwords, so the
    case can only be produced on MariaDB.)
    """
    good = make_user("right-password")
    project.url = sa.make_url(good).set(password="wrong-password").render_as_string(
        hide_password=False
    )
    line = assert_one_error_line(project.flask("db", "upgrade"), "refused the user name or password")
    assert "wrong-password" not in line


@pytest.mark.parametrize("backend", SERVERS, indirect=True)
def test_missing_privilege(project: Project, make_user: Callable[..., str]) -> None:
    """A user who may not create tables gets one line naming the missing privilege."""
    project.url = make_user("pw-for-read-only", privileges="read")
    before = database_state(project.database)
    assert_one_error_line(project.flask("db", "upgrade"), "privilege")
    assert database_state(project.database) == before


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


@pytest.mark.parametrize("backend", SERVERS, indirect=True)
def test_server_that_never_answers_times_out(project: Project, silent_server: int) -> None:
    """A server that accepts but never answers ends in a time-out, not a hang."""
    project.url = server_url(project, port=silent_server)
    write_app(project.root, extra='app.config["MIGRATE_CONNECT_TIMEOUT"] = 2')
    started = time.monotonic()
    assert_one_error_line(project.flask("db", "upgrade"), "did not answer in time")
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_locked_by_another_writer(project: Project) -> None:
    """A write lock held by another process: the command waits, then says so in one line."""
    path = project.database.url[len("sqlite:///"):]
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({path!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        assert_one_error_line(project.flask("db", "upgrade"), "write lock")
        assert time.monotonic() - started >= 4  # pysqlite's busy time-out is 5 s
    finally:
        holder.kill()
        holder.wait()
    assert database_state(project.database) == {}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_traceback_on_request(project: Project) -> None:
    """FLASK_DB_TRACEBACK=1 shows the traceback instead of the one line."""
    project.env["FLASK_DB_TRACEBACK"] = "1"
    result = project.flask("db", "upgrade", "nosuchrev")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr


# -- how the group is registered ------------------------------------------------
# The group is added by Migrate.init_app() through app.cli, as in Flask-Migrate
# 4.1, and by nothing else: no ``flask.commands`` entry point. So Flask finds it
# only in an application that uses the extension, and loading the application
# (and reporting a failure to load it) is Flask's business, not ours.


def test_no_flask_commands_entry_point() -> None:
    """The installed distribution adds nothing to every application's ``flask`` command."""
    from importlib.metadata import distribution

    entry_points = distribution("Flask-Migrate").entry_points
    assert [ep for ep in entry_points if ep.group == "flask.commands"] == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_application_db_group_is_not_shadowed(project: Project) -> None:
    """An app's own plain click group ``db`` runs, in the app context; ours runs as ``migrations``."""
    write_app(
        project.root,
        migrate_args='command="migrations"',
        extra="""
        import click
        from flask import current_app

        @click.group("db")
        def own_db():
            "The application's own db commands (a plain click group)."

        @own_db.command()
        def hello():
            click.echo(f"hello from {current_app.name}")

        app.cli.add_command(own_db)
        """,
    )
    result = project.flask("db", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello from app"
    result = project.flask("migrations", "upgrade")
    assert result.returncode == 0, result.stderr
    assert project.database.versions() == {"a2"}
    assert_one_error_line(project.flask("migrations", "upgrade", "nosuchrev"), "nosuchrev")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_app_without_the_extension_has_no_db_command(project: Project) -> None:
    """``flask --help`` of an app that does not use Flask-Migrate lists no ``db``."""
    (project.root / "plain.py").write_text("from flask import Flask\n\napp = Flask(__name__)\n")
    project.env["FLASK_APP"] = "plain.py"
    result = project.flask("--help")
    assert result.returncode == 0, result.stderr
    commands = result.stdout.split("Commands:", 1)[1].split()
    assert "routes" in commands and "db" not in commands
    result = project.flask("db", "upgrade")
    assert result.returncode == 2
    assert "No such command 'db'" in result.stderr


def unset_flask_app(p: Project) -> None:
    p.env["FLASK_APP"] = ""
    (p.root / "app.py").rename(p.root / "application.py")


def app_module(source: str) -> Callable[[Project], None]:
    def setup(p: Project) -> None:
        (p.root / "broken.py").write_text(source)
        p.env["FLASK_APP"] = "broken.py"

    return setup


# Each makes the application fail while Flask imports it; Flask-SQLAlchemy
# creates the engines in init_app(), so a bad URL or driver fails there too.
APP_LOAD_FAILURES = {
    "unset": (unset_flask_app, "Could not locate a Flask application"),
    "import-error": (app_module("import no_such_module_fm\n"), "No module named 'no_such_module_fm'"),
    "raises": (
        app_module("import flask_migrate\nraise RuntimeError('no config')\n"),
        "RuntimeError: no config",
    ),
    "malformed-url": (
        url(lambda p: "postgresql+psycopg://u@host:notaport/x"),
        "invalid literal for int()",
    ),
    "unknown-driver": (
        url(lambda p: "postgresql+nosuchdriver://u@localhost/x"),
        "Can't load plugin: sqlalchemy.dialects:postgresql.nosuchdriver",
    ),
}


@pytest.mark.parametrize("failure", list(APP_LOAD_FAILURES))
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_app_that_fails_to_load_gets_flasks_own_error(project: Project, failure: str) -> None:
    """FLASK_APP unset, an import error, an app that raises: Flask reports it, as with 4.1."""
    setup, expected = APP_LOAD_FAILURES[failure]
    setup(project)
    result = project.flask("db", "upgrade")
    assert result.returncode != 0
    # Flask's own report: its message plus "No such command", or the traceback
    assert expected in result.stderr
    assert "Could not load the Flask application" not in result.stderr  # the old plugin's line
    assert project.database.table_names() == set()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_renamed_group_leaves_db_to_flask(project: Project) -> None:
    """With ``command='database'``, ``flask db`` is an unknown command and ``flask database`` works."""
    write_app(project.root, migrate_args='command="database"')
    result = project.flask("db", "upgrade")
    assert result.returncode == 2
    assert "No such command 'db'" in result.stderr
    assert project.flask("database", "upgrade").returncode == 0
    assert project.database.versions() == {"a2"}
