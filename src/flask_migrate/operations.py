"""One function per migration operation, for programs that embed migrations.

These are the functions behind both the ``flask db`` commands and the
Flask-Migrate-compatible functions exported by :mod:`flask_migrate`. They take
the same parameters as those, but:

* they **return data** (scripts, applied steps, current revisions) instead of
  printing it;
* they **raise** :class:`~flask_migrate.errors.MigrateError` (a subclass of
  Alembic's ``CommandError``) instead of logging and exiting;
* Alembic's own progress messages ("Generating ...", "Creating directory ...")
  are silenced unless ``quiet=False``; SQL produced in ``sql=True`` mode goes
  to ``output`` (standard output by default), since the SQL is the product.

They must run inside an application context of an app that has a
:class:`~flask_migrate.Migrate` extension, like the original functions.
"""

from __future__ import annotations

import argparse
import collections
import configparser
import contextlib
import functools
import io
import logging
import os
import time
import typing as t
import warnings
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.runtime.environment import EnvironmentContext
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError, RevisionMap
from alembic.util import CommandError
from flask import current_app
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from . import journal, locking
from .config import Config
from .errors import (
    DatabaseError,
    DirectoryNotEmpty,
    MigrateError,
    NoMigrationsFolder,
    PendingChanges,
    TemplateNotFound,
    explain_database_error,
    passwords_in,
    scrub,
)
from .connections import DEFAULT_CONNECT_TIMEOUT, connect_timeouts, sync_engine_for
from .extension import x_arguments
from .transactions import atomic_sqlite

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic.runtime.migration import MigrationContext, MigrationInfo

    from .extension import _MigrateConfig
    from .status import Status

__all__ = [
    "BranchPoint",
    "CurrentRevisions",
    "History",
    "LockOptions",
    "Step",
    "TemplateInfo",
    "branches",
    "check",
    "current",
    "downgrade",
    "edit",
    "heads",
    "history",
    "init",
    "list_templates",
    "merge",
    "migrate",
    "revision",
    "show",
    "stamp",
    "status",
    "upgrade",
]

log = logging.getLogger("flask_migrate")

P = t.ParamSpec("P")
R = t.TypeVar("R")


@dataclass(frozen=True)
class TemplateInfo:
    """A migrations-folder template that ``init`` can use."""

    name: str
    synopsis: str
    path: Path


@dataclass(frozen=True)
class Step:
    """One step that ``upgrade``, ``downgrade`` or ``stamp`` applied."""

    #: ``"upgrade"``, ``"downgrade"`` or ``"stamp"``.
    direction: str
    #: The revisions the database was at before the step.
    source: tuple[str, ...]
    #: The revisions the database is at after the step.
    destination: tuple[str, ...]
    #: The revision whose ``upgrade()``/``downgrade()`` ran (``None`` for a stamp to base).
    revision: str | None
    #: The first line of that revision's message.
    message: str | None
    #: The database, as a URL with the password hidden.
    database: str
    #: How long the step took, in seconds (``None`` in ``--sql`` mode).
    duration: float | None = None


@dataclass(frozen=True)
class CurrentRevisions:
    """The revisions a database is at (``current``)."""

    #: The database, as a URL with the password hidden.
    database: str
    #: The revision ids in its version table; empty when it is at base.
    revisions: tuple[str, ...]
    #: The scripts of those revisions, when the migrations folder knows them.
    scripts: tuple[Script, ...]


@dataclass(frozen=True)
class BranchPoint:
    """A revision that more than one revision builds on (``branches``)."""

    script: Script
    #: The revisions that build on it.
    children: tuple[Script, ...]


@dataclass(frozen=True)
class History:
    """The result of ``history``."""

    #: The revision scripts, newest first.
    scripts: tuple[Script, ...]
    #: The database's current revisions, when asked for (``indicate_current``).
    current: tuple[str, ...] | None = None


def _state() -> _MigrateConfig:
    try:
        return t.cast("_MigrateConfig", current_app.extensions["migrate"])
    except KeyError:
        raise MigrateError(
            "This application has no Flask-Migrate extension. "
            "Create it with 'Migrate(app, db)' where the app is defined."
        ) from None


def _secrets() -> list[str]:
    """The passwords of the application's databases, for scrubbing messages.

    Taken from the engines and from the configured URLs, so that a URL the
    engine could not even parse is scrubbed too.
    """
    found: set[str] = set()
    try:
        state = current_app.extensions.get("migrate")
        engines = getattr(getattr(state, "db", None), "engines", None) or {}
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


def _describe_db_error(exc: SQLAlchemyError) -> str:
    """The first useful line of a driver error, without SQL or parameters."""
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # psycopg puts "connection failed: " and the server address on one line
    # and the server's reason on the next; keep both
    first = " ".join(lines[:2]) if lines and lines[0].endswith(":") else (lines[0] if lines else "")
    return first or type(exc).__name__


def _engines_or_none() -> list[t.Any]:
    try:
        return _app_engines(_state())
    except Exception:  # noqa: BLE001 - an app whose engines cannot be built
        return []


def _database_hint(engines: list[t.Any]) -> str | None:
    """The database to name in an error: only when there is just one."""
    if len(engines) == 1:
        return t.cast(str, engines[0].url.render_as_string(hide_password=True))
    return None


