"""The machinery of one run of ``env.py``.

``env.py`` is the application's code, and the only truth about what a command
touches: which connections it migrates, with which version table, and which
callbacks. So this module learns it where ``env.py`` says it, in
``context.configure()``. :func:`environment` (Alembic's
``EnvironmentContext``, which ``alembic.context`` stands for while ``env.py``
runs, with hooks) intercepts that call and, for each connection ``env.py`` configures:

* adds our callbacks to the ones ``env.py`` passes, never replacing them and
  never colliding with a keyword: ``include_name`` hides the journal from
  autogenerate, ``on_version_apply`` records each step; explicit values of
  ``env.py`` (``transaction_per_migration`` and the rest) are left alone;
* for ``upgrade``, ``downgrade`` and ``stamp``: takes the migration lock on
  that very connection, named after the version table it passes, before
  Alembic reads that table (see :mod:`.locking`); reads the version table and
  refuses what makes no sense (see :meth:`Run._preflight`); and opens the
  run in that version table's journal (see :mod:`.journal`).

Engines ``env.py`` does not configure are never touched. Transactions are
Alembic's: one per run where the database has transactional DDL, unless
``env.py`` passes ``transaction_per_migration=True``.
"""

from __future__ import annotations

import collections
import configparser
import contextlib
import datetime as dt
import functools
import gc
import inspect
import logging
import os
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from alembic.runtime.environment import EnvironmentContext
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from flask import current_app
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from . import _speedups, journal, lock_timeouts, locking, scripts, tenancy
from .connections import DEFAULT_CONNECT_TIMEOUT, connect_timeouts
from .errors import DatabaseError, MigrateError, explain_database_error, passwords_in, scrub
from .results import Step
from .transactions import atomic_sqlite

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic.runtime.migration import MigrationContext, MigrationInfo
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection

    from .config import Config
    from .extension import _MigrateConfig

log = logging.getLogger("flask_migrate")

P = t.ParamSpec("P")
R = t.TypeVar("R")

MigrationsFn = t.Callable[[t.Any, "MigrationContext"], t.Iterable[t.Any]]


# -- the application's state, config and secrets ------------------------------------


def state() -> _MigrateConfig:
    """The ``app.extensions['migrate']`` of the current application."""
    try:
        return t.cast("_MigrateConfig", current_app.extensions["migrate"])
    except KeyError:
        raise MigrateError(
            "This application has no Flask-Migrate extension. "
            "Create it with 'Migrate(app, db)' where the app is defined."
        ) from None


def get_config(
    directory: str | os.PathLike[str] | None,
    *,
    x_arg: str | t.Sequence[str] | None = None,
    opts: t.Iterable[str] | None = None,
    quiet: bool = True,
    output: t.TextIO | None = None,
) -> Config:
    """The Alembic config of a command (see :meth:`Migrate.get_config`)."""
    config = state().migrate.get_config(directory, x_arg=x_arg, opts=opts)
    config.cmd_opts.quiet = quiet  # type: ignore[union-attr]
    if output is not None:
        config.output_buffer = output
    return config


def load_scripts(config: Config) -> ScriptDirectory:
    """The migrations folder, loaded and checked (see :func:`.scripts.load`)."""
    return scripts.load(config, state().migrate.command)


def secrets() -> list[str]:
    """The passwords of the application's databases, for scrubbing messages.

    Taken from the engines and from the configured URLs, so that a URL the
    engine could not even parse is scrubbed too.
    """
    found: set[str] = set()
    try:
        migrate_state = current_app.extensions.get("migrate")
        engines = getattr(getattr(migrate_state, "db", None), "engines", None) or {}
        found.update(e.url.password for e in engines.values() if e.url.password)
        urls = [current_app.config.get("SQLALCHEMY_DATABASE_URI")]
        urls += list((current_app.config.get("SQLALCHEMY_BINDS") or {}).values())
        for url in urls:
            if isinstance(url, dict):
                url = url.get("url")
            found.update(passwords_in(str(url or "")))
    except Exception:  # noqa: BLE001 - scrubbing must never itself fail
        pass
    return sorted(found)


def _app_engines() -> list[t.Any]:
    """The engines the application declares (only to give them connect time-outs)."""
    try:
        engines = getattr(state().db, "engines", None)
        return list(engines.values()) if engines else []
    except Exception:  # noqa: BLE001 - an app whose engines cannot be built
        return []


def _describe_db_error(exc: SQLAlchemyError) -> str:
    """The first useful line of a driver error, without SQL or parameters."""
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # psycopg puts "connection failed: " and the server address on one line
    # and the server's reason on the next; keep both
    first = " ".join(lines[:2]) if lines and lines[0].endswith(":") else (lines[0] if lines else "")
    return first or type(exc).__name__


