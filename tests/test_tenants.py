"""Multi-tenant migrations: ``Migrate(tenants=...)``, ``--all-tenants``/``--tenant``, ``tenants=``.

Real runs against real databases, in four kinds of tenants (``kind``):

* ``sqlite``: each tenant a SQLite file, named by a relative URL (so it lands
  in the application's instance folder); the application's database is
  SQLite too;
* ``postgresql`` and ``mariadb``: each tenant a database of its own on the
  server, made for the test and dropped after it; the application's database
  is one more on the same server;
* ``pg-schema``: each tenant a schema of the application's PostgreSQL
  database (one database made for the test).

The history is written by hand: ``a1`` creates ``user`` as the models define
it, ``b2`` adds ``user.email`` (so a tenant at ``b2`` matches the models of
``user+email``), and, where a test needs a failure, ``c3`` creates ``extra``
and then raises for the tenants named in ``app.config["FAIL_TENANTS"]``
(``current_app.extensions['migrate'].tenant``).

Concurrent instances, Ctrl-C and lock sharing are in
``test_tenants_concurrency.py``.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
import typing as t
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result as ClickResult
from flask import current_app

from flask_migrate import Tenant, operations
from flask_migrate.errors import MigrateError
from flask_migrate.results import TenantResult

from conftest import (
    JOURNAL,
    SERVER_URLS,
    DatabaseFactory,
    create_app,
    require_server,
    write_revision,
)

KINDS = ["sqlite", "postgresql", "mariadb", "pg-schema"]
#: The server each kind needs (None: none).
SERVER = {"sqlite": None, "postgresql": "postgresql", "mariadb": "mariadb", "pg-schema": "postgresql"}
#: Where DDL rolls back with the run (a failing run changes nothing).
TRANSACTIONAL = ["sqlite", "postgresql", "pg-schema"]

CREATE_USER = """
op.create_table(
    'user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id'),
)
"""
ADD_EMAIL = "op.add_column('user', sa.Column('email', sa.String(length=128), nullable=True))"
FAILING = """
op.create_table('extra', sa.Column('id', sa.Integer(), primary_key=True))
tenant = current_app.extensions['migrate'].tenant
if tenant is not None and tenant.name in current_app.config.get('FAIL_TENANTS', ()):
    raise RuntimeError('boom for ' + tenant.name)
"""


# -- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Migrations folders made once by ``init`` (``flask`` and ``flask-multidb``), no revisions."""
    root = tmp_path_factory.mktemp("tenant-templates")
    made = {}
    for name, multidb in (("flask", False), ("flask-multidb", True)):
        app, db, _ = create_app(f"sqlite:///{root / 'init.db'}", root / name, models="none")
        with app.app_context():
            operations.init(multidb=multidb)
            db.engine.dispose()
        made[name] = root / name
    return made


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """Each test that uses this runs once per kind of tenant."""
    name: str = request.param
    if SERVER[name] is not None:
        require_server(SERVER[name])
    return name


@dataclass
class TenantView:
    """Reads one tenant's database (or schema) from outside, with a connection of its own."""

    url: str
    schema: str | None = None

    def _engine(self) -> sa.Engine:
        return sa.create_engine(self.url, poolclass=sa.pool.NullPool)

    def exists(self) -> bool:
        """Whether the tenant's database file or schema is there at all."""
        url = sa.make_url(self.url)
        if url.get_backend_name() == "sqlite":
            return Path(url.database or "").exists()
        if self.schema is None:
            return True
        engine = self._engine()
        try:
            return self.schema in sa.inspect(engine).get_schema_names()
        finally:
            engine.dispose()

    def tables(self, journal: bool = False) -> set[str]:
        """Its tables (the journal only if asked for); an absent file or schema has none."""
        if not self.exists():
            return set()
        engine = self._engine()
        try:
            names = set(sa.inspect(engine).get_table_names(schema=self.schema))
        finally:
            engine.dispose()
        return names if journal else names - {JOURNAL}

    def columns(self, table: str) -> set[str]:
        engine = self._engine()
        try:
            return {c["name"] for c in sa.inspect(engine).get_columns(table, schema=self.schema)}
        finally:
            engine.dispose()

    def _rows(self, table: str, *columns: str) -> list[tuple[t.Any, ...]]:
        if table not in self.tables(journal=True):
            return []
        engine = self._engine()
        try:
            with engine.connect() as conn:
                found = sa.Table(table, sa.MetaData(), schema=self.schema, autoload_with=conn)
                query = sa.select(*(found.c[c] for c in columns))
                if "id" in found.c:
                    query = query.order_by(found.c.id)
                return [tuple(row) for row in conn.execute(query)]
        finally:
            engine.dispose()

    def versions(self) -> set[str]:
        return {row[0] for row in self._rows("alembic_version", "version_num")}

    def journal(self) -> list[tuple[str, str, str]]:
        """The journal's rows: (kind, state, revision), oldest first."""
        return self._rows(JOURNAL, "kind", "state", "revision")  # type: ignore[return-value]

    def untouched(self) -> bool:
        """No table at all: no migration, no version table, no journal."""
        return self.tables(journal=True) == set()