def _translate_errors(f: t.Callable[P, R]) -> t.Callable[P, R]:
    """Turn the failures a user can cause into :class:`MigrateError` subclasses.

    While ``f`` runs, new connections get a connect time-out (see
    :mod:`.connections`). Messages are scrubbed of database passwords.
    """

    @functools.wraps(f)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        engines = _engines_or_none()
        timeout = DEFAULT_CONNECT_TIMEOUT
        if current_app:
            timeout = float(current_app.config.get("MIGRATE_CONNECT_TIMEOUT", timeout))
        try:
            with connect_timeouts(engines, timeout):
                return f(*args, **kwargs)
        except MigrateError as exc:
            exc.args = (scrub(str(exc), _secrets()),)
            raise
        except CommandError as exc:
            message = str(exc)
            if "Multiple head revisions" in message:
                message += (
                    ". Run 'flask db merge heads' to join them, or 'flask db upgrade "
                    "heads' to apply every branch"
                )
            raise MigrateError(scrub(message, _secrets())) from exc
        except RevisionError as exc:
            raise MigrateError(
                scrub(f"The revision history is broken: {exc}", _secrets())
            ) from exc
        except configparser.Error as exc:
            first = str(exc).splitlines()[0]
            raise MigrateError(
                f"The Alembic config file is not a valid ini file ({first}). "
                "Fix it, or restore it from version control."
            ) from exc
        except SyntaxError as exc:
            raise MigrateError(
                f"Syntax error in {exc.filename}, line {exc.lineno}: {exc.msg}. "
                "Fix the file and run the command again."
            ) from exc
        except (ArgumentError, NoSuchModuleError) as exc:
            raise DatabaseError(
                "Invalid database URL or driver: "
                + scrub(_describe_db_error(exc), _secrets())
                + ". Check SQLALCHEMY_DATABASE_URI (and SQLALCHEMY_BINDS), and "
                "that the driver it names is installed."
            ) from exc
        except SQLAlchemyError as exc:
            detail = scrub(_describe_db_error(exc), _secrets())
            database = _database_hint(engines)
            if "version_num" in detail:
                message = (
                    "The version table does not have the layout Alembic expects "
                    f"(a version_num column): {detail}. Repair or drop it, then "
                    "run 'flask db stamp <revision>' to record the database's revision."
                )
            else:
                message = explain_database_error(detail, database)
            raise DatabaseError(message, url=database) from exc

    return wrapper


def _get_config(
    directory: str | os.PathLike[str] | None,
    *,
    x_arg: str | t.Sequence[str] | None = None,
    opts: t.Iterable[str] | None = None,
    quiet: bool = True,
    output: t.TextIO | None = None,
) -> Config:
    config = _state().migrate.get_config(directory, x_arg=x_arg, opts=opts)
    config.cmd_opts.quiet = quiet  # type: ignore[union-attr]
    if output is not None:
        config.output_buffer = output
    return config


def _script_directory(config: Config) -> ScriptDirectory:
    """The script directory, or a clear error when the folder is not usable."""
    location = config.get_main_option("script_location") or "migrations"
    path = Path(location)
    command = _state().migrate.command
    if not path.is_dir():
        raise NoMigrationsFolder(location, command=command)
    if not (path / "env.py").is_file():
        raise NoMigrationsFolder(location, "env.py", command)
    # a syntax error in env.py must fail before anything touches a database
    env_py = path / "env.py"
    compile(env_py.read_bytes(), str(env_py), "exec")
    script = ScriptDirectory.from_config(config)
    for version_location in script._version_locations:
        if not Path(version_location).is_dir():
            raise NoMigrationsFolder(location, "versions/ folder", command)
    # Load every revision now, before env.py touches a database: a broken
    # file, a cycle or a dangling down_revision then fails with nothing done.
    script.revision_map = RevisionMap(_unique_revisions(script))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            script.revision_map.heads  # noqa: B018 - builds and checks the map
        except KeyError as exc:
            # Alembic warns "Revision X referenced from ... is not present",
            # then fails on the missing key
            said = "; ".join(str(w.message) for w in caught if "not present" in str(w.message))
            raise MigrateError(
                f"The revision history is broken: a down_revision names {exc}, which "
                f"is not in the migrations folder ({said or 'no such revision'}). "
                "Fix that revision's down_revision."
            ) from None
    for warning in caught:  # anything else Alembic had to say still gets said
        warnings.warn_explicit(
            warning.message, warning.category, warning.filename, warning.lineno
        )
    return script


def _unique_revisions(script: ScriptDirectory) -> t.Callable[[], t.Iterator[Script]]:
    """The scripts of the folder, refusing two files with one revision id.

    Alembic only warns and then silently uses one of the two files.
    """

    def generate() -> t.Iterator[Script]:
        seen: dict[str, Script] = {}
        for sc in script._load_revisions():
            if sc.revision in seen:
                raise MigrateError(
                    f"Revision id {sc.revision!r} is used by two files: "
                    f"{seen[sc.revision].path} and {sc.path}. Give one of them a new "
                    "revision id (and fix the down_revision of its children)."
                )
            seen[sc.revision] = sc
            yield sc

    return generate


def _per_run_args() -> t.ContextManager[t.Any]:
    """A fresh copy of the configure arguments for one run of ``env.py``.

    NOTE: env.py may change ``configure_args`` (the original's env.py adds its
    ``process_revision_directives`` closure when none is set); without a copy
    per run, the next command of the same process would call that stale
    closure. A run that already has its copy (with extra hooks) keeps it.
    """
    state = _state()
    if state._run_args.get() is not None:
        return contextlib.nullcontext()
    return state.run_configure_args(**_run_args(state))


