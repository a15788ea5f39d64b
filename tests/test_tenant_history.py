"""The tenants' own history: ``Migrate(tenant_directory=...)``, the ``flask-tenants``
template, ``init --tenants`` and ``migrate --tenants`` against a scratch tenant.

Each scenario runs on SQLite and on MariaDB with tenants that have databases
of their own (``Tenant(name, url=...)``), and on PostgreSQL with tenants in
schemas of the application's database (``Tenant(name, schema=...)``). The application has a
shared model (``account``, in the main history) and a per-tenant one
(``invoice``, in the tenants' history).
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner
from flask_sqlalchemy import SQLAlchemy

import flask_migrate
from conftest import SERVER_URLS, Database, run_flask, write_app
from flask_migrate import Migrate, Tenant, operations, scratch
from flask_migrate.errors import MigrateError
from flask_migrate.scratch import PREFIX, ScratchDatabase

TEMPLATE = Path(flask_migrate.__file__).parent / "templates" / "flask-tenants"
#: The per-tenant tables of the apps of :func:`make_app`.
TENANT_TABLES = {"invoice", "invoice_line"}


# -- helpers ---------------------------------------------------------------------------


def invoke(runner: FlaskCliRunner, *args: str) -> Result:
    """Run ``flask <args>``; it must succeed."""
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def fail(runner: FlaskCliRunner, *args: str) -> str:
    """Run ``flask <args>``; it must fail with one ``Error:`` line. Returns the message."""
    result = runner.invoke(args=list(args))
    assert result.exit_code == 1, (result.output, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0][len("Error: "):]


_TABLE_OP = re.compile(r"op\.(create_table|drop_table|batch_alter_table)\(\s*'(\w+)'")


def tables_in(script: Path | Any) -> dict[str, set[str]]:
    """The tables a revision file's upgrade() touches, by operation."""
    path = Path(script if isinstance(script, Path) else script.path)
    upgrade = path.read_text().split("def upgrade():", 1)[1].split("def downgrade():", 1)[0]
    found: dict[str, set[str]] = {}
    for op, table in _TABLE_OP.findall(upgrade):
        found.setdefault(op, set()).add(table)
    return found


def revisions(folder: Path) -> list[Path]:
    return sorted((folder / "versions").glob("*.py"))


