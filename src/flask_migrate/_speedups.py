"""Slow paths of Alembic, made fast while one of our runs executes.

The hooks change how much Alembic asks the database, never what it does with
the answers, and all are scoped to the runs of :class:`.runner.Run`: an
application that merely imports ``flask_migrate``, or runs Alembic itself,
sees Alembic unchanged.

**SQLite batch mode reflects with** ``resolve_fks=False``. To rebuild a table,
Alembic's batch mode reflects it (``Table(name, MetaData(),
autoload_with=bind, *reflect_args, **reflect_kwargs)``), and SQLAlchemy then
reflects every table it refers to, recursively: every table reachable through
foreign keys, for each table rebuilt (1,206 reflections for 166 rebuilds when
a 500-revision history is downgraded), and on a chain of some 150 foreign keys
a ``RecursionError``. Batch mode has no use for the referred tables: it makes
stub tables for the targets of foreign keys it does not find
(``ApplyBatchImpl._setup_referent``), and the ``REFERENCES`` clauses it emits
name the same tables and columns either way. While :func:`batch_reflection`
is active, each batch operation of a migration context passed to
:func:`attach` gets ``resolve_fks=False`` in its ``reflect_kwargs``, unless
the revision passes its own value, which wins. (The same holds for a table
rebuilt with ``recreate="always"`` on any database.)

NOTE: this is the one hook on a class, because Alembic builds the batch
operation inside ``op.batch_alter_table()`` and offers no per-run object to
hook before it reflects (with ``recreate="always"`` it asks the dialect impl
nothing first). The wrapper is in place only while a run executes (counted,
for runs in several threads) and acts only for the contexts of our runs.

**PostgreSQL autogenerate asks for sequence owners once per schema.**
Alembic's ``PostgresqlImpl.autogen_column_reflect`` runs one ``pg_depend``
query for each integer column whose default is ``nextval(...)``, to drop the
default of SERIAL columns from the comparison (500 of 513 statements of a
``flask db check`` at 500 tables). :func:`attach` replaces that method on the
impl of the run's migration context (an instance attribute: Alembic looks the
hook up on the instance each time it reflects) by one that fetches every
sequence of the table's schema with its owning column in one query, cached in
the reflecting inspector's ``info_cache`` (so it lives as long as the
inspector's other reflection results, and a later inspector sees later
changes), and answers each column from it with Alembic's semantics:

* the default is dropped when the column's name equals the name of the
  column that owns the sequence (Alembic compares the column name only, not
  the table, and so do we);
* a sequence owned by no column leaves the default alone;
* the sequence is matched by the text inside ``nextval('...'::regclass)``,
  which PostgreSQL renders for the session's ``search_path``; the bulk query
  renders its keys the same way (``oid::regclass::text``) on the same
  connection. A name it does not list (a sequence in another schema than the
  table's, a name with a quote in it) or a sequence with more than one owner
  row is handed to Alembic's own method, which then runs its own query.

**SQLite autogenerate reflects from bulk queries.** SQLAlchemy's SQLite
dialect reflects a table with some ten statements (``PRAGMA
main.table_xinfo``, then ``PRAGMA temp.*`` whenever main has no row,
``index_list``, ``index_info`` per index, ``foreign_key_list``, the table's SQL
from ``sqlite_master`` three times, ``has_table`` when it has no index): 5,003
statements for a ``flask db check`` at 500 tables. In autogenerate runs
(``check``, ``migrate``/``revision --autogenerate``, the models check of
``verify``), :func:`attach` replaces ``_get_table_pragma()`` and
``_get_table_sql()`` on the dialect object of the run's connection by methods
that answer from five queries run once, when first asked for: ``sqlite_master``
and ``sqlite_temp_master``, and the table-valued functions
``pragma_table_xinfo``, ``pragma_index_list``, ``pragma_index_info`` and
``pragma_foreign_key_list`` joined to them (``table_info`` is ``table_xinfo``
without the generated columns, numbered as SQLite numbers them). The answers
are what the dialect's methods return, in SQLite's lookup rules:

* names are matched as SQLite matches them, ignoring the case of ASCII
  letters only; main is asked first, then temp, as the dialect does;
* rows are tuples in the pragma's column order (the dialect's rows are
  ``Row`` objects; it reads them by position only);
* anything the bulk data cannot answer exactly goes to the dialect's own
  method: other schemas (attached databases), views, virtual tables,
  SQLite's own ``sqlite_*`` tables, a ``table_xinfo`` of a name that is no
  table (SQLite answers for eponymous virtual tables such as ``json_each``),
  ``index_info`` of a table's name, a missing table (the dialect raises);
* a statement on the connection other than ``SELECT`` or ``PRAGMA`` (DDL) makes
  the next question fetch the data anew; a bulk query that fails leaves every
  question to the dialect.

The query for a partial index's predicate remains, one per partial index. The
dialect object is shared by the application's engine: the replacements answer
only for the run's connection and delegate for any other, and the dialect's
own methods are restored when the last run using it ends. Upgrades and
downgrades keep the dialect's methods (batch mode reflects after DDL).

**The version table's UPDATE is compiled once per run.** Alembic writes
each step's revision with ``UPDATE alembic_version SET version_num='<new>'
WHERE version_num='<old>'``, the ids as literal SQL, so SQLAlchemy compiles it
afresh for every step (0.17-0.36 ms each, and a new entry in the engine's
compiled cache each time, evicting the application's statements).
:func:`attach` wraps ``impl._exec`` of the run's context: a statement of
exactly that shape on the context's version table is sent as the same UPDATE
with bound parameters, compiled once (and prepared by drivers that do so),
with the same row count for Alembic's check. Anything else, and ``--sql``
output, is left as it is. In a run that is one transaction the writes wait
for its end instead (:class:`DeferredVersions`).

Private names relied upon (see :mod:`._alembic`): the class
``alembic.operations.batch.BatchOperationsImpl`` and its ``reflect_kwargs``
attribute; that Alembic reads ``impl.autogen_column_reflect`` from the
instance (``DefaultImpl._compat_autogen_column_reflect()`` and
``BatchOperationsImpl.__init__``); ``MigrationContext._version`` and
``DefaultImpl._exec()``. SQLAlchemy's ``SQLiteDialect._get_table_pragma()`` and
``_get_table_sql()``, and an UPDATE's ``_values`` and ``_where_criteria``.
Other SQLAlchemy names used are public:
``Table(resolve_fks=...)``, ``Inspector.info_cache`` and ``Inspector.bind``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import operator
import re
import string
import threading
import typing as t
import weakref
from collections.abc import Iterator

import sqlalchemy as sa

from . import _alembic

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.engine.reflection import Inspector

# NOTE: Alembic's own logger, so that its "assuming SERIAL" lines read as before
_alembic_log = logging.getLogger("alembic.ddl.postgresql")
log = logging.getLogger("flask_migrate")

#: The migration contexts of our runs whose batch operations skip referred tables.
_contexts: weakref.WeakSet[MigrationContext] = weakref.WeakSet()

_install_lock = threading.Lock()
_users = 0
_original_init: t.Callable[..., None] | None = None


def attach(
    context: MigrationContext, *, autogenerate: bool = False
) -> t.Callable[[], None] | None:
    """Speed up the slow paths of Alembic for ``context``, a context of our run.

    ``autogenerate``: the run only compares (``check``, ``migrate``), so that
    SQLite reflection may answer from bulk queries. Returns what undoes that,
    to call when the run ends, or ``None``.
    """
    _contexts.add(context)
    if not context.as_sql:
        _bind_version_updates(context)
    if context.dialect.name == "postgresql" and not context.as_sql:
        _hook_sequence_owners(context.impl)
    connection = context.connection
    if autogenerate and not context.as_sql and isinstance(connection, sa.Connection):
        return bulk_sqlite_reflection(connection)
    return None


# -- the version table ----------------------------------------------------------------

_QUOTED = re.compile(r"'([^']*)'\Z")


def _bind_version_updates(context: MigrationContext) -> None:
    impl = context.impl
    version = _alembic.version_table_of(context)
    if version is None or "version_num" not in version.c:
        return
    column = version.c.version_num
    bound = (
        version.update()
        .values(version_num=sa.bindparam("fm_to", type_=column.type))
        .where(column == sa.bindparam("fm_from", type_=column.type))
    )
    original = impl._exec

    @functools.wraps(original)
    def _exec(construct: t.Any, *args: t.Any, **kwargs: t.Any) -> t.Any:
        if not args and not kwargs:
            deferred = _deferred.get(context)
            if deferred is not None:
                done = deferred.take(construct)
                if done is not None:
                    return done
            ids = _update_ids(construct, version)
            if ids is not None:
                return original(bound, params={"fm_from": ids[0], "fm_to": ids[1]})
        return original(construct, *args, **kwargs)

    setattr(impl, "_exec", _exec)  # noqa: B010 - an instance attribute, for this run only


#: The contexts whose version-table writes wait for the end of the run.
_deferred: weakref.WeakKeyDictionary[MigrationContext, DeferredVersions] = (
    weakref.WeakKeyDictionary()
)


class _Done:
    """What Alembic's checks read from the result of a version-table write: one row."""

    rowcount = 1


