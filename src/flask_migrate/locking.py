"""One migration lock per database and version table, so concurrent deploys never race.

``upgrade``, ``downgrade`` and ``stamp`` lock each connection that ``env.py``
passes to ``context.configure()``, right there, before Alembic reads the
version table; the lock is named after the version table (and its schema), so
two independent histories in one database do not block each other. Each
dialect has its own kind of lock (a registry keyed by dialect name, like
Alembic's dialect implementations):

* PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``);
* MariaDB / MySQL: ``GET_LOCK()``;
* SQLite: an OS file lock on ``<database file>.migrate-lock`` beside the
  database file that the connection really has open (``PRAGMA
  database_list``), however its URL was spelled; in-memory databases need none.

The server locks live on the very connection ``env.py`` migrates with: they
survive the commits of the run and need no second connection, driver or
engine (so async engines keep their own driver, SSL and connect arguments).
A lock is released when that connection goes back to its pool, after its
last commit, or, at the latest, when the command ends. If the process dies,
the server ends its session and the lock goes with it; the OS drops a file
lock. A process that has to wait says so once, naming the holder where the
database can tell (process id, host, since when).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import time
import typing as t
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from .errors import MigrateError

if t.TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.engine import Connection

log = logging.getLogger("flask_migrate")

#: How long to wait for a lock by default, in seconds.
DEFAULT_TIMEOUT = 300.0

_NAMESPACE = "flask-migrate"


@dataclass(frozen=True)
class LockHolder:
    """Who holds a migration lock, as far as the database can tell."""

    pid: int | None = None
    host: str | None = None
    since: dt.datetime | None = None
    #: Anything else the database said (e.g. a connection id).
    detail: str | None = None

    def describe(self) -> str:
        parts = []
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.host:
            # "held by pid 12 on host web-1", or "held by a process on host web-1"
            parts.append(f"on host {self.host}" if parts else f"a process on host {self.host}")
        if self.detail:
            parts.append(self.detail)
        if self.since is not None:
            parts.append(f"since {self.since.astimezone():%Y-%m-%d %H:%M:%S %Z}".strip())
        return " ".join(parts) or "another process"


OnWait = Callable[[str, "LockHolder | None"], None]


@dataclass(frozen=True)
class LockOptions:
    """How ``upgrade``, ``downgrade`` and ``stamp`` lock their databases."""

    #: Take the per-database migration lock at all. Switch it off only for
    #: connection poolers that cannot hold session state (PgBouncer in
    #: transaction mode).
    enabled: bool = True
    #: Seconds to wait for another migration to finish; 0 fails at once.
    timeout: float = DEFAULT_TIMEOUT
    #: Called once per database when the lock is busy, with the database and
    #: its holder; by default a warning on the ``flask_migrate`` logger.
    on_wait: OnWait | None = None
    #: Seconds a migration statement may wait for a table lock (PostgreSQL
    #: ``lock_timeout``, MariaDB/MySQL ``lock_wait_timeout``); ``0`` waits
    #: forever; ``None``: the ``MIGRATE_DDL_LOCK_TIMEOUT`` config key, or 10.
    #: See :mod:`flask_migrate.lock_timeouts`.
    ddl_timeout: float | None = None
    #: PostgreSQL: how many times a run that gave up on a table lock is run
    #: again; ``None``: the ``MIGRATE_DDL_LOCK_RETRIES`` config key, or 3.
    ddl_retries: int | None = None
    #: Called before each retry with the error, the attempt that failed (1, 2,
    #: ...) and the pause before the next, in seconds; by default a warning
    #: on the ``flask_migrate`` logger.
    on_retry: t.Callable[[MigrateError, int, float], None] | None = None


class LockTimeout(MigrateError):
    """The migration lock of a database could not be taken in time."""

    def __init__(self, database: str, timeout: float, holder: LockHolder | None) -> None:
        self.database = database
        self.timeout = timeout
        self.holder = holder
        who = holder.describe() if holder else "another process"
        if timeout <= 0:
            waited = "and --lock-timeout is 0"
        else:
            waited = f"and did not release it within {timeout:g} s"
        super().__init__(
            f"Another migration holds the lock on {database} ({who}) {waited}. "
            "Let it finish and run the command again, or give a longer --lock-timeout."
        )


def _identity() -> tuple[int, str]:
    return os.getpid(), socket.gethostname()


def _int31(text: str) -> int:
    """A stable non-negative 31-bit number for ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


