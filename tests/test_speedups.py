"""Alembic's slow paths, made fast during our runs only (``flask_migrate._speedups``).

* SQLite batch mode reflects only the table it rebuilds, not every table
  reachable through its foreign keys: a table at the end of a 300-table chain
  can be altered (plain Alembic dies with ``RecursionError``), rows and
  foreign keys survive, and ``ON DELETE CASCADE`` children keep their rows.
* PostgreSQL autogenerate asks for the owners of sequences once per schema,
  not once per serial column, with Alembic's semantics.

Counts are of reflections and statements, taken with SQLAlchemy events on
real databases; nothing is timed.
"""

from __future__ import annotations

import collections
import typing as t
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner
from flask_sqlalchemy import SQLAlchemy

from conftest import Database, DatabaseFactory, create_app, write_revision


def invoke(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, (result.output, result.stderr, result.exception)
    return result.output


def foreign_keys_on(db: SQLAlchemy) -> None:
    """Turn ``PRAGMA foreign_keys`` on for every connection of the app's engine."""

    @sa.event.listens_for(db.engine, "connect")
    def on_connect(dbapi_connection: t.Any, record: t.Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[tuple[Flask, SQLAlchemy, Path]]:
    """An app on a fresh SQLite file with foreign keys on and an initialised migrations folder."""
    migrations = tmp_path / "migrations"
    app, db, _ = create_app(f"sqlite:///{tmp_path / 'app.db'}", migrations, models="none")
    with app.app_context():
        foreign_keys_on(db)
    invoke(app.test_cli_runner(), "db", "init")
    yield app, db, migrations
    with app.app_context():
        db.engine.dispose()


def take(reflections: dict[int, str]) -> list[str]:
    names = sorted(reflections.values())
    reflections.clear()
    return names


@pytest.fixture
def reflections() -> Iterator[dict[int, str]]:
    """Table objects reflected while the test runs (by id) -> their names."""
    tables: dict[int, str] = {}
    kept: list[sa.Table] = []  # keeps ids unique while the test runs

    def on_column(inspector: t.Any, table: sa.Table, column_info: t.Any) -> None:
        if id(table) not in tables:
            kept.append(table)
            tables[id(table)] = table.name

    sa.event.listen(sa.Table, "column_reflect", on_column)
    try:
        yield tables
    finally:
        sa.event.remove(sa.Table, "column_reflect", on_column)


def rows(db: SQLAlchemy, sql: str) -> list[tuple[t.Any, ...]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql)]


def fk_targets(db: SQLAlchemy, table: str) -> list[tuple[str, str, str]]:
    """``PRAGMA foreign_key_list``: (referred table, from column, to column) of each key."""
    return sorted((r[2], r[3], r[4]) for r in rows(db, f"PRAGMA foreign_key_list('{table}')"))


# -- SQLite batch mode ---------------------------------------------------------------

CHAIN = """
for k in range(1, {n} + 1):
    parent = (
        [sa.Column("parent_id", sa.Integer, sa.ForeignKey(f"t{{k - 1}}.id", ondelete="CASCADE"))]
        if k > 1 else []
    )
    op.create_table(
        f"t{{k}}",
        sa.Column("id", sa.Integer, primary_key=True),
        *parent,
        sa.Column("name", sa.String(50)),
        sa.Column("obsolete", sa.String(20)),
    )
    if k > 1:
        op.execute(
            f"INSERT INTO t{{k}} (id, parent_id, name, obsolete) "
            "VALUES (1, 1, 'a', 'x'), (2, 2, 'b', 'y')"
        )
    else:
        op.execute("INSERT INTO t1 (id, name, obsolete) VALUES (1, 'a', 'x'), (2, 'b', 'y')")
"""

DROP_CHAIN = """
for k in range({n}, 0, -1):
    op.drop_table(f"t{{k}}")
"""

BATCH_UP = """
with op.batch_alter_table("{table}"{reflect}) as batch:
    batch.add_column(sa.Column("code", sa.String(10), server_default="c"))
    batch.alter_column("name", existing_type=sa.String(50), type_=sa.Text())
    batch.drop_column("obsolete")
"""

BATCH_DOWN = """
with op.batch_alter_table("{table}"{reflect}) as batch:
    batch.add_column(sa.Column("obsolete", sa.String(20)))
    batch.alter_column("name", existing_type=sa.Text(), type_=sa.String(50))
    batch.drop_column("code")
"""


def write_chain(migrations: Path, n: int, table: str, reflect: str = "") -> None:
    versions = migrations / "versions"
    write_revision(versions, "c1", None, CHAIN.format(n=n), DROP_CHAIN.format(n=n), message="chain")
    write_revision(
        versions, "c2", "c1",
        BATCH_UP.format(table=table, reflect=reflect),
        BATCH_DOWN.format(table=table, reflect=reflect),
        message="batch",
    )


def columns(db: SQLAlchemy, table: str) -> list[tuple[str, str]]:
    return sorted((r[1], r[2]) for r in rows(db, f"PRAGMA table_info('{table}')"))


def test_batch_at_the_end_of_a_300_table_foreign_key_chain(
    sqlite_app: tuple[Flask, SQLAlchemy, Path], reflections: dict[int, str]
) -> None:
    """Batch mode on t300 of a 300-table FK chain upgrades and downgrades; rows and keys survive."""
    from flask_migrate import operations

    app, db, migrations = sqlite_app
    write_chain(migrations, 300, "t300")
    with app.app_context():
        operations.upgrade(revision="c1")
        take(reflections)

        operations.upgrade(revision="c2")
        assert take(reflections) == ["t300"]
        assert columns(db, "t300") == [
            ("code", "VARCHAR(10)"), ("id", "INTEGER"), ("name", "TEXT"), ("parent_id", "INTEGER"),
        ]
        assert rows(db, "SELECT id, parent_id, name, code FROM t300 ORDER BY id") == [
            (1, 1, "a", "c"), (2, 2, "b", "c"),
        ]
        assert fk_targets(db, "t300") == [("t299", "parent_id", "id")]
        assert rows(db, "PRAGMA foreign_key_check") == []

        operations.downgrade(revision="c1")
        assert take(reflections) == ["t300"]
        assert columns(db, "t300") == [
            ("id", "INTEGER"), ("name", "VARCHAR(50)"), ("obsolete", "VARCHAR(20)"),
            ("parent_id", "INTEGER"),
        ]
        assert rows(db, "SELECT id, parent_id, name FROM t300 ORDER BY id") == [
            (1, 1, "a"), (2, 2, "b"),
        ]
        assert fk_targets(db, "t300") == [("t299", "parent_id", "id")]
        with db.engine.connect() as conn:
            # the key is still enforced, and still cascades
            with pytest.raises(sa.exc.IntegrityError):
                conn.exec_driver_sql("INSERT INTO t300 (id, parent_id) VALUES (3, 99)")
            conn.rollback()
            conn.exec_driver_sql("DELETE FROM t299 WHERE id = 1")
            assert conn.exec_driver_sql("SELECT id FROM t300").fetchall() == [(2,)]
            conn.rollback()


def test_plain_alembic_dies_on_the_chain(sqlite_app: tuple[Flask, SQLAlchemy, Path]) -> None:
    """The same revision through Alembic's own command hits the recursion limit (the test bites)."""
    import sys

    from alembic import command
    from alembic.config import Config as AlembicConfig

    from flask_migrate import operations

    app, db, migrations = sqlite_app
    write_chain(migrations, 300, "t300")
    config = AlembicConfig(str(migrations / "alembic.ini"))
    config.set_main_option("script_location", str(migrations))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # Python's default, whatever the test runner set
    try:
        with app.app_context():
            operations.upgrade(revision="c1")
            with pytest.raises(RecursionError):
                command.upgrade(config, "c2")
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize(
    ("reflect", "expected"),
    [
        ("", ["t3"]),
        # an explicit value of the revision wins
        (', reflect_kwargs={"resolve_fks": True}', ["t1", "t2", "t3"]),
    ],
    ids=["default", "explicit"],
)
def test_batch_reflects_only_the_rebuilt_table(
    sqlite_app: tuple[Flask, SQLAlchemy, Path],
    reflections: dict[int, str],
    reflect: str,
    expected: list[str],
) -> None:
    """Batch on a middle table reflects it alone; its ON DELETE CASCADE children keep their rows."""
    from flask_migrate import operations

    app, db, migrations = sqlite_app
    write_chain(migrations, 5, "t3", reflect)
    with app.app_context():
        operations.upgrade(revision="c1")
        def children() -> dict[int, list[tuple[t.Any, ...]]]:
            return {k: rows(db, f"SELECT id, parent_id FROM t{k} ORDER BY id") for k in range(2, 6)}

        before = children()
        take(reflections)

        operations.upgrade()
        assert take(reflections) == expected
        operations.downgrade(revision="c1")
        assert take(reflections) == expected

        # foreign keys were off around the copy: no child row was cascade-deleted
        assert children() == before
        assert fk_targets(db, "t3") == [("t2", "parent_id", "id")]
        assert fk_targets(db, "t4") == [("t3", "parent_id", "id")]
        assert rows(db, "PRAGMA foreign_key_check") == []
        assert rows(db, "PRAGMA foreign_keys") == [(1,)]


def test_nothing_changes_outside_our_runs(
    sqlite_app: tuple[Flask, SQLAlchemy, Path], reflections: dict[int, str]
) -> None:
    """After a run, batch mode is Alembic's own again: its command reflects the referred tables."""
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.operations.batch import BatchOperationsImpl

    from flask_migrate import operations

    original = BatchOperationsImpl.__init__
    app, db, migrations = sqlite_app
    write_chain(migrations, 5, "t3")
    config = AlembicConfig(str(migrations / "alembic.ini"))
    config.set_main_option("script_location", str(migrations))
    with app.app_context():
        operations.upgrade(revision="c1")
        assert BatchOperationsImpl.__init__ is original
        take(reflections)
        command.upgrade(config, "c2")
        assert take(reflections) == ["t1", "t2", "t3"]
        db.engine.dispose()


# -- PostgreSQL sequence owners --------------------------------------------------------


@pytest.fixture
def postgresql(databases_on: Callable[[str], Database]) -> Database:
    return databases_on("postgresql")


def statements_of(fn: Callable[[], object]) -> list[str]:
    """The statements every engine sends while ``fn`` runs."""
    sent: list[str] = []

    def before(conn: t.Any, cursor: t.Any, statement: str, *args: t.Any) -> None:
        sent.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", before)
    try:
        fn()
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", before)
    return sent


def serial_app(url: str, migrations: Path, tables: int) -> tuple[Flask, SQLAlchemy]:
    """``tables`` SERIAL tables in ``public``, as many BIGSERIAL ones in ``other``, an identity."""
    app = Flask(f"serial_app_{tables}")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    db = SQLAlchemy(app)
    for k in range(tables):
        sa.Table(f"p{k}", db.metadata, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("name", sa.String(20)))
        sa.Table(f"o{k}", db.metadata, sa.Column("id", sa.BigInteger, primary_key=True),
                 sa.Column("p_id", sa.Integer, sa.ForeignKey(f"p{k}.id")), schema="other")
    sa.Table("ident", db.metadata, sa.Column("id", sa.Integer, sa.Identity(), primary_key=True))
    from flask_migrate import Migrate

    Migrate(app, db, directory=str(migrations), include_schemas=True)
    return app, db


@pytest.mark.parametrize("tables", [3, 30])
def test_check_asks_for_sequence_owners_once_per_schema(
    postgresql: Database, tmp_path: Path, tables: int
) -> None:
    """Serial columns in two schemas: no diff, and one owner query per schema, whatever the tables.

    (Below 100 tables Alembic reflects table by table, so only the owner
    queries are counted: the other statements grow with the tables anyway.)
    """
    engine = postgresql.engine()
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA other")
    engine.dispose()
    migrations = tmp_path / "migrations"
    app, db = serial_app(postgresql.url, migrations, tables)
    runner = app.test_cli_runner()
    invoke(runner, "db", "init")
    invoke(runner, "db", "migrate", "-m", "serials")
    invoke(runner, "db", "upgrade")
    sent = statements_of(lambda: invoke(runner, "db", "check"))
    with app.app_context():
        db.engine.dispose()
    # Alembic's own method sends one per serial column: 2 * tables
    owner_queries = [s for s in sent if "pg_depend" in s]
    assert len(owner_queries) == 2  # public and other, once each, whatever the tables


# the cases whose defaults Alembic keeps or drops, in two schemas
SEQUENCE_CASES = """
CREATE SCHEMA other;
CREATE TABLE serials (id SERIAL PRIMARY KEY, big BIGSERIAL, small SMALLSERIAL);
CREATE TABLE other.serials (id SERIAL PRIMARY KEY, big BIGSERIAL);
CREATE TABLE idents (id INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY);
CREATE SEQUENCE unowned;
CREATE TABLE uses_unowned (id INTEGER DEFAULT nextval('unowned') PRIMARY KEY);
CREATE SEQUENCE other.shared;
CREATE TABLE uses_other (
    id INTEGER DEFAULT nextval('other.shared') PRIMARY KEY, n BIGINT DEFAULT nextval('other.shared')
);
CREATE TABLE other.owns_shared (id INTEGER PRIMARY KEY, n INTEGER DEFAULT nextval('other.shared'));
ALTER SEQUENCE other.shared OWNED BY other.owns_shared.n;
CREATE TABLE borrows (
    id INTEGER DEFAULT nextval('serials_id_seq') PRIMARY KEY,
    x INTEGER DEFAULT nextval('serials_id_seq')
);
CREATE TABLE "Mixed Case" ("Id" SERIAL PRIMARY KEY, txt TEXT DEFAULT 'nextval(''x''::regclass)');
CREATE TABLE numeric_default (id NUMERIC DEFAULT nextval('unowned') PRIMARY KEY);
"""


def test_sequence_owners_answer_as_alembic_does(postgresql: Database) -> None:
    """For every kind of sequence default, the hook leaves column_info as Alembic's method does."""
    from alembic.ddl.postgresql import PostgresqlImpl
    from alembic.runtime.migration import MigrationContext

    from flask_migrate import _speedups

    engine = postgresql.engine()
    try:
        with engine.begin() as conn:
            for statement in filter(str.strip, SEQUENCE_CASES.split(";")):
                conn.exec_driver_sql(statement)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn)
            assert isinstance(context.impl, PostgresqlImpl)
            alembic_reflect: Callable[..., None] = context.impl.autogen_column_reflect
            ours_context = MigrationContext.configure(conn)
            _speedups.attach(ours_context)
            assert "autogen_column_reflect" in vars(ours_context.impl)
            our_reflect: Callable[..., None] = ours_context.impl.autogen_column_reflect

            results: dict[str, list[tuple[str, dict[str, t.Any], dict[str, t.Any]]]] = (
                collections.defaultdict(list)
            )
            inspector = sa.inspect(conn)
            owner_queries: list[str] = []

            def before(c: t.Any, cursor: t.Any, statement: str, *args: t.Any) -> None:
                if "pg_depend" in statement:
                    owner_queries.append(statement)

            sa.event.listen(conn, "before_cursor_execute", before)

            def on_column(insp: t.Any, table: sa.Table, column_info: dict[str, t.Any]) -> None:
                theirs = dict(column_info)
                alembic_reflect(insp, table, theirs)
                mine = dict(column_info)
                our_reflect(insp, table, mine)
                results[f"{table.schema}.{table.name}"].append((column_info["name"], theirs, mine))

            for schema in (None, "other"):
                metadata = sa.MetaData()
                for name in inspector.get_table_names(schema=schema):
                    table = sa.Table(name, metadata, schema=schema)
                    sa.event.listen(table, "column_reflect", on_column)
                    inspector.reflect_table(table, None)
    finally:
        engine.dispose()

    kept = {}
    for where, columns_ in results.items():
        for name, theirs, mine in columns_:
            assert mine == theirs, (where, name)
            kept[f"{where}.{name}"] = mine.get("default") is not None
    for serial in ("None.serials.id", "None.serials.big", "other.serials.id", "other.serials.big"):
        assert kept[serial] is False
    assert kept["None.Mixed Case.Id"] is False
    assert kept["None.idents.id"] is False  # an identity column has no default
    assert kept["None.serials.small"]  # SMALLSERIAL: Alembic keeps the default
    assert kept["None.uses_unowned.id"]
    assert kept["other.owns_shared.n"] is False  # owned by it
    assert kept["None.borrows.id"] is False  # Alembic compares the column name only
    assert kept["None.borrows.x"]
    # a sequence of another schema, owned by a column named n elsewhere
    assert kept["None.uses_other.id"] and not kept["None.uses_other.n"]
    # Alembic ran one query per serial column; ours ran one per schema, plus
    # Alembic's own for the sequence of another schema than its table's
    ours_queries = [q for q in owner_queries if "coalesce" in q]
    assert len(ours_queries) == 2