class DeferredVersions:
    """The version table of a run that is one transaction, written once, at its end.

    Alembic writes the version table after every step (an UPDATE, or an
    INSERT and DELETEs at branch points and merges): one round trip per
    revision that nobody else can see, since the run commits as a whole.
    While this object is attached (:func:`defer_version_writes`), those
    writes, in exactly the shapes Alembic sends them, change only the
    ``heads`` it keeps, and :meth:`flush` writes the difference (a DELETE
    and an INSERT at most) before the run commits, or before a step leaves
    the transaction (``autocommit_block()``). A write it cannot account for
    exactly (any other statement on the version table, or one the table
    would refuse, such as an UPDATE of a row it does not hold) flushes first
    and ends the deferral: from then on Alembic's own statements run as sent.

    What a migration reads from the version table during the run is the
    state at the start of the run (or at the last flush); Alembic itself
    keeps the heads in memory and never reads it back mid-run.
    """

    def __init__(self, context: MigrationContext, heads: t.Iterable[str]) -> None:
        # NOTE: by weak reference: this object is the value of a weak-key
        # dictionary keyed on the context, and a strong one would keep every
        # run's context (and all it holds) alive as long as the process
        self._context = weakref.ref(context)
        self.version: sa.Table = _alembic.version_table_of(context)
        #: what the version table holds, and what it will hold
        self.written = set(heads)
        self.heads = set(self.written)
        self.active = True

    def take(self, construct: t.Any) -> _Done | None:
        """Account for ``construct`` if it is Alembic's write of the version table."""
        if not self.active or not isinstance(construct, (sa.Insert, sa.Update, sa.Delete)):
            return None
        if construct.table is not self.version:
            return None
        change = _version_change(construct, self.version)
        if change is not None:
            kind, old, new = change
            if kind == "insert" and new is not None and new not in self.heads:
                self.heads.add(new)
                return _Done()
            if kind == "delete" and old in self.heads:
                self.heads.remove(old)
                return _Done()
            if kind == "update" and old in self.heads and new is not None and new not in self.heads:
                self.heads.remove(old)
                self.heads.add(new)
                return _Done()
        # anything else: the table as it should be, then the statement as sent
        self.flush()
        self.active = False
        return None

    def flush(self) -> None:
        """Write the version table's rows as the steps so far left them."""
        if self.heads == self.written:
            return
        context = self._context()
        assert context is not None and context.connection is not None
        connection = context.connection
        gone = sorted(self.written - self.heads)
        new = sorted(self.heads - self.written)
        column = self.version.c.version_num
        if gone:
            connection.execute(self.version.delete().where(column.in_(gone)))
        if new:
            connection.execute(self.version.insert(), [{"version_num": rev} for rev in new])
        self.written = set(self.heads)


