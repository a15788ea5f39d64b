"""One function per migration operation, for programs that embed migrations.

These are the functions behind both the ``flask db`` commands and the
Flask-Migrate-compatible functions exported by :mod:`flask_migrate`. They take
the same parameters as those, but:

* they **return data** (scripts, applied steps, current revisions) instead of
  printing it;
* they **raise** :class:`~flask_migrate.errors.MigrateError` (a subclass of
  Alembic's ``CommandError``) instead of logging and exiting; an error that
  started as another exception (a SQLAlchemy error, say) keeps it as
  ``__cause__`` and ``original``;
* Alembic's own progress messages ("Generating ...", "Creating directory ...")
  are silenced unless ``quiet=False``; SQL produced in ``sql=True`` mode goes
  to ``output`` (standard output by default), since the SQL is the product.

They must run inside an application context of an app that has a
:class:`~flask_migrate.Migrate` extension, like the original functions. The
machinery of a run (the hooks on ``env.py``'s ``context.configure()``, locks,
checks, journal) is in :mod:`flask_migrate.runner`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import time
import typing as t
from pathlib import Path

from alembic import command

from . import _alembic, lock_timeouts, runner, scripts, tenancy
from . import tenants as tenants_
from .config import Config
from .errors import DirectoryNotEmpty, MigrateError, PendingChanges, TemplateNotFound, scrub
from .extension import x_arguments
from .locking import LockOptions, LockTimeout
from .results import BranchPoint, CurrentRevisions, History, LintReport, Step, TemplateInfo, TenantResult
from .tenancy import Tenant
from .tenants import Progress
from .runner import Plan, get_config, load_scripts, run_env, translate_errors
from .scripts import known_script

log = logging.getLogger("flask_migrate")

#: ``tenants=``: ``"all"``, or tenant names and :class:`~flask_migrate.Tenant` objects.
TenantsArg = t.Union[str, t.Iterable[t.Union[str, Tenant]]]

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic.runtime.migration import MigrationContext
    from alembic.script import Script, ScriptDirectory

    from .status import Status

__all__ = [
    "BranchPoint",
    "CurrentRevisions",
    "History",
    "LintReport",
    "LockOptions",
    "Step",
    "TemplateInfo",
    "TenantResult",
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

def _apply(
    config: Config,
    script: ScriptDirectory,
    plan: Plan,
    lock: LockOptions,
    on_step: t.Callable[[Step], None] | None,
    *,
    as_sql: bool,
    **env_kwargs: t.Any,
) -> list[Step]:
    """Run ``upgrade``, ``downgrade`` or ``stamp``; ``--sql`` runs touch no database.

    A run in which a statement gave up waiting for a table lock on PostgreSQL
    rolled back (the whole run, or the revision that waited) and is run again
    from what the version table says, after a pause that doubles each time
    (see :mod:`.lock_timeouts`).
    """
    retries = 0 if as_sql else runner.ddl_retries(lock)
    applied: list[Step] = []
    attempt = 1
    while True:
        run = runner.Run(
            config, script, lambda heads, context: plan.compute(heads),
            plan=None if as_sql else plan, lock=lock, on_step=on_step,
            as_sql=as_sql, **env_kwargs,
        )
        try:
            return applied + run.execute()
        except Exception as exc:
            kind = lock_timeouts.gave_up_on_lock(exc)
            if kind is None or as_sql:
                raise
            target = run.interrupted()
            kept = [s for s in run.steps if not _rolled_back(run, s)]
            not_retried = None
            if kind != "postgresql":
                not_retried = (
                    "MariaDB/MySQL commits DDL as it goes (if the revision was left "
                    "half-applied, the next run says so)"
                )
            elif target is not None and target.autocommitted:
                not_retried = (
                    f"revision {target.step_revision} had committed part of its work "
                    "(autocommit_block), which must not run twice"
                )
            error = _lock_timeout_error(exc, run, target, attempt, not_retried)
            if not_retried or attempt > retries:
                raise error from exc
            applied += kept
            pause = min(2.0 ** (attempt - 1), lock_timeouts.MAX_PAUSE)
            (lock.on_retry or _log_retry)(error, attempt, pause)
            time.sleep(pause)
            attempt += 1


# -- tenants ---------------------------------------------------------------------------

#: A command's work for one tenant: (config, script, lock, on_step) -> its value.
TenantBody = t.Callable[[Config, "ScriptDirectory", LockOptions, t.Callable[[Step], None]], t.Any]


def _for_tenants(
    directory: str | os.PathLike[str] | None,
    x_arg: str | t.Sequence[str] | None,
    wanted: TenantsArg,
    jobs: int | None,
    fail_fast: bool,
    on_tenant: t.Callable[[Progress], None] | None,
    lock: LockOptions | None,
    body: TenantBody,
    *,
    mutating: bool = False,
) -> list[TenantResult]:
    """Run ``body`` for each tenant (see :mod:`flask_migrate.tenants`).

    The config and the migrations folder are loaded once, here, for all the
    tenants: the tenants' folder (``Migrate(tenant_directory=...)``) unless
    ``directory`` names another.
    """
    from flask import current_app

    migrate = runner.state().migrate
    chosen = tenants_.resolve(wanted, migrate.tenants)
    if directory is None:
        directory = migrate.tenant_directory
    config = get_config(directory, x_arg=x_arg)
    script = load_scripts(config)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    lock = lock or LockOptions()

    def work(tenant: Tenant, wait: bool) -> TenantResult:
        return _tenant_run(tenant, app, wait, config, script, lock, body, mutating)

    def load_revisions() -> None:
        # each worker would import them otherwise
        if mutating:
            for sc in script.walk_revisions():
                sc.module  # noqa: B018 - imported on first access
        for engine in runner._app_engines():
            engine.dispose()  # no connection shared with the workers

    # NOTE: the heap (application, revision files) is frozen once for all the
    # tenants, not once per tenant's run: frozen per run, what each run left
    # to the cycle collector would be frozen again during the next run, and
    # never collected (measured: +0.35 MB per tenant). Frozen before the
    # workers fork, it also spares their copy-on-write pages.
    with _alembic_info_hushed(), runner.frozen_heap():
        return tenants_.run(
            chosen, work, jobs=jobs, fail_fast=fail_fast, on_result=on_tenant,
            before_fork=load_revisions,
        )


def _tenant_run(
    tenant: Tenant, app: t.Any, wait: bool, config: Config, script: ScriptDirectory,
    lock: LockOptions, body: TenantBody, mutating: bool,
) -> TenantResult:
    """One tenant's run, and its result; failures are in the result, not raised."""
    steps: list[Step] = []
    with tenancy.scope(tenant, app) as scope:
        began = time.perf_counter()
        try:
            value = runner.translate_errors(body)(
                config, script, tenants_.busy_free(lock, wait), steps.append
            )
        except LockTimeout as exc:
            if not wait and lock.enabled:
                return TenantResult(tenant.name, tenants_.BUSY)
            return _failed(tenant, scope, steps, began, exc, waited=wait)
        except KeyboardInterrupt as exc:
            signal_name = str(exc) or "SIGINT"
            result = _failed(tenant, scope, steps, began, None, "interrupted",
                             f"interrupted by {signal_name}; what was in progress was rolled "
                             "back where the database allows it, and its lock released",
                             waited=wait)
            raise tenants_.TenantInterrupted(result, signal_name) from None
        except Exception as exc:  # noqa: BLE001 - one tenant's failure is its result
            return _failed(tenant, scope, steps, began, exc, waited=wait)
        duration = time.perf_counter() - began
        before = scope.heads_before
        if mutating:
            applied = tuple(value)
            return TenantResult(
                tenant.name, "migrated" if applied else "up to date", before,
                _after(before, applied), applied, duration, waited=wait,
            )
        if isinstance(value, list) and value and isinstance(value[0], CurrentRevisions):
            heads = value[0].revisions
            return TenantResult(tenant.name, "ok", heads, heads, duration=duration)
        if isinstance(value, list):  # check: the differences found
            if not value:
                return TenantResult(tenant.name, "ok", duration=duration)
            return TenantResult(
                tenant.name, "changes", duration=duration,
                error=_tenant_message(tenant, str(PendingChanges(value))),
            )
        databases = getattr(value, "databases", ())
        found = databases[0] if databases else None
        current = found.current if found is not None else None
        return TenantResult(tenant.name, "ok", current, current, duration=duration, status=found)