def lock_key(version_table: str = "alembic_version", schema: str | None = None) -> str:
    """What a lock protects: the version table, with its schema if it has one."""
    return f"{schema}.{version_table}" if schema else version_table


def _wait(try_once: Callable[[], bool], timeout: float) -> bool:
    """Call ``try_once`` until it succeeds or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    pause = 0.01
    while not try_once():
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.2)
    return True


class MigrationLock:
    """The lock of one database and version table. Subclasses implement a dialect each.

    :meth:`acquire` and :meth:`probe` run on the connection ``env.py``
    configured; :meth:`release_dbapi` runs when that connection goes back to
    its pool, on the driver's connection (SQLAlchemy's is gone by then).
    """

    def __init__(self, key: str, label: str) -> None:
        self.key = key
        self.label = label

    def identity(self, conn: Connection) -> str:
        """What tells two locks on one database and version table apart from others."""
        raise NotImplementedError

    def acquire(self, conn: Connection, timeout: float, on_wait: OnWait | None) -> None:
        raise NotImplementedError

    def release_dbapi(self, dbapi_conn: t.Any) -> None:
        raise NotImplementedError

    def probe(self, conn: Connection) -> LockHolder | None:
        """Who holds the lock right now, without taking it (``None``: nobody)."""
        raise NotImplementedError


def run_dbapi(dbapi_conn: t.Any, *statements: str, commit: bool = False) -> None:
    cursor = dbapi_conn.cursor()
    try:
        for statement in statements:
            cursor.execute(statement)
            if cursor.description is not None:
                cursor.fetchall()
    finally:
        cursor.close()
    # end the transaction the driver may have opened for the statements
    if commit:
        dbapi_conn.commit()
    else:
        dbapi_conn.rollback()


def _dollar_quoted(text: str) -> str:
    if "$fm$" in text:
        text = ""
    return f"$fm${text}$fm$"


class PostgresLock(MigrationLock):
    """A session-level advisory lock (``pg_try_advisory_lock(int, int)``).

    While it is held, the session's ``application_name`` names this process
    (pid and host), so that a waiting process can say whom it waits for; it is
    restored when the lock is released.
    """

    _previous_name: str | None = None

    @property
    def _keys(self) -> tuple[int, int]:
        return _int31(_NAMESPACE), _int31(self.key)

    def identity(self, conn: Connection) -> str:
        database = conn.exec_driver_sql("SELECT current_database()").scalar()
        url = conn.engine.url
        return f"postgresql://{url.host}:{url.port}/{database}#{self.key}"

    def acquire(self, conn: Connection, timeout: float, on_wait: OnWait | None) -> None:
        k1, k2 = self._keys
        take = sa.text("SELECT pg_try_advisory_lock(:k1, :k2)").bindparams(k1=k1, k2=k2)
        if not conn.execute(take).scalar():
            holder = self._holder(conn)
            if timeout <= 0:
                raise LockTimeout(self.label, timeout, holder)
            if on_wait is not None:
                on_wait(self.label, holder)
            if not _wait(lambda: bool(conn.execute(take).scalar()), timeout):
                raise LockTimeout(self.label, timeout, self._holder(conn))
        pid, host = _identity()
        self._previous_name = conn.exec_driver_sql(
            "SELECT current_setting('application_name')"
        ).scalar()
        conn.execute(
            sa.text("SELECT set_config('application_name', :tag, false)"),
            {"tag": f"flask-migrate pid={pid} host={host}"[:63]},
        )

    def release_dbapi(self, dbapi_conn: t.Any) -> None:
        k1, k2 = self._keys
        statements = [f"SELECT pg_advisory_unlock({k1:d}, {k2:d})"]
        if self._previous_name is not None:
            statements.append(
                "SELECT set_config('application_name', "
                f"{_dollar_quoted(self._previous_name)}, false)"
            )
        # commit: a set_config() in a transaction is undone by its rollback
        run_dbapi(dbapi_conn, *statements, commit=True)

    def probe(self, conn: Connection) -> LockHolder | None:
        return self._holder(conn)

    def _holder(self, conn: Connection) -> LockHolder | None:
        k1, k2 = self._keys
        row = conn.execute(
            sa.text(
                "SELECT a.pid, a.application_name, a.client_addr, a.state_change "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.classid = :k1 AND l.objid = :k2 AND l.objsubid = 2 "
                "AND l.database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database()) "
                "AND l.pid <> pg_backend_pid()"
            ),
            {"k1": k1, "k2": k2},
        ).first()
        if row is None:
            return None
        backend_pid, app_name, client_addr, since = row
        pid, host = None, None
        for part in (app_name or "").split():
            if part.startswith("pid="):
                try:
                    pid = int(part[4:])
                except ValueError:
                    pass
            elif part.startswith("host="):
                host = part[5:]
        detail = None if pid is not None else f"server backend {backend_pid}"
        if host is None and client_addr is not None:
            host = str(client_addr)
        return LockHolder(pid=pid, host=host, since=since, detail=detail)


class MySQLLock(MigrationLock):
    """A named lock (``GET_LOCK()``). Names are server-wide, so they include the database."""

    lock_name: str | None = None

    def _name(self, conn: Connection) -> str:
        if self.lock_name is None:
            database = conn.exec_driver_sql("SELECT DATABASE()").scalar() or ""
            digest = hashlib.sha256(f"{database}\0{self.key}".encode()).hexdigest()[:40]
            # only [a-z0-9:-]: safe to write into SQL when released from the pool
            self.lock_name = f"{_NAMESPACE}:{digest}"
        return self.lock_name

    def identity(self, conn: Connection) -> str:
        url = conn.engine.url
        return f"mysql://{url.host}:{url.port}/{self._name(conn)}"

    def acquire(self, conn: Connection, timeout: float, on_wait: OnWait | None) -> None:
        name = self._name(conn)
        got = conn.execute(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": name}).scalar()
        if got != 1:
            holder = self._holder(conn, name)
            if timeout <= 0:
                raise LockTimeout(self.label, timeout, holder)
            if on_wait is not None:
                on_wait(self.label, holder)
            # NOTE: polled, not one GET_LOCK(name, timeout): Ctrl-C cannot stop
            # a statement PyMySQL waits on, and the server would go on waiting
            # for the lock, take it for the vanished client, and hold it until
            # it noticed the client was gone
            statement = sa.text("SELECT GET_LOCK(:n, 0)")
            if not _wait(lambda: conn.execute(statement, {"n": name}).scalar() == 1, timeout):
                raise LockTimeout(self.label, timeout, self._holder(conn, name))

    def release_dbapi(self, dbapi_conn: t.Any) -> None:
        if self.lock_name is not None:
            run_dbapi(dbapi_conn, f"SELECT RELEASE_LOCK('{self.lock_name}')")

    def probe(self, conn: Connection) -> LockHolder | None:
        return self._holder(conn, self._name(conn))

    def _holder(self, conn: Connection, name: str) -> LockHolder | None:
        conn_id = conn.execute(sa.text("SELECT IS_USED_LOCK(:n)"), {"n": name}).scalar()
        own = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
        if conn_id is None or conn_id == own:
            return None
        row = conn.execute(
            sa.text("SELECT HOST, TIME FROM information_schema.PROCESSLIST WHERE ID = :id"),
            {"id": conn_id},
        ).first()
        host, since = None, None
        if row is not None:
            host = (row[0] or "").rsplit(":", 1)[0] or None
            since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=int(row[1] or 0))
        return LockHolder(host=host, since=since, detail=f"server connection {conn_id}")


class SQLiteFileLock(MigrationLock):
    """An exclusive OS lock on a file beside the database file.

    The holder writes its pid, host and start time into the file, so that a
    waiting process can say whom it waits for.
    """

    fd: int | None = None

    def __init__(self, key: str, label: str, path: str) -> None:
        super().__init__(key, label)
        suffix = "" if key == "alembic_version" else "-" + "".join(
            c if c.isalnum() or c in "._-" else "_" for c in key
        )
        self.path = f"{path}.migrate-lock{suffix}"

    def identity(self, conn: Connection) -> str:
        return self.path

    def acquire(self, conn: Connection, timeout: float, on_wait: OnWait | None) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise MigrateError(
                f"Cannot create the migration lock file {self.path!r}: {exc.strerror}. "
                "The folder of the SQLite database must be writable."
            ) from None
        try:
            if not _try_lock_file(fd):
                holder = self._holder()
                if timeout <= 0:
                    raise LockTimeout(self.label, timeout, holder)
                if on_wait is not None:
                    on_wait(self.label, holder)
                if not _wait(lambda: _try_lock_file(fd), timeout):
                    raise LockTimeout(self.label, timeout, self._holder())
            pid, host = _identity()
            info = {"pid": pid, "host": host, "since": dt.datetime.now(dt.timezone.utc).isoformat()}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(info).encode())
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # no holder any more
        except OSError:
            pass
        finally:
            _unlock_file(fd)
            os.close(fd)

    def release_dbapi(self, dbapi_conn: t.Any) -> None:
        self.release()

    def probe(self, conn: Connection) -> LockHolder | None:
        if self.fd is not None:
            return None  # this process holds it
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:
            return None  # no lock file: no migration ever ran here
        try:
            if _try_lock_file(fd):
                _unlock_file(fd)
                return None
            return self._holder() or LockHolder(detail="another process")
        finally:
            os.close(fd)

    def _holder(self) -> LockHolder | None:
        try:
            with open(self.path, encoding="utf-8") as f:
                info = json.load(f)
            return LockHolder(
                pid=info.get("pid"),
                host=info.get("host"),
                since=dt.datetime.fromisoformat(info["since"]) if info.get("since") else None,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    # NOTE: Windows locks byte ranges, and a locked range cannot be read by
    # others. Lock one byte far past the holder's note at offset 0, so that a
    # waiting process can still read who holds the lock.
    _LOCK_OFFSET = 1 << 30

    def _try_lock_file(fd: int) -> bool:
        os.lseek(fd, _LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            return True
        except OSError:
            return False

    def _unlock_file(fd: int) -> None:
        os.lseek(fd, _LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            pass

else:
    import fcntl

    def _try_lock_file(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock_file(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


LockFactory = Callable[["Connection", str, str], "MigrationLock | None"]
_REGISTRY: dict[str, LockFactory] = {}
_warned: set[str] = set()


def register(*dialects: str) -> Callable[[LockFactory], LockFactory]:
    """Register a lock factory ``(connection, key, label)`` for the given dialect names."""

    def decorator(factory: LockFactory) -> LockFactory:
        for name in dialects:
            _REGISTRY[name] = factory
        return factory

    return decorator


@register("postgresql")
def _postgres(conn: Connection, key: str, label: str) -> MigrationLock:
    return PostgresLock(key, label)


@register("mysql", "mariadb")
def _mysql(conn: Connection, key: str, label: str) -> MigrationLock:
    return MySQLLock(key, label)


@register("sqlite")
def _sqlite(conn: Connection, key: str, label: str) -> MigrationLock | None:
    path = sqlite_file(conn)
    return SQLiteFileLock(key, label, path) if path else None


def sqlite_file(conn: Connection) -> str | None:
    """The file a SQLite connection really has open (``None``: in memory)."""
    for row in conn.exec_driver_sql("PRAGMA database_list"):
        if row[1] == "main":
            return os.path.realpath(row[2]) if row[2] else None
    return None


def lock_for(conn: Connection, key: str = "alembic_version") -> MigrationLock | None:
    """The migration lock of the database ``conn`` is connected to.

    ``None`` when it needs none (an in-memory SQLite database belongs to one
    process) or when no lock is known for its dialect: that is said once per
    dialect, as a warning.

    :param key: what the lock protects (see :func:`lock_key`).
    """
    name = conn.dialect.name
    label = conn.engine.url.render_as_string(hide_password=True)
    factory = _REGISTRY.get(name)
    if factory is None:
        if name not in _warned:
            _warned.add(name)
            log.warning(
                "No migration lock is known for %s databases: concurrent migrations "
                "of %s are not kept apart. Register one with flask_migrate.locking.register().",
                name, label,
            )
        return None
    return factory(conn, key, label)
