"""Making every revision atomic on SQLite, as it is on PostgreSQL.

pysqlite (Python's ``sqlite3``) sends ``BEGIN`` only before ``INSERT``,
``UPDATE`` and ``DELETE``: DDL runs in autocommit mode, so a revision that fails
half-way leaves its first ``CREATE``/``ALTER`` statements (and batch mode's
``_alembic_tmp_*`` tables) behind. While a migration command runs, this
module sends the ``BEGIN`` itself whenever SQLAlchemy starts a transaction on
one of the application's SQLite engines, so SQLite's own transactional DDL
takes effect and a failing revision rolls back completely.

Batch mode rebuilds a table by copying it and dropping the original. With
``PRAGMA foreign_keys=ON``, dropping a parent table deletes the rows of every
child declared ``ON DELETE CASCADE``. The pragma cannot change inside a
transaction, so it is switched off just before the ``BEGIN`` and back on when
the connection returns to the pool; before each commit,
``PRAGMA foreign_key_check`` makes sure the revision left no dangling
reference, and refuses to commit if it did.
"""

from __future__ import annotations

import contextlib
import threading
import typing as t
from collections.abc import Iterator

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from .errors import MigrateError

if t.TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.engine import Connection


class ForeignKeyViolation(MigrateError):
    """A revision left rows that reference missing rows (SQLite)."""

    def __init__(self, violations: list[tuple[t.Any, ...]]) -> None:
        self.violations = violations
        tables = sorted({str(v[0]) for v in violations})
        super().__init__(
            f"The revision left {len(violations)} row(s) whose foreign keys point "
            f"nowhere (in {', '.join(tables)}); nothing was committed. "
            "Fix the revision's data changes and run the command again."
        )


@contextlib.contextmanager
def atomic_sqlite() -> Iterator[None]:
    """Make transactions on SQLite connections real while the block runs.

    NOTE: the listeners are set on the ``Engine`` and ``Pool`` classes, not on
    the application's engines: ``env.py`` is user code and may migrate with
    any engine it likes, and the multi-database template begins its
    transactions before ``context.configure()`` tells us which connection it
    uses. Only connections used by the thread that runs the command are
    touched, so an application serving requests meanwhile is left alone.
    """
    owner = threading.get_ident()
    # DBAPI connections whose foreign keys we switched off, by id()
    switched_off: dict[int, t.Any] = {}

    def on_begin(conn: Connection) -> None:
        if conn.dialect.name != "sqlite" or threading.get_ident() != owner:
            return
        if conn.exec_driver_sql("PRAGMA foreign_keys").scalar():
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            dbapi_conn = conn.connection.dbapi_connection
            switched_off[id(dbapi_conn)] = dbapi_conn
        conn.exec_driver_sql("BEGIN")

    def on_commit(conn: Connection) -> None:
        if conn.dialect.name != "sqlite" or id(conn.connection.dbapi_connection) not in switched_off:
            return
        violations = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if violations:
            raise ForeignKeyViolation([tuple(v) for v in violations])

    def on_checkin(dbapi_conn: t.Any, record: t.Any) -> None:
        if switched_off.pop(id(dbapi_conn), None) is not None:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute("PRAGMA foreign_keys=ON")
            finally:
                cursor.close()

    listeners: list[tuple[t.Any, str, t.Callable[..., None]]] = [
        (Engine, "begin", on_begin),
        (Engine, "commit", on_commit),
        (Pool, "checkin", on_checkin),
    ]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    try:
        yield
    finally:
        for target, name, fn in listeners:
            event.remove(target, name, fn)
        for dbapi_conn in list(switched_off.values()):  # still checked out: restore now
            with contextlib.suppress(Exception):
                on_checkin(dbapi_conn, None)
        switched_off.clear()