def _run_args(state: _MigrateConfig) -> dict[str, t.Any]:
    """What every run of env.py gets on top of the application's configure arguments."""
    user_filter = state._configure_args.get("include_name")
    journal_name = journal.JOURNAL_TABLE

    def include_name(name: str | None, type_: str, parent_names: t.Any) -> bool:
        # our journal is not part of the application's schema: autogenerate
        # must neither see it nor propose to drop it
        if type_ == "table" and name == journal_name:
            return False
        return user_filter is None or bool(user_filter(name, type_, parent_names))

    return {"include_name": include_name}


def _run_env(
    config: Config,
    script: ScriptDirectory,
    fn: t.Callable[[t.Any, MigrationContext], t.Iterable[t.Any]],
    **env_kwargs: t.Any,
) -> None:
    with _per_run_args(), EnvironmentContext(config, script, fn=fn, **env_kwargs):
        script.run_env()


def _database_label(context: MigrationContext) -> str:
    connection = context.connection
    # NOTE: in --sql mode the connection is SQLAlchemy's MockConnection,
    # whose "engine" is itself and has no URL; fall back to the configured url.
    engine_url = getattr(getattr(connection, "engine", None), "url", None)
    if engine_url is not None:
        return t.cast(str, engine_url.render_as_string(hide_password=True))
    url = context.opts.get("url")
    if url is not None:
        return make_url(url).render_as_string(hide_password=True)
    return context.dialect.name


class _StepRecorder:
    """Times and collects the steps Alembic applies, and journals them.

    :meth:`wrap` wraps each step's function to note when it starts (and, with
    a journal, to write its ``running`` row in the step's transaction);
    ``on_version_apply`` then calls the recorder when the step is done, still
    inside that transaction.
    """

    def __init__(
        self,
        journal_run: journal.JournalRun | None = None,
        on_step: t.Callable[[Step], None] | None = None,
    ) -> None:
        self.steps: list[Step] = []
        self.journal_run = journal_run
        self.on_step = on_step
        self._started: dict[str, collections.deque[tuple[float, int | None]]] = {}

    def wrap(self, steps: t.Iterable[t.Any], context: MigrationContext) -> list[t.Any]:
        database = _database_label(context)
        started = self._started.setdefault(database, collections.deque())
        journal_run = self.journal_run
        write = (
            journal_run is not None
            and database in journal_run.active
            and context.connection is not None
        )
        steps = list(steps)
        if context.as_sql:
            return steps
        for step in steps:
            run = step.migration_fn

            @functools.wraps(run)  # Alembic names the step after the function
            def timed(*args: t.Any, _run: t.Any = run, _step: t.Any = step, **kw: t.Any) -> t.Any:
                step_id = None
                if write:
                    assert journal_run is not None and context.connection is not None
                    revision = getattr(_step, "revision", None)
                    path = Path(revision.path) if revision is not None else None
                    step_id = journal.start_step(
                        context.connection,
                        journal_run.table,
                        journal_run.run_id,
                        _direction(_step),
                        getattr(revision, "revision", None) or _stamp_target(_step),
                        path,
                        _first_line(getattr(revision, "doc", None)),
                    )
                started.append((time.perf_counter(), step_id))
                return _run(*args, **kw)

            step.migration_fn = timed
        return steps

    def __call__(
        self,
        *,
        ctx: MigrationContext,
        step: MigrationInfo,
        heads: set[str],
        run_args: dict[str, t.Any],
    ) -> None:
        if step.is_stamp:
            direction = "stamp"
        else:
            direction = "upgrade" if step.is_upgrade else "downgrade"
        database = _database_label(ctx)
        duration = None
        queue = self._started.get(database)
        if queue:
            began, step_id = queue.popleft()
            duration = time.perf_counter() - began
            if step_id is not None and self.journal_run is not None and ctx.connection is not None:
                journal.finish_step(
                    ctx.connection, self.journal_run.table, step_id, int(duration * 1000)
                )
        doc = getattr(step.up_revision, "doc", None)
        recorded = Step(
            direction=direction,
            source=tuple(step.source_revision_ids),
            destination=tuple(step.destination_revision_ids),
            revision=step.up_revision_id,
            message=_first_line(doc),
            database=database,
            duration=None if ctx.as_sql else duration,
        )
        self.steps.append(recorded)
        if self.on_step is not None:
            self.on_step(recorded)


def _first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0] if text and text.strip() else None


def _direction(step: t.Any) -> str:
    if not hasattr(step, "revision"):
        return "stamp"
    return "upgrade" if step.is_upgrade else "downgrade"


def _stamp_target(step: t.Any) -> str | None:
    targets = getattr(step, "to_", None) or getattr(step, "to_revisions", None) or ()
    return ",".join(targets) if targets else None


@dataclass(frozen=True)
class LockOptions:
    """How ``upgrade``, ``downgrade`` and ``stamp`` lock their databases."""

    #: Take the per-database migration lock at all. Switch it off only for
    #: connection poolers that cannot hold session state (PgBouncer in
    #: transaction mode).
    enabled: bool = True
    #: Seconds to wait for another migration to finish; 0 fails at once.
    timeout: float = locking.DEFAULT_TIMEOUT
    #: Called once per database when the lock is busy, with the database and
    #: its holder; by default a warning on the ``flask_migrate`` logger.
    on_wait: locking.OnWait | None = None


def _log_lock_wait(database: str, holder: locking.LockHolder | None) -> None:
    who = holder.describe() if holder else "another process"
    log.warning("Waiting for the migration lock on %s, held by %s.", database, who)