def defer_version_writes(context: MigrationContext, heads: t.Iterable[str]) -> DeferredVersions | None:
    """Write ``context``'s version table once per run (see :class:`DeferredVersions`).

    Only for a run that is one transaction; ``heads`` is what the table holds now.
    """
    if context.as_sql or _alembic.version_table_of(context) is None:
        return None
    deferred = DeferredVersions(context, heads)
    _deferred[context] = deferred
    return deferred


def _version_change(construct: t.Any, version: sa.Table) -> tuple[str, str | None, str | None] | None:
    """("insert" | "delete" | "update", old, new) of Alembic's version-table writes."""
    if isinstance(construct, sa.Update):
        ids = _update_ids(construct, version)
        return None if ids is None else ("update", ids[0], ids[1])
    if isinstance(construct, sa.Insert):
        values = getattr(construct, "_values", None)
        if not values or len(values) != 1 or getattr(construct, "_multi_values", None):
            return None
        (key, new), = values.items()
        if key not in ("version_num", version.c.version_num):
            return None
        new_id = _literal_id(new)
        return None if new_id is None else ("insert", None, new_id)
    if isinstance(construct, sa.Delete):
        old_id = _where_id(construct, version)
        return None if old_id is None else ("delete", old_id, None)
    return None


def _where_id(construct: t.Any, version: sa.Table) -> str | None:
    criteria: tuple[t.Any, ...] = tuple(getattr(construct, "_where_criteria", ()))
    if len(criteria) != 1:
        return None
    where = criteria[0]
    if (
        not isinstance(where, sa.BinaryExpression)
        or where.operator is not operator.eq
        or where.left is not version.c.version_num
    ):
        return None
    return _literal_id(where.right)