def _failed(
    tenant: Tenant, scope: tenancy.TenantScope, steps: list[Step], began: float,
    exc: BaseException | None, outcome: str = "failed", text: str | None = None,
    waited: bool = False,
) -> TenantResult:
    if text is None:
        assert exc is not None
        text = str(exc) if isinstance(exc, MigrateError) else f"{type(exc).__name__}: {exc}"
    secrets = runner.secrets() + sorted(tenancy_passwords(tenant))
    before = scope.heads_before
    # a run that is one transaction rolled back whole; else its finished steps stay
    kept = () if scope.atomic is not False else tuple(steps)
    after = _after(before, kept) if before is not None else None
    return TenantResult(
        tenant.name, outcome, before, after, kept,
        time.perf_counter() - began, _tenant_message(tenant, scrub(text, secrets)), waited=waited,
    )


def tenancy_passwords(tenant: Tenant) -> set[str]:
    from .errors import passwords_in

    if tenant.url is None:
        return set()
    found = set(passwords_in(str(tenant.url)))
    # NOTE: str() of a URL object hides its password: take it from the object
    password = getattr(tenant.url, "password", None)
    if password:
        found.add(str(password))
    return found


def _tenant_message(tenant: Tenant, text: str) -> str:
    prefix = f"Tenant {tenant.name}"
    return text if text.startswith(prefix) else f"{prefix}: {text}"