def _app_engines(state: _MigrateConfig) -> list[t.Any]:
    """The engines of the application's databases: the default one and each bind."""
    return [state.get_engine(key) for key in [None, *state.bind_names()]]


def _run_with_steps(
    config: Config,
    script: ScriptDirectory,
    fn: t.Callable[[t.Any, MigrationContext], t.Iterable[t.Any]],
    lock: LockOptions | None = None,
    plan: _Plan | None = None,
    on_step: t.Callable[[Step], None] | None = None,
    **env_kwargs: t.Any,
) -> list[Step]:
    """Run ``env.py`` with ``fn``, returning the steps it applied.

    ``lock`` is ``None`` for ``--sql`` runs, which touch no database. Otherwise
    the migration lock of every database of the application is held for the
    whole run (unless disabled), taken before ``env.py`` reads a version
    table, and SQLite transactions are made real (see :mod:`.transactions`).
    """
    state = _state()
    journal_run = None
    if lock is not None and plan is not None:
        journal_run = journal.JournalRun(plan.direction, plan.target, _version_table(state)[1])
    recorder = _StepRecorder(journal_run, on_step)
    user_hooks = state._configure_args.get("on_version_apply") or ()
    if callable(user_hooks):
        user_hooks = (user_hooks,)
    extra: dict[str, t.Any] = {**_run_args(state), "on_version_apply": (*user_hooks, recorder)}
    if "transaction_per_migration" not in state._configure_args:
        # each revision commits on its own, together with its version-table
        # change: a failure leaves the database at the last good revision
        extra["transaction_per_migration"] = True
    with contextlib.ExitStack() as stack:
        if lock is not None:
            engines = _app_engines(state)
            if lock.enabled:
                stack.enter_context(
                    locking.hold(
                        engines,
                        timeout=lock.timeout,
                        name=_version_table(state)[0],
                        on_wait=lock.on_wait or _log_lock_wait,
                    )
                )
            stack.enter_context(atomic_sqlite(engines))
            if journal_run is not None and plan is not None:
                # under the lock: nobody changes the databases meanwhile
                missing = _preflight(journal_run, plan, script)
                fn = _undo_version_table_on_refusal(fn, missing)
        stack.enter_context(state.run_configure_args(**extra))
        inner = fn

        def timed_fn(rev: t.Any, context: MigrationContext) -> t.Iterable[t.Any]:
            return recorder.wrap(inner(rev, context), context)

        try:
            _run_env(config, script, timed_fn, **env_kwargs)
        except BaseException as exc:
            if journal_run is not None:
                _close_journal(journal_run, f"{type(exc).__name__}: {exc}")
            raise
        if journal_run is not None:
            _close_journal(journal_run, None)
    return recorder.steps


@dataclass(frozen=True)
class _Plan:
    """What a command will do to each database, for the journal's pre-flight."""

    direction: str
    target: str
    #: current heads -> the steps Alembic will run
    compute: t.Callable[[tuple[str, ...]], t.Sequence[t.Any]]
    #: whether to check the version table (not for ``stamp --purge``)
    check: bool = True


def _preflight(run: journal.JournalRun, plan: _Plan, script: ScriptDirectory) -> set[str]:
    """Under the lock, before env.py: read each database, and open the run's journal.

    Everything that makes the command refuse fails here, before anything is
    written: a bad revision, a broken version table, a revision left
    half-applied on MariaDB/MySQL, and an upgrade of a database that was
    built without migrations (its first revision would fail half-way with
    "table already exists"; ``stamp`` is how to adopt it).

    Returns the databases without DDL transactions that have no version
    table yet (see :func:`_undo_version_table_on_refusal`).
    """
    from alembic.runtime.migration import MigrationContext

    state = _state()
    table, schema = _version_table(state)
    missing: set[str] = set()
    for key in [None, *state.bind_names()]:
        engine = state.get_engine(key)
        database = engine.url.render_as_string(hide_password=True)
        with sync_engine_for(engine) as sync_engine, sync_engine.begin() as conn:
            heads: tuple[str, ...] = ()
            existing = set(sa.inspect(conn).get_table_names(schema=schema))
            if table in existing:
                context = MigrationContext.configure(
                    conn, opts={"version_table": table, "version_table_schema": schema}
                )
                heads = tuple(context.get_current_heads())
            else:
                if plan.direction == "upgrade":
                    _refuse_unversioned_schema(existing, state.get_metadata(key), database, table)
                if conn.dialect.name in ("mysql", "mariadb"):
                    missing.add(database)
            if plan.check:
                _check_version_table(script, heads, database, table)
            steps = plan.compute(heads)
            files = {
                rev: Path(sc.path)
                for rev in heads
                if (sc := _known_script(script, rev)) is not None
            }
            try:
                run.prepare(conn, database, heads, steps, files, engine)
            except journal.InterruptedRevision as exc:
                raise MigrateError(str(exc)) from None
            if plan.direction == "upgrade":
                _warn_changed_files(conn, run.table, script, heads, database)
    for note in run.notes:
        log.warning(note)
    return missing


def _known_script(script: ScriptDirectory, rev: str) -> Script | None:
    """The script of ``rev``, or ``None`` when the migrations folder lacks it."""
    try:
        return script.get_revision(rev)
    except CommandError:  # ScriptDirectory's form of "no such revision"
        return None