def _update_ids(construct: t.Any, version: sa.Table) -> tuple[str, str] | None:
    """(old, new) of Alembic's version UPDATE in ``construct``, or ``None`` for anything else."""
    if not isinstance(construct, sa.Update) or construct.table is not version:
        return None
    values = getattr(construct, "_values", None)
    criteria: tuple[t.Any, ...] = tuple(getattr(construct, "_where_criteria", ()))
    if not values or len(values) != 1 or len(criteria) != 1:
        return None
    (key, new), = values.items()
    if key not in ("version_num", version.c.version_num):
        return None
    old_id, new_id = _where_id(construct, version), _literal_id(new)
    if old_id is None or new_id is None:
        return None
    return old_id, new_id


def _literal_id(element: t.Any) -> str | None:
    if not isinstance(element, sa.ColumnClause) or not element.is_literal:
        return None
    match = _QUOTED.match(element.name)
    return match.group(1) if match else None


# -- SQLite batch mode -------------------------------------------------------------


@contextlib.contextmanager
def batch_reflection() -> Iterator[None]:
    """While the block runs, batch operations of attached contexts skip referred tables."""
    global _users, _original_init
    cls = _alembic.batch_operations_impl()
    with _install_lock:
        if _users == 0:
            _original_init = original = cls.__init__

            @functools.wraps(original)
            def __init__(self: t.Any, operations: t.Any, *args: t.Any, **kwargs: t.Any) -> None:
                original(self, operations, *args, **kwargs)
                if getattr(operations, "migration_context", None) in _contexts:
                    # explicit values of the revision win
                    self.reflect_kwargs.setdefault("resolve_fks", False)

            cls.__init__ = __init__
        _users += 1
    try:
        yield
    finally:
        with _install_lock:
            _users -= 1
            if _users == 0 and _original_init is not None:
                cls.__init__ = _original_init
                _original_init = None


# -- PostgreSQL sequence owners ----------------------------------------------------

# NOTE: the joins and their conditions are those of Alembic's per-column query
# (alembic/ddl/postgresql.py), for every sequence of one schema at once
_SEQUENCE_OWNERS = sa.text(
    "select c.oid::regclass::text, c.relname, o.attname "
    "from pg_class as c "
    "join pg_namespace as n on n.oid = c.relnamespace "
    "left join ("
    "select d.objid, a.attname "
    "from pg_depend d "
    "join pg_class t on t.oid = d.refobjid "
    "join pg_attribute a on a.attrelid = t.oid and a.attnum = d.refobjsubid "
    "where d.classid = 'pg_class'::regclass and d.refclassid = 'pg_class'::regclass"
    ") as o on o.objid = c.oid "
    "where c.relkind = 'S' and n.nspname = coalesce(:schema, current_schema())"
)

_NEXTVAL = re.compile(r"nextval\('(.+?)'::regclass\)")

#: A sequence with more than one owner row: Alembic's query decides.
_AMBIGUOUS = object()