def _after(before: tuple[str, ...] | None, steps: t.Sequence[Step]) -> tuple[str, ...] | None:
    """The revisions after ``steps``, from those before."""
    if before is None:
        return None
    heads = list(before)
    for step in steps:
        heads = [h for h in heads if h not in step.source] + [
            d for d in step.destination if d not in heads
        ]
    return tuple(heads)


@contextlib.contextmanager
def _alembic_info_hushed() -> t.Iterator[None]:
    """No "Running upgrade ..." line per revision and tenant: the summary says it."""
    loggers = [
        logging.getLogger(name)
        for name in ("alembic.runtime.migration", "alembic.ddl.postgresql", "alembic.autogenerate.compare")
    ]

    def no_info(record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO

    for logger in loggers:
        logger.addFilter(no_info)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(no_info)


def _rolled_back(run: runner.Run, step: Step) -> bool:
    """Whether a step recorded by a failed run was undone by its rollback."""
    for target in run.targets.values():
        if target.database == step.database:
            return target.atomic
    return True


def _lock_timeout_error(
    exc: BaseException, run: runner.Run, target: runner.Target | None, attempt: int,
    not_retried: str | None,
) -> lock_timeouts.DDLLockTimeout:
    statement = getattr(exc, "statement", None)
    table = lock_timeouts.table_of(statement)
    database = target.database if target is not None else "the database"
    engine = target.connection.engine if target is not None and target.connection is not None else None
    return lock_timeouts.DDLLockTimeout(
        database=database,
        revision=target.step_revision if target is not None else None,
        table=table,
        holders=lock_timeouts.holders(engine, table) if engine is not None else [],
        timeout=runner.ddl_timeout(run.lock),
        attempts=attempt,
        not_retried=not_retried,
    )


def _log_retry(error: MigrateError, attempt: int, pause: float) -> None:
    summary = getattr(error, "summary", str(error))
    log.warning("%s Rolled back; trying again in %g s (retry %d).", summary, pause, attempt)


def _database(run: runner.Run, context: MigrationContext) -> str:
    target = run.target_for(context)
    return target.database if target is not None else context.dialect.name


# -- templates and init ------------------------------------------------------

#: Where ``init(tenants=True)`` puts the tenants' history when neither its
#: ``directory`` nor ``Migrate(tenant_directory=...)`` says.
TENANT_DIRECTORY = "tenant_migrations"
#: The template of the tenants' history.
TENANT_TEMPLATE = "flask-tenants"


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


@translate_errors
def init(
    directory: str | os.PathLike[str] | None = None,
    multidb: bool = False,
    template: str | None = None,
    package: bool = False,
    x_arg: str | t.Sequence[str] | None = None,
    *,
    quiet: bool = True,
    tenants: bool = False,
) -> Path:
    """Create a migrations folder; returns its path.

    ``template`` is a template name (see :func:`list_templates`) or the path of
    a template folder of your own.

    With ``tenants=True``, the folder of the tenants' own history (see
    :doc:`tenant-history`): ``directory`` if given, else the
    ``tenant_directory`` of :class:`~flask_migrate.Migrate`, else
    :data:`TENANT_DIRECTORY`; made from the ``flask-tenants`` template unless
    ``template`` names another.
    """
    state = runner.state()
    if tenants:
        if multidb:
            raise MigrateError(
                "--multidb cannot be combined with --tenants: a tenant is one database "
                "(or schema), and the tenants' history is a single-database one."
            )
        if directory is None:
            directory = state.migrate.tenant_directory or TENANT_DIRECTORY
        if template is None:
            template = TENANT_TEMPLATE
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

    run_env(
        config, script_directory, retrieve_migrations,
        template_args=revision_context.template_args,
        revision_context=revision_context,
    )
    revision_context.generated_revisions[:] = [
        script
        for script in revision_context.generated_revisions
        if not all(ops.is_empty() for ops in script.upgrade_ops_list)
    ]
    with _hushed(config):
        scripts = [s for s in revision_context.generate_scripts() if s is not None]
    return scripts[0] if scripts else None


def _autogenerate_for_tenants(
    config: Config, script_directory: ScriptDirectory, **command_args: t.Any
) -> Script | None:
    """Autogenerate for the tenants' history, against a scratch tenant at its heads.

    NOTE: no real tenant is compared with: one may lag behind or be ahead
    (an upgrade in progress), there may be none yet, and picking one would
    make the revision depend on which. A scratch tenant of the kind the
    application's tenants are (see :func:`_scratch_tenant`) is brought to the
    history's heads, with the runs redirected to it as for any tenant, and
    compared with; it is removed on every way out, Ctrl-C included.
    """
    from flask import current_app

    if command_args.get("sql"):
        raise MigrateError("Using --sql with --autogenerate does not make any sense.")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _scratch_tenant() as tenant:
        try:
            with tenancy.scope(tenant, app), _alembic_info_hushed():
                try:
                    translate_errors(_upgrade_scratch)(config, script_directory)
                except MigrateError as exc:
                    error = MigrateError(
                        "Could not bring a scratch tenant to the head of the tenants' history, "
                        f"to compare the models with: {exc}"
                        + (
                            " (A schema tenant sees the application's database: if a revision "
                            "refers to its tables, run 'flask db upgrade' first.)"
                            if tenant.schema is not None else ""
                        )
                    )
                    error.original = exc.original
                    raise error from exc
            with tenancy.scope(tenant, app):
                return _autogenerate_revision(config, script_directory, **command_args)
        except MigrateError as exc:
            # the scratch database has the first tenant's credentials, not the app's
            exc.args = (scrub(str(exc), sorted(tenancy_passwords(tenant))),)
            raise


def _upgrade_scratch(config: Config, script: ScriptDirectory) -> None:
    """Bring the scratch tenant in scope to the heads (no lock, no journal: nobody else sees it)."""
    plan = Plan("upgrade", "heads", lambda heads: _alembic.upgrade_steps(script, "heads", heads))
    runner.Run(
        config, script, lambda heads, context: plan.compute(heads), plan=plan,
        lock=LockOptions(enabled=False), journal=False, as_sql=False, destination_rev="heads",
    ).execute()


#: How errors name the scratch tenant of ``migrate --tenants``.
_SCRATCH_TENANT = "(scratch)"


@contextlib.contextmanager
def _scratch_tenant() -> t.Iterator[Tenant]:
    """A tenant made to autogenerate against, like the application's first; removed afterwards.

    * Schema tenants, or no tenant declared and a PostgreSQL application
      database: a schema of a unique name in the application's database
      (the run creates it), dropped with ``CASCADE``.
    * Tenants with databases of their own: a scratch database on the server
      of the first one (a temporary file for SQLite; see :mod:`.scratch`).
    * No tenant declared, on another database: a scratch database like the
      application's.
    """
    import uuid

    from sqlalchemy.engine import make_url

    from . import scratch

    migrate_state = runner.state()
    declared = tenants_.declared(migrate_state.migrate.tenants) if migrate_state.migrate.tenants else []
    engine = migrate_state.get_engine(None)
    first = declared[0] if declared else None
    if (first is not None and first.schema is not None) or (
        first is None and engine.dialect.name == "postgresql"
    ):
        schema = scratch.PREFIX + uuid.uuid4().hex[:16]
        try:
            yield Tenant(_SCRATCH_TENANT, schema=schema)
        finally:
            _drop_schema(engine, schema)
        return
    model = make_url(first.url) if first is not None and first.url is not None else engine.url
    database = scratch.create(model, None)
    try:
        yield Tenant(_SCRATCH_TENANT, url=database.url)
    finally:
        try:
            scratch.drop(database)
        except Exception as exc:  # noqa: BLE001 - never hide the command's own outcome
            log.warning("Could not remove the scratch database %s: %s", database.label, exc)


def _drop_schema(engine: t.Any, schema: str) -> None:
    """Drop a scratch schema and everything in it (nothing if the run never made it)."""
    import sqlalchemy as sa

    try:
        with engine.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote_identifier(schema)
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {quoted} CASCADE"))
            conn.commit()
    except Exception as exc:  # noqa: BLE001 - never hide the command's own outcome
        log.warning("Could not remove the scratch schema %s: %s", schema, exc)


def _hushed(config: Config) -> t.ContextManager[t.Any]:
    """Silence "Generating ..." lines when asked to be quiet.

    NOTE: Alembic honours ``cmd_opts.quiet`` itself only from 1.11 on; with
    older versions its messages go to standard output regardless.
    """
    if getattr(config.cmd_opts, "quiet", False):
        return contextlib.redirect_stdout(io.StringIO())
    return contextlib.nullcontext()


@translate_errors
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
    tenants: bool = False,
) -> Script | None:
    """Create a revision file; returns its script (``None`` if nothing was written).

    With ``autogenerate``, no file is written when the models and the database
    already agree.

    With ``tenants=True``, a revision of the tenants' history: in
    ``directory`` if given, else in the ``tenant_directory`` of
    :class:`~flask_migrate.Migrate` (else the application's folder, which
    tenants then share). Autogenerate then compares the models with a scratch
    tenant made for the occasion, brought to the history's heads, and removed
    afterwards whatever happens (see :doc:`tenant-history`).
    """
    if tenants and directory is None:
        directory = runner.state().migrate.tenant_directory
    opts = ["autogenerate"] if autogenerate else None
    config = get_config(directory, x_arg=x_arg, opts=opts, quiet=quiet)
    script_directory = load_scripts(config)
    if autogenerate:
        generate = _autogenerate_for_tenants if tenants else _autogenerate_revision
        return generate(
            config, script_directory, message=message, sql=sql, head=head,
            splice=splice, branch_label=branch_label, version_path=version_path,
            rev_id=rev_id, depends_on=None,
        )
    # env.py runs here only when alembic.ini sets revision_environment
    hush = contextlib.nullcontext() if sql else _hushed(config)
    with runner.state().run_configure_args(), hush:
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
    tenants: bool = False,
) -> Script | None:
    """``revision`` with ``autogenerate``; returns ``None`` when nothing changed.

    ``tenants=True``: for the tenants' history (see :func:`revision`).
    """
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
        tenants=tenants,
    )