def _warn_changed_files(
    conn: t.Any, table: sa.Table, script: ScriptDirectory, heads: tuple[str, ...], database: str
) -> None:
    """Say once if revisions applied to this database were edited since."""
    from .status import _changed_files

    if not journal.exists(conn, table):
        return
    changed = _changed_files(script, heads, [], journal.applied_checksums(conn, table))
    if changed:
        listed = ", ".join(f"{c.revision} ({c.change})" for c in changed)
        log.warning(
            "Revisions applied to %s have changed since: %s. Databases already migrated "
            "do not see such edits; run 'flask db status' for details.", database, listed,
        )


def _close_journal(run: journal.JournalRun, error: str | None) -> None:
    """After env.py: mark the run done (or failed) in each database it touched."""
    for database, engine in run.active.items():
        try:
            with sync_engine_for(engine) as sync_engine, sync_engine.begin() as conn:
                run.finish(conn, error and scrub(error, _secrets()))
        except Exception as exc:  # noqa: BLE001 - never hide the command's own outcome
            log.warning("Could not record the end of this run in %s: %s", database, exc)


def _undo_version_table_on_refusal(
    fn: t.Callable[[t.Any, MigrationContext], t.Iterable[t.Any]], missing: set[str]
) -> t.Callable[[t.Any, MigrationContext], t.Iterable[t.Any]]:
    """Drop the version table Alembic created if the command then refuses to run.

    Alembic creates the version table before it works out what to do; where
    DDL cannot be rolled back (MariaDB, MySQL), a refusal (bad revision,
    nothing to downgrade) would leave that new, empty table behind.
    """
    if not missing:
        return fn

    def guarded(rev: t.Any, context: MigrationContext) -> t.Iterable[t.Any]:
        try:
            return fn(rev, context)
        except BaseException:
            if (
                not rev
                and _database_label(context) in missing
                and context._version is not None
                and context.connection is not None
            ):
                with contextlib.suppress(Exception):
                    context._version.drop(context.connection, checkfirst=True)
            raise

    return guarded


def _version_table(state: _MigrateConfig) -> tuple[str, str | None]:
    args = state._configure_args
    return args.get("version_table", "alembic_version"), args.get("version_table_schema")


def _check_version_table(
    script: ScriptDirectory, heads: t.Sequence[str], database: str, table: str
) -> None:
    """Refuse to move a database whose version table makes no sense."""
    repair = "run 'flask db stamp --purge <revision>' to record the revision it is really at"
    if any(not h for h in heads):
        raise MigrateError(
            f"The version table {table} of {database} holds an empty revision id. "
            f"Check the schema, then {repair}."
        )
    unknown = [h for h in heads if not _has_revision(script, h)]
    if unknown:
        raise MigrateError(
            f"{database} is at revision {', '.join(unknown)}, which is not in the "
            f"migrations folder {script.dir}. Check out the code that has that "
            f"revision, or {repair}."
        )
    for i, upper in enumerate(heads):
        for lower in heads[i + 1 :]:
            for a, b in ((upper, lower), (lower, upper)):
                ancestors = {
                    r.revision
                    for r in script.revision_map.iterate_revisions(a, "base")
                    if r is not None
                }
                if b in ancestors:
                    raise MigrateError(
                        f"The version table {table} of {database} lists both {b} and "
                        f"{a}, but {a} comes after {b}: they cannot both be current. "
                        f"Check the schema, then {repair}."
                    )


def _context_names(context: MigrationContext) -> tuple[str, str]:
    """The database and the version table name of a migration context."""
    table = context._version.name if context._version is not None else "alembic_version"
    return _database_label(context), table


def _refuse_unversioned_schema(
    existing: set[str], metadata: sa.MetaData, database: str, table: str
) -> None:
    """Refuse to upgrade a database whose tables were built without migrations."""
    modelled = {tbl.name for tbl in metadata.tables.values() if tbl.schema is None}
    clash = sorted(existing & modelled)
    if clash:
        shown = ", ".join(clash[:5]) + (", ..." if len(clash) > 5 else "")
        raise MigrateError(
            f"{database} already has tables ({shown}) but no {table} table: it was not "
            "built by these migrations. If its schema matches the models, run 'flask db "
            "stamp head' to adopt it, then 'flask db upgrade' for anything newer."
        )


# -- templates and init ------------------------------------------------------


def list_templates() -> list[TemplateInfo]:
    """The templates shipped with Flask-Migrate, sorted by name."""
    root = Path(Config().get_template_directory())
    templates = []
    for path in sorted(root.iterdir()):
        readme = path / "README"
        if not readme.is_file():
            continue
        with readme.open(encoding="utf-8") as f:
            synopsis = f.readline().strip()
        templates.append(TemplateInfo(path.name, synopsis, path))
    return templates


