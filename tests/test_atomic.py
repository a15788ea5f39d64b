"""Atomic runs and revisions: a failing or killed run leaves nothing of what it did not commit.

On PostgreSQL and SQLite DDL is transactional (on SQLite that needs the
``BEGIN`` pysqlite leaves out, see ``flask_migrate.transactions``). The
transactions are Alembic's, in two modes:

* by default a whole ``upgrade``/``downgrade`` run is one transaction: a run
  that fails, even at its last revision, or is killed, changes nothing;
* with ``transaction_per_migration=True`` each revision is committed with its
  version-table change: a failing revision leaves nothing of itself, and the
  revisions before it stay applied.

These tests run the real ``flask db`` against real databases and compare
complete snapshots (schema objects, columns, indexes, constraints, every row,
the version table) before and after:

* revisions that fail in every way a revision can fail;
* runs failing at a later revision, in both modes (upgrade, and downgrade to base);
* SQLite batch mode on a parent table with ``ON DELETE CASCADE`` children in
  an app that turns foreign keys on (plain Alembic loses the child rows);
* SIGKILL at random moments of a 20-revision upgrade, in both modes.

The kill tests are seeded (``ATOMIC_KILL_SEED``) and their number of trials
per mode can be raised with ``ATOMIC_KILL_TRIALS``; each prints a summary of
where the kills landed (run pytest with ``-s`` to see it).
"""

from __future__ import annotations

import typing as t

import collections
import concurrent.futures
import os
import random
import shutil
import signal
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from conftest import (
    FLASK,
    JOURNAL,
    Database,
    DatabaseFactory,
    Result,
    run_flask,
    write_app,
    write_revision,
)

ATOMIC_BACKENDS = ["sqlite", "postgresql"]

#: ``Migrate()`` arguments of each transaction mode
MODES = {"default": "", "per-migration": "transaction_per_migration=True"}


def one_transaction(backend: str, mode: str) -> bool:
    """Whether a whole run is one transaction: the default mode where DDL is transactional."""
    return mode == "default" and backend in ATOMIC_BACKENDS

@pytest.fixture(scope="session")
def migrations_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrations folder made once by ``flask db init``, without revisions."""
    root = tmp_path_factory.mktemp("atomic-init")
    write_app(root)
    result = run_flask(root, "db", "init", url=f"sqlite:///{root / 'init.db'}")
    assert result.returncode == 0, result.stderr
    return root / "migrations"


@pytest.fixture
def atomic_backend(request: pytest.FixtureRequest) -> str:
    """The backend of a test that runs only where DDL is transactional."""
    return str(request.param)


@pytest.fixture
def backend(atomic_backend: str) -> str:
    # overrides conftest's fixture: these tests run on PostgreSQL and SQLite only
    from conftest import require_server

    if atomic_backend != "sqlite":
        require_server(atomic_backend)
    return atomic_backend


on_transactional_backends = pytest.mark.parametrize(
    "atomic_backend", ATOMIC_BACKENDS, indirect=True
)
on_sqlite = pytest.mark.parametrize("atomic_backend", ["sqlite"], indirect=True)
per_migration = pytest.mark.parametrize("mode", ["per-migration"], indirect=True)


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    """The transaction mode of the test's app (a key of MODES): ``default`` unless parametrized."""
    return str(getattr(request, "param", "default"))


