"""Scratch databases: throw-away twins of an application's databases.

``flask db verify``, the pytest plugin and ``flask db squash`` run the
migration history on databases made for the occasion, never on the
application's own. For each database (bind) of the application this module
makes an empty twin on the same kind of server:

* SQLite: a file in a new temporary directory (also for in-memory databases);
* PostgreSQL and MariaDB/MySQL: a database ``fm_scratch_<random>`` created
  on the same server with the application's credentials (dropped afterwards,
  on every way out, Ctrl-C included);
* or a database the user names (``--url``), which must be empty, is never one
  of the application's, and is emptied again afterwards.

:func:`pointed_at` then points the application at the twins for a while: its
Flask-SQLAlchemy engines and its ``SQLALCHEMY_DATABASE_URI``/``_BINDS`` (which
``env.py`` files of the 2.x era read). What a run really touches is still what
``env.py`` passes to ``context.configure()``: :func:`guard` refuses any
connection that is not a scratch database, before a statement runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import typing as t
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from .errors import MigrateError

if t.TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    from flask import Flask
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("flask_migrate")

#: Names of the databases this module creates start with this.
PREFIX = "fm_scratch_"

Bind = t.Optional[str]


@dataclass
class ScratchDatabase:
    """One scratch database, for the bind ``bind`` of the application."""

    bind: Bind
    #: With the password: for engines only, never for printing (see :attr:`label`).
    url: URL
    #: True when this module created it (then it is dropped afterwards); False
    #: for a database the user named (then it is emptied afterwards).
    created: bool = True
    #: SQLite: the temporary directory that holds the file.
    directory: Path | None = None
    #: PostgreSQL, for a database the user named: the schemas it had (the
    #: others, which the history created, are dropped afterwards).
    schemas: frozenset[str] = frozenset()
    dropped: bool = field(default=False, repr=False)

    @property
    def label(self) -> str:
        """The URL, password hidden."""
        return self.url.render_as_string(hide_password=True)

    @property
    def backend(self) -> str:
        return self.url.get_backend_name()

    @property
    def bind_label(self) -> str:
        return "default database" if self.bind is None else f"bind {self.bind!r}"


def identity(url: URL | str) -> tuple[t.Any, ...]:
    """What makes two URLs the same database (whatever the driver and options)."""
    url = make_url(url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            database = os.path.realpath(database)
        return (backend, database)
    default_port = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}.get(backend)
    host = (url.host or "localhost").lower()
    if host in ("127.0.0.1", "::1"):
        host = "localhost"
    return ("mysql" if backend == "mariadb" else backend, host, url.port or default_port, url.database)


# -- running admin statements, sync or async ---------------------------------------------


def _with_connection(url: URL, fn: t.Callable[[Connection], t.Any], **engine_kwargs: t.Any) -> t.Any:
    """Run ``fn`` on a connection to ``url`` (its driver may be an asyncio one)."""
    engine = sa.create_engine(url, poolclass=NullPool, **engine_kwargs)
    try:
        if not engine.dialect.is_async:
            with engine.connect() as conn:
                return fn(conn)
        from sqlalchemy.ext.asyncio import AsyncEngine

        async def run() -> t.Any:
            async with AsyncEngine(engine).connect() as aconn:
                return await aconn.run_sync(fn)

        return asyncio.run(run())
    finally:
        engine.dispose()


def _admin(url: URL, fn: t.Callable[[Connection], t.Any]) -> t.Any:
    """Run ``fn`` with autocommit on a server-level connection of ``url``'s server."""
    if url.get_backend_name() == "postgresql":
        # CREATE/DROP DATABASE need a connection to some other database; the
        # application's may not exist yet
        candidates = [url.database, "postgres", "template1"]
    else:
        candidates = [None]
    error: Exception | None = None
    for database in dict.fromkeys(candidates):
        try:
            return _with_connection(_on(url, database), fn, isolation_level="AUTOCOMMIT")
        except sa.exc.OperationalError as exc:
            error = exc
    assert error is not None
    raise error


def _on(url: URL, database: str | None) -> URL:
    """``url`` with another database, or none (``URL.set(database=None)`` keeps the old one)."""
    return url._replace(database=database)


def _quote(url: URL, name: str) -> str:
    return '"' + name + '"' if url.get_backend_name() == "postgresql" else "`" + name + "`"


# -- making and dropping ---------------------------------------------------------------