def _hook_sequence_owners(impl: t.Any) -> None:
    from alembic.ddl.postgresql import PostgresqlImpl
    from sqlalchemy.dialects.postgresql import BIGINT, INTEGER

    if not isinstance(impl, PostgresqlImpl) or (
        type(impl).autogen_column_reflect is not PostgresqlImpl.autogen_column_reflect
    ):
        return  # an impl of the application's own: its hook is its business
    original: t.Callable[..., None] = impl.autogen_column_reflect

    def autogen_column_reflect(inspector: Inspector, table: sa.Table, column_info: t.Any) -> None:
        default = column_info.get("default")
        if not default or not isinstance(column_info["type"], (INTEGER, BIGINT)):
            return  # Alembic's method does nothing either
        match = _NEXTVAL.match(default)
        if not match:
            return
        owners = _sequence_owners(inspector, table.schema)
        owner = owners.get(match.group(1)) if owners is not None else None
        if owner is None or owner is _AMBIGUOUS:
            original(inspector, table, column_info)
            return
        seqname, colname = t.cast("tuple[str, str | None]", owner)
        if colname is not None and colname == column_info["name"]:
            _alembic_log.info(
                "Detected sequence named '%s' as owned by integer column '%s(%s)', "
                "assuming SERIAL and omitting",
                seqname, table.name, colname,
            )
            del column_info["default"]

    setattr(impl, "autogen_column_reflect", autogen_column_reflect)  # noqa: B010


def _sequence_owners(inspector: Inspector, schema: str | None) -> dict[str, object] | None:
    """Sequence (as ``regclass`` text) -> (name, owner column or ``None``), per inspector."""
    bind = inspector.bind
    if not isinstance(bind, sa.Connection):
        return None  # each query would run on another session: leave it to Alembic
    key = ("flask_migrate.sequence_owners", schema)
    cached: dict[str, object] | None = inspector.info_cache.get(key)
    if cached is None:
        found: dict[str, tuple[str, list[str]]] = {}
        for regclass, seqname, colname in bind.execute(_SEQUENCE_OWNERS, {"schema": schema}):
            owners = found.setdefault(regclass, (seqname, []))[1]
            if colname is not None:
                owners.append(colname)
        cached = {
            regclass: (seqname, owners[0] if owners else None) if len(owners) <= 1 else _AMBIGUOUS
            for regclass, (seqname, owners) in found.items()
        }
        inspector.info_cache[key] = cached
    return cached


# -- SQLite autogenerate reflection ---------------------------------------------------

# NOTE: SQLite looks names of tables and indexes up case-insensitively, for
# ASCII letters only (sqlite3StrICmp); str.lower() would fold more than that
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

#: The pragmas SQLAlchemy's SQLite dialect reads through ``_get_table_pragma()``.
_PRAGMAS = frozenset({"table_xinfo", "table_info", "index_list", "index_info", "foreign_key_list"})

#: The tables the bulk queries cover: not SQLite's own (the pragmas answer for
#: ``sqlite_master`` too, which it does not list), not virtual (their pragmas
#: need the module, and may fail), not views (a view of a dropped table fails).
_COVERED = (
    "m.type = 'table' AND m.name NOT LIKE 'sqlite~_%' ESCAPE '~' "
    "AND m.sql NOT LIKE 'CREATE VIRTUAL %'"
)


def _bulk(select: str, joins: str) -> str:
    """``select`` over the covered tables of main and of temp, each joined to its ``joins``."""
    return " UNION ALL ".join(
        f"SELECT '{schema}', {select} FROM {schema}.{master} AS m, "
        + joins.format(schema=f"'{schema}'")
        + f" WHERE {_COVERED}"
        for schema, master in (("main", "sqlite_master"), ("temp", "sqlite_temp_master"))
    )


_OBJECTS = (
    "SELECT 'main', type, name, sql FROM main.sqlite_master UNION ALL "
    "SELECT 'temp', type, name, sql FROM temp.sqlite_temp_master"
)
_TABLE_XINFO = _bulk("m.name, p.*", "pragma_table_xinfo(m.name, {schema}) AS p")
_INDEX_LIST = _bulk("m.name, p.*", "pragma_index_list(m.name, {schema}) AS p")
_INDEX_INFO = _bulk(
    "l.name, p.*",
    "pragma_index_list(m.name, {schema}) AS l, pragma_index_info(l.name, {schema}) AS p",
)
_FOREIGN_KEY_LIST = _bulk("m.name, p.*", "pragma_foreign_key_list(m.name, {schema}) AS p")

Rows = list[tuple[t.Any, ...]]


