"""Connection guards: no migration command may hang for ever on a dead server.

libpq waits indefinitely for a server that accepts the TCP connection but
never answers, and PyMySQL waits indefinitely for the server's greeting.
While a command runs, every new connection of the application's engines
gets a connect time-out, unless the application set one itself.
"""

from __future__ import annotations

import contextlib
import typing as t
from collections.abc import Iterator

from sqlalchemy import event

if t.TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.engine import Engine

#: Seconds to wait for a database server to accept a connection, by default.
#: Applications change it with the ``MIGRATE_CONNECT_TIMEOUT`` config key.
DEFAULT_CONNECT_TIMEOUT = 10.0

_PENDING_READ_TIMEOUT = "_flask_migrate_restore_read_timeout"


@contextlib.contextmanager
def connect_timeouts(engines: t.Iterable[Engine], timeout: float) -> Iterator[None]:
    """Give new connections of ``engines`` a connect time-out while the block runs."""
    seconds = max(1, round(timeout))
    listeners: list[tuple[t.Any, str, t.Callable[..., t.Any]]] = []

    def libpq(dialect: t.Any, record: t.Any, cargs: t.Any, cparams: dict[str, t.Any]) -> None:
        cparams.setdefault("connect_timeout", seconds)

    def asyncpg(dialect: t.Any, record: t.Any, cargs: t.Any, cparams: dict[str, t.Any]) -> None:
        cparams.setdefault("timeout", seconds)

    def pymysql_params(
        dialect: t.Any, record: t.Any, cargs: t.Any, cparams: dict[str, t.Any]
    ) -> None:
        cparams.setdefault("connect_timeout", seconds)
        if cparams.get("read_timeout") is None:
            # PyMySQL reads the server's greeting under read_timeout, not
            # connect_timeout; bound it, and lift it again once connected
            # (a long ALTER TABLE must not time out).
            cparams["read_timeout"] = seconds
            record.info[_PENDING_READ_TIMEOUT] = True

    def pymysql_connected(dbapi_conn: t.Any, record: t.Any) -> None:
        if record.info.pop(_PENDING_READ_TIMEOUT, False):
            dbapi_conn._read_timeout = None
            sock = getattr(dbapi_conn, "_sock", None)
            if sock is not None:
                sock.settimeout(None)
                dbapi_conn._current_timeout = None

    for engine in engines:
        driver = engine.dialect.driver
        if engine.dialect.name == "postgresql" and driver in (
            "psycopg", "psycopg2", "psycopg_async"
        ):
            listeners.append((engine, "do_connect", libpq))
        elif engine.dialect.name == "postgresql" and driver == "asyncpg":
            listeners.append((engine, "do_connect", asyncpg))
        elif engine.dialect.name in ("mysql", "mariadb") and driver == "pymysql":
            listeners.append((engine, "do_connect", pymysql_params))
            listeners.append((engine, "connect", pymysql_connected))
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    try:
        yield
    finally:
        for target, name, fn in listeners:
            event.remove(target, name, fn)