@_translate_errors
def init(
    directory: str | os.PathLike[str] | None = None,
    multidb: bool = False,
    template: str | None = None,
    package: bool = False,
    x_arg: str | t.Sequence[str] | None = None,
    *,
    quiet: bool = True,
) -> Path:
    """Create a migrations folder; returns its path.

    ``template`` is a template name (see :func:`list_templates`) or the path of
    a template folder of your own.
    """
    state = _state()
    directory = str(state.directory if directory is None else directory)
    template_directory = None
    if template is not None and ("/" in template or "\\" in template):
        template_directory, template = os.path.split(template.rstrip("/\\"))
    if template is None:
        template = "flask-multidb" if multidb else "flask"
    config = Config(template_directory=template_directory)
    config.set_main_option("script_location", directory.replace("%", "%%"))
    config.config_file_name = os.path.join(directory, "alembic.ini")
    # configure callbacks see the same command options as for other commands
    config.cmd_opts = argparse.Namespace(quiet=quiet, x=x_arguments(x_arg))
    config = state.migrate.call_configure_callbacks(config)

    template_path = Path(config.get_template_directory()) / template
    if not template_path.is_dir():
        if template_directory is None:
            raise TemplateNotFound(template, (i.name for i in list_templates()))
        raise MigrateError(f"No template folder at {str(template_path)!r}.")
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DirectoryNotEmpty(directory)
    # NOTE: Alembic's init builds its ScriptDirectory without the config's
    # messaging options, so its "Generating ..." lines ignore quiet.
    hush = contextlib.redirect_stdout(io.StringIO())
    with hush if quiet else contextlib.nullcontext():
        command.init(config, directory, template=template, package=package)
    return target


# -- creating revisions -------------------------------------------------------


def _autogenerate_revision(
    config: Config, script_directory: ScriptDirectory, **command_args: t.Any
) -> Script | None:
    """Alembic's ``revision --autogenerate``, writing no file when nothing changed.

    NOTE: the emptiness check runs once env.py has finished, not in a
    ``process_revision_directives`` hook: a multi-database env.py runs the
    hooks once per database (dropping the script early breaks the next
    database's run), and an env.py written for the original Flask-Migrate has
    a hook of its own that fails on a directives list already emptied.
    """
    from alembic.autogenerate import RevisionContext

    if command_args.get("sql"):
        raise MigrateError("Using --sql with --autogenerate does not make any sense.")
    revision_context = RevisionContext(
        config, script_directory, {**command_args, "autogenerate": True}
    )

    def retrieve_migrations(rev: t.Any, context: MigrationContext) -> list[t.Any]:
        revision_context.run_autogenerate(rev, context)
        return []

    _run_env(
        config, script_directory, retrieve_migrations,
        template_args=revision_context.template_args,
        revision_context=revision_context,
    )
    revision_context.generated_revisions[:] = [
        script
        for script in revision_context.generated_revisions
        if not all(ops.is_empty() for ops in script.upgrade_ops_list)
    ]
    scripts = [s for s in revision_context.generate_scripts() if s is not None]
    return scripts[0] if scripts else None


@_translate_errors
def revision(
    directory: str | os.PathLike[str] | None = None,
    message: str | None = None,
    autogenerate: bool = False,
    sql: bool = False,
    head: str = "head",
    splice: bool = False,
    branch_label: str | None = None,
    version_path: str | None = None,
    rev_id: str | None = None,
    x_arg: str | t.Sequence[str] | None = None,
    *,
    quiet: bool = True,
) -> Script | None:
    """Create a revision file; returns its script (``None`` if nothing was written).

    With ``autogenerate``, no file is written when the models and the database
    already agree.
    """
    opts = ["autogenerate"] if autogenerate else None
    config = _get_config(directory, x_arg=x_arg, opts=opts, quiet=quiet)
    script_directory = _script_directory(config)
    if autogenerate:
        return _autogenerate_revision(
            config, script_directory, message=message, sql=sql, head=head,
            splice=splice, branch_label=branch_label, version_path=version_path,
            rev_id=rev_id, depends_on=None,
        )
    with _per_run_args():  # env.py runs when revision_environment is set
        result = command.revision(
            config,
            message,
            sql=sql,
            head=head,
            splice=splice,
            branch_label=branch_label,
            version_path=version_path,
            rev_id=rev_id,
        )
    if isinstance(result, list):
        scripts = [s for s in result if s is not None]
        return scripts[0] if scripts else None
    return result


def migrate(
    directory: str | os.PathLike[str] | None = None,
    message: str | None = None,
    sql: bool = False,
    head: str = "head",
    splice: bool = False,
    branch_label: str | None = None,
    version_path: str | None = None,
    rev_id: str | None = None,
    x_arg: str | t.Sequence[str] | None = None,
    *,
    quiet: bool = True,
) -> Script | None:
    """``revision`` with ``autogenerate``; returns ``None`` when nothing changed."""
    return revision(
        directory,
        message,
        autogenerate=True,
        sql=sql,
        head=head,
        splice=splice,
        branch_label=branch_label,
        version_path=version_path,
        rev_id=rev_id,
        x_arg=x_arg,
        quiet=quiet,
    )


@_translate_errors
def merge(
    directory: str | os.PathLike[str] | None = None,
    revisions: str | t.Sequence[str] = "",
    message: str | None = None,
    branch_label: str | None = None,
    rev_id: str | None = None,
    x_arg: str | t.Sequence[str] | None = None,
    *,
    quiet: bool = True,
) -> Script:
    """Create a revision that merges ``revisions`` (e.g. ``"heads"``)."""
    config = _get_config(directory, x_arg=x_arg, quiet=quiet)
    _script_directory(config)
    if isinstance(revisions, str):
        revisions = revisions.split() if revisions else []
    if not revisions:
        raise MigrateError(
            "Name the revisions to merge, for example 'flask db merge heads'."
        )
    with _per_run_args():  # env.py runs when revision_environment is set
        script = command.merge(
            config,
            list(revisions),
            message=message,
            branch_label=branch_label,
            rev_id=rev_id,
        )
    assert script is not None
    return script