class _Catalog:
    """The pragmas of every covered table of main and temp, from five queries.

    Each answer is what ``PRAGMA <schema>.<pragma>(<name>)`` returns, as
    tuples in the pragma's column order; ``None`` means "ask SQLite".
    """

    def __init__(self, connection: sa.Connection) -> None:
        def rows(sql: str) -> t.Iterator[tuple[t.Any, ...]]:
            return iter(connection.exec_driver_sql(sql).fetchall())

        #: (schema, folded name) of every object of sqlite_master, and of those
        #: whose folded name is not unique there (a damaged schema: ask SQLite)
        self.names: set[tuple[str, str]] = set()
        clashes: set[tuple[str, str]] = set()
        #: CREATE statement of each table and view, by exact name, main's first
        self.sql: dict[str, str] = {}
        for schema, type_, name, sql in rows(_OBJECTS):
            key = (schema, _fold(name))
            if key in self.names:
                clashes.add(key)
            self.names.add(key)
            if type_ in ("table", "view") and sql is not None:
                self.sql.setdefault(name, sql)
        self.tables: dict[tuple[str, str], dict[str, Rows]] = {}

        def of(schema: str, table: str) -> dict[str, Rows]:
            return self.tables.setdefault((schema, _fold(table)), {
                "table_xinfo": [], "table_info": [], "index_list": [], "foreign_key_list": [],
            })

        for schema, table, *row in rows(_TABLE_XINFO):
            pragmas = of(schema, table)
            pragmas["table_xinfo"].append(tuple(row))
            if row[6] == 0:
                # NOTE: table_info is table_xinfo without the hidden and
                # generated columns, numbered without them (SQLite's pragma.c)
                pragmas["table_info"].append((len(pragmas["table_info"]), *row[1:6]))
        self.indexes: dict[tuple[str, str], Rows] = {}
        for schema, table, *row in rows(_INDEX_LIST):
            of(schema, table)["index_list"].append(tuple(row))
            self.indexes[schema, _fold(row[1])] = []
        for schema, index, *row in rows(_INDEX_INFO):
            self.indexes.setdefault((schema, _fold(index)), []).append(tuple(row))
        for schema, table, *row in rows(_FOREIGN_KEY_LIST):
            of(schema, table)["foreign_key_list"].append(tuple(row))
        for key in clashes:
            self.tables.pop(key, None)
            self.indexes.pop(key, None)

    def pragma(self, pragma: str, name: str, schema: str | None) -> Rows | None:
        """``_get_table_pragma()``: main's rows, else temp's, unless a schema is named."""
        if pragma not in _PRAGMAS:
            return None
        if schema is None:
            schemas: tuple[str, ...] = ("main", "temp")
        elif schema in ("main", "temp"):
            schemas = (schema,)
        else:
            return None  # an attached database
        key = _fold(name)
        for schema_ in schemas:
            rows = self._rows(pragma, schema_, key)
            if rows is None:
                return None
            if rows:
                return list(rows)  # a copy: the dialect's callers own their list
        return []

    def _rows(self, pragma: str, schema: str, key: str) -> Rows | None:
        reserved = key.startswith("sqlite_")
        if pragma == "index_info":
            rows = self.indexes.get((schema, key))
            if rows is not None:
                return rows
            # index_info of a WITHOUT ROWID table lists its primary key
            return None if reserved or (schema, key) in self.names else []
        pragmas = self.tables.get((schema, key))
        if pragmas is not None:
            return pragmas[pragma]
        if reserved or (schema, key) in self.names or pragma in ("table_xinfo", "table_info"):
            # NOTE: table_info also knows eponymous virtual tables
            # (json_each, pragma_*, those of loaded extensions) by name
            return None
        return []  # no such table: it has no index and no foreign key


def _fold(name: str) -> str:
    return name.translate(_ASCII_LOWER)


class _BulkReflection:
    """The bulk answers for one connection, fetched when first asked for.

    Any statement on the connection other than a ``SELECT`` or ``PRAGMA``
    may change the schema: the answers are then fetched anew.
    """

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        self.catalog: _Catalog | None = None
        self.unavailable = False
        sa.event.listen(connection, "before_cursor_execute", self._on_statement)

    def _on_statement(self, conn: t.Any, cursor: t.Any, statement: str, *args: t.Any) -> None:
        if not _READS.match(statement):
            self.catalog = None

    def get(self) -> _Catalog | None:
        if self.catalog is None and not self.unavailable:
            try:
                self.catalog = _Catalog(self.connection)
            except sa.exc.DBAPIError as exc:
                # SQLAlchemy's own queries then run, and fail or not as always
                log.debug("SQLite reflection falls back to one query per table: %s", exc)
                self.unavailable = True
        return self.catalog

    def close(self) -> None:
        with contextlib.suppress(Exception):
            sa.event.remove(self.connection, "before_cursor_execute", self._on_statement)