@dataclass
class Project:
    """A working folder with an app module and a migrations folder."""

    root: Path
    database: Database
    env: dict[str, str] = field(default_factory=dict)

    @property
    def versions(self) -> Path:
        return self.root / "migrations" / "versions"

    def flask(self, *args: str, url: str | None = None) -> Result:
        return run_flask(
            self.root, *args, url=url or self.database.url, env=self.env, timeout=90
        )

    def sql(self, *statements: str, url: str | None = None) -> None:
        engine = sa.create_engine(url or self.database.url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(sa.text(statement))
        finally:
            engine.dispose()


@pytest.fixture
def project(migrations_template: Path, database: Database, tmp_path: Path, mode: str) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(migrations_template, root / "migrations")
    write_app(root, migrate_args=MODES[mode])
    return Project(root, database)


# -- snapshots -----------------------------------------------------------------


def snapshot(url: str) -> dict[str, object]:
    """Everything in the database: schema objects, columns, indexes, constraints, rows."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            state: dict[str, object] = {}
            if engine.dialect.name == "sqlite":
                state["<catalog>"] = sorted(
                    tuple(r)
                    for r in conn.exec_driver_sql(
                        "SELECT type, name, tbl_name, sql FROM sqlite_master"
                    )
                )
            else:
                state["<catalog>"] = sorted(
                    tuple(r)
                    for r in conn.exec_driver_sql(
                        "SELECT c.relname, c.relkind FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = current_schema()"
                    )
                )
            # the journal records the failed run on purpose: not part of "as it was"
            state["<catalog>"] = [
                entry for entry in t.cast(list, state["<catalog>"])
                if not any("flask_migrate_journal" in str(part) for part in entry)
            ]
            for table in sorted(set(inspector.get_table_names()) - {JOURNAL}):
                columns = [
                    (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                    for c in inspector.get_columns(table)
                ]
                quoted = engine.dialect.identifier_preparer.quote(table)
                rows = sorted(
                    tuple(map(repr, row))
                    for row in conn.exec_driver_sql(f"SELECT * FROM {quoted}")
                )
                state[table] = {
                    "columns": columns,
                    "pk": inspector.get_pk_constraint(table)["constrained_columns"],
                    "indexes": sorted(
                        (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                        for i in inspector.get_indexes(table)
                    ),
                    "unique": sorted(
                        (str(u["name"]), tuple(u["column_names"]))
                        for u in inspector.get_unique_constraints(table)
                    ),
                    "fks": sorted(
                        (
                            tuple(f["constrained_columns"]),
                            f["referred_table"],
                            tuple(f["referred_columns"]),
                            str(f.get("options")),
                        )
                        for f in inspector.get_foreign_keys(table)
                    ),
                    "rows": rows,
                }
            return state
    finally:
        engine.dispose()


def tmp_tables(state: dict[str, object]) -> list[str]:
    return [name for name in state if name.startswith("_alembic_tmp")]


def versions_in(url: str) -> list[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return []
            return sorted(
                r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")
            )
    finally:
        engine.dispose()


def assert_one_error_line(result: Result, expected: str = "") -> str:
    """Exit status 1, no traceback, exactly one ``Error:`` line, and it is the last line."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == errors[0], result.stderr
    assert expected.lower() in errors[0].lower(), errors[0]
    return errors[0]


# -- 1. a failing revision leaves the database as it was --------------------------

BASE_REVISION = """
op.create_table(
    "item",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=True),
    sa.Column("price", sa.Integer, nullable=False, server_default="0"),
)
op.create_index("ix_item_name", "item", ["name"])
op.create_table(
    "tag",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("item.id")),
    sa.Column("label", sa.String(20), unique=True),
)
op.execute("INSERT INTO item (id, name, price) VALUES (1, 'apple', 3), (2, 'pear', 5), (3, NULL, 7)")
op.execute("INSERT INTO tag (id, item_id, label) VALUES (1, 1, 'fruit'), (2, 2, 'green'), (3, 3, NULL)")
"""

FAILING_REVISIONS = {
    # (a) a Python exception after two DDL statements (and a data change)
    "python-exception": (
        """
        op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True))
        op.add_column("item", sa.Column("stock", sa.Integer))
        op.create_index("ix_item_price", "item", ["price"])
        op.execute("UPDATE item SET price = price * 100")
        raise RuntimeError("the revision gave up half-way")
        """,
        "RuntimeError",
    ),
    # (b) an SQL error after some DDL
    "sql-error": (
        """
        op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True))
        op.add_column("item", sa.Column("stock", sa.Integer))
        op.drop_index("ix_item_name", table_name="item")
        op.execute("DELETE FROM tag")
        op.execute("INSERT INTO no_such_table (id) VALUES (1)")
        """,
        "no_such_table",
    ),
    # (c) a constraint violation while moving data
    "constraint-violation": (
        """
        op.create_table(
            "product",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("title", sa.String(50), nullable=False, unique=True),
        )
        op.execute("INSERT INTO product (id, title) SELECT id, name FROM item WHERE name IS NOT NULL")
        op.execute("DELETE FROM item WHERE name IS NOT NULL")
        op.execute("INSERT INTO product (id, title) VALUES (10, 'apple')")
        """,
        "",
    ),
    # (c') a NOT NULL violation while moving data
    "not-null-violation": (
        """
        op.create_table(
            "product",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("title", sa.String(50), nullable=False),
        )
        op.execute("INSERT INTO product (id, title) SELECT id, name FROM item")
        """,
        "",
    ),
    # (d) a batch-mode rebuild of a table, then an error
    "batch-then-error": (
        """
        # recreated on SQLite; ALTER TABLE on PostgreSQL (tag's foreign key
        # keeps PostgreSQL from dropping and recreating item)
        with op.batch_alter_table("item") as batch:
            batch.add_column(sa.Column("stock", sa.Integer, server_default="1"))
            batch.alter_column("name", existing_type=sa.String(50), type_=sa.String(200))
            batch.drop_index("ix_item_name")
        # recreated (copied to _alembic_tmp_tag) on both
        with op.batch_alter_table("tag", recreate="always") as batch:
            batch.drop_column("label")
            batch.add_column(sa.Column("weight", sa.Integer, server_default="2"))
        op.execute("INSERT INTO no_such_table (id) VALUES (1)")
        """,
        "no_such_table",
    ),
    # (d') a batch-mode rebuild whose copy itself fails (NULL into NOT NULL)
    "batch-copy-fails": (
        """
        op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True))
        with op.batch_alter_table("tag", recreate="always") as batch:
            batch.add_column(sa.Column("weight", sa.Integer))
            batch.alter_column("label", existing_type=sa.String(20), nullable=False)
        """,
        "",
    ),
}


@on_transactional_backends
@pytest.mark.parametrize("case", sorted(FAILING_REVISIONS))
def test_failing_revision_leaves_database_as_it_was(project: Project, case: str) -> None:
    """A revision that fails (the only one of its run) leaves schema, data and version table exactly as before it."""
    body, expected = FAILING_REVISIONS[case]
    write_revision(project.versions, "r1", None, BASE_REVISION, message="base")
    write_revision(project.versions, "r2", "r1", body, message=case)
    result = project.flask("db", "upgrade", "r1")
    assert result.returncode == 0, result.stderr
    before = snapshot(project.database.url)
    assert versions_in(project.database.url) == ["r1"]

    assert_one_error_line(project.flask("db", "upgrade"), expected)

    after = snapshot(project.database.url)
    assert tmp_tables(after) == []
    assert after == before
    assert versions_in(project.database.url) == ["r1"]


def write_five_revisions(versions: Path) -> None:
    """m1..m5, each creating table m<i> with a row; m3 rebuilds m1 in batch mode, changes m2, then fails."""
    down = None
    for i in range(1, 6):
        body = f"""
        op.create_table("m{i}", sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String(10)))
        op.execute("INSERT INTO m{i} (id, v) VALUES ({i}, 'rev {i}')")
        """
        if i == 3:
            body = textwrap.dedent(body) + textwrap.dedent("""
            with op.batch_alter_table("m1", recreate="always") as batch:
                batch.add_column(sa.Column("extra", sa.Integer))
            op.execute("UPDATE m2 SET v = 'changed'")
            op.execute("INSERT INTO m2 (id, v) VALUES (2, 'dup')")
            """)
        write_revision(versions, f"m{i}", down, body, message=f"rev {i}")
        down = f"m{i}"


@per_migration
@on_transactional_backends
def test_failure_in_third_of_five_revisions_keeps_the_first_two(
    project: Project, make_database: DatabaseFactory
) -> None:
    """transaction_per_migration: upgrading through 5 revisions where the 3rd fails commits 1-2 and nothing of 3."""
    write_five_revisions(project.versions)

    assert_one_error_line(project.flask("db", "upgrade"), "m2")  # duplicate key in m2
    assert versions_in(project.database.url) == ["m2"]
    after = snapshot(project.database.url)
    assert tmp_tables(after) == []

    # the same as a database upgraded to revision 2 and no further
    reference = make_database()
    result = project.flask("db", "upgrade", "m2", url=reference.url)
    assert result.returncode == 0, result.stderr
    assert after == snapshot(reference.url)
    assert {"m1", "m2"} <= set(after) and not {"m3", "m4", "m5"} & set(after)


@on_transactional_backends
def test_failure_in_third_of_five_revisions_keeps_none_of_them(project: Project) -> None:
    """Default mode: upgrading through 5 revisions where the 3rd fails keeps none: the database is as it was (empty)."""
    write_five_revisions(project.versions)
    assert snapshot(project.database.url) == {"<catalog>": []}

    assert_one_error_line(project.flask("db", "upgrade"), "m2")  # duplicate key in m2
    assert versions_in(project.database.url) == []
    assert snapshot(project.database.url) == {"<catalog>": []}  # not m1, m2, nor a version table

    # and from a migrated database: the run rolls back to where it started
    result = project.flask("db", "upgrade", "m1")
    assert result.returncode == 0, result.stderr
    before = snapshot(project.database.url)
    assert_one_error_line(project.flask("db", "upgrade"), "m2")
    assert snapshot(project.database.url) == before
    assert versions_in(project.database.url) == ["m1"]


@on_transactional_backends
def test_failing_first_revision_leaves_an_empty_database(project: Project) -> None:
    """A first revision that fails leaves an empty database: not even a version table."""
    write_revision(
        project.versions, "r1", None, BASE_REVISION + "\nraise RuntimeError('no')", message="base"
    )
    assert snapshot(project.database.url) == {"<catalog>": []}
    assert_one_error_line(project.flask("db", "upgrade"), "RuntimeError")
    assert snapshot(project.database.url) == {"<catalog>": []}


@on_transactional_backends
def test_failing_downgrade_leaves_database_as_it_was(project: Project) -> None:
    """A downgrade that fails half-way leaves schema, data and version table as they were."""
    write_revision(project.versions, "r1", None, BASE_REVISION, message="base")
    write_revision(
        project.versions,
        "r2",
        "r1",
        """
        op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("INSERT INTO audit (id) VALUES (1)")
        """,
        downgrade="""
        op.drop_table("audit")
        with op.batch_alter_table("tag", recreate="always") as batch:
            batch.drop_column("label")
        op.execute("UPDATE item SET price = 0")
        raise RuntimeError("cannot go back")
        """,
        message="audit",
    )
    result = project.flask("db", "upgrade")
    assert result.returncode == 0, result.stderr
    before = snapshot(project.database.url)
    assert_one_error_line(project.flask("db", "downgrade"), "cannot go back")
    assert snapshot(project.database.url) == before
    assert versions_in(project.database.url) == ["r2"]


BOTH_MODES = [
    ("sqlite", "default"),
    ("postgresql", "default"),
    ("sqlite", "per-migration"),
    ("postgresql", "per-migration"),
]


def write_downgrade_chain(versions: Path) -> None:
    """d1 (item and tag, with rows) -> d2 (audit, with a row) -> d3 (an index, new prices); d1's downgrade fails half-way."""
    write_revision(
        versions, "d1", None, BASE_REVISION,
        downgrade="""
        op.drop_table("tag")
        op.execute("UPDATE item SET price = 0")
        raise RuntimeError("cannot go back to base")
        """,
        message="base",
    )
    write_revision(
        versions, "d2", "d1",
        """
        op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("INSERT INTO audit (id) VALUES (1)")
        """,
        'op.drop_table("audit")',
        message="audit",
    )
    write_revision(
        versions, "d3", "d2",
        """
        op.create_index("ix_item_price", "item", ["price"])
        op.execute("UPDATE item SET price = price + 10")
        """,
        """
        op.execute("UPDATE item SET price = price - 10")
        op.drop_index("ix_item_price", table_name="item")
        """,
        message="prices",
    )


@pytest.mark.parametrize(
    "atomic_backend,mode", BOTH_MODES, indirect=True, ids=["-".join(c) for c in BOTH_MODES]
)
def test_failing_downgrade_to_base(
    project: Project, make_database: DatabaseFactory, atomic_backend: str, mode: str
) -> None:
    """'downgrade base' failing in its last step (the first revision's downgrade): by default the database stays where it was; per migration the steps before it stay done."""
    write_downgrade_chain(project.versions)
    result = project.flask("db", "upgrade")
    assert result.returncode == 0, result.stderr
    before = snapshot(project.database.url)
    assert versions_in(project.database.url) == ["d3"]

    assert_one_error_line(project.flask("db", "downgrade", "base"), "cannot go back to base")

    after = snapshot(project.database.url)
    assert tmp_tables(after) == []
    if one_transaction(atomic_backend, mode):
        assert after == before  # d3's and d2's downgrades rolled back with the run
        assert versions_in(project.database.url) == ["d3"]
    else:
        # d3 and d2 were downgraded and committed; nothing of d1's downgrade stays
        assert versions_in(project.database.url) == ["d1"]
        reference = make_database()
        result = project.flask("db", "upgrade", "d1", url=reference.url)
        assert result.returncode == 0, result.stderr
        assert after == snapshot(reference.url)
        assert "audit" not in after and "tag" in after


# -- 2. SQLite batch mode and ON DELETE CASCADE --------------------------------------

FOREIGN_KEYS_ON = """
from sqlalchemy import event

with app.app_context():
    @event.listens_for(db.engine, "connect")
    def _foreign_keys_on(dbapi_connection, connection_record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
"""

PARENT_AND_CHILDREN = """
op.create_table(
    "parent",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50)),
    sa.Column("obsolete", sa.String(20)),
)
op.create_table(
    "child",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(50)),
)
op.create_table(
    "pet",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("parent.id", ondelete="SET NULL")),
)
op.execute("INSERT INTO parent (id, name, obsolete) VALUES (1, 'ann', 'x'), (2, 'bob', 'y'), (3, 'cy', 'z')")
op.execute(
    "INSERT INTO child (id, parent_id, name) VALUES "
    "(1, 1, 'a1'), (2, 1, 'a2'), (3, 2, 'b1'), (4, 2, 'b2'), (5, 3, 'c1'), (6, 3, 'c2')"
)
op.execute("INSERT INTO pet (id, owner_id) VALUES (1, 1), (2, 3)")
"""

BATCH_ON_PARENT = """
with op.batch_alter_table("parent") as batch:
    batch.add_column(sa.Column("code", sa.String(10), server_default="p"))
    batch.alter_column("name", existing_type=sa.String(50), type_=sa.Text())
    batch.drop_column("obsolete")
"""

CHILD_ROWS = [
    (1, 1, "a1"), (2, 1, "a2"), (3, 2, "b1"), (4, 2, "b2"), (5, 3, "c1"), (6, 3, "c2"),
]


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()


def write_parent_revisions(versions: Path) -> None:
    write_revision(versions, "p1", None, PARENT_AND_CHILDREN, message="parent and children")
    write_revision(versions, "p2", "p1", BATCH_ON_PARENT, message="batch on parent")


@on_sqlite
def test_batch_on_cascade_parent_keeps_every_child_row(project: Project) -> None:
    """Batch mode on a parent of ON DELETE CASCADE children, foreign keys on: no child row lost."""
    write_app(project.root, extra=FOREIGN_KEYS_ON)
    write_parent_revisions(project.versions)
    result = project.flask("db", "upgrade", "p1")
    assert result.returncode == 0, result.stderr
    assert rows(project.database.url, "SELECT * FROM child ORDER BY id") == CHILD_ROWS

    result = project.flask("db", "upgrade")
    assert result.returncode == 0, result.stderr

    url = project.database.url
    assert versions_in(url) == ["p2"]
    assert rows(url, "SELECT * FROM child ORDER BY id") == CHILD_ROWS
    assert rows(url, "SELECT * FROM pet ORDER BY id") == [(1, 1), (2, 3)]
    assert rows(url, "SELECT id, name, code FROM parent ORDER BY id") == [
        (1, "ann", "p"), (2, "bob", "p"), (3, "cy", "p"),
    ]
    state = snapshot(url)
    assert tmp_tables(state) == []
    parent = state["parent"]
    assert isinstance(parent, dict)
    assert sorted((c[0], c[1]) for c in parent["columns"]) == [
        ("code", "VARCHAR(10)"), ("id", "INTEGER"), ("name", "TEXT"),
    ]
    assert rows(url, "PRAGMA foreign_key_check") == []


def fk_app(url: str, migrations: Path) -> tuple[Flask, SQLAlchemy]:
    """An in-process app whose engine turns ``PRAGMA foreign_keys=ON`` on every connection."""
    from flask_migrate import Migrate

    app = Flask(f"fk_app_{os.urandom(3).hex()}")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    db = SQLAlchemy(app)
    Migrate(app, db, directory=str(migrations))
    with app.app_context():

        @sa.event.listens_for(db.engine, "connect")
        def foreign_keys_on(dbapi_connection: object, record: object) -> None:
            cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return app, db


def foreign_keys(conn: sa.Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA foreign_keys").scalar() or 0)


@on_sqlite
@pytest.mark.parametrize("in_memory", [False, True], ids=["file", "memory"])
def test_foreign_keys_are_on_again_after_the_migration(project: Project, in_memory: bool) -> None:
    """After a batch migration the app's connections, pooled and new, have foreign keys on."""
    from flask_migrate import operations

    write_parent_revisions(project.versions)
    # in memory, Flask-SQLAlchemy shares one connection (StaticPool)
    url = "sqlite://" if in_memory else project.database.url
    app, db = fk_app(url, project.root / "migrations")
    with app.app_context():
        # a connection the app holds while the migration runs
        held = db.engine.connect()
        try:
            steps = operations.upgrade()
            assert [s.revision for s in steps] == ["p1", "p2"]
            assert foreign_keys(held) == 1
        finally:
            held.close()
        # the pooled connections the migration used
        pooled = [db.engine.connect() for _ in range(3)]
        try:
            assert [foreign_keys(c) for c in pooled] == [1, 1, 1]
            assert pooled[0].exec_driver_sql("SELECT count(*) FROM child").scalar() == 6
        finally:
            for conn in pooled:
                conn.close()
        # a brand-new connection (the in-memory database is the pooled one)
        if not in_memory:
            db.engine.dispose()
        with db.engine.connect() as conn:
            assert foreign_keys(conn) == 1
            # and they are really enforced: deleting a parent cascades
            conn.exec_driver_sql("DELETE FROM parent WHERE id = 1")
            assert conn.exec_driver_sql("SELECT count(*) FROM child").scalar() == 4
            conn.rollback()
        db.engine.dispose()


@on_sqlite
def test_plain_alembic_loses_the_child_rows(project: Project) -> None:
    """The same batch revision through plain Alembic cascade-deletes the children (the test bites)."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from flask_migrate import operations

    write_parent_revisions(project.versions)
    migrations = project.root / "migrations"
    app, db = fk_app(project.database.url, migrations)
    with app.app_context():
        operations.upgrade(revision="p1")
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM child").scalar() == 6
        # Alembic's own command, bypassing flask_migrate.operations
        config = AlembicConfig(str(migrations / "alembic.ini"))
        config.set_main_option("script_location", str(migrations))
        command.upgrade(config, "p2")
        db.engine.dispose()
    assert versions_in(project.database.url) == ["p2"]
    assert rows(project.database.url, "SELECT * FROM child") == []
    assert rows(project.database.url, "SELECT * FROM pet ORDER BY id") == [(1, None), (2, None)]


@on_sqlite
def test_dangling_foreign_key_is_refused_and_rolled_back(project: Project) -> None:
    """A revision that deletes parents of existing children is refused with one line; nothing changes."""
    write_app(project.root, extra=FOREIGN_KEYS_ON)
    write_parent_revisions(project.versions)
    write_revision(
        project.versions,
        "p3",
        "p2",
        """
        op.add_column("child", sa.Column("note", sa.String(20)))
        op.execute("DELETE FROM parent WHERE id = 2")
        """,
        message="delete parents",
    )
    result = project.flask("db", "upgrade", "p2")
    assert result.returncode == 0, result.stderr
    before = snapshot(project.database.url)

    line = assert_one_error_line(project.flask("db", "upgrade"), "foreign keys point nowhere")
    assert "child" in line

    assert snapshot(project.database.url) == before
    assert versions_in(project.database.url) == ["p2"]


@on_sqlite
def test_dangling_foreign_key_raises_foreign_key_violation(project: Project) -> None:
    """The API raises ForeignKeyViolation for a dangling reference, and foreign keys stay on."""
    from flask_migrate import operations
    from flask_migrate.transactions import ForeignKeyViolation

    write_parent_revisions(project.versions)
    write_revision(
        project.versions, "p3", "p2", 'op.execute("DELETE FROM parent WHERE id = 3")',
        message="delete parents",
    )
    app, db = fk_app(project.database.url, project.root / "migrations")
    with app.app_context():
        operations.upgrade(revision="p2")
        before = snapshot(project.database.url)
        with pytest.raises(ForeignKeyViolation) as info:
            operations.upgrade()
        assert {v[0] for v in info.value.violations} == {"child", "pet"}
        with db.engine.connect() as conn:
            assert foreign_keys(conn) == 1
        db.engine.dispose()
    assert snapshot(project.database.url) == before


# -- 3. SIGKILL at random moments --------------------------------------------------

KILL_REVISIONS = 20
KILL_TRIALS = int(os.environ.get("ATOMIC_KILL_TRIALS", "5"))  # per transaction mode
KILL_SEED = os.environ.get("ATOMIC_KILL_SEED", "20240611")
KILL_WORKERS = int(os.environ.get("ATOMIC_KILL_WORKERS", "2"))


def kill_revision_body(i: int) -> str:
    """Revision ``i``: creates table k<i> with one row; every 4th also rebuilds k<i-1> in batch mode."""
    pause = 0.010 + 0.020 * ((i * 7) % 10) / 9  # 10-30 ms, spread over the revisions
    parts = [f"""
    _log("start {i}")
    op.create_table(
        "k{i:02d}",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(20)),
    )
    time.sleep({pause / 2:.4f})
    op.execute("INSERT INTO k{i:02d} (id, name) VALUES ({i}, 'row {i}')")
    """]
    if i % 4 == 0:
        parts.append(f"""
        with op.batch_alter_table("k{i - 1:02d}", recreate="always") as batch:
            batch.add_column(sa.Column("extra", sa.String(20), server_default="x{i}"))
            batch.alter_column("name", existing_type=sa.String(20), type_=sa.String(40))
        """)
    parts.append(f"""
    time.sleep({pause / 2:.4f})
    _log("end {i}")
    """)
    log = """
    def _log(line):
        fd = os.open(os.environ["ATOMIC_KILL_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, (line + "\\n").encode())
        os.close(fd)
    """
    return "\n".join(textwrap.dedent(part).strip() for part in [log, *parts])


def expected_tables(n: int) -> dict[str, tuple[list[str], list[tuple[str, ...]]]]:
    """The tables (columns, rows) of a database at kill revision ``n``."""
    tables: dict[str, tuple[list[str], list[tuple[str, ...]]]] = {}
    for i in range(1, n + 1):
        tables[f"k{i:02d}"] = (["id", "name"], [(repr(i), repr(f"row {i}"))])
        if i % 4 == 0:
            columns, (row,) = tables[f"k{i - 1:02d}"]
            tables[f"k{i - 1:02d}"] = (columns + ["extra"], [(*row, repr(f"x{i}"))])
    return tables


def kill_state(url: str) -> tuple[int, dict[str, tuple[list[str], list[tuple[str, ...]]]], list[str]]:
    """(recorded revision number, the k tables as (columns, rows), every other table).

    Lighter than :func:`snapshot` (one catalog query for all columns): it runs
    twice per trial.
    """
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            columns = sa.inspect(conn).get_multi_columns()
            tables: dict[str, tuple[list[str], list[tuple[str, ...]]]] = {}
            others = []
            recorded: list[str] = []
            for (_, name), cols in sorted(columns.items(), key=lambda item: item[0][1]):
                if name == "alembic_version":
                    recorded = [r[0] for r in conn.exec_driver_sql(
                        "SELECT version_num FROM alembic_version")]
                elif name == JOURNAL:
                    continue  # bookkeeping: it records the killed run on purpose
                elif name.startswith("k"):
                    tables[name] = (
                        [c["name"] for c in cols],
                        sorted(tuple(map(repr, r))
                               for r in conn.exec_driver_sql(f'SELECT * FROM "{name}"')),
                    )
                else:
                    others.append(name)
    finally:
        engine.dispose()
    assert len(recorded) <= 1, recorded
    return (int(recorded[0][1:]) if recorded else 0), tables, others


def flask_environment(root: Path, url: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "TEST_BIND_"))}
    env.update(FLASK_APP="app.py", TEST_DATABASE_URL=url, PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


@dataclass
class Plan:
    """When to kill: ``after_start`` of revision k plus ``delay`` s, or ``delay`` s after launch."""

    after_start: int | None
    delay: float


def kill_upgrade(root: Path, url: str, log: Path, plan: Plan) -> int:
    """Start ``flask db upgrade`` and SIGKILL it as planned; returns its exit status."""
    env = flask_environment(root, url, {"ATOMIC_KILL_LOG": str(log)})
    proc = subprocess.Popen(
        [FLASK, "db", "upgrade"], cwd=root, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        if plan.after_start is None:
            deadline = time.monotonic() + plan.delay
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.001)
        else:
            marker = f"start {plan.after_start}\n"
            while proc.poll() is None:
                if log.exists() and marker in log.read_text():
                    time.sleep(plan.delay)
                    break
                time.sleep(0.001)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def kill_events(log: Path) -> list[tuple[str, int]]:
    """What the revisions logged: ("start" | "end", revision number), in order."""
    words = log.read_text().split() if log.exists() else []
    return [(words[j], int(words[j + 1])) for j in range(0, len(words), 2)]


def landing(log: Path, recorded: int, status: int) -> tuple[str, int]:
    """Where the kill landed in a run that commits each revision, from the revisions' log and the version table."""
    if status != -signal.SIGKILL:
        return "after the upgrade finished (no kill)", 0
    events = kill_events(log)
    if not events:
        assert recorded == 0
        return "at start (before revision 1 began)", 0
    what, number = events[-1]
    if what == "start":
        assert recorded == number - 1, (events[-1], recorded)
        return "mid-revision (inside upgrade())", number
    if recorded == number - 1:
        return "mid-revision (after upgrade(), before its commit)", number
    assert recorded == number, (events[-1], recorded)
    return "between revisions (after a commit)", 0


def landing_in_one_transaction(log: Path, recorded: int, status: int) -> tuple[str, int]:
    """Where the kill landed in a run that is one transaction: all of it committed, or none."""
    if status != -signal.SIGKILL:
        return "after the upgrade finished (no kill)", 0
    if recorded == KILL_REVISIONS:
        return "after the run's commit", 0
    assert recorded == 0, recorded
    events = kill_events(log)
    if not events:
        return "at start (before revision 1 began)", 0
    what, number = events[-1]
    if what == "start":
        return "mid-revision (inside upgrade())", number
    return "mid-run (between revisions, before the run's commit)", 0


def table_names(url: str) -> set[str]:
    """Every table, the version table and the journal included."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.xdist_group("heavy")  # 2 trials at a time: see tests/conftest.py
@pytest.mark.parametrize("mode", list(MODES), indirect=True)
@on_transactional_backends
def test_sigkill_never_leaves_half_a_revision(
    project: Project, make_database: DatabaseFactory, backend: str, mode: str, tmp_path: Path
) -> None:
    """SIGKILL at random moments of a 20-revision upgrade, 15 per mode: schema always matches the version table; a one-transaction run leaves all or nothing, journal included."""
    down = None
    for i in range(1, KILL_REVISIONS + 1):
        write_revision(project.versions, f"k{i:02d}", down, kill_revision_body(i), message=f"kill {i}")
        down = f"k{i:02d}"
    head = expected_tables(KILL_REVISIONS)
    whole_run = one_transaction(backend, mode)
    rng = random.Random(f"{KILL_SEED}-{backend}-{mode}")
    plans = []
    for _ in range(KILL_TRIALS):
        if rng.random() < 0.2:  # anywhere from launch on, start-up included
            plans.append(Plan(None, round(rng.uniform(0.0, 1.0), 4)))
        else:  # inside or just after a chosen revision
            plans.append(Plan(rng.randint(1, KILL_REVISIONS), round(rng.uniform(0.0, 0.035), 4)))
    urls = [project.database.url] + [make_database().url for _ in plans[1:]]

    def trial(number: int) -> tuple[str, int, int]:
        plan, url = plans[number], urls[number]
        log = tmp_path / f"kill-{number}.log"
        status = kill_upgrade(project.root, url, log, plan)

        recorded, tables, others = kill_state(url)
        context = f"trial {number} (seed {KILL_SEED}, {plan}, exit status {status})"
        assert others == [], context  # no _alembic_tmp_* (nor anything else) left behind
        assert tables == expected_tables(recorded), context  # never half a revision
        if whole_run:
            if status == -signal.SIGKILL and recorded != KILL_REVISIONS:
                # nothing at all: no table, no version table, no journal (nor run row)
                assert table_names(url) == set(), context
            where, inside = landing_in_one_transaction(log, recorded, status)
        else:
            where, inside = landing(log, recorded, status)

        result = run_flask(project.root, "db", "upgrade", url=url,
                           env={"ATOMIC_KILL_LOG": str(log)}, timeout=90)
        assert result.returncode == 0, (context, result.stderr)
        assert "Error" not in result.stderr, (context, result.stderr)
        if whole_run:
            assert "did not finish" not in result.stderr, (context, result.stderr)
        assert kill_state(url) == (KILL_REVISIONS, head, []), context
        return where, inside, recorded

    started = time.monotonic()
    # two trials at a time (each on its own database): the machine has 2 cores
    # and most of a trial is process start-up and the revisions' sleeps
    with concurrent.futures.ThreadPoolExecutor(KILL_WORKERS) as pool:
        outcomes = list(pool.map(trial, range(KILL_TRIALS)))
    landings = collections.Counter(where for where, _, _ in outcomes)
    recorded_at = collections.Counter(recorded for _, _, recorded in outcomes)
    in_batch = sum(1 for _, inside, _ in outcomes if inside and inside % 4 == 0)
    elapsed = time.monotonic() - started
    print(
        f"\n[{backend}, {mode}] {KILL_TRIALS} SIGKILL trials in {elapsed:.1f} s "
        f"(seed {KILL_SEED}, {KILL_WORKERS} at a time):"
    )
    for where, count in sorted(landings.items()):
        print(f"  {count:3d}  {where}")
    print(f"  of the mid-revision kills, {in_batch} hit a revision with a batch rebuild")
    print(f"  recorded revision after the kill: {dict(sorted(recorded_at.items()))}")
    mid = sum(c for w, c in landings.items() if w.startswith("mid-"))
    assert mid >= KILL_TRIALS // 2, landings  # most kills must hit a run in progress