def translate_errors(f: t.Callable[P, R]) -> t.Callable[P, R]:
    """Turn the failures a user can cause into :class:`MigrateError` subclasses.

    Each translated error keeps the original exception as ``__cause__`` and in
    its ``original`` attribute, so that the Flask-Migrate 4.1 functions can
    let it through with its own type, as 4.1 did. While ``f`` runs, new
    connections get a connect time-out (see :mod:`.connections`). Messages are
    scrubbed of database passwords.
    """

    @functools.wraps(f)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        engines = _app_engines()
        timeout = float(current_app.config.get("MIGRATE_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT))
        try:
            with connect_timeouts(engines, timeout):
                return f(*args, **kwargs)
        except MigrateError as exc:
            exc.args = (scrub(str(exc), secrets()),)
            raise
        except CommandError as exc:
            message = str(exc)
            if "Multiple head revisions" in message:
                message += (
                    ". Run 'flask db merge heads' to join them, or 'flask db upgrade "
                    "heads' to apply every branch"
                )
            raise _translated(MigrateError(scrub(message, secrets())), exc) from exc
        except RevisionError as exc:
            raise _translated(
                MigrateError(scrub(f"The revision history is broken: {exc}", secrets())), exc
            ) from exc
        except configparser.Error as exc:
            first = str(exc).splitlines()[0]
            raise _translated(MigrateError(
                f"The Alembic config file is not a valid ini file ({first}). "
                "Fix it, or restore it from version control."
            ), exc) from exc
        except SyntaxError as exc:
            raise _translated(MigrateError(
                f"Syntax error in {exc.filename}, line {exc.lineno}: {exc.msg}. "
                "Fix the file and run the command again."
            ), exc) from exc
        except (ArgumentError, NoSuchModuleError) as exc:
            raise _translated(DatabaseError(
                "Invalid database URL or driver: "
                + scrub(_describe_db_error(exc), secrets())
                + ". Check SQLALCHEMY_DATABASE_URI (and SQLALCHEMY_BINDS), and "
                "that the driver it names is installed."
            ), exc) from exc
        except SQLAlchemyError as exc:
            detail = scrub(_describe_db_error(exc), secrets())
            database = _failed_database(exc, engines)
            if "version_num" in detail:
                message = (
                    "The version table does not have the layout Alembic expects "
                    f"(a version_num column): {detail}. Repair or drop it, then "
                    "run 'flask db stamp <revision>' to record the database's revision."
                )
            else:
                message = explain_database_error(detail, database)
            raise _translated(DatabaseError(message, url=database), exc) from exc

    return wrapper


def _translated(error: MigrateError, original: BaseException) -> MigrateError:
    error.original = original
    return error


def _failed_database(exc: BaseException, engines: list[t.Any]) -> str | None:
    """The database to name in an error: the one that failed, if we know it."""
    label = getattr(exc, "_flask_migrate_database", None)
    if label is not None:
        return t.cast(str, label)
    scope = tenancy.active()
    if scope is not None and scope.tenant.url is not None:
        return scope.tenant.safe_url  # not the application's database
    if len(engines) == 1:
        label = t.cast(str, engines[0].url.render_as_string(hide_password=True))
        if scope is not None and scope.tenant.schema is not None:
            label += f" (schema {scope.tenant.schema})"
        return label
    return None


# -- one run of env.py ---------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What ``upgrade``, ``downgrade`` or ``stamp`` will do, for the checks before it."""

    direction: str
    target: str
    #: current heads -> the steps Alembic will run
    compute: t.Callable[[tuple[str, ...]], t.Sequence[t.Any]]
    #: whether to check the version table (not for ``stamp --purge``)
    check: bool = True


@dataclass
class _Running:
    """A step that started: when, and its journal row (written now, or later)."""

    began: float
    row: dict[str, t.Any] | None = None
    #: The id of the row, once it is in the journal.
    step_id: int | None = None


@dataclass
class Target:
    """One connection (or offline URL) that ``env.py`` configured."""

    context: MigrationContext
    connection: Connection | None
    #: The database, as a URL with the password hidden.
    database: str
    version_table: str
    version_table_schema: str | None
    #: The ``target_metadata`` that ``env.py`` passed (``None``, one or a sequence).
    metadata: t.Any = None
    #: Whether the whole run is one transaction on this connection.
    atomic: bool = False
    journal: journal.JournalRun | None = None
    started_at: dt.datetime | None = None
    #: Whether DDL runs inside transactions here (not on MariaDB/MySQL).
    transactional: bool = True
    #: The steps running now (Alembic reports them in order).
    started: collections.deque[_Running] = field(default_factory=collections.deque)
    #: Journal rows of finished steps, not yet written (see :meth:`Run._flush`).
    pending: list[dict[str, t.Any]] = field(default_factory=list)

    #: The revision of the step that runs (or ran last), and whether it left
    #: its transaction (``autocommit_block()``): then it must not run twice.
    step_revision: str | None = None
    autocommitted: bool = False
    #: What the version table held when the run started.
    heads_at_start: tuple[str, ...] = ()
    #: The version-table writes that wait for the end of a one-transaction run.
    versions: _speedups.DeferredVersions | None = None


def _label(connection: t.Any, url: t.Any, dialect_name: str) -> str:
    # NOTE: in --sql mode the connection is SQLAlchemy's MockConnection,
    # whose "engine" is itself and has no URL; fall back to the configured url.
    engine_url = getattr(getattr(connection, "engine", None), "url", None)
    if engine_url is not None:
        return t.cast(str, engine_url.render_as_string(hide_password=True))
    if url is not None:
        return make_url(url).render_as_string(hide_password=True)
    return dialect_name


class Run:
    """One run of ``env.py`` for one command.

    :param fn: Alembic's "migrations function": heads -> steps to run.
    :param plan: for ``upgrade``, ``downgrade`` and ``stamp`` (not in ``--sql``
        mode): what the command will do, so that each configured connection is
        locked, checked and journaled before its first step.
    :param lock: how to lock (for commands with a plan).
    :param on_step: called with each :class:`~.results.Step` as it finishes.
    :param journal: whether to keep the journal (scratch databases need none).
    :param guard: called with each connection ``env.py`` configures, before
        anything is done on it; raises to refuse it (see :func:`.scratch.guard`).
    """

    def __init__(
        self,
        config: Config,
        script: ScriptDirectory,
        fn: MigrationsFn,
        *,
        plan: Plan | None = None,
        lock: locking.LockOptions | None = None,
        on_step: t.Callable[[Step], None] | None = None,
        journal: bool = True,
        guard: t.Callable[[t.Any], None] | None = None,
        **env_kwargs: t.Any,
    ) -> None:
        self.config = config
        self.script = script
        self.fn = fn
        self.plan = plan
        self.lock = lock or locking.LockOptions()
        self.on_step = on_step
        self.keep_journal = journal
        self.guard = guard
        self.env_kwargs = env_kwargs
        self.steps: list[Step] = []
        self.targets: dict[int, Target] = {}
        self._held: set[str] = set()
        self._releases: list[t.Callable[[], None]] = []
        #: The tenant this run is for (see :mod:`.tenancy`), if any.
        self.tenant = tenancy.active()

    # -- the public face -----------------------------------------------------------

    def execute(self) -> list[Step]:
        """Run ``env.py``; returns the steps applied."""
        migrate_state = state()
        mutating = self.plan is not None
        with contextlib.ExitStack() as stack:
            if mutating:
                stack.enter_context(atomic_sqlite())
            stack.enter_context(_speedups.batch_reflection())
            stack.enter_context(frozen_heap())
            stack.enter_context(migrate_state.run_configure_args())
            env = environment(self, self.config, self.script, fn=self._fn, **self.env_kwargs)
            try:
                with env:
                    self.script.run_env()
            except BaseException as exc:
                self._release_locks()
                if mutating:
                    self._record_failures(exc)
                raise
            self._release_locks()
        return self.steps

    def target_for(self, context: MigrationContext) -> Target | None:
        """What ``env.py`` configured for ``context``."""
        return self.targets.get(id(context))

    # -- configure() ---------------------------------------------------------------

    def configure_args(self, kwargs: dict[str, t.Any]) -> dict[str, t.Any]:
        """``env.py``'s configure arguments, with our callbacks chained to its own."""
        user_filter = kwargs.get("include_name")
        # a schema tenant's version table is in the schema autogenerate compares
        hidden = (
            kwargs.get("version_table") or "alembic_version"
            if self.tenant is not None and self.tenant.tenant.schema is not None
            else None
        )

        tenant_schemas: set[str] | None = None  # read on first use

        def include_name(name: str | None, type_: str, parent_names: t.Any) -> bool:
            nonlocal tenant_schemas
            # our journals are not part of the application's schema: autogenerate
            # must neither see them nor propose to drop them
            if type_ == "table" and (journal.is_journal(name) or name == hidden):
                return False
            if type_ == "schema" and self.tenant is None and name is not None:
                # NOTE: only asked with include_schemas=True: the tenants'
                # schemas are theirs, not the application database's to drop
                if tenant_schemas is None:
                    tenant_schemas = _tenant_schemas()
                if name in tenant_schemas:
                    return False
            return user_filter is None or bool(user_filter(name, type_, parent_names))

        user_hooks = kwargs.get("on_version_apply") or ()
        if callable(user_hooks):
            user_hooks = (user_hooks,)
        args = {
            **kwargs,
            "include_name": include_name,
            "on_version_apply": (*user_hooks, self._on_version_apply),
        }
        migrate_state = state()
        if migrate_state.migrate.tenant_directory is not None:
            # NOTE: tenants with a history of their own have other tables than
            # the application's database: the main history must neither create
            # the per-tenant tables there nor drop them, and the tenants'
            # history the same with the shared tables, whatever metadata
            # env.py passes. A table is per-tenant when marked so
            # (Table.info[TENANT_INFO_KEY]) or when the application's model
            # of that schema and name is; tables the models do not know stay.
            user_object_filter = kwargs.get("include_object")
            tenant_run = self.tenant is not None
            models: dict[tuple[str | None, str], bool] | None = None  # read on first use

            def include_object(obj: t.Any, name: str | None, type_: str, reflected: bool, compare_to: t.Any) -> bool:
                nonlocal models
                if type_ == "table" and name is not None:
                    if models is None:
                        models = {
                            (table.schema, table.name): bool(table.info.get(tenancy.TENANT_INFO_KEY))
                            for table in migrate_state.get_metadata(None).tables.values()
                        }
                    per_tenant = True if obj.info.get(tenancy.TENANT_INFO_KEY) else models.get((obj.schema, name))
                    if per_tenant is not None and per_tenant != tenant_run:
                        return False
                return user_object_filter is None or bool(
                    user_object_filter(obj, name, type_, reflected, compare_to)
                )

            args["include_object"] = include_object
        connection = kwargs.get("connection")
        if (
            self.plan is not None
            and kwargs.get("transactional_ddl") is None
            and getattr(getattr(connection, "dialect", None), "name", None) == "sqlite"
        ):
            # NOTE: Alembic assumes SQLite cannot roll DDL back, because
            # pysqlite runs it outside transactions. While this run lasts we
            # send the BEGIN pysqlite leaves out (see .transactions), so SQLite
            # is as transactional as PostgreSQL: one transaction per run, as
            # Alembic does there, unless env.py says otherwise.
            args["transactional_ddl"] = True
        return args

    def redirect(self, kwargs: dict[str, t.Any]) -> dict[str, t.Any]:
        """Before ``configure()``, in a tenant's run: point ``env.py``'s connection at the tenant.

        A ``url`` tenant gets a connection to its own database instead of the
        one ``env.py`` opened on the application's engine; a ``schema`` tenant
        keeps ``env.py``'s connection, with its schema as the default (the
        version table too). A tenant is one database: a second configured
        connection (a multi-database ``env.py``) is refused.
        """
        scope = self.tenant
        if scope is None:
            return kwargs
        tenant = scope.tenant
        connection = kwargs.get("connection")
        # NOTE: a multi-database env.py names each database's run with an
        # upgrade_token ("<bind>_upgrades"), and configures the next database
        # only after the first one's run: refused at the first, before it runs
        if self.targets or kwargs.get("upgrade_token", "upgrades") != "upgrades":
            raise MigrateError(
                f"Tenant {tenant.name}: env.py configured more than one database. A tenant is "
                "one database (or schema); give tenants a single-database history "
                "(Migrate(..., tenant_directory=...), made by 'flask db init --tenants')."
            )
        if connection is None:
            raise MigrateError(
                f"Tenant {tenant.name}: env.py configured no connection (offline --sql mode); "
                "commands for tenants run on their databases."
            )
        kwargs = dict(kwargs)
        if tenant.url is not None:
            own = scope.engine().connect()
            self._releases.append(own.close)
            kwargs["connection"] = own
            return kwargs
        if connection.dialect.name != "postgresql":
            raise MigrateError(
                f"Tenant {tenant.name}: schema tenants need PostgreSQL, and env.py connects to "
                f"{connection.dialect.name}. Give each tenant a database of its own: "
                "Tenant(name, url=...)."
            )
        explicit = kwargs.get("version_table_schema")
        if explicit not in (None, tenant.schema):
            raise MigrateError(
                f"Tenant {tenant.name}: env.py puts the version table in schema {explicit!r}, "
                "which every tenant would share; a schema tenant keeps it in its own schema. "
                "Remove version_table_schema from env.py's configure() for tenant runs."
            )
        kwargs["version_table_schema"] = tenant.schema
        # NOTE: on SQLAlchemy 2 this sets the option on env.py's connection itself
        kwargs["connection"] = connection.execution_options(
            schema_translate_map={None: tenant.schema}
        )
        return kwargs

    def _enter_schema(self, target: Target, connection: Connection, was_in_transaction: bool) -> None:
        """A schema tenant's run: create its schema (upgrade, stamp) and make it the default.

        ``search_path`` starts with the schema, for raw SQL. Runs that run
        revisions keep the rest of the path (extensions and shared tables in
        ``public`` stay reachable); autogenerate runs see only the schema, so
        that the shared tables are not taken for the tenant's. The path is
        reset when the connection goes back to its pool.
        """
        scope = self.tenant
        assert scope is not None and scope.tenant.schema is not None
        schema = scope.tenant.schema
        quoted = connection.dialect.identifier_preparer.quote_identifier(schema)
        exists = connection.execute(
            sa.text("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = :name"), {"name": schema}
        ).first() is not None
        if not exists and self.plan is not None and self.plan.direction in ("upgrade", "stamp"):
            connection.execute(sa.text(f"CREATE SCHEMA {quoted}"))
            scope.created_schema = True
            if not was_in_transaction:
                # NOTE: committed on its own (under the lock): should the run
                # fail, the schema stays, empty, to hold the journal's record
                # of the failure that 'status --all-tenants' reports
                connection.commit()
        elif not exists and self.env_kwargs.get("revision_context") is not None:
            raise MigrateError(
                f"Tenant {scope.tenant.name}: schema {schema!r} does not exist. Run 'flask db "
                f"upgrade --tenant {scope.tenant.name}' to create it."
            )
        path = quoted
        if self.env_kwargs.get("revision_context") is None:
            rest = connection.execute(sa.text("SHOW search_path")).scalar()
            if rest:
                path = f"{quoted}, {rest}"
        connection.execute(sa.text(f"SET search_path TO {path}"))
        self._at_checkin(
            connection,
            lambda dbapi_conn: locking.run_dbapi(dbapi_conn, "RESET search_path", commit=True),
            f"Resetting search_path on {target.database}",
        )

    def attach(self, context: MigrationContext, kwargs: dict[str, t.Any], was_in_transaction: bool) -> None:
        """After ``configure()``: lock, check and journal the configured connection."""
        connection = kwargs.get("connection")
        if self.guard is not None:
            self.guard(connection)
        database = _label(connection, kwargs.get("url"), context.dialect.name)
        if self.tenant is not None and self.tenant.tenant.schema is not None:
            database += f" (schema {self.tenant.tenant.schema})"
        target = Target(
            context=context,
            connection=connection,
            database=database,
            version_table=kwargs.get("version_table") or "alembic_version",
            version_table_schema=kwargs.get("version_table_schema"),
            metadata=kwargs.get("target_metadata"),
        )
        self.targets[id(context)] = target
        # autogenerate runs (they carry a revision context) only read the schema
        release = _speedups.attach(
            context, autogenerate=self.env_kwargs.get("revision_context") is not None
        )
        if release is not None:
            self._releases.append(release)
        schema_tenant = self.tenant is not None and self.tenant.tenant.schema is not None
        if schema_tenant and (self.plan is None or context.as_sql) and connection is not None:
            self._enter_schema(target, connection, was_in_transaction)
        if self.plan is None or connection is None or context.as_sql:
            return
        transactional = kwargs.get("transactional_ddl")
        if transactional is None:
            transactional = context.impl.transactional_ddl
        per_migration = bool(kwargs.get("transaction_per_migration", False))
        target.transactional = bool(transactional)
        target.atomic = bool(transactional) and (was_in_transaction or not per_migration)
        if self.tenant is not None:
            self.tenant.atomic = target.atomic
        try:
            if self.lock.enabled:
                self._lock(target, connection)
            if schema_tenant:
                self._enter_schema(target, connection, was_in_transaction)
            self._preflight(target, connection)
            self._ddl_timeout(target, connection)
            _watch_autocommit(context, target, self._before_autocommit)
            if target.atomic:
                target.versions = _speedups.defer_version_writes(context, target.heads_at_start)
            if not target.atomic and not was_in_transaction and connection.in_transaction():
                # the run row and the checks commit before the first step
                connection.commit()
        except BaseException as exc:
            exc._flask_migrate_database = target.database  # type: ignore[attr-defined]
            if isinstance(exc, MigrateError):
                # a refusal: nothing of this run is to be written anywhere
                exc._flask_migrate_refusal = True  # type: ignore[attr-defined]
            if not was_in_transaction and connection.in_transaction():
                with contextlib.suppress(Exception):
                    connection.rollback()
            raise

    def _lock(self, target: Target, connection: Connection) -> None:
        key = locking.lock_key(target.version_table, target.version_table_schema)
        lock = locking.lock_for(connection, key)
        if lock is None:
            return
        identity = lock.identity(connection)
        if identity in self._held:
            return  # two binds on one database and version table: locked once
        lock.acquire(connection, self.lock.timeout, self.lock.on_wait or _log_lock_wait)
        self._held.add(identity)
        self._at_checkin(connection, lock.release_dbapi, f"Releasing the migration lock on {target.database}")

    def _at_checkin(self, connection: Connection, fn: t.Callable[[t.Any], None], what: str) -> None:
        """Run ``fn(dbapi_connection)`` when ``env.py`` returns ``connection`` to its pool.

        NOTE: what a run sets on env.py's connection (the migration lock, a
        lock time-out) must outlive the run's last commit, and must not stay
        with a pooled connection: it is undone as the connection goes back to
        the pool, or, at the latest, when the command ends.
        """
        dbapi_conn = connection.connection.dbapi_connection
        pool = connection.engine.pool
        done = False

        def undo() -> None:
            nonlocal done
            if done:
                return
            done = True
            try:
                fn(dbapi_conn)
            except Exception as exc:  # noqa: BLE001 - never hide the command's own outcome
                log.debug("%s: %s", what, exc)

        def on_checkin(checked_in: t.Any, record: t.Any) -> None:
            if checked_in is dbapi_conn:
                undo()

        def finish() -> None:
            undo()
            # not from on_checkin: a listener cannot go while the pool calls them
            with contextlib.suppress(Exception):
                sa.event.remove(pool, "checkin", on_checkin)

        sa.event.listen(pool, "checkin", on_checkin)
        self._releases.append(finish)

    def _ddl_timeout(self, target: Target, connection: Connection) -> None:
        """Make migration statements give up on a table lock after a while (see :mod:`.lock_timeouts`)."""
        seconds = ddl_timeout(self.lock)
        setting = lock_timeouts.setting_for(connection.dialect.name)
        if not seconds or setting is None:
            return
        previous = setting.apply(connection, seconds)
        statements = setting.restore_statements(previous)
        self._at_checkin(
            connection,
            lambda dbapi_conn: locking.run_dbapi(dbapi_conn, *statements, commit=True),
            f"Restoring the lock time-out on {target.database}",
        )

    def interrupted(self) -> Target | None:
        """After a failure: the target whose step was running, if any."""
        for target in self.targets.values():
            if target.started:
                return target
        return None

    def _preflight(self, target: Target, conn: Connection) -> None:
        """Under the lock, before Alembic reads the version table: check, and open the run.

        Everything that makes the command refuse fails here, before anything
        is written: a bad revision, a broken version table, a revision left
        half-applied on MariaDB/MySQL, and an upgrade of a database that was
        built without migrations (its first revision would fail half-way with
        "table already exists"; ``stamp`` is how to adopt it).
        """
        plan = self.plan
        assert plan is not None
        schema = target.version_table_schema
        existing = set(sa.inspect(conn).get_table_names(schema=schema))
        has_version_table = target.version_table in existing
        heads: tuple[str, ...] = ()
        if has_version_table:
            heads = tuple(target.context.get_current_heads())
        if not heads and plan.direction == "upgrade":
            # NOTE: 'flask db migrate' creates an empty version table, so an
            # empty one says no more than a missing one
            if schema is not None and not (self.tenant is not None and self.tenant.tenant.schema):
                existing_models = set(sa.inspect(conn).get_table_names())
            else:
                existing_models = existing
            _refuse_unversioned_schema(existing_models, target, has_version_table)
        target.heads_at_start = heads
        if self.tenant is not None:
            self.tenant.heads_before = heads
        if plan.check:
            scripts.check_heads(self.script, heads, target.database, target.version_table)
        steps = plan.compute(heads)
        if not self.keep_journal:
            return
        table = journal.journal_table(schema=schema, version_table=target.version_table)
        files = {
            rev: Path(sc.path)
            for rev in heads
            if (sc := scripts.known_script(self.script, rev)) is not None
        }
        run = journal.JournalRun(plan.direction, plan.target, table, target.database)
        try:
            run.prepare(conn, heads, steps, files, has_journal=table.name in existing)
        except journal.InterruptedRevision as exc:
            raise MigrateError(str(exc)) from None
        for note in run.notes:
            log.warning(note)
        if plan.direction == "upgrade" and table.name in existing:
            _warn_changed_files(conn, table, self.script, heads, target.database)
        if run.opened:
            target.journal = run
            target.started_at = run.started_at

    # -- run_migrations() ------------------------------------------------------------

    def finished(self, context: MigrationContext, error: BaseException | None) -> None:
        """After Alembic's ``run_migrations()``: close the run in the journal.

        On success the run row is marked done on the migration's connection:
        inside the run's transaction where the run is one transaction (so it
        commits with the run), else in a transaction of its own. On failure
        it is marked failed here where that can be committed on its own;
        otherwise the rows vanish with the rollback and :meth:`execute`
        records the failure once ``env.py`` is done.
        """
        target = self.targets.get(id(context))
        if target is not None and target.versions is not None and error is None:
            target.versions.flush()  # before the run's transaction commits
        if target is None or target.journal is None or target.connection is None:
            return
        conn = target.connection
        run = target.journal
        if error is None:
            if conn.in_transaction():
                self._flush(target, conn)
                run.finish(conn, None)
            else:
                with conn.begin():
                    self._flush(target, conn)
                    run.finish(conn, None)
            return
        target.pending.clear()  # rolled back with their steps, or never to be written
        if conn.in_transaction():
            return
        try:
            with conn.begin():
                run.finish(conn, _error_text(error))
        except Exception as exc:  # noqa: BLE001 - never hide the command's own outcome
            log.debug("Could not record the failure in %s: %s", target.database, exc)

    def _record_failures(self, error: BaseException) -> None:
        """After ``env.py`` failed: record failed runs whose rows did not survive."""
        for target in self.targets.values():
            run = target.journal
            if run is None or target.connection is None or target.started_at is None:
                continue
            engine = target.connection.engine
            if engine.dialect.is_async:
                # NOTE: env.py's event loop is gone, and with it any way to use
                # this engine. A one-transaction run rolled its rows back, so it
                # leaves no trace; a run committed per revision was marked
                # failed by finished() already, unless it failed outside
                # run_migrations(): then the next run reports it as interrupted.
                continue
            try:
                with engine.connect() as conn:
                    if journal.exists(conn, run.table):
                        state_now = conn.execute(
                            sa.select(run.table.c.state).where(
                                run.table.c.run_id == run.run_id, run.table.c.kind == "run"
                            )
                        ).scalar()
                    else:
                        state_now = None
                    if state_now is None:
                        if getattr(error, "_flask_migrate_refusal", False):
                            # refused before any revision ran anywhere: the
                            # run's rows were rolled back, and stay so
                            continue
                        run.record_failure(conn, _error_text(error), target.started_at)
                    elif state_now == journal.RUNNING:
                        run.finish(conn, _error_text(error))
                    conn.commit()
            except Exception as exc:  # noqa: BLE001 - never hide the command's own outcome
                log.warning("Could not record the end of this run in %s: %s", target.database, exc)

    def _release_locks(self) -> None:
        releases, self._releases = self._releases, []
        for release in releases:
            release()

    # -- steps -------------------------------------------------------------------------

    def _fn(self, rev: t.Any, context: MigrationContext) -> t.Iterable[t.Any]:
        steps = list(self.fn(rev, context))
        target = self.targets.get(id(context))
        if context.as_sql or target is None:
            return steps
        for step in steps:
            step.migration_fn = self._timed(step, target)
        return steps

    def _step_row(self, target: Target, step: t.Any) -> dict[str, t.Any]:
        assert target.journal is not None
        revision = getattr(step, "revision", None)
        return journal.step_row(
            target.journal.run_id,
            _direction(step),
            getattr(revision, "revision", None) or _stamp_target(step),
            _checksum(revision),
            os.path.basename(revision.path) if revision is not None else None,
            scripts.first_line(getattr(revision, "doc", None)),
        )

    def _timed(self, step: t.Any, target: Target) -> t.Callable[..., t.Any]:
        run = step.migration_fn

        @functools.wraps(run)  # Alembic names the step after the function
        def timed(*args: t.Any, **kw: t.Any) -> t.Any:
            running = _Running(time.perf_counter())
            if target.journal is not None and target.connection is not None:
                running.row = self._step_row(target, step)
                if not target.transactional:
                    # NOTE: DDL commits by itself here, and commits this row
                    # with it: a step that fails or dies after its first DDL
                    # statement leaves it "running" (see
                    # journal.InterruptedRevision), one that fails before
                    # rolls it back. (Written ahead, with the previous step's
                    # commit, it would save that commit but lose the
                    # distinction.)
                    running.step_id = journal.start_step(
                        target.connection, target.journal.table, running.row
                    )
            target.step_revision = getattr(getattr(step, "revision", None), "revision", None)
            target.autocommitted = False
            target.started.append(running)
            return run(*args, **kw)

        return timed

    def _before_autocommit(self, target: Target) -> None:
        """A step leaves its transaction: what the journal holds must be committed with it.

        The rows of the steps before it, and its own row, saying "running"
        (such a step cannot be rolled back, and must never run twice).
        """
        if target.versions is not None:
            target.versions.flush()
        if target.journal is None or target.connection is None:
            return
        self._flush(target, target.connection)
        running = target.started[-1] if target.started else None
        if running is not None and running.row is not None and running.step_id is None:
            running.step_id = journal.start_step(target.connection, target.journal.table, running.row)

    def _flush(self, target: Target, conn: Connection) -> None:
        """Write the journal rows of the steps that finished, in one statement."""
        if target.pending and target.journal is not None:
            journal.insert_steps(conn, target.journal.table, target.pending)
            target.pending.clear()

    def _on_version_apply(
        self,
        *,
        ctx: MigrationContext,
        step: MigrationInfo,
        heads: set[str],
        run_args: dict[str, t.Any],
    ) -> None:
        target = self.targets.get(id(ctx))
        if step.is_stamp:
            direction = "stamp"
        else:
            direction = "upgrade" if step.is_upgrade else "downgrade"
        duration = None
        if target is not None and target.started:
            running = target.started.popleft()
            duration = time.perf_counter() - running.began
            if running.row is not None and target.journal is not None and ctx.connection is not None:
                ms = int(duration * 1000)
                if running.step_id is not None:
                    journal.finish_step(ctx.connection, target.journal.table, running.step_id, ms)
                else:
                    # written with the step's transaction: at the end of the
                    # run where the run is one transaction, else now
                    target.pending.append(journal.finished_step(running.row, ms))
                    if not target.atomic:
                        self._flush(target, ctx.connection)
        recorded = Step(
            direction=direction,
            source=tuple(step.source_revision_ids),
            destination=tuple(step.destination_revision_ids),
            revision=step.up_revision_id,
            message=scripts.first_line(getattr(step.up_revision, "doc", None)),
            database=target.database if target is not None else ctx.dialect.name,
            duration=None if ctx.as_sql else duration,
        )
        self.steps.append(recorded)
        if self.on_step is not None:
            self.on_step(recorded)


# the names of EnvironmentContext.configure()'s parameters, for positional calls
_CONFIGURE_PARAMETERS = list(inspect.signature(EnvironmentContext.configure).parameters)[1:]


def environment(run: Run, *args: t.Any, **kwargs: t.Any) -> EnvironmentContext:
    """Alembic's environment for ``env.py``, with ``run``'s hooks on ``configure()``.

    NOTE: the hooks are set on the instance, not in a subclass: while
    ``env.py`` runs, ``alembic.context`` offers the attributes of the
    instance, and Alembic builds that module proxy for its own class only.
    """
    env = EnvironmentContext(*args, **kwargs)
    configure = env.configure
    run_migrations = env.run_migrations

    @functools.wraps(configure)
    def configure_hooked(*args: t.Any, **kwargs: t.Any) -> None:
        for name, value in zip(_CONFIGURE_PARAMETERS, args):
            if name in kwargs:
                raise TypeError(f"configure() got multiple values for argument {name!r}")
            kwargs[name] = value
        # NOTE: env.py files of the 2.x/3.x era call fileConfig() with its
        # default disable_existing_loggers=True, which silences our logger
        # when alembic.ini does not name it; its warnings (interrupted runs,
        # edited revisions) must still be heard
        log.disabled = False
        kwargs = run.redirect(kwargs)
        connection = kwargs.get("connection")
        in_transaction = getattr(connection, "in_transaction", None)
        was_in_transaction = bool(in_transaction()) if in_transaction is not None else False
        configure(**run.configure_args(kwargs))
        run.attach(env.get_context(), kwargs, was_in_transaction)

    @functools.wraps(run_migrations)
    def run_migrations_hooked(**kw: t.Any) -> None:
        context = env.get_context()
        try:
            run_migrations(**kw)
        except BaseException as exc:
            run.finished(context, exc)
            raise
        run.finished(context, None)

    setattr(env, "configure", configure_hooked)  # noqa: B010 - mypy: no assigning to methods
    setattr(env, "run_migrations", run_migrations_hooked)  # noqa: B010
    return env


# -- helpers ----------------------------------------------------------------------------


def _tenant_schemas() -> set[str]:
    """The schemas of the application's schema tenants (none when it declares none)."""
    function = state().migrate.tenants
    if function is None:
        return set()
    try:
        return {schema for tenant in function() if (schema := getattr(tenant, "schema", None))}
    except Exception as exc:  # noqa: BLE001 - autogenerate goes on; the user is told
        log.warning(
            "Could not list the tenants to keep their schemas out of autogenerate: %s: %s",
            type(exc).__name__, exc,
        )
        return set()


@contextlib.contextmanager
def frozen_heap() -> t.Iterator[None]:
    """Keep the garbage collector off what exists before the run (``gc.freeze()``).

    NOTE: a run allocates millions of short-lived objects (SQL constructs,
    revision modules), which set off full collections of everything the
    process holds: the application's models, its modules, all of SQLAlchemy.
    With a large application that is a large share of a run (measured: ~20%
    of a 1,000-revision SQLite upgrade whose app has 1,000 models). Objects
    made during the run are collected as usual. Left alone when something
    else (a pre-forking server, say) has frozen objects already.
    """
    if gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def ddl_timeout(options: locking.LockOptions) -> float:
    """The DDL lock time-out of a command: its option, else the app's config, else 10 s."""
    if options.ddl_timeout is not None:
        return float(options.ddl_timeout)
    return float(current_app.config.get("MIGRATE_DDL_LOCK_TIMEOUT", lock_timeouts.DEFAULT_TIMEOUT))


def ddl_retries(options: locking.LockOptions) -> int:
    """How often a run that gave up on a table lock is retried (PostgreSQL)."""
    if options.ddl_retries is not None:
        return int(options.ddl_retries)
    return int(current_app.config.get("MIGRATE_DDL_LOCK_RETRIES", lock_timeouts.DEFAULT_RETRIES))


def _watch_autocommit(
    context: MigrationContext, target: Target, before: t.Callable[[Target], None]
) -> None:
    """Note when a step leaves its transaction: such a step must never run twice.

    ``before(target)`` runs first, inside the transaction that Alembic then commits.
    """
    original = context.autocommit_block

    @contextlib.contextmanager
    def autocommit_block() -> t.Iterator[None]:
        target.autocommitted = True
        before(target)
        with original():
            yield

    setattr(context, "autocommit_block", autocommit_block)  # noqa: B010


def _error_text(error: BaseException) -> str:
    return scrub(f"{type(error).__name__}: {error}", secrets())


def _log_lock_wait(database: str, holder: locking.LockHolder | None) -> None:
    who = holder.describe() if holder else "another process"
    log.warning("Waiting for the migration lock on %s, held by %s.", database, who)


def _checksum(revision: t.Any) -> str | None:
    if revision is None:
        return None
    try:
        return journal.script_checksum(revision)
    except OSError:  # the file went away
        return None


def _direction(step: t.Any) -> str:
    if not hasattr(step, "revision"):
        return "stamp"
    return "upgrade" if step.is_upgrade else "downgrade"


def _stamp_target(step: t.Any) -> str | None:
    targets = getattr(step, "to_", None) or getattr(step, "to_revisions", None) or ()
    return ",".join(targets) if targets else None


def metadata_tables(metadata: t.Any, schema: str | None | t.Literal["*"] = "*") -> set[str]:
    """The names of the tables ``target_metadata`` models in ``schema`` (``"*"``: any)."""
    if metadata is None:
        return set()
    metadatas = metadata if isinstance(metadata, (list, tuple)) else [metadata]
    return {
        table.name
        for md in metadatas
        for table in md.tables.values()
        if schema == "*" or table.schema == schema
    }


def _refuse_unversioned_schema(existing: set[str], target: Target, has_version_table: bool) -> None:
    """Refuse to upgrade a database whose tables were built without migrations."""
    clash = sorted(existing & metadata_tables(target.metadata, None))
    if clash:
        shown = ", ".join(clash[:5]) + (", ..." if len(clash) > 5 else "")
        where = (
            f"no revision in its {target.version_table} table" if has_version_table
            else f"no {target.version_table} table"
        )
        raise MigrateError(
            f"{target.database} already has tables ({shown}) but {where}: it was not "
            "built by these migrations. If its schema matches the models, run 'flask db "
            "stamp head' to adopt it, then 'flask db upgrade' for anything newer."
        )


def _warn_changed_files(
    conn: t.Any, table: sa.Table, script: ScriptDirectory, heads: tuple[str, ...], database: str
) -> None:
    """Say once if revisions applied to this database were edited since."""
    changed = journal.changed_files(script, heads, [], journal.applied_checksums(conn, table))
    changed = scripts.without_squashes(script, changed)
    if changed:
        listed = ", ".join(f"{c.revision} ({c.change})" for c in changed)
        log.warning(
            "Revisions applied to %s have changed since: %s. Databases already migrated "
            "do not see such edits; run 'flask db status' for details.", database, listed,
        )


def run_env(
    config: Config,
    script: ScriptDirectory,
    fn: MigrationsFn,
    **env_kwargs: t.Any,
) -> Run:
    """Run ``env.py`` with ``fn`` for a command that changes no database."""
    run = Run(config, script, fn, **env_kwargs)
    run.execute()
    return run


def autogenerate_diffs(config: Config, script: ScriptDirectory, **run_kwargs: t.Any) -> list[t.Any]:
    """What autogenerate finds between the models and the database(s) ``env.py`` configures.

    ``run_kwargs`` go to :class:`Run` (``guard``, for instance).
    """
    # NOTE: no "autogenerate" in cmd_opts: the original's env.py hook then
    # empties the directives when nothing changed, and Alembic's check fails
    # with an IndexError on the emptied list.
    from alembic.autogenerate import RevisionContext

    revision_context = RevisionContext(
        config, script,
        dict(message=None, autogenerate=True, sql=False, head="head", splice=False,
             branch_label=None, version_path=None, rev_id=None, depends_on=None),
    )

    def compare(rev: t.Any, context: MigrationContext) -> list[t.Any]:
        revision_context.run_autogenerate(rev, context)
        return []

    Run(
        config, script, compare, as_sql=False,
        template_args=revision_context.template_args, revision_context=revision_context,
        **run_kwargs,
    ).execute()
    diffs: list[t.Any] = []
    for generated in revision_context.generated_revisions:
        for upgrade_ops in generated.upgrade_ops_list:
            diffs.extend(upgrade_ops.as_diffs())
    return diffs