class Project:
    """An app with tenants of one kind, its migrations folder, and the tenants' databases.

    The app's tenants function returns the tenants named in
    ``app.config["TENANTS"]`` and counts its calls (``calls``).
    """

    def __init__(
        self, kind: str, tmp_path: Path, template: Path, models: str = "user+email",
        binds: dict[str, str] | None = None, tenants: bool = True,
    ) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.factory = DatabaseFactory(SERVER[kind] or "sqlite", tmp_path)
        self.main = self.factory()
        self.calls = 0
        self.urls: dict[str, str] = {}
        migrations = tmp_path / "migrations"
        shutil.copytree(template, migrations)
        self.versions = migrations / "versions"
        self.app, self.db, self.migrate = create_app(
            self.main.url, migrations, binds=binds, models=models,
            **({"tenants": self._tenants} if tenants else {}),
        )
        self.app.instance_path = str(tmp_path / "instance")
        self.app.config["TENANTS"] = []

    def _tenants(self) -> list[Tenant]:
        self.calls += 1
        return [self.tenant(name) for name in current_app.config["TENANTS"]]

    # -- tenants --------------------------------------------------------------------

    def add(self, *names: str, declare: bool = True) -> None:
        """Make the tenants' databases (schemas are made by their first upgrade)."""
        for name in names:
            if self.kind == "sqlite":
                self.urls[name] = f"sqlite:///{name}.db"  # relative: in the instance folder
            elif self.kind != "pg-schema":
                self.urls[name] = self.factory().url
            if declare:
                self.app.config["TENANTS"].append(name)

    def tenant(self, name: str) -> Tenant:
        if self.kind == "pg-schema":
            return Tenant(name, schema=f"tenant_{name}")
        return Tenant(name, url=self.urls[name])

    def view(self, name: str) -> TenantView:
        if self.kind == "pg-schema":
            return TenantView(self.main.url, f"tenant_{name}")
        if self.kind == "sqlite":
            return TenantView(f"sqlite:///{Path(self.app.instance_path) / (name + '.db')}")
        return TenantView(self.urls[name])

    def main_tables(self) -> set[str]:
        """The tables of the application's own database (its default schema), journal included."""
        return self.main.table_names(journal=True)

    # -- history and commands ----------------------------------------------------------

    def history(self, failing: bool = False) -> None:
        """a1 (create user), b2 (add email), and with ``failing`` c3 (extra, then raise)."""
        write_revision(self.versions, "a1", None, CREATE_USER, "op.drop_table('user')",
                       message="create user")
        write_revision(self.versions, "b2", "a1", ADD_EMAIL, "op.drop_column('user', 'email')",
                       message="add email")
        if failing:
            write_revision(self.versions, "c3", "b2", FAILING, "op.drop_table('extra')",
                           message="add extra", preamble="from flask import current_app")

    def cli(self, *args: str) -> ClickResult:
        """``flask db <args>`` in process; never a traceback, never an unexpected exception."""
        result = self.app.test_cli_runner().invoke(args=["db", *args])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert "Traceback" not in result.output + result.stderr
        return result

    def api(self, fn: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
        """Call an operation in the app's context."""
        with self.app.app_context():
            return fn(*args, **kwargs)

    def close(self) -> None:
        with self.app.app_context():
            for engine in self.db.engines.values():
                engine.dispose()
        self.factory.drop_all()


@pytest.fixture
def make_project(
    kind: str, tmp_path: Path, templates: dict[str, Path]
) -> t.Iterator[t.Callable[..., Project]]:
    made: list[Project] = []

    def make(template: str = "flask", **kwargs: t.Any) -> Project:
        project = Project(kind, tmp_path / f"p{len(made)}", templates[template], **kwargs)
        made.append(project)
        return project

    yield make
    for project in made:
        project.close()


@pytest.fixture
def project(make_project: t.Callable[..., Project]) -> Project:
    """An app with the standard history (a1, b2) and three declared tenants t1, t2, t3."""
    found = make_project()
    found.history()
    found.add("t1", "t2", "t3")
    return found


LINE = re.compile(r"^\[\s*(\d+)/(\d+)\] (\S+): (.*)$")


def tenant_lines(stdout: str) -> dict[str, str]:
    """The progress lines (``[i/n] name: ...``) by tenant."""
    found = {}
    for line in stdout.splitlines():
        match = LINE.match(line)
        if match:
            found[match.group(3)] = match.group(4)
    return found


def table_rows(stdout: str, header: list[str]) -> dict[str, list[str]]:
    """The summary table's rows by tenant, split on runs of two spaces or more."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == header)
    rows = {}
    for line in lines[start + 1:]:
        if not line.strip() or re.match(r"^\d+ tenants?: ", line):
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells[1:]
    return rows


def error_lines(stderr: str) -> list[str]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert all(line.startswith("Error: ") for line in lines), stderr
    return lines


# -- 1. every tenant to head --------------------------------------------------------------


def assert_moved(result: ClickResult, before: str, after: str, steps: int, jobs: int) -> None:
    """Exit 0, a ``migrated`` line per tenant, the summary table in the tenants' order, the counts."""
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = tenant_lines(result.stdout)
    assert set(lines) == {"t1", "t2", "t3"}
    plural = "s" if steps != 1 else ""
    for line in lines.values():
        assert re.match(rf"^migrated {before} -> {after} \({steps} step{plural}, \d+\.\d\d s\)$", line), line
    rows = table_rows(result.stdout, ["tenant", "from", "to", "duration", "result"])
    assert list(rows) == ["t1", "t2", "t3"]  # in the tenants' order, whatever finished first
    for cells in rows.values():
        assert cells[0:2] == [before, after] and cells[3] == "migrated"
        assert re.match(r"^\d+\.\d\d s$", cells[2])
    workers = "1 worker" if jobs == 1 else f"{jobs} workers"
    assert re.search(rf"^3 tenants: 3 migrated \(\d+\.\d\d s, {workers}\)$", result.stdout, re.M), result.stdout


def test_all_tenants_upgrade_to_head_through_the_cli(project: Project) -> None:
    """upgrade --all-tenants with -j 1 and -j 2 migrates each tenant, with a line per tenant, a
    table and counts; the main database is untouched by tenant runs, and the tenants by a run of
    the main database."""
    assert_moved(project.cli("upgrade", "a1", "--all-tenants", "-j", "1"), "<base>", "a1", 1, 1)
    for name in ("t1", "t2", "t3"):
        view = project.view(name)
        assert view.versions() == {"a1"}
        assert view.tables() == {"alembic_version", "user"}
        assert "email" not in view.columns("user")
        assert [row[:2] for row in view.journal()] == [("run", "done"), ("step", "applied")]
    assert project.main_tables() == set()

    # the main database's own upgrade leaves the tenants alone
    result = project.cli("upgrade")
    assert result.exit_code == 0, result.output
    assert project.main.versions() == {"b2"}
    assert "email" in project.main.column_names("user")
    for name in ("t1", "t2", "t3"):
        assert project.view(name).versions() == {"a1"}
        assert "email" not in project.view(name).columns("user")

    main_before = project.main_tables()
    main_journal = project.main.scalar(f"SELECT COUNT(*) FROM {JOURNAL}")
    assert_moved(project.cli("upgrade", "--all-tenants", "--jobs", "2"), "a1", "b2", 1, 2)
    for name in ("t1", "t2", "t3"):
        view = project.view(name)
        assert view.versions() == {"b2"}
        assert "email" in view.columns("user")
    for jobs in ("1", "2"):
        result = project.cli("upgrade", "--all-tenants", "-j", jobs)
        assert result.exit_code == 0, result.output
        lines = tenant_lines(result.stdout)
        assert set(lines) == {"t1", "t2", "t3"}
        assert all(re.match(r"^up to date at b2 \(\d+\.\d\d s\)$", line) for line in lines.values()), lines
        assert re.search(r"^3 tenants: 3 up to date \(", result.stdout, re.M)
    assert_moved(project.cli("downgrade", "base", "--all-tenants", "-j", "2"), "b2", "<base>", 2, 2)
    assert_moved(project.cli("upgrade", "--all-tenants", "-j", "1"), "<base>", "b2", 2, 1)
    # the main database saw none of the tenants' runs
    assert project.main_tables() == main_before
    assert project.main.versions() == {"b2"}
    assert project.main.scalar(f"SELECT COUNT(*) FROM {JOURNAL}") == main_journal


def test_all_tenants_upgrade_through_the_api(project: Project) -> None:
    """operations.upgrade(tenants="all", jobs=2) returns a TenantResult per tenant, in their order,
    and calls on_tenant after each; a list of names runs only those."""
    progress: list[t.Any] = []
    results = project.api(operations.upgrade, tenants="all", jobs=2, on_tenant=progress.append)
    assert [r.tenant for r in results] == ["t1", "t2", "t3"]
    for result in results:
        assert isinstance(result, TenantResult)
        assert result.outcome == "migrated" and result.ok
        assert result.before == () and result.after == ("b2",)
        assert [s.revision for s in result.steps] == ["a1", "b2"]
        assert all(s.direction == "upgrade" for s in result.steps)
        assert result.duration > 0 and result.error is None and not result.waited
    assert sorted(p.done for p in progress) == [1, 2, 3]
    assert {p.total for p in progress} == {3}
    assert {p.last.tenant for p in progress} == {"t1", "t2", "t3"}
    assert all(p.failed == 0 for p in progress)
    for name in ("t1", "t2", "t3"):
        assert project.view(name).versions() == {"b2"}
    assert project.main_tables() == set()

    # by name, one process: only those tenants
    results = project.api(operations.downgrade, revision="a1", tenants=["t3", "t1"], jobs=1)
    assert [(r.tenant, r.outcome, r.before, r.after) for r in results] == [
        ("t3", "migrated", ("b2",), ("a1",)),
        ("t1", "migrated", ("b2",), ("a1",)),
    ]
    assert [project.view(n).versions() for n in ("t1", "t2", "t3")] == [{"a1"}, {"b2"}, {"a1"}]
    results = project.api(operations.upgrade, tenants="all", jobs=1)
    assert [(r.tenant, r.outcome) for r in results] == [
        ("t1", "migrated"), ("t2", "up to date"), ("t3", "migrated"),
    ]
    assert project.main_tables() == set()


# -- 2. one tenant fails --------------------------------------------------------------------


def test_one_failing_tenant_does_not_stop_the_others(make_project: t.Callable[..., Project], kind: str) -> None:
    """A revision that raises for t2 only: t1 and t3 reach head, t2 is rolled back where DDL is
    transactional (MariaDB: the journal keeps the half-applied revision, and the next run refuses),
    exit 1, and the one Error line names the tenant."""
    project = make_project()
    project.history(failing=True)
    project.add("t1", "t2", "t3")
    assert project.cli("upgrade", "a1", "--all-tenants").exit_code == 0
    project.app.config["FAIL_TENANTS"] = ["t2"]

    result = project.cli("upgrade", "--all-tenants", "-j", "2")
    assert result.exit_code == 1, result.output
    assert error_lines(result.stderr) == ["Error: Tenant t2: RuntimeError: boom for t2"]
    lines = tenant_lines(result.stdout)
    assert lines["t2"] == "failed: RuntimeError: boom for t2"
    assert lines["t1"].startswith("migrated a1 -> c3 (2 steps, ")
    assert lines["t3"].startswith("migrated a1 -> c3 (2 steps, ")
    rows = table_rows(result.stdout, ["tenant", "from", "to", "duration", "result"])
    assert rows["t1"][-1] == rows["t3"][-1] == "migrated"
    assert rows["t2"][-1] == "failed"
    assert re.search(r"^3 tenants: (2 migrated, 1 failed|1 failed, 2 migrated) \(", result.stdout, re.M)
    for name in ("t1", "t3"):
        assert project.view(name).versions() == {"c3"}
        assert project.view(name).tables() == {"alembic_version", "user", "extra"}

    bad = project.view("t2")
    if kind in TRANSACTIONAL:
        # the whole run rolled back: version and tables as before
        assert rows["t2"][:2] == ["a1", "a1"]
        assert bad.versions() == {"a1"}
        assert bad.tables() == {"alembic_version", "user"}
        assert "email" not in bad.columns("user")
        assert bad.journal()[-1] == ("run", "failed", "head")
        # the cause gone, the next run migrates it
        project.app.config["FAIL_TENANTS"] = []
        again = project.cli("upgrade", "--all-tenants")
        assert again.exit_code == 0, again.output
        assert tenant_lines(again.stdout)["t2"].startswith("migrated a1 -> c3 (2 steps, ")
        assert bad.versions() == {"c3"}
    else:
        # MariaDB: b2 committed, c3's CREATE TABLE too; its step stays "running" in the journal
        assert rows["t2"][:2] == ["a1", "b2"]
        assert bad.versions() == {"b2"}
        assert bad.tables() == {"alembic_version", "user", "extra"}
        assert ("step", "running", "c3") in bad.journal()
        # the next run refuses to touch the half-applied revision, naming the tenant
        project.app.config["FAIL_TENANTS"] = []
        again = project.cli("upgrade", "--all-tenants")
        assert again.exit_code == 1, again.output
        (line,) = error_lines(again.stderr)
        assert line.startswith("Error: Tenant t2: Revision c3 (upgrade) was interrupted on ")
        assert "half-applied" in line
        assert tenant_lines(again.stdout)["t1"].startswith("up to date at c3")
        assert bad.versions() == {"b2"}
        status = json.loads(project.cli("status", "--all-tenants", "--json").stdout)
        (entry,) = status["not_ok"]
        assert entry["tenant"] == "t2" and entry["state"] == "interrupted"
        assert entry["problems"][0]["code"] == "interrupted-step"


def test_failed_tenant_result_through_the_api(make_project: t.Callable[..., Project], kind: str) -> None:
    """The failing tenant's TenantResult: outcome failed, its error naming it, and before/after/steps
    saying what stayed (nothing where the run was one transaction)."""
    project = make_project()
    project.history(failing=True)
    project.add("t1", "t2")
    project.app.config["FAIL_TENANTS"] = ["t1"]
    progress: list[t.Any] = []
    failed, fine = project.api(operations.upgrade, tenants="all", jobs=1, on_tenant=progress.append)
    assert fine.outcome == "migrated" and fine.after == ("c3",)
    assert failed.outcome == "failed" and not failed.ok
    assert failed.error == "Tenant t1: RuntimeError: boom for t1"
    assert failed.before == ()
    if kind in TRANSACTIONAL:
        assert failed.after == () and failed.steps == ()
        assert project.view("t1").tables() == set()
    else:
        assert failed.after == ("b2",)
        assert [s.revision for s in failed.steps] == ["a1", "b2"]
    assert [(p.done, p.failed) for p in progress] == [(1, 1), (2, 1)]


def create_table(view: TenantView, name: str) -> None:
    """A table made by hand in the tenant's database (or schema): one column, ``legacy``."""
    engine = sa.create_engine(view.url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            if view.schema:
                conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {view.schema}"))
            sa.Table(name, sa.MetaData(), sa.Column("legacy", sa.Integer), schema=view.schema).create(conn)
    finally:
        engine.dispose()


def test_tenants_with_conflicting_tables_fail_alone(make_project: t.Callable[..., Project], kind: str) -> None:
    """t2 has a table that c3 creates (the database fails the run at c3), t3 a 'user' table but no
    version table (refused before anything runs): both fail, each named in its Error line; t1 is
    migrated; t2's run is rolled back where DDL is transactional; on MariaDB b2 stays and c3 is
    left 'running' in the journal, so the next run refuses until a stamp; the hand-made tables stay."""
    project = make_project()
    project.history(failing=True)
    project.add("t1", "t2", "t3")
    Path(project.app.instance_path).mkdir(exist_ok=True)
    assert project.cli("upgrade", "a1", "--tenant", "t1", "--tenant", "t2").exit_code == 0
    create_table(project.view("t2"), "extra")
    create_table(project.view("t3"), "user")

    result = project.cli("upgrade", "--all-tenants")
    assert result.exit_code == 1, result.output
    t2_error, t3_error = error_lines(result.stderr)
    assert t2_error.startswith("Error: Tenant t2: ") and "extra" in t2_error
    assert t3_error.startswith("Error: Tenant t3: ")
    assert "already has tables (user) but no alembic_version table" in t3_error
    lines = tenant_lines(result.stdout)
    assert lines["t1"].startswith("migrated a1 -> c3 (2 steps, ")
    assert lines["t2"].startswith("failed: ") and "Tenant t2" not in lines["t2"]
    assert project.view("t1").versions() == {"c3"}
    t2 = project.view("t2")
    assert t2.columns("extra") == {"legacy"}
    if kind in TRANSACTIONAL:
        assert t2.versions() == {"a1"}
        assert "email" not in t2.columns("user")
    else:
        assert t2.versions() == {"b2"}
        assert "email" in t2.columns("user")
        # MariaDB commits before a DDL statement, failing or not: c3's row says "running"
        assert [row for row in t2.journal() if row[1] == "running"] == [("step", "running", "c3")]
    assert project.view("t3").tables(journal=True) == {"user"}
    assert project.view("t3").columns("user") == {"legacy"}
    assert project.main_tables() == set()

    # the conflict removed by hand, the next run finishes t2
    engine = sa.create_engine(t2.url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            sa.Table("extra", sa.MetaData(), schema=t2.schema).drop(conn)
    finally:
        engine.dispose()
    if kind not in TRANSACTIONAL:
        # refused until a person says where the schema stands
        refused = project.cli("upgrade", "--tenant", "t2")
        assert refused.exit_code == 1
        (line,) = error_lines(refused.stderr)
        assert line.startswith("Error: Tenant t2: Revision c3 (upgrade) was interrupted on ")
        assert t2.versions() == {"b2"}
        assert project.cli("stamp", "b2", "--tenant", "t2").exit_code == 0
    result = project.cli("upgrade", "--tenant", "t2")
    assert result.exit_code == 0, result.output
    assert t2.versions() == {"c3"}
    assert t2.tables() == {"alembic_version", "user", "extra"}


# -- 3. --fail-fast -----------------------------------------------------------------------


def test_fail_fast_starts_no_tenant_after_a_failure(make_project: t.Callable[..., Project]) -> None:
    """--fail-fast -j 1: the tenants after the failing one are 'not started' and untouched."""
    project = make_project()
    project.history(failing=True)
    project.add("t1", "t2", "t3", "t4")
    project.app.config["FAIL_TENANTS"] = ["t2"]

    result = project.cli("upgrade", "--all-tenants", "-j", "1", "--fail-fast")
    assert result.exit_code == 1, result.output
    assert error_lines(result.stderr) == [
        "Error: Tenant t2: RuntimeError: boom for t2",
        "Error: 2 tenants not started (--fail-fast).",
    ]
    assert set(tenant_lines(result.stdout)) == {"t1", "t2"}
    rows = table_rows(result.stdout, ["tenant", "from", "to", "duration", "result"])
    assert rows["t1"][-1] == "migrated" and rows["t2"][-1] == "failed"
    assert rows["t3"] == rows["t4"] == ["?", "?", "-", "not started"]
    assert re.search(r"^4 tenants: 1 migrated, 1 failed, 2 not started \(", result.stdout, re.M)
    assert project.view("t1").versions() == {"c3"}
    assert project.view("t3").untouched() and project.view("t4").untouched()
    if project.kind in ("sqlite", "pg-schema"):
        assert not project.view("t3").exists()  # not even its file or schema

    results = project.api(operations.upgrade, tenants="all", jobs=1, fail_fast=True)
    assert [r.outcome for r in results] == ["up to date", "failed", "not started", "not started"]
    assert results[2] == TenantResult("t3", "not started")
    assert project.view("t3").untouched() and project.view("t4").untouched()


# -- 4. a tenant added between runs ------------------------------------------------------


def test_a_new_tenant_is_the_only_one_migrated_by_the_next_run(project: Project) -> None:
    """The tenants function is called at each run: a tenant added since the last run is migrated,
    the others are 'up to date'."""
    assert project.cli("upgrade", "--all-tenants").exit_code == 0
    calls = project.calls
    project.add("t4")
    assert project.view("t4").untouched()

    result = project.cli("upgrade", "--all-tenants", "-j", "2")
    assert result.exit_code == 0, result.output
    assert project.calls == calls + 1
    lines = tenant_lines(result.stdout)
    assert lines["t4"].startswith("migrated <base> -> b2 (2 steps, ")
    for name in ("t1", "t2", "t3"):
        assert lines[name].startswith("up to date at b2 (")
    rows = table_rows(result.stdout, ["tenant", "from", "to", "duration", "result"])
    assert rows["t4"][:2] == ["<base>", "b2"] and rows["t4"][-1] == "migrated"
    assert re.search(r"^4 tenants: 3 up to date, 1 migrated \(", result.stdout, re.M)
    assert project.view("t4").versions() == {"b2"}
    for name in ("t1", "t2", "t3"):
        # one run each, the first: nothing written by the second
        assert [row[0] for row in project.view(name).journal()] == ["run", "step", "step"]


# -- 5. status and current ------------------------------------------------------------------


def test_status_and_current_with_tenants_at_different_revisions(project: Project) -> None:
    """status --all-tenants counts tenants per revision and lists those behind; --json has the same;
    --check exits 1 until every tenant is at head; current --all-tenants shows each revision."""
    project.add("t4")
    assert project.cli("upgrade", "a1", "--all-tenants").exit_code == 0
    # t4 was migrated by that run too; take it back to base to have three revisions
    assert project.cli("downgrade", "base", "--tenant", "t4").exit_code == 0
    assert project.cli("upgrade", "--tenant", "t1", "--tenant", "t3").exit_code == 0
    main_before = project.main_tables()

    result = project.cli("status", "--all-tenants")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Tenants: 4    Head: b2"
    assert any(re.match(r"^  b2\s+2  \(head\) add email$", line) for line in lines), result.stdout
    assert any(re.match(r"^  a1\s+1  create user$", line) for line in lines), result.stdout
    assert any(re.match(r"^  <base>\s+1$", line) for line in lines), result.stdout
    assert "States: 2 ok, 2 behind" in lines
    behind = lines.index("Behind (2):")
    assert lines[behind + 1:behind + 3] == ["  t2: at a1, 1 pending", "  t4: at <base>, 2 pending"]
    assert "Failed" not in result.stdout and "Interrupted" not in result.stdout

    data = json.loads(project.cli("status", "--all-tenants", "--json").stdout)
    assert data["heads"] == ["b2"]
    assert data["tenants"] == 4
    assert data["ok"] is False
    assert data["counts"] == {"ok": 2, "behind": 2}
    # most tenants first
    assert data["revisions"][0] == {"revisions": ["b2"], "message": "add email", "head": True, "tenants": 2}
    assert sorted(data["revisions"][1:], key=lambda r: r["revisions"]) == [
        {"revisions": [], "message": None, "head": False, "tenants": 1},
        {"revisions": ["a1"], "message": "create user", "head": False, "tenants": 1},
    ]
    assert [(e["tenant"], e["state"], e["current"], e["pending"]) for e in data["details"]] == [
        ("t1", "ok", ["b2"], 0), ("t2", "behind", ["a1"], 1),
        ("t3", "ok", ["b2"], 0), ("t4", "behind", [], 2),
    ]
    assert [e["tenant"] for e in data["not_ok"]] == ["t2", "t4"]

    check = project.cli("status", "--all-tenants", "--check")
    assert check.exit_code == 1
    assert check.stdout == result.stdout.replace("\r", "")  # the same report

    result = project.cli("current", "--all-tenants")
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout, ["tenant", "revision", "duration", "result"])
    assert {name: (cells[0], cells[-1]) for name, cells in rows.items()} == {
        "t1": ("b2", "ok"), "t2": ("a1", "ok"), "t3": ("b2", "ok"), "t4": ("<base>", "ok"),
    }
    assert re.search(r"^4 tenants: 4 ok \(", result.stdout, re.M)
    assert not tenant_lines(result.stdout)  # no progress line per tenant: the table says it
    currents = project.api(operations.current, tenants="all")
    assert [(r.tenant, r.outcome, r.after) for r in currents] == [
        ("t1", "ok", ("b2",)), ("t2", "ok", ("a1",)), ("t3", "ok", ("b2",)), ("t4", "ok", ()),
    ]
    statuses = project.api(operations.status, tenants=["t2"])
    assert statuses[0].status.current == ("a1",)
    assert [p.revision for p in statuses[0].status.pending] == ["b2"]

    # reading changed nothing anywhere
    assert project.main_tables() == main_before
    assert [project.view(n).versions() for n in ("t1", "t2", "t3", "t4")] == [
        {"b2"}, {"a1"}, {"b2"}, set(),
    ]

    assert project.cli("upgrade", "--all-tenants").exit_code == 0
    ok = project.cli("status", "--all-tenants", "--check")
    assert ok.exit_code == 0, ok.output
    assert "States: 4 ok" in ok.stdout.splitlines()
    assert json.loads(project.cli("status", "--all-tenants", "--json").stdout)["ok"] is True


@pytest.mark.parametrize("kind", TRANSACTIONAL, indirect=True)
def test_status_lists_a_tenant_whose_last_run_failed(make_project: t.Callable[..., Project]) -> None:
    """After a failed upgrade of t2 (rolled back), status --all-tenants lists t2 as failed."""
    project = make_project()
    project.history(failing=True)
    project.add("t1", "t2")
    project.app.config["FAIL_TENANTS"] = ["t2"]
    assert project.cli("upgrade", "--all-tenants").exit_code == 1
    assert project.view("t2").journal()[-1] == ("run", "failed", "head")
    data = json.loads(project.cli("status", "--all-tenants", "--json").stdout)
    assert [(e["tenant"], e["state"]) for e in data["not_ok"]] == [("t2", "failed")]
    assert "Failed (1):" in project.cli("status", "--all-tenants").stdout


# -- 6. downgrade and stamp for named tenants ------------------------------------------------


def test_downgrade_and_stamp_touch_only_the_named_tenants(project: Project) -> None:
    """downgrade and stamp with --tenant NAME (repeated) change those tenants, and no other."""
    project.add("t4")
    assert project.cli("upgrade", "--all-tenants").exit_code == 0
    calls = project.calls

    result = project.cli("downgrade", "--tenant", "t1", "--tenant", "t3")
    assert result.exit_code == 0, result.output
    assert project.calls == calls + 1
    lines = tenant_lines(result.stdout)
    assert set(lines) == {"t1", "t3"}
    assert all(line.startswith("migrated b2 -> a1 (1 step, ") for line in lines.values())
    assert list(table_rows(result.stdout, ["tenant", "from", "to", "duration", "result"])) == ["t1", "t3"]
    assert re.search(r"^2 tenants: 2 migrated \(", result.stdout, re.M)
    for name, version in (("t1", "a1"), ("t2", "b2"), ("t3", "a1"), ("t4", "b2")):
        assert project.view(name).versions() == {version}
        assert ("email" in project.view(name).columns("user")) == (version == "b2")

    result = project.cli("stamp", "base", "--tenant", "t2", "--tenant", "t1")
    assert result.exit_code == 0, result.output
    lines = tenant_lines(result.stdout)
    assert lines["t2"].startswith("migrated b2 -> <base> (1 step, ")
    assert lines["t1"].startswith("migrated a1 -> <base> (1 step, ")
    for name, version in (("t1", set()), ("t2", set()), ("t3", {"a1"}), ("t4", {"b2"})):
        assert project.view(name).versions() == version
    # stamp runs no migration: the tables stay
    assert "email" in project.view("t2").columns("user")
    assert project.view("t1").tables() == {"alembic_version", "user"}

    result = project.cli("stamp", "b2", "--tenant", "t2")
    assert result.exit_code == 0, result.output
    assert [project.view(n).versions() for n in ("t1", "t2", "t3", "t4")] == [
        set(), {"b2"}, {"a1"}, {"b2"},
    ]
    assert project.main_tables() == set()

    results = project.api(operations.stamp, revision="a1", tenants=["t4"])
    assert [(r.tenant, r.outcome, r.before, r.after) for r in results] == [
        ("t4", "migrated", ("b2",), ("a1",)),
    ]
    assert [project.view(n).versions() for n in ("t1", "t2", "t3", "t4")] == [
        set(), {"b2"}, {"a1"}, {"a1"},
    ]


# -- 7. the sign-up path ---------------------------------------------------------------------


def test_signup_migrates_a_tenant_object_without_calling_the_tenants_function(project: Project) -> None:
    """operations.upgrade(tenants=[Tenant(...)]) migrates that tenant alone, and does not ask the
    app for its tenants (the new one is not declared yet)."""
    project.add("new", declare=False)
    new = project.tenant("new")
    assert project.calls == 0

    results = project.api(operations.upgrade, tenants=[new])
    assert project.calls == 0
    (result,) = results
    assert (result.tenant, result.outcome, result.before, result.after) == ("new", "migrated", (), ("b2",))
    assert project.view("new").versions() == {"b2"}
    for name in ("t1", "t2", "t3"):
        assert project.view(name).untouched()
    assert project.main_tables() == set()

    # a name among Tenant objects does ask for the declared tenants
    results = project.api(operations.upgrade, tenants=[new, "t2"], jobs=1)
    assert project.calls == 1
    assert [(r.tenant, r.outcome) for r in results] == [("new", "up to date"), ("t2", "migrated")]
    assert project.view("t1").untouched()


# -- 8. bad input ----------------------------------------------------------------------------


def assert_refused(result: ClickResult, message: str) -> None:
    """One Error line starting with ``message``, exit 1, nothing on standard output."""
    assert result.exit_code == 1, result.output
    (line,) = error_lines(result.stderr)
    assert line.startswith("Error: " + message), line
    assert result.stdout == ""


@pytest.mark.parametrize("kind", ["sqlite"], indirect=True)
def test_bad_tenant_options_are_refused_before_anything_runs(project: Project) -> None:
    """Unknown --tenant name, --all-tenants with --tenant, -j/--fail-fast without tenants, --sql with
    tenants: one Error line, exit 1, no traceback, no database touched."""
    assert_refused(
        project.cli("upgrade", "--tenant", "t1", "--tenant", "nope"),
        "No tenant named 'nope'. The application's tenants: t1, t2, t3.",
    )
    assert_refused(
        project.cli("downgrade", "--tenant", "nope"), "No tenant named 'nope'.",
    )
    assert_refused(
        project.cli("upgrade", "--all-tenants", "--tenant", "t1"),
        "Give --all-tenants or --tenant NAME, not both.",
    )
    for args in (["upgrade", "-j", "2"], ["upgrade", "--fail-fast"], ["stamp", "--jobs", "2", "head"],
                 ["status", "-j", "2"]):
        assert_refused(project.cli(*args), "-j/--jobs and --fail-fast go with --all-tenants or --tenant NAME.")
    for args in (["upgrade", "--sql", "--all-tenants"], ["downgrade", "--sql", "b2:a1", "--tenant", "t1"],
                 ["stamp", "--sql", "--tenant", "t2", "head"]):
        assert_refused(project.cli(*args), "--sql cannot be combined with tenants")
    bad_jobs = project.cli("upgrade", "--all-tenants", "-j", "0")
    assert bad_jobs.exit_code == 2 and "Traceback" not in bad_jobs.output  # click's usage error

    for name in ("t1", "t2", "t3"):
        assert project.view(name).untouched()
        assert not project.view(name).exists()
    assert project.main_tables() == set()
    assert project.calls == 2  # only the two runs naming unknown tenants looked them up

    with project.app.app_context():
        with pytest.raises(MigrateError, match="No tenant named 'nope'"):
            operations.upgrade(tenants=["nope"])
        with pytest.raises(MigrateError, match="--sql cannot be combined with tenants"):
            operations.upgrade(sql=True, tenants="all")
        with pytest.raises(MigrateError, match="No tenant given"):
            operations.upgrade(tenants=[])
        with pytest.raises(MigrateError, match="tenants='t1': give 'all'"):
            operations.upgrade(tenants="t1")


@pytest.mark.parametrize("kind", ["sqlite"], indirect=True)
def test_no_tenants_declared(make_project: t.Callable[..., Project]) -> None:
    """An app without Migrate(tenants=...): --all-tenants and --tenant are refused in one line."""
    project = make_project(tenants=False)
    project.history()
    for args in (["upgrade", "--all-tenants"], ["status", "--tenant", "t1"], ["current", "--all-tenants"]):
        assert_refused(project.cli(*args), "This application declares no tenants.")
    assert project.main_tables() == set()


@pytest.mark.parametrize("kind", ["sqlite"], indirect=True)
def test_tenants_function_returning_bad_tenants(project: Project) -> None:
    """A tenants function that fails or returns duplicates: one Error line naming the cause."""
    project.app.config["TENANTS"] = ["t1", "t1"]
    assert_refused(
        project.cli("upgrade", "--all-tenants"),
        "The application's tenants function returned two tenants named 't1'.",
    )
    project.app.config["TENANTS"] = None  # the function raises TypeError iterating it
    assert_refused(
        project.cli("upgrade", "--all-tenants"),
        "The application's tenants function failed: TypeError: ",
    )
    assert not project.view("t1").exists()
    assert project.main_tables() == set()


@pytest.mark.parametrize("kind", ["sqlite"], indirect=True)
def test_schema_tenant_on_sqlite_fails_naming_the_tenant(project: Project) -> None:
    """A schema tenant when the app's database is SQLite: that tenant fails (naming it, and why),
    the url tenants are migrated, the app's database is untouched."""
    tenants = [project.tenant("t1"), Tenant("s1", schema="s1"), project.tenant("t2")]
    project.migrate.tenants = lambda: tenants

    result = project.cli("upgrade", "--all-tenants")
    assert result.exit_code == 1, result.output
    (line,) = error_lines(result.stderr)
    assert line.startswith("Error: Tenant s1: schema tenants need PostgreSQL, and env.py connects to sqlite.")
    lines = tenant_lines(result.stdout)
    assert lines["s1"].startswith("failed: schema tenants need PostgreSQL")
    assert lines["t1"].startswith("migrated <base> -> b2")
    assert project.view("t1").versions() == project.view("t2").versions() == {"b2"}
    assert project.main_tables() == set()

    (found,) = project.api(operations.current, tenants=[tenants[1]])
    assert found.outcome == "failed" and found.error.startswith("Tenant s1: schema tenants need PostgreSQL")


MULTIDB_REVISION = f'''"""create user, and group_other in the bind

Revision ID: a1
Revises:
"""
from alembic import op
import sqlalchemy as sa

revision = "a1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(engine_name):
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name):
    globals()["downgrade_%s" % engine_name]()


def upgrade_():
{textwrap.indent(textwrap.dedent(CREATE_USER).strip(), "    ")}


def downgrade_():
    op.drop_table("user")


def upgrade_other():
    op.create_table("group_other", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("name", sa.String(64)))


def downgrade_other():
    op.drop_table("group_other")
'''


@pytest.mark.parametrize("kind", ["sqlite", "mariadb"], indirect=True)
def test_multidb_env_with_tenants_is_refused_naming_the_tenant(
    make_project: t.Callable[..., Project], tmp_path: Path
) -> None:
    """A flask-multidb env.py (the app has binds) for tenants: each tenant fails naming itself,
    nothing is written to the tenants, the app's database or its bind."""
    (tmp_path / "other").mkdir()
    other = DatabaseFactory("sqlite", tmp_path / "other")()
    project = make_project("flask-multidb", binds={"other": other.url}, models="user")
    (project.versions / "a1_multidb.py").write_text(MULTIDB_REVISION)
    project.add("t1", "t2")

    result = project.cli("upgrade", "--all-tenants", "-j", "1")
    assert result.exit_code == 1, result.output
    assert error_lines(result.stderr) == [
        f"Error: Tenant {name}: env.py configured more than one database. A tenant is one database "
        "(or schema); give tenants a single-database history (Migrate(..., tenant_directory=...), "
        "made by 'flask db init --tenants')."
        for name in ("t1", "t2")
    ]
    for name in ("t1", "t2"):
        # refused at the first configure() (its upgrade_token names a bind), before anything
        # ran: no table, no journal
        assert project.view(name).tables(journal=True) == set()
    assert project.main_tables() == set()
    assert other.table_names(journal=True) == set()


PASSWORD = "Xq9-tenant-S3cret"


def test_tenant_url_with_a_password_that_fails_to_connect(project: Project, kind: str) -> None:
    """A tenant whose URL has a password and cannot connect fails alone; the password appears in
    no output, error or result."""
    if kind == "mariadb":
        # root has no password: any password is refused
        url = sa.make_url(project.urls["t2"]).set(username="root", password=PASSWORD)
    else:
        # nothing listens on port 1
        url = sa.make_url(SERVER_URLS["postgresql"]).set(
            username="fm_nobody", password=PASSWORD, port=1, database="fm_nowhere"
        )
    secret = Tenant("locked", url=url.render_as_string(hide_password=False))
    declared = [project.tenant("t1"), secret, project.tenant("t3")]
    project.migrate.tenants = lambda: declared
    assert PASSWORD not in repr(secret)

    for args in (["upgrade", "--all-tenants"], ["current", "--all-tenants"],
                 ["status", "--all-tenants"], ["status", "--all-tenants", "--json"],
                 ["downgrade", "--tenant", "locked"], ["check", "--all-tenants"]):
        result = project.cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert PASSWORD not in result.output + result.stderr, args
        assert any(line.startswith("Error: Tenant locked: ") for line in error_lines(result.stderr))
    # status reports the others and lists the tenant as unreadable (and exits 1, as
    # plain status does for a database it cannot read)
    status = project.cli("status", "--all-tenants").stdout.splitlines()
    assert "States: 2 ok, 1 unreadable" in status
    unreadable = status.index("Unreadable (1):")
    assert status[unreadable + 1].startswith("  locked: Tenant locked: Cannot use the database ")
    assert project.cli("status", "--all-tenants", "--check").exit_code == 1
    assert project.view("t1").versions() == project.view("t3").versions() == {"b2"}

    for url_form in (secret.url, url):  # a string and a URL object
        tenant = Tenant("locked", url=url_form)
        (result,) = project.api(operations.upgrade, tenants=[tenant])
        assert result.outcome == "failed"
        assert result.error.startswith("Tenant locked: ")
        assert PASSWORD not in repr(result)


@pytest.mark.parametrize("kind", ["postgresql"], indirect=True)
def test_a_password_in_a_revisions_error_is_scrubbed(make_project: t.Callable[..., Project]) -> None:
    """A revision failing with an error that shows the tenant's URL (as some drivers do):
    the password is hidden in the Error line and in the result, for a str and a URL object."""
    project = make_project()
    write_revision(project.versions, "a1", None,
                   "raise RuntimeError('cannot use ' + op.get_bind().engine.url"
                   ".render_as_string(hide_password=False))")
    url = sa.make_url(project.factory().url).set(password=PASSWORD)  # trusted: any password works
    for form in (url.render_as_string(hide_password=False), url):
        tenant = Tenant("pw", url=form)
        project.migrate.tenants = lambda tenant=tenant: [tenant]
        result = project.cli("upgrade", "--all-tenants")
        assert result.exit_code == 1
        (line,) = error_lines(result.stderr)
        assert line.startswith("Error: Tenant pw: RuntimeError: cannot use postgresql+psycopg://")
        assert PASSWORD not in result.output + result.stderr, type(form)
        (found,) = project.api(operations.upgrade, tenants=[tenant])
        assert PASSWORD not in str(found.error), type(form)


# -- 9. schema tenants ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pg-schema"], indirect=True)
def test_schema_tenants_raw_sql_version_table_and_search_path(
    make_project: t.Callable[..., Project]
) -> None:
    """Raw SQL without a schema lands in the tenant's schema; the version table and journal live
    there; the app's pooled connection has its search_path back after the run."""
    project = make_project()
    project.history()
    write_revision(
        project.versions, "r3", "b2",
        """
        op.execute("CREATE TABLE rawtab (id INTEGER PRIMARY KEY, label VARCHAR(20))")
        op.execute("INSERT INTO rawtab (id, label) VALUES (1, 'mine')")
        current_app.config.setdefault('PIDS', []).append(
            op.get_bind().execute(sa.text('SELECT pg_backend_pid()')).scalar())
        """,
        'op.execute("DROP TABLE rawtab")',
        preamble="from flask import current_app",
    )
    project.add("t1", "t2")

    result = project.cli("upgrade", "--all-tenants", "-j", "1")  # in this process: the app's pool
    assert result.exit_code == 0, result.output
    for name in ("t1", "t2"):
        view = project.view(name)
        assert view.tables(journal=True) == {"alembic_version", JOURNAL, "user", "rawtab"}
        assert view.versions() == {"r3"}
        assert project.main.scalar(f"SELECT label FROM {view.schema}.rawtab") == "mine"
    assert project.main_tables() == set()  # public: no rawtab, no version table, no journal

    pids = project.app.config["PIDS"]
    with project.app.app_context():
        with project.db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar() in pids
            assert conn.execute(sa.text("SHOW search_path")).scalar() == '"$user", public'
            # and unqualified names are the app's again
            assert conn.execute(sa.text("SELECT to_regclass('rawtab')")).scalar() is None

    # reading runs (status, check, current) reset it as well
    for args in (["status", "--all-tenants", "-j", "1"], ["current", "--tenant", "t1"]):
        assert project.cli(*args).exit_code == 0
        with project.app.app_context():
            with project.db.engine.connect() as conn:
                assert conn.execute(sa.text("SHOW search_path")).scalar() == '"$user", public'


def test_check_all_tenants_passes_at_head(project: Project, kind: str) -> None:
    """check --all-tenants: ok for tenants at head (the version table and journal, in the tenant's
    schema or database, are not differences), 'not up to date' for one behind, 'changes' for one
    whose schema differs from the models."""
    assert project.cli("upgrade", "--all-tenants").exit_code == 0
    result = project.cli("check", "--all-tenants")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    rows = table_rows(result.stdout, ["tenant", "duration", "result"])
    assert {name: cells[-1] for name, cells in rows.items()} == {"t1": "ok", "t2": "ok", "t3": "ok"}
    assert "No new upgrade operations detected." in result.stdout.splitlines()
    results = project.api(operations.check, tenants="all", jobs=1)
    assert [(r.tenant, r.outcome, r.error) for r in results] == [
        ("t1", "ok", None), ("t2", "ok", None), ("t3", "ok", None),
    ]
    if kind == "pg-schema":
        with project.app.app_context(), project.db.engine.connect() as conn:
            assert conn.execute(sa.text("SHOW search_path")).scalar() == '"$user", public'

    assert project.cli("downgrade", "--tenant", "t2").exit_code == 0
    engine = sa.create_engine(project.view("t3").url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            sa.Table("stray", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     schema=project.view("t3").schema).create(conn)
    finally:
        engine.dispose()
    result = project.cli("check", "--all-tenants", "-j", "2")
    assert result.exit_code == 1
    rows = table_rows(result.stdout, ["tenant", "duration", "result"])
    assert {name: cells[-1] for name, cells in rows.items()} == {
        "t1": "ok", "t2": "failed", "t3": "changes",
    }
    errors = error_lines(result.stderr)
    assert errors[0] == "Error: Tenant t2: Target database is not up to date."
    assert errors[1].startswith("Error: Tenant t3: New upgrade operations detected: remove_table stray")
    assert "No new upgrade operations detected." not in result.stdout
