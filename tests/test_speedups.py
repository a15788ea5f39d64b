"""Alembic's slow paths, made fast during our runs only (``flask_migrate._speedups``).

* SQLite batch mode reflects only the table it rebuilds, not every table
  reachable through its foreign keys: a table at the end of a 300-table chain
  can be altered (plain Alembic dies with ``RecursionError``), rows and
  foreign keys survive, and ``ON DELETE CASCADE`` children keep their rows.
* PostgreSQL autogenerate asks for the owners of sequences once per schema,
  not once per serial column, with Alembic's semantics.
* SQLite autogenerate reflects from five bulk queries instead of some ten
  statements per table, and every reflected result is SQLAlchemy's own.

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


# -- SQLite autogenerate reflection ---------------------------------------------------

# every shape of table the dialect's reflection reads differently
VARIED_SCHEMA = '''
CREATE TABLE parent (
    a INTEGER NOT NULL, b VARCHAR(20) NOT NULL, label TEXT DEFAULT 'x',
    CONSTRAINT pk_parent PRIMARY KEY (a, b)
);
CREATE TABLE "Mixed Case" (
    "Id" INTEGER PRIMARY KEY AUTOINCREMENT, "Some Name" VARCHAR(30) UNIQUE,
    CONSTRAINT "uq two" UNIQUE ("Id", "Some Name")
);
CREATE TABLE child (
    id INTEGER PRIMARY KEY,
    pa INTEGER, pb VARCHAR(20),
    mixed_id INTEGER REFERENCES "Mixed Case" ("Id")
        ON DELETE SET NULL ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED,
    qty INTEGER CHECK (qty > 0),
    price NUMERIC(10, 2) NOT NULL DEFAULT 0,
    total NUMERIC GENERATED ALWAYS AS (qty * price) VIRTUAL,
    doubled NUMERIC GENERATED ALWAYS AS (qty * price * 2) STORED,
    code TEXT,
    CONSTRAINT fk_parent FOREIGN KEY (pa, pb) REFERENCES parent (a, b) ON DELETE CASCADE,
    CONSTRAINT ck_code CHECK (length(code) < 10),
    UNIQUE (pa, code)
);
CREATE INDEX ix_child_partial ON child (code) WHERE qty > 10;
CREATE UNIQUE INDEX "ix Unique Mixed" ON child (pa, pb);
CREATE INDEX ix_child_expr ON child (lower(code));
CREATE TABLE kv (k TEXT, v TEXT, PRIMARY KEY (k)) WITHOUT ROWID;
CREATE TABLE bare (x INTEGER, y TEXT);
CREATE TABLE refs (
    id INTEGER PRIMARY KEY, gone_id INTEGER REFERENCES gone (id), kv_k TEXT REFERENCES kv
);
CREATE TABLE "odd ""quoted"" name" ("col ""q""" INTEGER);
CREATE TABLE "Été" (a INTEGER);
CREATE TABLE "été" (b INTEGER);
CREATE VIEW child_view AS SELECT id, code FROM child;
CREATE VIRTUAL TABLE docs USING fts5(body)
'''

# on the connection only: temp tables (one named like a main table, with an
# index that main's lacks) and an attached database
CONNECTION_SCHEMA = """
CREATE TEMP TABLE scratch (id INTEGER PRIMARY KEY, note TEXT UNIQUE);
CREATE TEMP TABLE "Bare" (z INTEGER UNIQUE);
CREATE TEMP VIEW scratch_view AS SELECT id FROM scratch;
CREATE TABLE other.elsewhere (id INTEGER PRIMARY KEY, n INTEGER UNIQUE)
"""

INSPECTOR_METHODS = [
    "get_columns", "get_pk_constraint", "get_foreign_keys", "get_indexes",
    "get_unique_constraints", "get_check_constraints", "get_table_options", "has_table",
]


def plain(value: t.Any) -> t.Any:
    """Reflection results as comparable values (types and SQL expressions have no ``==``)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, sa.Row)):
        return [plain(v) for v in value]
    if isinstance(value, sa.types.TypeEngine):
        return repr(value)
    if isinstance(value, sa.sql.ClauseElement):
        return str(value)
    return value


def run_script(conn: sa.Connection, script: str) -> None:
    for statement in filter(str.strip, script.split(";")):
        conn.exec_driver_sql(statement)


def everything_reflected(conn: sa.Connection) -> list[t.Any]:
    """Every Inspector.get_* result, and every pragma and table SQL, for every name."""
    import warnings

    dialect = conn.dialect
    inspector = sa.inspect(conn)
    found: list[t.Any] = []

    def record(what: tuple[t.Any, ...], call: Callable[[], t.Any]) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = plain(call())
            except Exception as exc:  # noqa: BLE001 - errors must be the same too
                result = (type(exc).__name__, str(exc))
        # SQLAlchemy's warnings only: a ResourceWarning for a connection an
        # earlier test left to the garbage collector can land in any record
        said = [str(w.message) for w in caught if issubclass(w.category, sa.exc.SAWarning)]
        found.append((what, result, said))

    names: set[str] = {"missing", "gone", "sqlite_master", "sqlite_sequence", "json_each",
                       "pragma_table_info", "sqlite_autoindex_kv_1", "sqlite_autoindex_child_1"}
    for schema in (None, "main", "temp", "other"):
        for kind in ("get_table_names", "get_view_names"):
            record((kind, schema), lambda: getattr(inspector, kind)(schema=schema))
            names.update(getattr(inspector, kind)(schema=schema))
    names.update(inspector.get_temp_table_names() + inspector.get_temp_view_names())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sa.exc.SAWarning)  # the expression index
        names.update(ix["name"] for n in ["child", "kv", "scratch"] for ix in
                     inspector.get_indexes(n, include_auto_indexes=True) if ix["name"])
    names.update([name.upper() for name in names] + [name.lower() for name in names])
    for schema in (None, "main", "temp", "other"):
        for name in sorted(names):
            for method in INSPECTOR_METHODS:
                record((method, name, schema),
                       lambda: getattr(inspector, method)(name, schema=schema))
            for pragma in ("table_xinfo", "table_info", "index_list", "index_info",
                           "foreign_key_list"):
                record((pragma, name, schema),
                       lambda: dialect._get_table_pragma(conn, pragma, name, schema=schema))
            record(("sql", name, schema), lambda: dialect._get_table_sql(conn, name, schema))
    for multi in ("get_multi_columns", "get_multi_indexes", "get_multi_foreign_keys",
                  "get_multi_pk_constraint", "get_multi_unique_constraints",
                  "get_multi_check_constraints"):
        record((multi,), lambda: sorted(getattr(inspector, multi)().items(), key=str))
    return found


@pytest.fixture
def varied_sqlite(tmp_path: Path) -> Iterator[sa.Connection]:
    """A connection to a SQLite file with every kind of table, temp tables, an attached database."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'varied.db'}")
    with engine.begin() as conn:
        run_script(conn, VARIED_SCHEMA)
    with engine.connect() as conn:
        conn.exec_driver_sql(f"ATTACH DATABASE '{tmp_path / 'other.db'}' AS other")
        run_script(conn, CONNECTION_SCHEMA)
        yield conn
    engine.dispose()


def test_bulk_sqlite_reflection_answers_as_sqlalchemy_does(varied_sqlite: sa.Connection) -> None:
    """Every Inspector.get_*, pragma and table SQL is the same with the bulk answers, warnings too."""
    from flask_migrate import _speedups

    conn = varied_sqlite
    dialect = conn.dialect
    theirs = everything_reflected(conn)
    release = _speedups.bulk_sqlite_reflection(conn)
    assert release is not None
    ours: list[t.Any] = []
    try:
        sent = statements_of(lambda: ours.extend(everything_reflected(conn)))
    finally:
        release()
    assert "_get_table_pragma" not in vars(dialect) and "_get_table_sql" not in vars(dialect)
    assert len(ours) == len(theirs) > 3000
    for mine, expected in zip(ours, theirs):
        assert mine == expected
    # the results cover what matters: an expression index warned and was skipped, ...
    indexes = {w[0]: w for w in theirs}[("get_indexes", "child", None)]
    assert [ix["name"] for ix in indexes[1]] == ["ix Unique Mixed", "ix_child_partial"]
    assert indexes[2] == ["Skipped unsupported reflection of expression-based index ix_child_expr"]
    # ... and the covered tables of main and temp were answered from the bulk queries
    # (index_info of a table's name is left to SQLite: it lists the primary key
    # of a WITHOUT ROWID table)
    asked = " ".join(
        s for s in sent
        if s.startswith(("PRAGMA main.", "PRAGMA temp.")) and "index_info(" not in s
    )
    for covered in ('"child"', '"Mixed Case"', '"kv"', '"bare"', '"BARE"',
                    'index_list("scratch")', 'foreign_key_list("scratch")'):
        assert covered not in asked
    assert 'PRAGMA main.index_info("ix_child_partial")' not in sent


def numbered_tables(db: SQLAlchemy, n: int) -> None:
    """``n`` models, each with an index, a unique constraint and a key to the one before."""
    for k in range(n):
        parent = [sa.Column("parent_id", sa.ForeignKey(f"n{k - 1}.id"))] if k else []
        sa.Table(f"n{k}", db.metadata, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("name", sa.String(20), index=True), sa.Column("code", sa.String(5)),
                 *parent, sa.UniqueConstraint("code"))


@pytest.mark.parametrize("tables", [3, 40])
def test_sqlite_check_sends_as_many_statements_for_3_or_40_tables(
    tmp_path: Path, tables: int
) -> None:
    """``flask db check`` reflects from bulk queries: its statements do not grow with the tables.

    The dialect is patched during the check only: not in the upgrade before
    (a revision asserts it), not after.
    """
    migrations = tmp_path / "migrations"
    patched: list[bool] = []

    def include_object(obj: t.Any, name: t.Any, type_: str, reflected: bool, compare_to: t.Any) -> bool:
        with app.app_context():
            patched.append("_get_table_pragma" in vars(db.engine.dialect))
        return True

    app, db, _ = create_app(f"sqlite:///{tmp_path / 'app.db'}", migrations, models="none",
                            include_object=include_object)
    numbered_tables(db, tables)
    runner = app.test_cli_runner()
    invoke(runner, "db", "init")
    invoke(runner, "db", "migrate", "-m", "tables")
    write_revision(migrations / "versions", "unpatched", None,
                   "assert '_get_table_pragma' not in vars(op.get_bind().dialect)",
                   message="unpatched")
    invoke(runner, "db", "upgrade", "heads")
    patched.clear()
    sent = statements_of(lambda: invoke(runner, "db", "check"))
    with app.app_context():
        assert "_get_table_pragma" not in vars(db.engine.dialect)
        db.engine.dispose()
    assert patched and all(patched)
    assert not [s for s in sent if s.startswith("PRAGMA")]
    assert len(sent) == 7, sent  # five bulk queries, the version table, the table names


def test_sqlite_check_and_migrate_find_the_same_diffs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the varied schema, autogenerate finds the same diffs and writes the same revision
    with the bulk answers as without them."""
    import warnings

    from flask_migrate import _speedups, runner as runner_module

    migrations = tmp_path / "migrations"
    url = f"sqlite:///{tmp_path / 'app.db'}"
    app, db, _ = create_app(url, migrations, models="none")
    with app.app_context(), db.engine.begin() as conn, warnings.catch_warnings():
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        run_script(conn, VARIED_SCHEMA)
        db.metadata.reflect(conn, resolve_fks=False)
    # the models differ from the database in a few ways
    sa.Table("gone", db.metadata, sa.Column("id", sa.Integer, primary_key=True))
    db.metadata.remove(db.metadata.tables["bare"])
    sa.Table("new_table", db.metadata, sa.Column("id", sa.Integer, primary_key=True))
    db.metadata.tables["kv"].append_column(sa.Column("added", sa.Integer))
    child = db.metadata.tables["child"]
    child.indexes.discard(next(ix for ix in child.indexes if ix.name == "ix_child_partial"))
    sa.Index("ix_refs_gone", db.metadata.tables["refs"].c.gone_id)
    runner = app.test_cli_runner()
    invoke(runner, "db", "init")

    def outcome() -> tuple[list[str], str, str, int]:
        with app.app_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            config = runner_module.get_config(str(migrations))
            diffs = runner_module.autogenerate_diffs(config, runner_module.load_scripts(config))
            check = runner.invoke(args=["db", "check"])
            sent = statements_of(lambda: invoke(runner, "db", "migrate", "-m", "diffs"))
        (written,) = (migrations / "versions").glob("*.py")
        source = written.read_text()
        written.unlink()
        body = source[source.index("def upgrade"):]
        return [repr(d) for d in diffs], check.output, body, len(sent)

    ours = outcome()
    monkeypatch.setattr(_speedups, "bulk_sqlite_reflection", lambda connection: None)
    theirs = outcome()
    with app.app_context():
        db.engine.dispose()
    assert ours[:3] == theirs[:3]
    assert len(ours[0]) >= 5 and "New upgrade operations detected" in ours[1]
    assert ours[3] < theirs[3]


# -- the version table's UPDATE ---------------------------------------------------------


def test_version_table_writes(database: Database, tmp_path: Path) -> None:
    """Branches, a merge, downgrades, stamp: the version table is right, written cheaply.

    Where a run is one transaction (SQLite, PostgreSQL) its writes are deferred
    to its end (two statements at most, whatever the number of steps); on
    MariaDB every step's UPDATE is sent with bound parameters.
    """
    from flask_migrate import operations

    migrations = tmp_path / "migrations"
    app, db, _ = create_app(database.url, migrations, models="none")
    sent: list[tuple[str, object]] = []

    def seen(conn: object, cursor: object, statement: str, params: object, *args: object) -> None:
        words = statement.split()
        if words and words[0].upper() in ("INSERT", "UPDATE", "DELETE") and "alembic_version" in statement:
            sent.append((statement, params))

    def writes(call: Callable[[], object]) -> list[tuple[str, object]]:
        sent.clear()
        call()
        return list(sent)

    with app.app_context():
        operations.init()
        versions = migrations / "versions"
        for i in range(6):
            write_revision(versions, f"s{i}", f"s{i - 1}" if i else None)
        write_revision(versions, "b1", "s5")
        write_revision(versions, "c1", "b1")
        write_revision(versions, "b2", "s5")
        write_revision(versions, "m1", ("b2", "c1"))  # type: ignore[arg-type]
        sa.event.listen(sa.Engine, "before_cursor_execute", seen)
        try:
            linear = writes(lambda: operations.upgrade(revision="c1"))
            assert database.versions() == {"c1"}
            branch = writes(lambda: operations.upgrade(revision="b2"))
            assert database.versions() == {"c1", "b2"}
            merge = writes(lambda: operations.upgrade())
            assert database.versions() == {"m1"}
            unmerge = writes(lambda: operations.downgrade(revision="b1"))
            assert database.versions() == {"b1", "b2"}
            writes(lambda: operations.downgrade(revision="base"))
            assert database.versions() == set()
            writes(lambda: operations.stamp(revision="c1"))
            assert database.versions() == {"c1"}
        finally:
            sa.event.remove(sa.Engine, "before_cursor_execute", seen)
        db.engine.dispose()
    for statement, _ in linear + branch + merge + unmerge:
        if statement.lstrip().upper().startswith("UPDATE"):
            assert "'" not in statement, statement  # no literal ids: bound parameters
    if database.backend == "mariadb":
        assert len(linear) == 8  # an INSERT, then one UPDATE per step
    else:
        assert len(linear) == 1  # eight steps, one INSERT at the end
        assert all(len(run) <= 2 for run in (branch, merge, unmerge))


def test_version_updates_keep_literals_in_sql_output(tmp_path: Path) -> None:
    from flask_migrate import operations

    migrations = tmp_path / "migrations"
    app, db, _ = create_app(f"sqlite:///{tmp_path / 'app.db'}", migrations, models="none")
    with app.app_context():
        operations.init()
        versions = migrations / "versions"
        write_revision(versions, "a1", None)
        write_revision(versions, "b1", "a1")
        runner_ = app.test_cli_runner()
        result = runner_.invoke(args=["db", "upgrade", "--sql"])
        db.engine.dispose()
    assert result.exit_code == 0, result.output
    assert "UPDATE alembic_version SET version_num='b1' WHERE alembic_version.version_num = 'a1'" in result.output