@translate_errors
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
    config = get_config(directory, x_arg=x_arg, quiet=quiet)
    load_scripts(config)
    if isinstance(revisions, str):
        revisions = revisions.split() if revisions else []
    if not revisions:
        raise MigrateError(
            "Name the revisions to merge, for example 'flask db merge heads'."
        )
    # env.py runs here only when alembic.ini sets revision_environment
    with runner.state().run_configure_args(), _hushed(config):
        script = command.merge(
            config,
            list(revisions),
            message=message,
            branch_label=branch_label,
            rev_id=rev_id,
        )
    assert script is not None
    return script


@translate_errors
def edit(
    directory: str | os.PathLike[str] | None = None,
    revision: str = "current",
    x_arg: str | t.Sequence[str] | None = None,
) -> list[Path]:
    """Open the revision's file in ``$EDITOR``; returns the paths opened."""
    from alembic.util import open_in_editor

    config = get_config(directory, x_arg=x_arg)
    script = load_scripts(config)
    if revision == "current":
        current_revs: list[str] = []

        def collect(rev: t.Any, context: MigrationContext) -> list[t.Any]:
            current_revs.extend(context.get_current_heads())
            return []

        run_env(config, script, collect, dont_mutate=True)
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


@t.overload
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
    from_archive: bool = False,
    tenants: None = None,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> list[Step]: ...