def create(model: URL, bind: Bind, *, template: str | Path | None = None) -> ScratchDatabase:
    """An empty database like ``model`` (same server, driver and options).

    ``template``: for SQLite a file to copy, for PostgreSQL a database to
    clone (``CREATE DATABASE ... TEMPLATE``); the copy starts as that one is.
    """
    backend = model.get_backend_name()
    if backend == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix="flask-migrate-scratch-"))
        path = directory / f"{bind or 'main'}.db"
        if template is not None:
            shutil.copyfile(template, path)
        return ScratchDatabase(bind, model.set(database=str(path)), directory=directory)
    if backend not in ("postgresql", "mysql", "mariadb"):
        raise MigrateError(
            f"Cannot make a scratch database on {backend} (the {_bind_text(bind)}); "
            "name one with --url."
        )
    name = PREFIX + uuid.uuid4().hex[:16]
    statement = f"CREATE DATABASE {_quote(model, name)}"
    if template is not None:
        statement += f" TEMPLATE {_quote(model, str(template))}"
    elif backend != "postgresql" and model.database:
        statement += _mysql_charset(model)
    try:
        _admin(model, lambda conn: conn.execute(sa.text(statement)))
    except sa.exc.SQLAlchemyError as exc:
        raise MigrateError(
            f"Could not create a scratch database on {_server(model)} for the "
            f"{_bind_text(bind)}: {_first_line(exc)}. Give the database user the right "
            "to create databases, or name an empty database with --url."
        ) from exc
    return ScratchDatabase(bind, model.set(database=name))


def _mysql_charset(model: URL) -> str:
    """The character set and collation of the application's database, if it exists."""

    def read(conn: Connection) -> t.Any:
        return conn.execute(
            sa.text(
                "SELECT default_character_set_name, default_collation_name "
                "FROM information_schema.schemata WHERE schema_name = :name"
            ),
            {"name": model.database},
        ).first()

    try:
        row = _admin(model, read)
    except sa.exc.SQLAlchemyError:
        return ""
    return f" CHARACTER SET {row[0]} COLLATE {row[1]}" if row else ""


def adopt(url: str | URL, bind: Bind, application: t.Iterable[URL]) -> ScratchDatabase:
    """A database the user named as scratch: it must be empty and not the application's."""
    url = make_url(url)
    if identity(url) in {identity(u) for u in application}:
        raise MigrateError(
            f"{url.render_as_string(hide_password=True)} is the application's own "
            "database; name an empty database made for the check."
        )

    def contents(conn: Connection) -> tuple[list[str], list[str]]:
        inspector = sa.inspect(conn)
        schemas = [None, *user_schemas(conn)] if conn.dialect.name == "postgresql" else [None]
        names = [
            f"{schema}.{name}" if schema else name
            for schema in schemas for name in inspector.get_table_names(schema=schema)
        ]
        return names, [s for s in schemas if s is not None]

    try:
        found, schemas = _with_connection(url, contents)
    except sa.exc.SQLAlchemyError as exc:
        raise MigrateError(
            f"Could not open the scratch database {url.render_as_string(hide_password=True)}: "
            f"{_first_line(exc)}."
        ) from exc
    if found:
        shown = ", ".join(sorted(found)[:5]) + (", ..." if len(found) > 5 else "")
        raise MigrateError(
            f"The scratch database {url.render_as_string(hide_password=True)} is not empty "
            f"(it has {shown}); name an empty database, which is emptied again afterwards."
        )
    return ScratchDatabase(bind, url, created=False, schemas=frozenset(schemas))


def user_schemas(conn: Connection) -> list[str]:
    """PostgreSQL: the schemas of a database other than the default and the system's."""
    inspector = sa.inspect(conn)
    default = inspector.default_schema_name
    return [
        s for s in inspector.get_schema_names()
        if s != default and s != "information_schema" and not s.startswith("pg_")
    ]


def drop(database: ScratchDatabase) -> None:
    """Drop a database :func:`create` made, or empty one :func:`adopt` took."""
    if database.dropped:
        return
    database.dropped = True
    if database.directory is not None:
        shutil.rmtree(database.directory, ignore_errors=True)
        return
    if not database.created:
        _with_connection(database.url, lambda conn: _empty(conn, database.schemas))
        return
    name = database.url.database
    assert name and name.startswith(PREFIX), name
    quoted = _quote(database.url, name)
    server = _on(database.url, None) if database.backend != "postgresql" else database.url

    def run(conn: Connection) -> None:
        if database.backend == "postgresql":
            if (conn.dialect.server_version_info or (0,)) >= (13,):
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
                return
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}"))

    if database.backend == "postgresql":
        # connect to anything but the database being dropped
        _admin(server.set(database="postgres"), run)
    else:
        _admin(server, run)


def _empty(conn: Connection, keep_schemas: t.Collection[str] = ()) -> None:
    """Drop every table of a database (on PostgreSQL also the enum types, the
    sequences, and the schemas not in ``keep_schemas``)."""
    if conn.dialect.name == "postgresql":
        for schema in user_schemas(conn):
            if schema not in keep_schemas:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    metadata = sa.MetaData()
    metadata.reflect(conn)
    metadata.drop_all(conn)
    if conn.dialect.name == "postgresql":
        inspector = sa.inspect(conn)
        for enum in inspector.get_enums():  # type: ignore[attr-defined]
            conn.execute(sa.text(f'DROP TYPE IF EXISTS "{enum["name"]}"'))
        for sequence in inspector.get_sequence_names():
            conn.execute(sa.text(f'DROP SEQUENCE IF EXISTS "{sequence}"'))
    conn.commit()


