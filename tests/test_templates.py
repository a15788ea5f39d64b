"""Templates: the four shipped ones, custom ones, and migrations folders of the original."""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

import flask_migrate
from conftest import Database, create_app, run_flask, write_app


def invoke(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def flask_ok(cwd: Path, *args: str, **kwargs: t.Any) -> str:
    """Run the real ``flask`` and expect success; returns its standard output."""
    result = run_flask(cwd, *args, **kwargs)
    assert result.returncode == 0, result.stderr
    return result.stdout


def aio(url: str) -> str:
    """The SQLite URL with the aiosqlite driver."""
    return url.replace("sqlite://", "sqlite+aiosqlite://", 1)


def only_revision(folder: Path) -> str:
    [script] = (folder / "versions").glob("*.py")
    return script.name.split("_")[0]


@pytest.fixture
def sqlite_dbs(databases_on: Callable[[str], Database]) -> Callable[[], Database]:
    """Makes fresh SQLite databases (whatever backend the run is about)."""
    return lambda: databases_on("sqlite")


# -- (a) one smoke test per shipped template, through the real ``flask`` -------


@pytest.mark.smoke
@pytest.mark.parametrize("template", ["flask", "flask-multidb", "aioflask", "aioflask-multidb"])
def test_template_smoke(template: str, tmp_path: Path, sqlite_dbs: Callable[[], Database]) -> None:
    """flask db init -t NAME, migrate, upgrade and current work for each shipped template."""
    default, bind = sqlite_dbs(), sqlite_dbs()
    url, bind_url = default.url, bind.url
    if template.startswith("aio"):
        url, bind_url = aio(url), aio(bind_url)
    binds = {"extra": bind_url} if template.endswith("multidb") else None
    write_app(tmp_path)

    flask_ok(tmp_path, "db", "init", "-t", template, url=url, binds=binds)
    readme = (tmp_path / "migrations" / "README").read_text()
    shipped = Path(flask_migrate.__file__).parent / "templates" / template / "README"
    assert readme == shipped.read_text()
    flask_ok(tmp_path, "db", "migrate", "-m", "initial", url=url, binds=binds)
    revision = only_revision(tmp_path / "migrations")
    flask_ok(tmp_path, "db", "upgrade", url=url, binds=binds)
    assert default.table_names() == {"user", "alembic_version"}
    assert default.versions() == {revision}
    if binds:
        assert bind.table_names() == {"group_extra", "alembic_version"}
        assert bind.versions() == {revision}
    current = flask_ok(tmp_path, "db", "current", url=url, binds=binds)
    assert current.count(f"{revision} (head)") == (2 if binds else 1)


# -- (b) custom templates by path ---------------------------------------------------

CUSTOM_ENV = '''\
# MARKER: custom env.py
from alembic import context
from flask import current_app

migrate = current_app.extensions["migrate"]
db = migrate.db

if context.is_offline_mode():
    context.configure(url=db.engine.url, target_metadata=db.metadata,
                      literal_binds=True, **migrate.configure_args)
    with context.begin_transaction():
        context.run_migrations()
else:
    with db.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=db.metadata,
                          **migrate.configure_args)
        with context.begin_transaction():
            context.run_migrations()
'''

CUSTOM_SCRIPT = '''\
"""${message}"""
# MARKER: custom script.py.mako
from alembic import op
import sqlalchemy as sa
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade():
    ${upgrades if upgrades else "pass"}


def downgrade():
    ${downgrades if downgrades else "pass"}
'''


def write_template(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "README").write_text("MARKER: custom README\n")
    (folder / "alembic.ini.mako").write_text("# MARKER: custom alembic.ini\n[alembic]\n")
    (folder / "env.py").write_text(CUSTOM_ENV)
    (folder / "script.py.mako").write_text(CUSTOM_SCRIPT)
    return folder


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_custom_template_by_path(how: str, tmp_path: Path, sqlite_dbs: Callable[[], Database]) -> None:
    """init -t <path> copies a template folder of the user's, and it then migrates and upgrades."""
    database = sqlite_dbs()
    template = write_template(tmp_path / "templates" / "mytemplate")
    arg = "./templates/mytemplate" if how == "relative" else str(template)
    write_app(tmp_path)

    flask_ok(tmp_path, "db", "init", "-t", arg, url=database.url)
    folder = tmp_path / "migrations"
    assert "MARKER: custom README" in (folder / "README").read_text()
    assert "MARKER: custom alembic.ini" in (folder / "alembic.ini").read_text()
    assert "MARKER: custom env.py" in (folder / "env.py").read_text()
    flask_ok(tmp_path, "db", "migrate", "-m", "initial", url=database.url)
    [script] = (folder / "versions").glob("*_initial.py")
    assert "MARKER: custom script.py.mako" in script.read_text()
    assert "op.create_table('user'" in script.read_text()
    flask_ok(tmp_path, "db", "upgrade", url=database.url)
    assert database.table_names() == {"user", "alembic_version"}


# -- (c) init failures ------------------------------------------------------------------


def assert_one_error_line(stderr: str, *fragments: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_init_into_non_empty_folder_fails(tmp_path: Path, sqlite_dbs: Callable[[], Database]) -> None:
    """init into a folder that has files fails with one Error: line, exit 1, and adds nothing."""
    write_app(tmp_path)
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    result = run_flask(tmp_path, "db", "init", url=sqlite_dbs().url)
    assert result.returncode == 1
    assert_one_error_line(result.stderr, "migrations")
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("template", ["no-such-template", "./no/such/folder"])
def test_init_with_unknown_template_fails(
    template: str, tmp_path: Path, sqlite_dbs: Callable[[], Database]
) -> None:
    """init with an unknown template name or path fails with one Error: line, exit 1, and creates nothing."""
    write_app(tmp_path)
    result = run_flask(tmp_path, "db", "init", "-t", template, url=sqlite_dbs().url)
    assert result.returncode == 1
    assert_one_error_line(result.stderr, template.rsplit("/", 1)[-1])
    assert not (tmp_path / "migrations").exists()


# -- (d) the application-factory pattern ---------------------------------------------

FACTORY_APP = """\
import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_migrate import Migrate

db = SQLAlchemy()
migrate = Migrate(directory="db_migrations")


class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(128))


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["TEST_DATABASE_URL"]
    db.init_app(app)
    migrate.init_app(app, db)
    return app
"""


def test_app_factory(tmp_path: Path, sqlite_dbs: Callable[[], Database]) -> None:
    """Migrate() with init_app() in a factory (FLASK_APP=factory:create_app) keeps its directory and works."""
    database = sqlite_dbs()
    (tmp_path / "factory.py").write_text(FACTORY_APP)
    opts = {"url": database.url, "app": "factory:create_app"}
    flask_ok(tmp_path, "db", "init", **opts)
    assert (tmp_path / "db_migrations" / "env.py").is_file()
    assert not (tmp_path / "migrations").exists()
    flask_ok(tmp_path, "db", "migrate", **opts)
    flask_ok(tmp_path, "db", "upgrade", **opts)
    assert database.table_names() == {"user", "alembic_version"}
    assert database.versions() == {only_revision(tmp_path / "db_migrations")}


# -- (e) --package --------------------------------------------------------------------------


@pytest.fixture
def app_on(migrations: Path) -> Iterator[Callable[..., Flask]]:
    """Builds in-process apps on a URL, disposing of their engines afterwards."""
    made = []

    def make(url: str, **kwargs: object) -> Flask:
        app, db, _ = create_app(url, migrations, **kwargs)  # type: ignore[arg-type]
        made.append((app, db))
        return app

    yield make
    for app, db in made:
        with app.app_context():
            db.engine.dispose()


def test_init_package_writes_init_files(
    app_on: Callable[..., Flask], migrations: Path, sqlite_dbs: Callable[[], Database]
) -> None:
    """init --package writes __init__.py in the folder and in versions/, and migrations still run."""
    database = sqlite_dbs()
    runner = app_on(database.url).test_cli_runner()
    invoke(runner, "db", "init", "--package")
    assert (migrations / "__init__.py").is_file()
    assert (migrations / "versions" / "__init__.py").is_file()
    invoke(runner, "db", "migrate", "-m", "initial")
    invoke(runner, "db", "upgrade")
    assert database.table_names() == {"user", "alembic_version"}


# -- (f) configure kwargs reach --sql ---------------------------------------------------------


def test_offline_sql_honours_configure_kwargs(
    app_on: Callable[..., Flask], database: Database
) -> None:
    """Migrate(version_table=...) applies to upgrade --sql output and to the online upgrade."""
    runner = app_on(database.url, version_table="custom_version").test_cli_runner()
    invoke(runner, "db", "init")
    invoke(runner, "db", "migrate", "-m", "initial")
    sql = invoke(runner, "db", "upgrade", "--sql")
    assert "CREATE TABLE custom_version" in sql
    assert "INSERT INTO custom_version (version_num)" in sql
    assert "alembic_version" not in sql

    invoke(runner, "db", "upgrade")
    assert "alembic_version" not in database.table_names()
    assert database.versions("custom_version") == {only_revision(database_folder(runner))}


def database_folder(runner: FlaskCliRunner) -> Path:
    return Path(runner.app.extensions["migrate"].directory)


# -- (g) templates leave the application's logging alone -----------------------------------

LOGGING_SCRIPT = """\
import json, logging, sys

import flask_migrate
from app import app

mine = logging.StreamHandler(sys.stdout)
mine.set_name("mine")
mine.setFormatter(logging.Formatter("%(name)s:%(message)s"))
if sys.argv[1] == "root":
    logging.getLogger().addHandler(mine)
    logging.getLogger().setLevel(logging.INFO)
app.logger.addHandler(mine)
app.logger.setLevel(logging.INFO)
other = logging.getLogger("myapp.models")

with app.app_context():
    flask_migrate.init(template=sys.argv[2])
    flask_migrate.migrate(message="initial")
    flask_migrate.upgrade()

app.logger.warning("APP-AFTER")
other.warning("OTHER-AFTER")
print(json.dumps({
    "root_handlers": [h.get_name() for h in logging.getLogger().handlers],
    "root_level": logging.getLogger().level,
    "app_handlers": [h.get_name() for h in app.logger.handlers],
    "app_disabled": app.logger.disabled,
    "other_disabled": other.disabled,
}))
"""


@pytest.mark.parametrize("template", ["flask", "flask-multidb"])
@pytest.mark.parametrize("configured", ["root", "app-only"])
def test_programmatic_upgrade_keeps_app_logging(
    configured: str, template: str, tmp_path: Path, sqlite_dbs: Callable[[], Database]
) -> None:
    """Running migrations from the app's code keeps its handlers and leaves its loggers enabled."""
    database = sqlite_dbs()
    write_app(tmp_path)
    (tmp_path / "run.py").write_text(LOGGING_SCRIPT)
    env = {"TEST_DATABASE_URL": database.url, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "run.py", configured, template],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "user" in database.table_names()
    state = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "mine" in state["app_handlers"]
    assert state["app_disabled"] is False
    assert state["other_disabled"] is False
    assert "app:APP-AFTER" in proc.stdout
    if configured == "root":
        assert state["root_handlers"] == ["mine"]
        assert state["root_level"] == 20
        assert "myapp.models:OTHER-AFTER" in proc.stdout


# -- (h) a migrations folder written by the original Flask-Migrate --------------------------

ORIGINAL_STYLE_ENV = '''\
import logging

from alembic import context
from flask import current_app

config = context.config
logger = logging.getLogger("alembic.env")


def engine():
    return current_app.extensions["migrate"].db.engine


def engine_url():
    # configparser interpolates "%": double it
    url = engine().url.render_as_string(hide_password=False)
    return url.replace("%", "%%")


config.set_main_option("sqlalchemy.url", engine_url())
target_db = current_app.extensions["migrate"].db

# test instrumentation: number this run, and record which run's hook fires
runs = current_app.config.setdefault("ENV_RUNS", [])
run_number = len(runs) + 1
runs.append(run_number)


def metadata():
    if hasattr(target_db, "metadatas"):
        return target_db.metadatas[None]
    return target_db.metadata


def run_migrations_offline():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata(),
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    def process_revision_directives(context, revision, directives):
        current_app.config.setdefault("HOOK_RUNS", []).append(run_number)
        if getattr(config.cmd_opts, "autogenerate", False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    configure_args = current_app.extensions["migrate"].configure_args
    if configure_args.get("process_revision_directives") is None:
        configure_args["process_revision_directives"] = process_revision_directives

    with engine().connect() as connection:
        context.configure(
            connection=connection, target_metadata=metadata(), **configure_args
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''

ORIGINAL_STYLE_INI = """\
[alembic]

[loggers]
keys = root

[handlers]
keys =

[formatters]
keys =

[logger_root]
level = WARN
handlers =
"""


def write_original_style_folder(folder: Path) -> None:
    (folder / "versions").mkdir(parents=True)
    (folder / "README").write_text("Single-database configuration for Flask.\n")
    (folder / "alembic.ini").write_text(ORIGINAL_STYLE_INI)
    (folder / "env.py").write_text(ORIGINAL_STYLE_ENV)
    shipped = Path(flask_migrate.__file__).parent / "templates" / "flask" / "script.py.mako"
    (folder / "script.py.mako").write_text(shipped.read_text())


@pytest.fixture
def percent_database(database: Database, tmp_path: Path) -> Database:
    """The test database; for SQLite, a file whose path has a '%' in it."""
    if database.backend != "sqlite":
        return database
    folder = tmp_path / "100%"
    folder.mkdir()
    return Database("sqlite", f"sqlite:///{folder / 'app.db'}")


def test_original_style_migrations_folder(
    app_on: Callable[..., Flask], percent_database: Database, migrations: Path
) -> None:
    """An env.py in the original's style (db.engine, sqlalchemy.url, its own hook) migrates, upgrades and writes SQL."""
    database = percent_database
    write_original_style_folder(migrations)
    runner = app_on(database.url).test_cli_runner()

    invoke(runner, "db", "migrate", "-m", "initial")
    revision = only_revision(migrations)
    invoke(runner, "db", "upgrade")
    assert {"user", "alembic_version"} <= database.table_names()
    assert database.versions() == {revision}
    assert "No changes in schema detected." in invoke(runner, "db", "migrate")
    assert only_revision(migrations) == revision
    assert f"{revision} (head)" in invoke(runner, "db", "current")
    assert "No new upgrade operations detected." in invoke(runner, "db", "check")
    sql = invoke(runner, "db", "upgrade", "--sql", f"base:{revision}")
    assert f"INSERT INTO alembic_version (version_num) VALUES ('{revision}')" in sql

    invoke(runner, "db", "downgrade")
    assert "user" not in database.table_names()


def test_original_style_hook_is_fresh_on_every_run(
    app_on: Callable[..., Flask], sqlite_dbs: Callable[[], Database], migrations: Path
) -> None:
    """Two migrates in one process each use their own run's hook: env.py's change to configure_args does not stick."""
    database = sqlite_dbs()
    write_original_style_folder(migrations)
    app = app_on(database.url)

    with app.app_context():
        first = flask_migrate.migrate(str(migrations), message="initial")
        assert first is not None
        flask_migrate.upgrade(str(migrations))
        second = flask_migrate.migrate(str(migrations), message="nothing")
        assert second is None

    assert app.config["ENV_RUNS"] == [1, 2, 3]
    # a stale hook would show up as [1, 1]: run 3 reusing run 1's closure
    assert app.config["HOOK_RUNS"] == [1, 3]
    assert "process_revision_directives" not in app.extensions["migrate"].configure_args
    assert [p.name for p in (migrations / "versions").glob("*.py")] == [Path(first.path).name]
    assert database.versions() == {first.revision}


# -- (i) FLASK_DB_DIRECTORY -------------------------------------------------------------------


def test_flask_db_directory_env_var(tmp_path: Path, sqlite_dbs: Callable[[], Database]) -> None:
    """FLASK_DB_DIRECTORY selects the migrations folder for every command."""
    database = sqlite_dbs()
    write_app(tmp_path)
    opts = {"url": database.url, "env": {"FLASK_DB_DIRECTORY": "elsewhere"}}
    flask_ok(tmp_path, "db", "init", **opts)
    assert (tmp_path / "elsewhere" / "env.py").is_file()
    assert not (tmp_path / "migrations").exists()
    flask_ok(tmp_path, "db", "migrate", "-m", "initial", **opts)
    revision = only_revision(tmp_path / "elsewhere")
    flask_ok(tmp_path, "db", "upgrade", **opts)
    assert database.versions() == {revision}
    assert revision in flask_ok(tmp_path, "db", "current", **opts)
    # without the variable the default folder is used, and it does not exist
    result = run_flask(tmp_path, "db", "current", url=database.url)
    assert result.returncode == 1
    assert_one_error_line(result.stderr, "migrations")