@_translate_errors
def edit(
    directory: str | os.PathLike[str] | None = None,
    revision: str = "current",
    x_arg: str | t.Sequence[str] | None = None,
) -> list[Path]:
    """Open the revision's file in ``$EDITOR``; returns the paths opened."""
    from alembic.util import open_in_editor

    config = _get_config(directory, x_arg=x_arg)
    script = _script_directory(config)
    if revision == "current":
        current_revs: list[str] = []

        def collect(rev: t.Any, context: MigrationContext) -> list[t.Any]:
            current_revs.extend(context.get_current_heads())
            return []

        _run_env(config, script, collect, dont_mutate=True)
        if not current_revs:
            raise MigrateError("The database is at base: no current revision to edit.")
        scripts = script.get_revisions(tuple(current_revs))
    else:
        scripts = script.get_revisions(revision)
        if not scripts:
            raise MigrateError(f"No revision files indicated by symbol {revision!r}.")
    paths = [Path(sc.path) for sc in scripts if sc is not None]
    for path in paths:
        open_in_editor(str(path))
    return paths


# -- applying revisions ---------------------------------------------------------


@_translate_errors
def upgrade(
    directory: str | os.PathLike[str] | None = None,
    revision: str = "head",
    sql: bool = False,
    tag: str | None = None,
    x_arg: str | t.Sequence[str] | None = None,
    *,
    quiet: bool = True,
    output: t.TextIO | None = None,
    lock: LockOptions = LockOptions(),
    on_step: t.Callable[[Step], None] | None = None,
) -> list[Step]:
    """Upgrade to ``revision``; returns the steps applied, in order.

    With ``sql=True``, the SQL is written to ``output`` (standard output by
    default) instead of run; ``revision`` may then be a ``start:end`` range.
    """
    config = _get_config(directory, x_arg=x_arg, quiet=quiet, output=output)
    script = _script_directory(config)
    starting_rev = None
    if ":" in revision:
        if not sql:
            raise MigrateError(
                f"A revision range ({revision!r}) needs --sql; "
                "online upgrades start from the database's current revision."
            )
        starting_rev, revision = revision.split(":", 1)
        starting_rev = starting_rev or None

    def compute(heads: t.Any) -> t.Any:
        return script._upgrade_revs(revision, heads)

    def fn(rev: t.Any, context: MigrationContext) -> t.Any:
        _check_version_table(script, rev, *_context_names(context))
        return compute(rev)

    return _run_with_steps(
        config, script, fn, None if sql else lock,
        plan=_Plan("upgrade", revision, compute), on_step=on_step,
        as_sql=sql, starting_rev=starting_rev,
        destination_rev=revision, tag=tag,
    )


@_translate_errors
def downgrade(
    directory: str | os.PathLike[str] | None = None,
    revision: str = "-1",
    sql: bool = False,
    tag: str | None = None,
    x_arg: str | t.Sequence[str] | None = None,
    *,
    quiet: bool = True,
    output: t.TextIO | None = None,
    lock: LockOptions = LockOptions(),
    on_step: t.Callable[[Step], None] | None = None,
) -> list[Step]:
    """Downgrade to ``revision``; returns the steps applied, in order.

    With ``sql=True`` a ``start:end`` range is needed; the default ``-1``
    then means ``head:-1``.
    """
    config = _get_config(directory, x_arg=x_arg, quiet=quiet, output=output)
    script = _script_directory(config)
    if sql and revision == "-1":
        revision = "head:-1"
    starting_rev = None
    if ":" in revision:
        if not sql:
            raise MigrateError(
                f"A revision range ({revision!r}) needs --sql; "
                "online downgrades start from the database's current revision."
            )
        starting_rev, revision = revision.split(":", 1)
    elif sql:
        raise MigrateError("downgrade with --sql needs a range, <fromrev>:<torev>.")

    def compute(heads: t.Any) -> t.Any:
        return script._downgrade_revs(revision, heads)

    def fn(rev: t.Any, context: MigrationContext) -> t.Any:
        _check_version_table(script, rev, *_context_names(context))
        return compute(rev)

    return _run_with_steps(
        config, script, fn, None if sql else lock,
        plan=_Plan("downgrade", revision, compute), on_step=on_step,
        as_sql=sql, starting_rev=starting_rev,
        destination_rev=revision, tag=tag,
    )


@_translate_errors
def stamp(
    directory: str | os.PathLike[str] | None = None,
    revision: str | t.Sequence[str] = "head",
    sql: bool = False,
    tag: str | None = None,
    purge: bool = False,
    x_arg: str | t.Sequence[str] | None = None,
    *,
    quiet: bool = True,
    output: t.TextIO | None = None,
    lock: LockOptions = LockOptions(),
    on_step: t.Callable[[Step], None] | None = None,
) -> list[Step]:
    """Set the version table to ``revision`` without running migrations."""
    config = _get_config(directory, x_arg=x_arg, quiet=quiet, output=output)
    script = _script_directory(config)
    targets = [revision] if isinstance(revision, str) else list(revision)
    starting_rev = None
    destinations = []
    for target in targets:
        if sql and ":" in target:
            start, target = target.split(":", 1)
            if starting_rev not in (None, start):
                raise MigrateError(
                    "stamp --sql takes a single starting revision at a time."
                )
            starting_rev = start
        destinations.append(target)
    if purge and sql:
        raise MigrateError("--purge cannot be combined with --sql.")

    def compute(heads: t.Any) -> t.Any:
        return script._stamp_revs(tuple(destinations), () if purge else heads)

    def fn(rev: t.Any, context: MigrationContext) -> t.Any:
        if not purge:  # --purge is how a broken version table is repaired
            _check_version_table(script, rev, *_context_names(context))
        return compute(rev)

    return _run_with_steps(
        config, script, fn, None if sql else lock,
        plan=_Plan("stamp", ",".join(destinations), compute, check=not purge), on_step=on_step,
        as_sql=sql, starting_rev=starting_rev,
        destination_rev=tuple(destinations), tag=tag, purge=purge,
    )