@contextlib.contextmanager
def databases_for(
    engines: t.Mapping[Bind, Engine], named: t.Mapping[Bind, str] | None = None
) -> Iterator[dict[Bind, ScratchDatabase]]:
    """A scratch database per bind, dropped (or emptied) on the way out, whatever it is."""
    named = dict(named or {})
    unknown = [key for key in named if key not in engines]
    if unknown:
        known = ", ".join("(default)" if k is None else k for k in engines)
        raise MigrateError(f"No database bind named {unknown[0]!r}; the application has {known}.")
    made: dict[Bind, ScratchDatabase] = {}
    try:
        application = [engine.url for engine in engines.values()]
        for bind, engine in engines.items():
            if bind in named:
                made[bind] = adopt(named[bind], bind, application)
            else:
                made[bind] = create(engine.url, bind)
        yield made
    finally:
        # NOTE: also on KeyboardInterrupt: a scratch database must not outlive the check
        for database in made.values():
            try:
                drop(database)
            except Exception as exc:  # noqa: BLE001 - never hide the check's own outcome
                log.warning("Could not remove the scratch database %s: %s", database.label, exc)


# -- pointing the application at them -----------------------------------------------------


def _engine_options(app: Flask, db: t.Any, bind: Bind) -> dict[str, t.Any]:
    """The engine options Flask-SQLAlchemy would use for ``bind`` (its url aside)."""
    options = dict(getattr(db, "_engine_options", None) or {})
    if bind is None:
        options.update(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    else:
        value = (app.config.get("SQLALCHEMY_BINDS") or {}).get(bind)
        if isinstance(value, dict):
            options.update(value)
    options.pop("url", None)
    echo = bool(app.config.get("SQLALCHEMY_ECHO", False))
    options.setdefault("echo", echo)
    options.setdefault("echo_pool", echo)
    return options


@contextlib.contextmanager
def pointed_at(app: Flask, db: t.Any, databases: t.Mapping[Bind, ScratchDatabase]) -> Iterator[dict[Bind, Engine]]:
    """Point ``app``'s Flask-SQLAlchemy engines and database URLs at ``databases``.

    NOTE: Flask-SQLAlchemy 3 makes an application's engines once, in
    ``init_app``, and keeps them in ``db._app_engines[app]``; ``db.engine``,
    ``db.engines`` and sessions read them from there each time. This swaps
    that mapping for the duration and puts the original back afterwards.
    """
    per_app = getattr(db, "_app_engines", None)
    if per_app is None or app not in per_app:
        raise MigrateError(
            "Scratch databases need Flask-SQLAlchemy 3 (db.engines); this application's "
            f"database extension is {type(db).__module__}.{type(db).__qualname__}."
        )
    original_engines = per_app[app]
    keys = ("SQLALCHEMY_DATABASE_URI", "SQLALCHEMY_BINDS")
    original_config = {key: app.config[key] for key in keys if key in app.config}
    engines: dict[Bind, Engine] = {}
    try:
        for bind, database in databases.items():
            options = _engine_options(app, db, bind)
            if database.url.get_dialect().is_async:
                # NOTE: each env.py run has an event loop of its own; a pooled
                # async connection outlives it and cannot be closed afterwards
                for name in ("pool_size", "max_overflow", "pool_timeout", "pool_use_lifo"):
                    options.pop(name, None)
                options["poolclass"] = NullPool
            engines[bind] = sa.create_engine(database.url, **options)
        binds = dict(original_config.get("SQLALCHEMY_BINDS") or {})
        for bind, database in databases.items():
            url = database.url.render_as_string(hide_password=False)
            if bind is None:
                app.config["SQLALCHEMY_DATABASE_URI"] = url
            elif isinstance(binds.get(bind), dict):
                binds[bind] = {**binds[bind], "url": url}
            else:
                binds[bind] = url
        if binds:
            app.config["SQLALCHEMY_BINDS"] = binds
        per_app[app] = {**original_engines, **engines}
        yield engines
    finally:
        per_app[app] = original_engines
        for key in keys:
            if key in original_config:
                app.config[key] = original_config[key]
            else:
                app.config.pop(key, None)
        for engine in engines.values():
            engine.dispose()


def guard(databases: t.Iterable[ScratchDatabase]) -> t.Callable[[t.Any], None]:
    """A check for :class:`~.runner.Run`: refuse connections to anything but ``databases``."""
    allowed = {identity(d.url) for d in databases}

    def check(connection: t.Any) -> None:
        url = getattr(getattr(connection, "engine", None), "url", None)
        if url is None or identity(url) in allowed:
            return
        raise MigrateError(
            f"env.py configured a connection to {url.render_as_string(hide_password=True)}, "
            "which is not a scratch database; stopped before running anything there. "
            "env.py must take its engines from the Flask-SQLAlchemy extension "
            "(current_app.extensions['migrate'].db)."
        )

    return check


# -- helpers ----------------------------------------------------------------------------


def _bind_text(bind: Bind) -> str:
    return "default database" if bind is None else f"bind {bind!r}"


def _server(url: URL) -> str:
    return _on(url, None).render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