@dataclass
class Setup:
    """The application's database and its tenants, on one backend."""

    backend: str
    database: Database
    tenants: list[Tenant]
    #: The tenants' databases (``url`` tenants), by name.
    tenant_databases: dict[str, Database]
    tmp_path: Path
    #: The scratch databases made during the test.
    scratches: list[ScratchDatabase]

    @property
    def shared_schema(self) -> str | None:
        # NOTE: schema tenants translate schema None to the tenant's schema:
        # a shared table referred to from a tenant table names its schema
        return "public" if self.backend == "postgresql" else None

    def tenant_tables(self, tenant: Tenant) -> set[str]:
        """A tenant's tables (its schema's, or its database's), journal aside."""
        if tenant.schema is not None:
            engine = self.database.engine()
            try:
                names = set(sa.inspect(engine).get_table_names(schema=tenant.schema))
            finally:
                engine.dispose()
            return names - {"flask_migrate_journal"}
        return self.tenant_databases[tenant.name].table_names()

    def tenant_versions(self, tenant: Tenant) -> set[str]:
        if tenant.schema is not None:
            engine = self.database.engine()
            try:
                with engine.connect() as conn:
                    rows = conn.execute(sa.text(f'SELECT version_num FROM "{tenant.schema}".alembic_version'))
                    return {r[0] for r in rows}
            finally:
                engine.dispose()
        return self.tenant_databases[tenant.name].versions()

    def leftovers(self) -> set[str]:
        """Scratch schemas in the application's database, scratch folders in the
        temporary folder, and the scratch databases made during the test that still exist."""
        found = {p.name for p in Path(tempfile.gettempdir()).iterdir()}
        if self.backend == "postgresql":
            engine = self.database.engine()
            try:
                found |= set(sa.inspect(engine).get_schema_names())
            finally:
                engine.dispose()
        found = {name for name in found if name.startswith((PREFIX, "flask-migrate-scratch-"))}
        servers = [d.url.database for d in self.scratches if d.backend != "sqlite"]
        if servers:
            admin = sa.create_engine(SERVER_URLS[self.backend])
            try:
                with admin.connect() as conn:
                    found |= set(servers) & set(sa.inspect(conn).get_schema_names())
                    if self.backend == "postgresql":
                        rows = conn.execute(sa.text("SELECT datname FROM pg_database"))
                        found |= set(servers) & {r[0] for r in rows}
            finally:
                admin.dispose()
        return found


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def setup(
    request: pytest.FixtureRequest,
    databases_on: Callable[[str], Database],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Setup:
    """SQLite or MariaDB with two url tenants, or PostgreSQL with two schema tenants."""
    # scratch SQLite files go to a temporary folder of this test's own
    scratch_tmp = tmp_path / "tmp"
    scratch_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_tmp))
    made: list[ScratchDatabase] = []
    create = scratch.create

    def recorded(*args: Any, **kwargs: Any) -> ScratchDatabase:
        made.append(create(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(scratch, "create", recorded)
    backend: str = request.param
    database = databases_on(backend)
    tenant_databases: dict[str, Database] = {}
    if backend == "postgresql":
        tenants = [Tenant("acme", schema="t_acme"), Tenant("globex", schema="t_globex")]
    else:
        for name in ("acme", "globex"):
            tenant_databases[name] = databases_on(backend)
        tenants = [Tenant(name, url=db.url) for name, db in tenant_databases.items()]
    return Setup(backend, database, tenants, tenant_databases, tmp_path, made)


@pytest.fixture
def make_app(setup: Setup) -> Iterator[Callable[..., Flask]]:
    """Apps on the setup's database, with a shared and a per-tenant model."""
    made: list[tuple[Flask, SQLAlchemy]] = []

    def make(
        *,
        tenants: list[Tenant] | None | str = "setup",
        tenant_directory: Path | None | str = "default",
        note: bool = False,
        **migrate_kwargs: Any,
    ) -> Flask:
        app = Flask(f"tenant_app_{uuid.uuid4().hex[:6]}")
        app.config["SQLALCHEMY_DATABASE_URI"] = setup.database.url
        db = SQLAlchemy(app)
        shared_schema = setup.shared_schema

        class Account(db.Model):  # type: ignore[name-defined]
            __tablename__ = "account"
            __table_args__ = {"schema": shared_schema}
            id = db.Column(db.Integer, primary_key=True)
            name = db.Column(db.String(64))

        class Invoice(db.Model):  # type: ignore[name-defined]
            __tablename__ = "invoice"
            __table_args__ = {"info": {"tenant": True}}
            id = db.Column(db.Integer, primary_key=True)
            total = db.Column(db.Integer)
            if shared_schema is not None:
                account_id = db.Column(db.Integer, db.ForeignKey(f"{shared_schema}.account.id"))
            if note:
                note_text = db.Column("note", db.String(200))

        # the other way to mark models: an abstract base class
        class TenantModel(db.Model):  # type: ignore[name-defined]
            __abstract__ = True
            __table_args__ = {"info": {"tenant": True}}

        class InvoiceLine(TenantModel):
            __tablename__ = "invoice_line"
            id = db.Column(db.Integer, primary_key=True)
            invoice_id = db.Column(db.Integer, db.ForeignKey("invoice.id"))

        chosen = setup.tenants if tenants == "setup" else tenants
        function = None if chosen is None else (lambda: list(chosen))  # type: ignore[arg-type]
        if tenant_directory == "default":
            tenant_directory = setup.tmp_path / "tenant_migrations"
        Migrate(
            app, db, directory=setup.tmp_path / "migrations", tenants=function,
            tenant_directory=tenant_directory, **migrate_kwargs,
        )
        made.append((app, db))
        return app

    yield make
    for app, db in made:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def main(setup: Setup) -> Path:
    return setup.tmp_path / "migrations"


@pytest.fixture
def tenant_folder(setup: Setup) -> Path:
    return setup.tmp_path / "tenant_migrations"


def init_both(runner: FlaskCliRunner) -> None:
    invoke(runner, "db", "init")
    invoke(runner, "db", "init", "--tenants")


# -- init --tenants ---------------------------------------------------------------------


def test_init_tenants_makes_the_folder_from_the_template(
    make_app: Callable[..., Flask], tenant_folder: Path, main: Path
) -> None:
    """init --tenants makes Migrate(tenant_directory=...) from flask-tenants, without a hint."""
    runner = make_app().test_cli_runner()
    result = invoke(runner, "db", "init", "--tenants")
    assert (tenant_folder / "env.py").read_text() == (TEMPLATE / "env.py").read_text()
    assert (tenant_folder / "README").read_text() == (TEMPLATE / "README").read_text()
    assert (tenant_folder / "alembic.ini").is_file()
    assert (tenant_folder / "versions").is_dir()
    assert not main.exists()
    assert "tenant_directory=" not in result.output


def test_init_tenants_default_folder_and_hint(
    make_app: Callable[..., Flask], setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without tenant_directory, init --tenants makes ./tenant_migrations and says to pass it to Migrate."""
    monkeypatch.chdir(setup.tmp_path)
    runner = make_app(tenant_directory=None).test_cli_runner()
    result = invoke(runner, "db", "init", "--tenants")
    assert (setup.tmp_path / "tenant_migrations" / "env.py").is_file()
    hints = [line for line in result.stdout.splitlines() if "tenant_directory=" in line]
    assert hints == [
        'Pass tenant_directory="tenant_migrations" to Migrate() so that the commands for '
        "tenants use this folder."
    ]


def test_init_tenants_with_another_directory_hints(
    make_app: Callable[..., Flask], setup: Setup
) -> None:
    """init --tenants -d DIR uses DIR and, as Migrate names another folder, says so."""
    runner = make_app().test_cli_runner()
    other = setup.tmp_path / "elsewhere"
    result = invoke(runner, "db", "init", "--tenants", "-d", str(other))
    assert (other / "env.py").read_text() == (TEMPLATE / "env.py").read_text()
    assert not (setup.tmp_path / "tenant_migrations").exists()
    assert f'Pass tenant_directory="{other.as_posix()}" to Migrate()' in result.stdout


def test_init_tenants_refuses_multidb(make_app: Callable[..., Flask], tenant_folder: Path) -> None:
    """init --tenants --multidb fails: a tenant is one database."""
    runner = make_app().test_cli_runner()
    assert "--multidb" in fail(runner, "db", "init", "--tenants", "--multidb")
    assert not tenant_folder.exists()


def test_list_templates_lists_flask_tenants(make_app: Callable[..., Flask]) -> None:
    """list-templates shows flask-tenants beside the four others, and init still defaults to flask."""
    runner = make_app().test_cli_runner()
    out = invoke(runner, "db", "list-templates").stdout
    assert "flask-tenants - Single-database configuration for the tenants of a Flask application." in out
    names = [line.split(" - ", 1)[0] for line in out.splitlines() if " - " in line]
    assert names == ["aioflask", "aioflask-multidb", "flask", "flask-multidb", "flask-tenants"]


# -- migrate --tenants ----------------------------------------------------------------------


def test_migrate_tenants_generates_only_the_tenant_tables(
    make_app: Callable[..., Flask], setup: Setup, main: Path, tenant_folder: Path
) -> None:
    """migrate --tenants writes the tenant tables only, and main migrate the shared ones only."""
    runner = make_app().test_cli_runner()
    init_both(runner)
    invoke(runner, "db", "migrate", "--tenants", "-m", "tenant tables")
    if setup.backend != "postgresql":
        # a scratch database on the first tenant's server (the scratch schema: leftovers() below)
        [made] = setup.scratches
        first = sa.make_url(setup.tenants[0].url or "")
        assert (made.url.drivername, made.url.host) == (first.drivername, first.host)
    [tenant_rev] = revisions(tenant_folder)
    assert tables_in(tenant_rev) == {"create_table": TENANT_TABLES}
    if setup.shared_schema is not None:
        # the shared table, referred to with its schema
        assert "['public.account.id']" in tenant_rev.read_text()
    assert revisions(main) == []

    invoke(runner, "db", "migrate", "-m", "shared tables")
    [main_rev] = revisions(main)
    assert tables_in(main_rev) == {"create_table": {"account"}}
    assert setup.leftovers() == set()


def test_upgrade_all_tenants_applies_the_tenant_history_only(
    make_app: Callable[..., Flask], setup: Setup, main: Path, tenant_folder: Path
) -> None:
    """upgrade(tenants="all") applies the tenants' history to each tenant; the main one stays apart."""
    app = make_app()
    runner = app.test_cli_runner()
    init_both(runner)
    invoke(runner, "db", "migrate", "-m", "shared")
    invoke(runner, "db", "migrate", "--tenants", "-m", "tenant")
    [main_rev], [tenant_rev] = revisions(main), revisions(tenant_folder)
    invoke(runner, "db", "upgrade")
    with app.app_context():
        results = operations.upgrade(tenants="all", jobs=1)
    assert [(r.tenant, r.outcome) for r in results] == [("acme", "migrated"), ("globex", "migrated")]

    main_id, tenant_id = main_rev.name.split("_")[0], tenant_rev.name.split("_")[0]
    assert setup.database.versions() == {main_id}
    assert "account" in setup.database.table_names()
    assert not TENANT_TABLES & setup.database.table_names()
    for tenant in setup.tenants:
        assert setup.tenant_tables(tenant) == TENANT_TABLES | {"alembic_version"}
        assert setup.tenant_versions(tenant) == {tenant_id}

    # and both histories agree with the models now
    invoke(runner, "db", "check")
    assert "No changes in schema detected." in invoke(runner, "db", "migrate", "--tenants").stdout
    assert "No changes in schema detected." in invoke(runner, "db", "migrate").stdout


def test_second_migrate_tenants_generates_only_the_new_column(
    make_app: Callable[..., Flask], setup: Setup, tenant_folder: Path
) -> None:
    """After a column is added to a tenant model, migrate --tenants writes just that column."""
    runner = make_app().test_cli_runner()
    init_both(runner)
    invoke(runner, "db", "migrate", "--tenants", "-m", "first")
    # a schema tenant's invoice refers to public.account, which must exist
    invoke(runner, "db", "migrate", "-m", "shared")
    invoke(runner, "db", "upgrade")
    # no tenant was upgraded: the scratch tenant is brought to the head itself
    runner = make_app(note=True).test_cli_runner()
    invoke(runner, "db", "migrate", "--tenants", "-m", "note")
    first, second = sorted(revisions(tenant_folder), key=lambda p: "first" not in p.name)
    assert tables_in(second) == {"batch_alter_table": {"invoice"}}
    source = second.read_text()
    assert "add_column(sa.Column('note'" in source
    assert source.count("add_column") == 1 and "drop_column" in source
    assert setup.leftovers() == set()


def test_revision_autogenerate_tenants(
    make_app: Callable[..., Flask], setup: Setup, tenant_folder: Path, main: Path
) -> None:
    """revision --autogenerate --tenants is migrate --tenants; without --autogenerate it writes an empty revision there."""
    runner = make_app().test_cli_runner()
    init_both(runner)
    invoke(runner, "db", "revision", "--autogenerate", "--tenants", "-m", "auto", "--rev-id", "t1")
    assert tables_in(tenant_folder / "versions" / "t1_auto.py") == {"create_table": TENANT_TABLES}
    invoke(runner, "db", "revision", "--tenants", "-m", "empty", "--rev-id", "t2")
    assert (tenant_folder / "versions" / "t2_empty.py").is_file()
    assert revisions(main) == []
    assert setup.leftovers() == set()


@pytest.mark.parametrize("declared", ["none", "empty"])
def test_migrate_tenants_with_zero_tenants(
    declared: str, make_app: Callable[..., Flask], setup: Setup, tenant_folder: Path
) -> None:
    """A brand-new app without tenants (no function, or none returned) can write the tenants' first revision."""
    app = make_app(tenants=None if declared == "none" else [])
    runner = app.test_cli_runner()
    init_both(runner)
    invoke(runner, "db", "migrate", "--tenants", "-m", "first")
    [rev] = revisions(tenant_folder)
    assert tables_in(rev) == {"create_table": TENANT_TABLES}
    assert setup.leftovers() == set()
    # nothing was created in the application's own database either
    assert setup.database.table_names() == set()


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_scratch_removed_when_autogenerate_fails(
    error: type[BaseException], make_app: Callable[..., Flask], setup: Setup, tenant_folder: Path
) -> None:
    """A failure (or Ctrl-C) during autogenerate still removes the scratch tenant."""

    def include_object(*args: Any) -> bool:
        raise error("boom in include_object")

    app = make_app(include_object=include_object)
    init_both(app.test_cli_runner())
    with app.app_context():
        with pytest.raises(error):
            operations.migrate(message="never", tenants=True)
    assert revisions(tenant_folder) == []
    assert setup.leftovers() == set()


def test_scratch_removed_when_its_upgrade_fails(
    make_app: Callable[..., Flask], setup: Setup, tenant_folder: Path
) -> None:
    """A tenant revision that fails on the scratch tenant: an error, and no scratch left."""
    runner = make_app().test_cli_runner()
    init_both(runner)
    invoke(runner, "db", "revision", "--tenants", "-m", "broken", "--rev-id", "bad1")
    path = tenant_folder / "versions" / "bad1_broken.py"
    path.write_text(path.read_text().replace(
        "def upgrade():\n    pass", "def upgrade():\n    op.execute('SELECT * FROM no_such_table')"
    ))
    assert "no_such_table" in fail(runner, "db", "migrate", "--tenants")
    assert setup.leftovers() == set()


@pytest.mark.parametrize("setup", ["postgresql"], indirect=True)
def test_schema_scratch_needs_the_shared_tables(
    make_app: Callable[..., Flask], setup: Setup, tenant_folder: Path
) -> None:
    """A schema tenant's revision refers to a shared table not created yet: the error says to upgrade first."""
    runner = make_app().test_cli_runner()
    init_both(runner)
    invoke(runner, "db", "migrate", "--tenants", "-m", "first")
    message = fail(runner, "db", "migrate", "--tenants", "-m", "second")
    assert "scratch tenant" in message and "account" in message
    assert "run 'flask db upgrade' first" in message
    assert setup.leftovers() == set()


def test_migrate_tenants_needs_no_tenant_database(
    make_app: Callable[..., Flask], setup: Setup, tenant_folder: Path
) -> None:
    """migrate --tenants leaves the real tenants alone: their databases or schemas stay as they were."""
    runner = make_app().test_cli_runner()
    init_both(runner)
    invoke(runner, "db", "migrate", "--tenants")
    for tenant in setup.tenants:
        if tenant.schema is None:
            assert setup.tenant_databases[tenant.name].table_names() == set()
    if setup.backend == "postgresql":
        engine = setup.database.engine()
        try:
            schemas = set(sa.inspect(engine).get_schema_names())
        finally:
            engine.dispose()
        assert not {"t_acme", "t_globex"} & schemas


# -- the main history ignores the tenant tables ----------------------------------------------


def test_main_history_hides_tenant_tables_and_chains_include_object(
    make_app: Callable[..., Flask], setup: Setup, main: Path
) -> None:
    """Main migrate skips the per-tenant models; env.py's own include_object still runs and decides."""
    seen: list[tuple[str, bool]] = []

    def include_object(obj: Any, name: str, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            seen.append((name, reflected))
        return True

    runner = make_app(include_object=include_object).test_cli_runner()
    invoke(runner, "db", "init")
    invoke(runner, "db", "migrate", "-m", "main")
    [rev] = revisions(main)
    assert tables_in(rev) == {"create_table": {"account"}}
    assert ("account", False) in seen
    assert not TENANT_TABLES & {name for name, _ in seen}


def test_main_history_leaves_tenant_table_in_main_database(
    make_app: Callable[..., Flask], setup: Setup, main: Path
) -> None:
    """A per-tenant table left in the application's database is neither dropped nor compared by main migrate."""
    runner = make_app().test_cli_runner()
    invoke(runner, "db", "init")
    invoke(runner, "db", "migrate", "-m", "main")
    invoke(runner, "db", "upgrade")
    engine = setup.database.engine()
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE invoice (id INTEGER PRIMARY KEY, other TEXT)"))
    finally:
        engine.dispose()
    assert "No changes in schema detected." in invoke(runner, "db", "migrate").stdout


def test_without_tenant_directory_nothing_is_hidden(
    make_app: Callable[..., Flask], setup: Setup, main: Path
) -> None:
    """Tenants sharing the application's history (no tenant_directory): main migrate has every table."""
    runner = make_app(tenant_directory=None).test_cli_runner()
    invoke(runner, "db", "init")
    invoke(runner, "db", "migrate")
    [rev] = revisions(main)
    assert tables_in(rev) == {"create_table": {"account"} | TENANT_TABLES}


def test_tenant_runs_hide_shared_tables_whatever_env_py_passes(
    make_app: Callable[..., Flask], setup: Setup, tenant_folder: Path
) -> None:
    """An env.py of the tenants' history passing all the models, unfiltered, still gets only the tenant tables."""
    runner = make_app().test_cli_runner()
    invoke(runner, "db", "init", "--tenants")
    env = tenant_folder / "env.py"
    source = env.read_text()
    for line in ("target_metadata = get_tenant_metadata()", 'options["include_object"] = include_object'):
        assert line in source
    env.write_text(
        source.replace("target_metadata = get_tenant_metadata()", "target_metadata = db.metadatas[None]")
        .replace('options["include_object"] = include_object', "")
    )
    invoke(runner, "db", "migrate", "--tenants")
    [rev] = revisions(tenant_folder)
    assert tables_in(rev) == {"create_table": TENANT_TABLES}


# -- the real ``flask`` entry point --------------------------------------------------------

TENANT_MODELS = """
import pathlib

from flask_migrate import Tenant


class Invoice(db.Model):
    __table_args__ = {"info": {"tenant": True}}
    id = db.Column(db.Integer, primary_key=True)
    total = db.Column(db.Integer)


def tenants():
    here = pathlib.Path(__file__).parent
    return [Tenant(name, url=f"sqlite:///{here / name}.db") for name in ("acme", "globex")]


migrate.init_app(app, db, tenants=tenants, tenant_directory="tenant_migrations")
"""


@pytest.mark.smoke
def test_flask_entry_point(tmp_path: Path, databases_on: Callable[[str], Database]) -> None:
    """Through the real ``flask``: init, init --tenants, migrate --tenants, migrate and upgrade."""
    database = databases_on("sqlite")
    write_app(tmp_path, extra=TENANT_MODELS)
    scratch_tmp = tmp_path / "tmp"
    scratch_tmp.mkdir()

    def flask(*args: str) -> str:
        result = run_flask(tmp_path, "db", *args, url=database.url, env={"TMPDIR": str(scratch_tmp)})
        assert result.returncode == 0, result.stderr
        return result.stdout

    flask("init")
    assert "tenant_directory=" not in flask("init", "--tenants")
    flask("migrate", "--tenants", "-m", "tenant tables")
    flask("migrate", "-m", "main tables")
    [tenant_rev] = revisions(tmp_path / "tenant_migrations")
    [main_rev] = revisions(tmp_path / "migrations")
    assert tables_in(tenant_rev) == {"create_table": {"invoice"}}
    assert tables_in(main_rev) == {"create_table": {"user"}}
    flask("upgrade")
    assert database.table_names() == {"user", "alembic_version"}
    # the scratch tenant's database is gone, and no tenant was touched
    assert list(scratch_tmp.iterdir()) == []
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [Path(database.url).name]


def test_operations_revision_tenants_without_app_tenant_directory_uses_main_folder(
    make_app: Callable[..., Flask], setup: Setup, main: Path
) -> None:
    """Tenants sharing the main history: migrate --tenants compares the main folder with a scratch tenant."""
    app = make_app(tenant_directory=None)
    invoke(app.test_cli_runner(), "db", "init")
    with app.app_context():
        script = operations.migrate(message="all", tenants=True)
    assert script is not None
    # nothing hidden: every model is the tenants'
    assert tables_in(Path(script.path)) == {"create_table": {"account"} | TENANT_TABLES}
    assert setup.leftovers() == set()


def test_migrate_tenants_sql_is_refused(make_app: Callable[..., Flask], setup: Setup) -> None:
    """--sql with migrate --tenants fails before any scratch tenant is made."""
    app = make_app()
    init_both(app.test_cli_runner())
    with app.app_context(), pytest.raises(MigrateError, match="--sql"):
        operations.migrate(sql=True, tenants=True)
    assert setup.leftovers() == set()