@t.overload
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
    from_archive: bool = False,
    tenants: TenantsArg,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> list[TenantResult]: ...


@translate_errors
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
    from_archive: bool = False,
    tenants: TenantsArg | None = None,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> t.Any:
    """Upgrade to ``revision``; returns the steps applied, in order.

    With ``sql=True``, the SQL is written to ``output`` (standard output by
    default) instead of run; ``revision`` may then be a ``start:end`` range.

    With ``from_archive=True``, a database at a revision that ``flask db
    squash`` replaced is first brought to the squash's revision with the
    archived revisions (see :doc:`squash`); then the upgrade goes on as usual.

    With ``tenants`` (``"all"``, or tenant names and
    :class:`~flask_migrate.Tenant` objects), upgrades each tenant instead, in
    ``jobs`` worker processes, and returns one
    :class:`~flask_migrate.results.TenantResult` per tenant, in their order; a
    tenant's failure is in its result, not raised (see :doc:`tenants`).
    ``fail_fast`` starts no new tenant after a failure; ``on_tenant`` is
    called with a :class:`~flask_migrate.tenants.Progress` after each tenant.
    """
    if tenants is not None:
        if sql:
            raise MigrateError("--sql cannot be combined with tenants: commands for tenants run on their databases.")
        return _for_tenants(
            directory, x_arg, tenants, jobs, fail_fast, on_tenant, lock,
            lambda config, script, lock, on_step: _upgrade(
                config, script, revision, False, tag, lock, on_step, from_archive
            ),
            mutating=True,
        )
    config = get_config(directory, x_arg=x_arg, quiet=quiet, output=output)
    script = load_scripts(config)
    return _upgrade(config, script, revision, sql, tag, lock, on_step, from_archive)


def _upgrade(
    config: Config, script: ScriptDirectory, revision: str, sql: bool, tag: str | None,
    lock: LockOptions, on_step: t.Callable[[Step], None] | None, from_archive: bool,
) -> list[Step]:
    starting_rev = None
    if ":" in revision:
        if not sql:
            raise MigrateError(
                f"A revision range ({revision!r}) needs --sql; "
                "online upgrades start from the database's current revision."
            )
        starting_rev, revision = revision.split(":", 1)
        starting_rev = starting_rev or None
    applied: list[Step] = []
    if from_archive:
        if sql:
            raise MigrateError("--from-archive cannot be combined with --sql.")
        applied = _catch_up(config, script, lock, on_step, tag)

    def compute(heads: t.Any) -> list[t.Any]:
        return _alembic.upgrade_steps(script, revision, heads)

    return applied + _apply(
        config, script, Plan("upgrade", revision, compute), lock, on_step,
        as_sql=sql, starting_rev=starting_rev, destination_rev=revision, tag=tag,
    )


