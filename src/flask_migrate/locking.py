"""One migration lock per database, so that concurrent deploys never race.

``upgrade``, ``downgrade`` and ``stamp`` hold the lock of every database they
may touch for their whole run, taken *before* ``env.py`` creates or reads the
version table. Each dialect has its own kind of lock (a registry keyed by
dialect name, like Alembic's dialect implementations):

* PostgreSQL: a session-level advisory lock, on a connection of its own;
* MariaDB / MySQL: ``GET_LOCK()``, on a connection of its own;
* SQLite: an OS file lock on ``<database file>.migrate-lock``, beside the
  database (in-memory databases need none).

The lock connections are thrown away (invalidated) when released, so a lock
can never stay behind in a connection pool; if the process dies, the server
ends its session and the lock goes with it, and the OS drops a file lock.
A process that has to wait says so once, naming the holder where the
database can tell (process id, host, since when).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import socket
import time
import typing as t
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from .connections import sync_twin
from .errors import MigrateError

if t.TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.engine import Connection, Engine

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
            parts.append(f"on host {self.host}")
        if self.detail:
            parts.append(self.detail)
        if self.since is not None:
            parts.append(f"since {self.since.astimezone():%Y-%m-%d %H:%M:%S %Z}".strip())
        return " ".join(parts) or "another process"


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


OnWait = Callable[[str, "LockHolder | None"], None]


def _identity() -> tuple[int, str]:
    return os.getpid(), socket.gethostname()


def _key(*parts: str) -> str:
    return ":".join(parts)


def _int31(text: str) -> int:
    """A stable non-negative 31-bit number for ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


class MigrationLock:
    """The lock of one database. Subclasses implement one dialect each."""

    def __init__(self, engine: Engine, name: str, label: str) -> None:
        self.engine = engine
        self.name = name
        self.label = label

    def acquire(self, timeout: float, on_wait: OnWait | None) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def probe(self) -> LockHolder | None:
        """Who holds the lock right now, without taking it (``None``: nobody).

        Takes nothing on servers (a lock taken through a pooler like PgBouncer
        could outlive the connection that took it).
        """
        raise NotImplementedError


