"""Lock time-outs for DDL: never queue the whole application behind a migration.

A DDL statement that waits for a table lock behind one long transaction holds
its place in the lock queue, and every later query on that table queues
behind it: the application stops while the migration waits. So while
``upgrade``, ``downgrade`` and ``stamp`` run, the connection ``env.py``
migrates with gives up on a lock after a while:

* PostgreSQL: ``lock_timeout`` (default 10 s). A statement that gives up
  fails with SQLSTATE 55P03, and what it was part of rolls back: the whole run
  in the default one-transaction mode, the revision with
  ``transaction_per_migration``. The command is then run again, after a pause
  that doubles each time, up to a number of retries (default 3): Alembic
  starts again from what the version table says, so nothing committed runs
  twice. A revision that had left its transaction (an ``autocommit_block()``)
  before the time-out is never retried: what ran in the block committed.
* MariaDB/MySQL: ``lock_wait_timeout`` (whole seconds). DDL commits itself
  there, so nothing is retried; the journal's half-applied detection covers
  what happened.

The previous values are put back when ``env.py`` returns the connection to
its pool. When all attempts fail, :class:`DDLLockTimeout` names the revision,
the table and who holds the lock.
"""

from __future__ import annotations

import math
import re
import typing as t
from dataclasses import dataclass

import sqlalchemy as sa

from .errors import MigrateError

if t.TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.engine import Connection, Engine

#: Seconds a DDL statement may wait for a lock, by default.
DEFAULT_TIMEOUT = 10.0
#: How many times a PostgreSQL run that gave up on a lock is retried, by default.
DEFAULT_RETRIES = 3
#: The longest pause between two attempts, in seconds.
MAX_PAUSE = 30.0


@dataclass(frozen=True)
class Setting:
    """The time-out of one connection: how to read, set and restore it."""

    dialect: str

    def apply(self, conn: Connection, seconds: float) -> str:
        """Set the time-out on ``conn``; returns the previous value."""
        if self.dialect == "postgresql":
            previous = conn.exec_driver_sql("SHOW lock_timeout").scalar()
            conn.execute(
                sa.text("SELECT set_config('lock_timeout', :value, false)"),
                {"value": f"{max(1, round(seconds * 1000))}ms"},
            )
            return str(previous)
        previous = conn.exec_driver_sql("SELECT @@SESSION.lock_wait_timeout").scalar()
        conn.exec_driver_sql(f"SET SESSION lock_wait_timeout = {max(1, math.ceil(seconds)):d}")
        return str(previous)

    def restore_statements(self, previous: str) -> list[str]:
        """SQL that puts ``previous`` back (run on the raw DBAPI connection)."""
        if self.dialect == "postgresql":
            quoted = "'" + previous.replace("'", "''") + "'"
            return [f"SELECT set_config('lock_timeout', {quoted}, false)"]
        return [f"SET SESSION lock_wait_timeout = {int(previous):d}"]


def setting_for(dialect_name: str) -> Setting | None:
    """The time-out of a dialect, or ``None`` where there is none to set (SQLite)."""
    if dialect_name == "postgresql":
        return Setting("postgresql")
    if dialect_name in ("mysql", "mariadb"):
        return Setting("mysql")
    return None