def _catch_up(
    config: Config, script: ScriptDirectory, lock: LockOptions,
    on_step: t.Callable[[Step], None] | None, tag: str | None,
) -> list[Step]:
    """Bring databases left at squashed revisions to the squash's revision.

    For each archive of ``flask db squash``, oldest first, ``env.py`` runs
    with the archived revisions; each database it configures whose current
    revisions are all among those the squash replaced is upgraded to the
    squash's revision. The others are left alone (no steps).
    """
    applied: list[Step] = []
    for record in scripts.squash_records(script):
        if not record.versions.is_dir():
            raise MigrateError(
                f"The archive of the squash at {record.revision} has no versions/ folder "
                f"({record.versions}). Restore it from version control."
            )
        archived = scripts.with_versions(script, record.versions)
        replaced = set(record.replaced)

        def compute(heads: t.Any, archived: ScriptDirectory = archived, target: str = record.revision,
                    replaced: set[str] = replaced) -> list[t.Any]:
            if heads and all(h in replaced for h in heads):
                return _alembic.upgrade_steps(archived, target, heads)
            return []

        # no check of the version table: it holds revisions this history does not know
        plan = Plan("upgrade", record.revision, compute, check=False)
        applied += _apply(
            config, archived, plan, lock, on_step,
            as_sql=False, destination_rev=record.revision, tag=tag,
        )
    return applied


@t.overload
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
    tenants: None = None,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> list[Step]: ...


@t.overload
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
    tenants: TenantsArg,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> list[TenantResult]: ...


@translate_errors
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
    tenants: TenantsArg | None = None,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> t.Any:
    """Downgrade to ``revision``; returns the steps applied, in order.

    With ``sql=True`` a ``start:end`` range is needed; the default ``-1``
    then means ``head:-1``. ``tenants`` and the rest: as for :func:`upgrade`.
    """
    if tenants is not None:
        if sql:
            raise MigrateError("--sql cannot be combined with tenants: commands for tenants run on their databases.")
        return _for_tenants(
            directory, x_arg, tenants, jobs, fail_fast, on_tenant, lock,
            lambda config, script, lock, on_step: _downgrade(
                config, script, revision, False, tag, lock, on_step
            ),
            mutating=True,
        )
    config = get_config(directory, x_arg=x_arg, quiet=quiet, output=output)
    script = load_scripts(config)
    return _downgrade(config, script, revision, sql, tag, lock, on_step)


def _downgrade(
    config: Config, script: ScriptDirectory, revision: str, sql: bool, tag: str | None,
    lock: LockOptions, on_step: t.Callable[[Step], None] | None,
) -> list[Step]:
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

    def compute(heads: t.Any) -> list[t.Any]:
        return _alembic.downgrade_steps(script, revision, heads)

    return _apply(
        config, script, Plan("downgrade", revision, compute), lock, on_step,
        as_sql=sql, starting_rev=starting_rev, destination_rev=revision, tag=tag,
    )


@t.overload
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
    tenants: None = None,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> list[Step]: ...


@t.overload
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
    tenants: TenantsArg,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> list[TenantResult]: ...


@translate_errors
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
    tenants: TenantsArg | None = None,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> t.Any:
    """Set the version table to ``revision`` without running migrations.

    ``tenants`` and the rest: as for :func:`upgrade`.
    """
    if tenants is not None:
        if sql:
            raise MigrateError("--sql cannot be combined with tenants: commands for tenants run on their databases.")
        return _for_tenants(
            directory, x_arg, tenants, jobs, fail_fast, on_tenant, lock,
            lambda config, script, lock, on_step: _stamp(
                config, script, revision, False, tag, purge, lock, on_step
            ),
            mutating=True,
        )
    config = get_config(directory, x_arg=x_arg, quiet=quiet, output=output)
    script = load_scripts(config)
    return _stamp(config, script, revision, sql, tag, purge, lock, on_step)


def _stamp(
    config: Config, script: ScriptDirectory, revision: str | t.Sequence[str], sql: bool,
    tag: str | None, purge: bool, lock: LockOptions, on_step: t.Callable[[Step], None] | None,
) -> list[Step]:
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

    def compute(heads: t.Any) -> list[t.Any]:
        return _alembic.stamp_steps(script, tuple(destinations), () if purge else heads)

    # --purge is how a broken version table is repaired: no check of it
    plan = Plan("stamp", ",".join(destinations), compute, check=not purge)
    return _apply(
        config, script, plan, lock, on_step,
        as_sql=sql, starting_rev=starting_rev, destination_rev=tuple(destinations),
        tag=tag, purge=purge,
    )