_READS = re.compile(r"\s*(?:SELECT|PRAGMA)\b", re.IGNORECASE)


class _DialectHook:
    """``_get_table_pragma()`` and ``_get_table_sql()`` of one dialect object, replaced.

    The replacements answer for the connections of our runs and delegate
    every other call to the dialect's own methods, which they restore when
    the last run on this dialect ends.
    """

    NAMES = ("_get_table_pragma", "_get_table_sql")

    def __init__(self, dialect: t.Any) -> None:
        self.dialect = dialect
        #: id(connection) -> its answers, while a run uses the connection
        self.runs: dict[int, _BulkReflection] = {}
        self.saved = {name: vars(dialect).get(name, _MISSING) for name in self.NAMES}
        original_pragma = dialect._get_table_pragma
        original_sql = dialect._get_table_sql

        def _get_table_pragma(
            connection: t.Any, pragma: str, table_name: str, schema: str | None = None
        ) -> t.Any:
            catalog = self._catalog(connection)
            if catalog is not None:
                rows = catalog.pragma(pragma, table_name, schema)
                if rows is not None:
                    return rows
            return original_pragma(connection, pragma, table_name, schema)

        def _get_table_sql(
            connection: t.Any, table_name: str, schema: str | None = None, **kw: t.Any
        ) -> t.Any:
            catalog = self._catalog(connection)
            if catalog is not None and schema is None:
                sql = catalog.sql.get(table_name)
                if sql is not None:
                    return sql
            # a missing table: the dialect raises NoSuchTableError, or knows it
            return original_sql(connection, table_name, schema, **kw)

        self.hooks = {"_get_table_pragma": _get_table_pragma, "_get_table_sql": _get_table_sql}
        for name, hook in self.hooks.items():
            setattr(dialect, name, hook)

    def _catalog(self, connection: t.Any) -> _Catalog | None:
        bulk = self.runs.get(id(connection))
        if bulk is None or bulk.connection is not connection:
            return None
        return bulk.get()

    def restore(self) -> None:
        for name, saved in self.saved.items():
            if vars(self.dialect).get(name) is not self.hooks[name]:
                continue  # replaced since by someone else: theirs stays
            if saved is _MISSING:
                delattr(self.dialect, name)
            else:
                setattr(self.dialect, name, saved)


_MISSING = object()
_dialect_hooks: dict[int, _DialectHook] = {}


def bulk_sqlite_reflection(connection: sa.Connection) -> t.Callable[[], None] | None:
    """Let SQLite reflection on ``connection`` answer from bulk queries; returns the undo.

    ``None`` where it does not apply: another database, a dialect whose
    reflection is not SQLAlchemy's own, or SQLite before 3.31 (SQLAlchemy
    reads ``table_info`` there, and reads it differently).
    """
    from sqlalchemy.dialects.sqlite.base import SQLiteDialect

    dialect = connection.dialect
    if (
        not isinstance(dialect, SQLiteDialect)
        or (dialect.server_version_info or (0,)) < (3, 31)
        or any(
            getattr(SQLiteDialect, name, None) is None
            or getattr(type(dialect), name, None) is not getattr(SQLiteDialect, name)
            for name in _DialectHook.NAMES
        )
    ):
        return None
    bulk = _BulkReflection(connection)
    with _install_lock:
        hook = _dialect_hooks.get(id(dialect))
        if hook is None:
            hook = _dialect_hooks[id(dialect)] = _DialectHook(dialect)
        hook.runs[id(connection)] = bulk

    def release() -> None:
        bulk.close()
        with _install_lock:
            if hook.runs.get(id(connection)) is bulk:
                del hook.runs[id(connection)]
            if not hook.runs and _dialect_hooks.get(id(dialect)) is hook:
                hook.restore()
                del _dialect_hooks[id(dialect)]

    return release