def gave_up_on_lock(exc: BaseException) -> str | None:
    """``"postgresql"`` or ``"mysql"`` when ``exc`` is a statement that gave up on a lock."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return None
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code == "55P03":
        return "postgresql"
    args = getattr(orig, "args", ())
    if args and args[0] == 1205 and "lock wait timeout" in str(orig).lower():
        return "mysql"
    return None


_TABLE_PATTERNS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?P<t>[\w.\"`]+)",
        r"\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
        r"[\w.\"`]*\s*ON\s+(?:ONLY\s+)?(?P<t>[\w.\"`]+)",
        r"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<t>[\w.\"`]+)",
        r"\bDROP\s+INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?[\w.\"`]+\s+ON\s+(?P<t>[\w.\"`]+)",
        r"\bTRUNCATE\s+(?:TABLE\s+)?(?P<t>[\w.\"`]+)",
        r"\bLOCK\s+TABLE\s+(?P<t>[\w.\"`]+)",
        r"\bINSERT\s+INTO\s+(?P<t>[\w.\"`]+)",
        r"\bUPDATE\s+(?P<t>[\w.\"`]+)",
        r"\bDELETE\s+FROM\s+(?P<t>[\w.\"`]+)",
        r"\bRENAME\s+TABLE\s+(?P<t>[\w.\"`]+)",
    )
]


def table_of(statement: str | None) -> str | None:
    """The table a SQL statement works on, if it says so plainly."""
    for pattern in _TABLE_PATTERNS:
        match = pattern.search(statement or "")
        if match:
            return match.group("t").replace('"', "").replace("`", "")
    return None


def holders(engine: Engine, table: str | None) -> list[str]:
    """Who holds locks that a statement on ``table`` would wait for, in words.

    Asked on a connection of its own: the migration's connection is in a
    failed transaction by now.
    """
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                return _postgresql_holders(conn, table)
            if conn.dialect.name in ("mysql", "mariadb"):
                return _mysql_holders(conn)
    except Exception:  # noqa: BLE001 - this only adds detail to an error
        pass
    return []


def _postgresql_holders(conn: Connection, table: str | None) -> list[str]:
    if not table:
        return []
    rows = conn.execute(
        sa.text(
            "SELECT DISTINCT a.pid, a.state, now() - a.xact_start AS age, left(a.query, 120) "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.granted AND l.relation = to_regclass(:table) "
            "AND l.pid <> pg_backend_pid() ORDER BY a.pid"
        ),
        {"table": _pg_regclass(table)},
    ).all()
    return [_describe(pid, state, age, query) for pid, state, age, query in rows]


def _pg_regclass(table: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in table.split("."))


def _mysql_holders(conn: Connection) -> list[str]:
    rows = conn.execute(
        sa.text(
            "SELECT t.trx_mysql_thread_id, p.COMMAND, "
            "TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), LEFT(COALESCE(t.trx_query, p.INFO, ''), 120) "
            "FROM information_schema.innodb_trx t "
            "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
            "WHERE t.trx_mysql_thread_id <> CONNECTION_ID()"
        )
    ).all()
    return [
        f"connection {cid} ({(command or 'open').lower()} in a transaction for {secs} s"
        + (f": {query}" if query else "") + ")"
        for cid, command, secs, query in rows
    ]


def _describe(pid: int, state: str | None, age: t.Any, query: str | None) -> str:
    seconds = int(age.total_seconds()) if age is not None else None
    parts = [state or "active"]
    if seconds is not None:
        parts.append(f"in a transaction for {seconds} s")
    text = f"pid {pid} ({', '.join(parts)}"
    if query:
        text += f"; last query: {' '.join(query.split())}"
    return text + ")"


class DDLLockTimeout(MigrateError):
    """A migration statement gave up waiting for a table lock, on every attempt."""

    def __init__(
        self,
        *,
        database: str,
        revision: str | None,
        table: str | None,
        holders: list[str],
        timeout: float,
        attempts: int,
        not_retried: str | None = None,
    ) -> None:
        self.database = database
        self.revision = revision
        self.table = table
        self.holders = holders
        self.timeout = timeout
        self.attempts = attempts
        where = f"revision {revision}" if revision else "the migration"
        what = f"table {table!r}" if table else "a table"
        held = "; held by " + ", ".join(holders) if holders else ""
        times = f" ({attempts} attempts)" if attempts > 1 else ""
        #: The first sentence: what happened (for the warnings before a retry).
        self.summary = (
            f"In {where} on {database}, a statement gave up waiting {timeout:g} s for a "
            f"lock on {what}{times}{held}."
        )
        message = self.summary + " "
        if not_retried:
            message += f"It was not retried: {not_retried}. "
        message += (
            "End the transaction that holds the lock, or raise the time-out "
            "(--ddl-lock-timeout, MIGRATE_DDL_LOCK_TIMEOUT), then run the command again."
        )
        super().__init__(message)