# -- inspecting -------------------------------------------------------------------


def _current_heads(config: Config, script: ScriptDirectory) -> list[CurrentRevisions]:
    found: list[CurrentRevisions] = []

    def collect(rev: t.Any, context: MigrationContext) -> list[t.Any]:
        heads = tuple(context.get_current_heads())
        known_scripts: tuple[Script, ...] = ()
        # NOTE: a revision missing from the folder (deleted file, other
        # branch checked out) must not hide the others: it is listed apart.
        known = tuple(rev for rev in heads if known_script(script, rev) is not None)
        if known:
            known_scripts = tuple(
                sorted(_alembic.all_current(script, known), key=lambda s: s.revision)
            )
        found.append(CurrentRevisions(_database(run, context), heads, known_scripts))
        return []

    run = runner.Run(config, script, collect, dont_mutate=True)
    run.execute()
    return found


@t.overload
def current(
    directory: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    x_arg: str | t.Sequence[str] | None = None,
    *,
    tenants: None = None,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> list[CurrentRevisions]: ...


@t.overload
def current(
    directory: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    x_arg: str | t.Sequence[str] | None = None,
    *,
    tenants: TenantsArg,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> list[TenantResult]: ...


@translate_errors
def current(
    directory: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    x_arg: str | t.Sequence[str] | None = None,
    *,
    tenants: TenantsArg | None = None,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> t.Any:
    """The current revisions of each database ``env.py`` migrates.

    With ``tenants``: one :class:`~flask_migrate.results.TenantResult` per
    tenant, its revisions in ``after`` (see :func:`upgrade`).
    """
    if tenants is not None:
        return _for_tenants(
            directory, x_arg, tenants, jobs, fail_fast, on_tenant, None,
            lambda config, script, lock, on_step: _current_heads(config, script),
        )
    config = get_config(directory, x_arg=x_arg)
    script = load_scripts(config)
    return _current_heads(config, script)


@translate_errors
def show(
    directory: str | os.PathLike[str] | None = None,
    revision: str = "head",
    x_arg: str | t.Sequence[str] | None = None,
) -> list[Script]:
    """The scripts of the revisions ``revision`` names (``current`` included)."""
    config = get_config(directory, x_arg=x_arg)
    script = load_scripts(config)
    if revision == "current":
        revs = tuple(r for db in _current_heads(config, script) for r in db.revisions)
    else:
        revs = revision  # type: ignore[assignment]
    return [s for s in script.get_revisions(revs) if s is not None]


@translate_errors
def history(
    directory: str | os.PathLike[str] | None = None,
    rev_range: str | None = None,
    verbose: bool = False,
    indicate_current: bool = False,
    x_arg: str | t.Sequence[str] | None = None,
) -> History:
    """The revision scripts, newest first, optionally limited to ``start:end``."""
    config = get_config(directory, x_arg=x_arg)
    script = load_scripts(config)
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


@t.overload
def status(
    directory: str | os.PathLike[str] | None = None,
    x_arg: str | t.Sequence[str] | None = None,
    recent: int = 10,
    *,
    tenants: None = None,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> Status: ...


@t.overload
def status(
    directory: str | os.PathLike[str] | None = None,
    x_arg: str | t.Sequence[str] | None = None,
    recent: int = 10,
    *,
    tenants: TenantsArg,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> list[TenantResult]: ...


@translate_errors
def status(
    directory: str | os.PathLike[str] | None = None,
    x_arg: str | t.Sequence[str] | None = None,
    recent: int = 10,
    *,
    tenants: TenantsArg | None = None,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> t.Any:
    """Where each database ``env.py`` migrates stands, and what needs attention.

    Runs ``env.py`` without changing anything and reads each connection it
    configures: its version table, its tables and its journal, compared with
    the migrations folder and the models ``env.py`` passes. See
    :mod:`flask_migrate.status`.
    """
    from .status import collect

    if tenants is not None:
        return _for_tenants(
            directory, x_arg, tenants, jobs, fail_fast, on_tenant, None,
            lambda config, script, lock, on_step: collect(config, script, recent),
        )
    config = get_config(directory, x_arg=x_arg)
    script = load_scripts(config)
    return collect(config, script, recent)


@translate_errors
def heads(
    directory: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    resolve_dependencies: bool = False,
    x_arg: str | t.Sequence[str] | None = None,
) -> list[Script]:
    """The head revisions of the migrations folder."""
    config = get_config(directory, x_arg=x_arg)
    script = load_scripts(config)
    if resolve_dependencies:
        found = script.get_revisions("heads")
    else:
        found = script.get_revisions(script.get_heads())
    return [s for s in found if s is not None]


@translate_errors
def branches(
    directory: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    x_arg: str | t.Sequence[str] | None = None,
) -> list[BranchPoint]:
    """The revisions that more than one revision builds on (branch points)."""
    config = get_config(directory, x_arg=x_arg)
    script = load_scripts(config)
    return [
        BranchPoint(
            sc,
            tuple(script.get_revision(rev) for rev in sorted(sc.nextrev)),
        )
        for sc in script.walk_revisions()
        if sc.is_branch_point
    ]


@t.overload
def check(
    directory: str | os.PathLike[str] | None = None,
    x_arg: str | t.Sequence[str] | None = None,
    *,
    tenants: None = None,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> None: ...


@t.overload
def check(
    directory: str | os.PathLike[str] | None = None,
    x_arg: str | t.Sequence[str] | None = None,
    *,
    tenants: TenantsArg,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> list[TenantResult]: ...


@translate_errors
def check(
    directory: str | os.PathLike[str] | None = None,
    x_arg: str | t.Sequence[str] | None = None,
    *,
    tenants: TenantsArg | None = None,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_tenant: t.Callable[[Progress], None] | None = None,
) -> t.Any:
    """Raise :class:`~flask_migrate.errors.PendingChanges` when the models and
    the migrated database differ (or the database is not at head).

    With ``tenants``: one :class:`~flask_migrate.results.TenantResult` per
    tenant instead, ``"changes"`` where they differ (see :func:`upgrade`).
    """
    if tenants is not None:
        return _for_tenants(
            directory, x_arg, tenants, jobs, fail_fast, on_tenant, None,
            lambda config, script, lock, on_step: runner.autogenerate_diffs(config, script),
        )
    config = get_config(directory, x_arg=x_arg)
    diffs = runner.autogenerate_diffs(config, load_scripts(config))
    if diffs:
        raise PendingChanges(diffs)


@translate_errors
def lint(
    directory: str | os.PathLike[str] | None = None,
    revision_range: str | None = None,
    all_revisions: bool = False,
    x_arg: str | t.Sequence[str] | None = None,
    *,
    scripts: t.Sequence[Script] | None = None,
) -> LintReport:
    """Lint revision files for risky operations (see :mod:`flask_migrate.lint`).

    By default the revisions not applied to the database yet (every revision
    when the database cannot be read); ``revision_range`` (``start:end``, as
    for ``history``) or ``all_revisions`` otherwise. Rules are chosen for the
    dialect of the application's databases, and severities taken from the
    ``MIGRATE_LINT_SEVERITY`` config key.
    """
    from flask import current_app
    from sqlalchemy.exc import SQLAlchemyError

    from . import lint as linting

    note = None
    if scripts is not None:
        # the caller has the scripts (``migrate``, which lints what it just
        # wrote): the history need not be loaded again
        scripts = list(scripts)
        scope = "range"
    elif all_revisions or revision_range:
        script = load_scripts(get_config(directory, x_arg=x_arg))
        base, _, head = (revision_range or ":").partition(":")
        if revision_range and not _:
            raise MigrateError(f"A revision range looks like 'start:end', not {revision_range!r}.")
        scripts = list(reversed(list(script.walk_revisions(base or "base", head or "heads"))))
        scope = "range" if revision_range else "all"
    else:
        scope = "pending"
        config = get_config(directory, x_arg=x_arg)
        script = load_scripts(config)
        try:
            current = _current_heads(config, script)
        except (SQLAlchemyError, MigrateError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            note = f"the database could not be read ({first}); linted every revision"
            scope = "all"
            scripts = list(reversed(list(script.walk_revisions("base", "heads"))))
        else:
            pending: dict[str, Script] = {}
            for found in current or [CurrentRevisions("", (), ())]:
                for step in _alembic.upgrade_steps(script, "heads", found.revisions):
                    sc = getattr(step, "revision", None)
                    if sc is not None:
                        pending.setdefault(sc.revision, sc)
            scripts = list(pending.values())
    dialects = {
        "mysql" if e.dialect.name == "mariadb" else e.dialect.name for e in runner._app_engines()
    }
    dialect = dialects.pop() if len(dialects) == 1 else None
    findings = linting.lint_scripts(
        scripts,
        dialect=dialect,
        severities=current_app.config.get("MIGRATE_LINT_SEVERITY") or None,
        app_packages=[current_app.import_name.split(".")[0]],
    )
    return LintReport(
        revisions=tuple(sc.revision for sc in scripts),
        findings=tuple(findings),
        scope=scope,
        dialect=dialect,
        note=scrub(note, runner.secrets()) if note else None,
    )
