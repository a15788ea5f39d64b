"""Two slow paths of Alembic, made fast while one of our runs executes.

Both hooks change how much Alembic asks the database, never what it does with
the answers, and both are scoped to the runs of :class:`.runner.Run`: an
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

Private names relied upon (see :mod:`._alembic`): the class
``alembic.operations.batch.BatchOperationsImpl`` and its ``reflect_kwargs``
attribute; that Alembic reads ``impl.autogen_column_reflect`` from the
instance (``DefaultImpl._compat_autogen_column_reflect()`` and
``BatchOperationsImpl.__init__``). SQLAlchemy names used are public:
``Table(resolve_fks=...)``, ``Inspector.info_cache`` and ``Inspector.bind``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
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

#: The migration contexts of our runs whose batch operations skip referred tables.
_contexts: weakref.WeakSet[MigrationContext] = weakref.WeakSet()

_install_lock = threading.Lock()
_users = 0
_original_init: t.Callable[..., None] | None = None


def attach(context: MigrationContext) -> None:
    """Speed up the slow paths of Alembic for ``context``, a context of our run."""
    _contexts.add(context)
    if context.dialect.name == "postgresql" and not context.as_sql:
        _hook_sequence_owners(context.impl)


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