# -- inspecting -------------------------------------------------------------------


def _has_revision(script: ScriptDirectory, rev: str) -> bool:
    return _known_script(script, rev) is not None


def _current_heads(config: Config, script: ScriptDirectory) -> list[CurrentRevisions]:
    found: list[CurrentRevisions] = []

    def collect(rev: t.Any, context: MigrationContext) -> list[t.Any]:
        heads = tuple(context.get_current_heads())
        scripts: tuple[Script, ...] = ()
        # NOTE: a revision missing from the folder (deleted file, other
        # branch checked out) must not hide the others: it is listed apart.
        known = tuple(rev for rev in heads if _has_revision(script, rev))
        if known:
            scripts = tuple(
                sorted(script.get_all_current(known), key=lambda s: s.revision)
            )
        found.append(CurrentRevisions(_database_label(context), heads, scripts))
        return []

    _run_env(config, script, collect, dont_mutate=True)
    return found


@_translate_errors
def current(
    directory: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    x_arg: str | t.Sequence[str] | None = None,
) -> list[CurrentRevisions]:
    """The current revisions of each database ``env.py`` migrates."""
    config = _get_config(directory, x_arg=x_arg)
    script = _script_directory(config)
    return _current_heads(config, script)


@_translate_errors
def show(
    directory: str | os.PathLike[str] | None = None,
    revision: str = "head",
    x_arg: str | t.Sequence[str] | None = None,
) -> list[Script]:
    """The scripts of the revisions ``revision`` names (``current`` included)."""
    config = _get_config(directory, x_arg=x_arg)
    script = _script_directory(config)
    if revision == "current":
        revs = tuple(r for db in _current_heads(config, script) for r in db.revisions)
    else:
        revs = revision  # type: ignore[assignment]
    return [s for s in script.get_revisions(revs) if s is not None]


@_translate_errors
def history(
    directory: str | os.PathLike[str] | None = None,
    rev_range: str | None = None,
    verbose: bool = False,
    indicate_current: bool = False,
    x_arg: str | t.Sequence[str] | None = None,
) -> History:
    """The revision scripts, newest first, optionally limited to ``start:end``."""
    config = _get_config(directory, x_arg=x_arg)
    script = _script_directory(config)
    base: t.Any = None
    head: t.Any = None
    if rev_range is not None:
        if ":" not in rev_range:
            raise MigrateError(
                "A history range is [start]:[end], [start]: or :[end]."
            )
        base, head = rev_range.strip().split(":", 1)
    currents: tuple[str, ...] | None = None
    if indicate_current or "current" in (base, head):
        currents = tuple(
            r for db in _current_heads(config, script) for r in db.revisions
        )
        if base == "current":
            base = currents
        if head == "current":
            head = currents
    scripts = tuple(script.walk_revisions(base=base or "base", head=head or "heads"))
    return History(scripts, currents if indicate_current else None)


@_translate_errors
def status(
    directory: str | os.PathLike[str] | None = None,
    x_arg: str | t.Sequence[str] | None = None,
    recent: int = 10,
) -> Status:
    """Where each database of the application stands, and what needs attention.

    Reads every database (the default one and each bind) directly: its
    version table, its tables and its journal, compared with the migrations
    folder and the models. See :mod:`flask_migrate.status`.
    """
    from .status import collect

    config = _get_config(directory, x_arg=x_arg)
    script = _script_directory(config)
    return collect(_state(), script, recent)


@_translate_errors
def heads(
    directory: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    resolve_dependencies: bool = False,
    x_arg: str | t.Sequence[str] | None = None,
) -> list[Script]:
    """The head revisions of the migrations folder."""
    config = _get_config(directory, x_arg=x_arg)
    script = _script_directory(config)
    if resolve_dependencies:
        found = script.get_revisions("heads")
    else:
        found = script.get_revisions(script.get_heads())
    return [s for s in found if s is not None]


@_translate_errors
def branches(
    directory: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    x_arg: str | t.Sequence[str] | None = None,
) -> list[BranchPoint]:
    """The revisions that more than one revision builds on (branch points)."""
    config = _get_config(directory, x_arg=x_arg)
    script = _script_directory(config)
    return [
        BranchPoint(
            sc,
            tuple(script.get_revision(rev) for rev in sorted(sc.nextrev)),
        )
        for sc in script.walk_revisions()
        if sc.is_branch_point
    ]


@_translate_errors
def check(
    directory: str | os.PathLike[str] | None = None,
    x_arg: str | t.Sequence[str] | None = None,
) -> None:
    """Raise :class:`~flask_migrate.errors.PendingChanges` when the models and
    the migrated database differ (or the database is not at head)."""
    from alembic.util import AutogenerateDiffsDetected

    # NOTE: no "autogenerate" in cmd_opts: the original's env.py hook then
    # empties the directives when nothing changed, and Alembic's check fails
    # with an IndexError on the emptied list.
    config = _get_config(directory, x_arg=x_arg)
    _script_directory(config)
    try:
        with _per_run_args():
            command.check(config)
    except AutogenerateDiffsDetected as exc:
        raise PendingChanges(list(getattr(exc, "diffs", None) or [])) from exc