class _ConnectionLock(MigrationLock):
    """A lock held by a dedicated server connection."""

    conn: Connection | None = None

    sync_engine: Engine | None = None

    def _connect(self) -> Connection:
        engine = self.engine
        if engine.dialect.is_async:
            # An async driver cannot be used outside the event loop that
            # env.py starts later; the lock needs no pool of its own either,
            # so it takes a plain connection through a synchronous driver.
            engine = self.sync_engine = sync_twin(engine)
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self.conn = conn
        return conn

    def _close(self) -> None:
        """Close a connection that never took the lock."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
        if self.sync_engine is not None:
            self.sync_engine.dispose()
            self.sync_engine = None

    def release(self) -> None:
        conn, self.conn = self.conn, None
        try:
            if conn is not None:
                try:
                    self._unlock(conn)
                except Exception:  # noqa: BLE001,S110 - invalidate() ends the session anyway
                    pass
                finally:
                    # never return a connection that may still hold the lock to the pool
                    conn.invalidate()
                    conn.close()
        finally:
            if self.sync_engine is not None:
                self.sync_engine.dispose()
                self.sync_engine = None

    def _unlock(self, conn: Connection) -> None:
        raise NotImplementedError


class PostgresLock(_ConnectionLock):
    """A session-level advisory lock (``pg_advisory_lock(int, int)``)."""

    def acquire(self, timeout: float, on_wait: OnWait | None) -> None:
        k1, k2 = _int31(_NAMESPACE), _int31(self.name)
        conn = self._connect()
        pid, host = _identity()
        tag = f"flask-migrate pid={pid} host={host}"[:63]
        try:
            conn.execute(sa.text("SELECT set_config('application_name', :tag, false)"), {"tag": tag})
            got = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:k1, :k2)"), {"k1": k1, "k2": k2}
            ).scalar()
            if not got:
                holder = self._holder(conn, k1, k2)
                if timeout <= 0:
                    raise LockTimeout(self.label, timeout, holder)
                if on_wait is not None:
                    on_wait(self.label, holder)
                conn.execute(sa.text("SELECT set_config('lock_timeout', :ms, false)"),
                             {"ms": f"{int(timeout * 1000)}ms"})
                try:
                    conn.execute(sa.text("SELECT pg_advisory_lock(:k1, :k2)"), {"k1": k1, "k2": k2})
                except sa.exc.OperationalError as exc:
                    # 55P03: lock_not_available, what lock_timeout raises
                    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
                    if code != "55P03":
                        raise
                    holder = self._holder(conn, k1, k2)
                    raise LockTimeout(self.label, timeout, holder) from None
                conn.execute(sa.text("SELECT set_config('lock_timeout', '0', false)"))
            # the holder's state_change now tells waiters since when it holds the lock
            conn.execute(sa.text("SELECT 1"))
        except BaseException:
            self.release()
            raise

    def probe(self) -> LockHolder | None:
        try:
            conn = self._connect()
            return self._holder(conn, _int31(_NAMESPACE), _int31(self.name))
        finally:
            self._close()

    def _holder(self, conn: Connection, k1: int, k2: int) -> LockHolder | None:
        row = conn.execute(
            sa.text(
                "SELECT a.pid, a.application_name, a.client_addr, a.state_change "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.classid = :k1 AND l.objid = :k2 AND l.objsubid = 2 "
                "AND l.database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())"
            ),
            {"k1": k1, "k2": k2},
        ).first()
        if row is None:
            return None
        backend_pid, app_name, client_addr, since = row
        pid, host = None, None
        for part in (app_name or "").split():
            if part.startswith("pid="):
                with contextlib.suppress(ValueError):
                    pid = int(part[4:])
            elif part.startswith("host="):
                host = part[5:]
        detail = None if pid is not None else f"server backend {backend_pid}"
        if host is None and client_addr is not None:
            host = str(client_addr)
        return LockHolder(pid=pid, host=host, since=since, detail=detail)

    def _unlock(self, conn: Connection) -> None:
        conn.execute(
            sa.text("SELECT pg_advisory_unlock(:k1, :k2)"),
            {"k1": _int31(_NAMESPACE), "k2": _int31(self.name)},
        )


class MySQLLock(_ConnectionLock):
    """A named lock (``GET_LOCK()``), scoped to the server, so named per database."""

    def _lock_name(self, conn: Connection) -> str:
        database = conn.execute(sa.text("SELECT DATABASE()")).scalar() or ""
        name = _key(_NAMESPACE, str(database), self.name)
        if len(name) > 64:  # the server's limit on lock names
            name = _key(_NAMESPACE, hashlib.sha256(name.encode()).hexdigest()[:40])
        return name

    def acquire(self, timeout: float, on_wait: OnWait | None) -> None:
        conn = self._connect()
        try:
            self.lock_name = lock = self._lock_name(conn)
            got = conn.execute(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": lock}).scalar()
            if got != 1:
                holder = self._holder(conn, lock)
                if timeout <= 0:
                    raise LockTimeout(self.label, timeout, holder)
                if on_wait is not None:
                    on_wait(self.label, holder)
                got = conn.execute(
                    sa.text("SELECT GET_LOCK(:n, :t)"), {"n": lock, "t": timeout}
                ).scalar()
                if got != 1:
                    raise LockTimeout(self.label, timeout, self._holder(conn, lock))
        except BaseException:
            self.release()
            raise

    def probe(self) -> LockHolder | None:
        try:
            conn = self._connect()
            return self._holder(conn, self._lock_name(conn))
        finally:
            self._close()

    def _holder(self, conn: Connection, lock: str) -> LockHolder | None:
        conn_id = conn.execute(sa.text("SELECT IS_USED_LOCK(:n)"), {"n": lock}).scalar()
        if conn_id is None:
            return None
        row = conn.execute(
            sa.text(
                "SELECT HOST, TIME FROM information_schema.PROCESSLIST WHERE ID = :id"
            ),
            {"id": conn_id},
        ).first()
        host, since = None, None
        if row is not None:
            host = (row[0] or "").rsplit(":", 1)[0] or None
            since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=int(row[1] or 0))
        return LockHolder(host=host, since=since, detail=f"server connection {conn_id}")

    def _unlock(self, conn: Connection) -> None:
        conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": self.lock_name})


class SQLiteFileLock(MigrationLock):
    """An exclusive OS lock on a file beside the database file.

    The holder writes its pid, host and start time into the file, so that a
    waiting process can say who it waits for.
    """

    fd: int | None = None
    held = False

    def __init__(self, engine: Engine, name: str, label: str, path: str) -> None:
        super().__init__(engine, name, label)
        self.path = path + ".migrate-lock"

    def acquire(self, timeout: float, on_wait: OnWait | None) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise MigrateError(
                f"Cannot create the migration lock file {self.path!r}: {exc.strerror}. "
                "The folder of the SQLite database must be writable."
            ) from None
        self.fd = fd
        try:
            if not _try_lock_file(fd):
                holder = self._holder()
                if timeout <= 0:
                    raise LockTimeout(self.label, timeout, holder)
                if on_wait is not None:
                    on_wait(self.label, holder)
                deadline = time.monotonic() + timeout
                pause = 0.01
                while not _try_lock_file(fd):
                    if time.monotonic() >= deadline:
                        raise LockTimeout(self.label, timeout, self._holder())
                    time.sleep(pause)
                    pause = min(pause * 2, 0.2)
            pid, host = _identity()
            info = {"pid": pid, "host": host, "since": dt.datetime.now(dt.timezone.utc).isoformat()}
            self.held = True
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except BaseException:
            self.release()
            raise

    def probe(self) -> LockHolder | None:
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:
            return None  # no lock file: no migration ever ran here
        try:
            if _try_lock_file(fd):
                return None  # free (closing the descriptor drops our lock at once)
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

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            if self.held:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)  # no holder any more
        finally:
            self.held = False
            os.close(fd)  # closing drops the OS lock


try:
    import fcntl

    def _try_lock_file(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _try_lock_file(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            return True
        except OSError:
            return False


LockFactory = Callable[["Engine", str, str], "MigrationLock | None"]
_REGISTRY: dict[str, LockFactory] = {}


def register(*dialects: str) -> Callable[[LockFactory], LockFactory]:
    """Register a lock factory (engine, name, label) for the given dialect names."""

    def decorator(factory: LockFactory) -> LockFactory:
        for name in dialects:
            _REGISTRY[name] = factory
        return factory

    return decorator


@register("postgresql")
def _postgres(engine: Engine, name: str, label: str) -> MigrationLock:
    return PostgresLock(engine, name, label)


@register("mysql", "mariadb")
def _mysql(engine: Engine, name: str, label: str) -> MigrationLock:
    return MySQLLock(engine, name, label)


@register("sqlite")
def _sqlite(engine: Engine, name: str, label: str) -> MigrationLock | None:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:") or \
            "mode=memory" in database:
        return None  # an in-memory database belongs to one process
    if database.startswith("file:"):
        database = database[5:].split("?", 1)[0]
    return SQLiteFileLock(engine, name, label, os.path.abspath(database))


def lock_for(engine: Engine, name: str = "alembic_version") -> MigrationLock | None:
    """The migration lock of ``engine``'s database (``None`` if it needs none).

    :param name: what the lock protects, usually the version table's name, so
        that two independent histories in one database do not block each other.
    """
    factory = _REGISTRY.get(engine.dialect.name)
    label = engine.url.render_as_string(hide_password=True)
    return factory(engine, name, label) if factory is not None else None


@contextlib.contextmanager
def hold(
    engines: t.Iterable[Engine],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    name: str = "alembic_version",
    on_wait: OnWait | None = None,
) -> Iterator[list[MigrationLock]]:
    """Hold the migration lock of each engine's database, in a fixed order.

    Engines that share a database are locked once. Every lock taken is
    released on the way out, whatever happens.
    """
    locks: list[MigrationLock] = []
    seen: set[str] = set()
    for engine in engines:
        ident = engine.url.render_as_string(hide_password=False)
        if ident in seen:
            continue
        seen.add(ident)
        lock = lock_for(engine, name)
        if lock is not None:
            locks.append(lock)
    # one global order, so two processes locking several databases cannot deadlock
    locks.sort(key=lambda lock: lock.label)
    held: list[MigrationLock] = []
    try:
        for lock in locks:
            lock.acquire(timeout, on_wait)
            held.append(lock)
        yield held
    finally:
        for lock in reversed(held):
            lock.release()
