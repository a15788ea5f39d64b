"""The ``flask db`` command group.

It parses options, calls :mod:`flask_migrate.operations`, prints the result and
turns failures into one line ``Error: <message>`` on standard error with exit
status 1. It is the only part of the package that exits, and it does so only
through click's exceptions (:class:`CommandFailed`, ``click.exceptions.Exit``),
so click decides how the process ends and ``app.test_cli_runner()`` sees the
same exit status as a shell. Alembic is imported only when a command runs, so
``flask --help`` and the application's own commands do not pay for it.

The group is added to an application by :meth:`flask_migrate.Migrate.init_app`
(``app.cli.add_command``), as in Flask-Migrate 4.1; it is not a
``flask.commands`` plugin, so it never appears in, or shadows commands of,
applications that do not use the extension.

Every option of the group can also be set through the environment with
Flask's ``FLASK_`` prefix: ``FLASK_DB_DIRECTORY``, ``FLASK_DB_X_ARG`` and
``FLASK_DB_TRACEBACK`` (the group's name replaces ``DB`` when ``Migrate`` was
given another ``command``).
"""

from __future__ import annotations

import contextlib
import functools
import typing as t

import click
from flask import g
from flask.cli import AppGroup, with_appcontext

from . import _render

P = t.ParamSpec("P")
R = t.TypeVar("R")

_directory_option = click.option(
    "-d",
    "--directory",
    default=None,
    help='Migration script directory (default is "migrations")',
)
_x_arg_option = click.option(
    "-x",
    "--x-arg",
    multiple=True,
    help="Additional arguments consumed by custom env.py scripts",
)
_sql_option = click.option(
    "--sql",
    is_flag=True,
    help="Don't emit SQL to database - dump to standard output instead",
)
_tag_option = click.option(
    "--tag",
    default=None,
    help='Arbitrary "tag" name - can be used by custom env.py scripts',
)
_verbose_option = click.option(
    "-v", "--verbose", is_flag=True, help="Use more verbose output"
)
_rev_id_option = click.option(
    "--rev-id",
    default=None,
    help="Specify a hardcoded revision id instead of generating one",
)
_branch_label_option = click.option(
    "--branch-label",
    default=None,
    help="Specify a branch label to apply to the new revision",
)


def _lock_options(f: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    f = click.option(
        "--ddl-lock-retries",
        type=click.IntRange(min=0),
        default=None,
        metavar="N",
        help="PostgreSQL: how many times to run again a migration that gave up on a "
        "table lock (default 3, or MIGRATE_DDL_LOCK_RETRIES).",
    )(f)
    f = click.option(
        "--ddl-lock-timeout",
        type=click.FloatRange(min=0),
        default=None,
        metavar="SECONDS",
        help="How long a migration statement may wait for a table lock before giving "
        "up, so that it never queues the application's queries behind it (default "
        "10, or MIGRATE_DDL_LOCK_TIMEOUT; 0 waits forever).",
    )(f)
    f = click.option(
        "--no-lock",
        is_flag=True,
        default=None,
        help="Do not take the migration lock (for connection poolers that cannot "
        "hold session state, such as PgBouncer in transaction mode).",
    )(f)
    return click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0),
        default=None,
        metavar="SECONDS",
        help="How long to wait for another migration of the same database to "
        "finish (default 300; 0 fails at once, naming the holder).",
    )(f)


def _lock(
    lock_timeout: float | None,
    no_lock: bool | None,
    ddl_lock_timeout: float | None = None,
    ddl_lock_retries: int | None = None,
) -> t.Any:
    """The lock options of a command, falling back to the group's."""
    from .locking import DEFAULT_TIMEOUT
    from .operations import LockOptions

    if lock_timeout is None:
        lock_timeout = getattr(g, "lock_timeout", None)
    if no_lock is None:
        no_lock = getattr(g, "no_lock", None)
    if ddl_lock_timeout is None:
        ddl_lock_timeout = getattr(g, "ddl_lock_timeout", None)
    if ddl_lock_retries is None:
        ddl_lock_retries = getattr(g, "ddl_lock_retries", None)

    def on_retry(error: t.Any, attempt: int, pause: float) -> None:
        summary = getattr(error, "summary", str(error))
        click.echo(f"{summary} Rolled back; trying again in {pause:g} s (retry {attempt}).", err=True)

    def on_wait(database: str, holder: t.Any) -> None:
        who = holder.describe() if holder is not None else "another process"
        click.echo(
            f"Waiting for the migration lock on {database}, held by {who} ...", err=True
        )

    return LockOptions(
        enabled=not no_lock,
        timeout=DEFAULT_TIMEOUT if lock_timeout is None else lock_timeout,
        on_wait=on_wait,
        ddl_timeout=ddl_lock_timeout,
        ddl_retries=ddl_lock_retries,
        on_retry=on_retry,
    )


def _step_printer() -> t.Callable[[t.Any], None]:
    """Print each applied step with its duration as it finishes."""
    from flask import current_app

    several = bool(current_app.extensions["migrate"].bind_names())

    def echo(step: t.Any) -> None:
        if step.duration is not None:  # None: --sql, where the SQL is the output
            click.echo(_render.step(step, several))

    return echo


def _tenant_options(f: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    f = click.option(
        "--fail-fast",
        is_flag=True,
        help="With tenants: after a tenant fails, start no other (by default the others go on).",
    )(f)
    f = click.option(
        "-j", "--jobs",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="With tenants: how many run at once, in worker processes (default: up to 4, "
        "no more than the CPUs).",
    )(f)
    f = click.option(
        "--tenant", "tenant_names",
        multiple=True,
        metavar="NAME",
        help="Run for this tenant instead of the application's database (repeat for several).",
    )(f)
    return click.option(
        "--all-tenants",
        is_flag=True,
        help="Run for every tenant the application declares (Migrate(tenants=...)) instead "
        "of its database.",
    )(f)


def _tenants_arg(
    all_tenants: bool, names: tuple[str, ...], jobs: int | None, fail_fast: bool
) -> str | list[str] | None:
    """What ``--all-tenants``/``--tenant`` ask for (``tenants=`` of the operations)."""
    if all_tenants and names:
        raise CommandFailed("Give --all-tenants or --tenant NAME, not both.")
    if not all_tenants and not names:
        if jobs is not None or fail_fast:
            raise CommandFailed("-j/--jobs and --fail-fast go with --all-tenants or --tenant NAME.")
        return None
    return "all" if all_tenants else list(names)


def _for_tenants(
    call: t.Callable[[t.Callable[[t.Any], None]], t.Any],
    jobs: int | None,
    *,
    lines: bool = True,
    table: str | None = "moves",
) -> t.Any:
    """Run ``call(on_tenant)`` with progress, then print the summary table.

    On a terminal the progress is a bar on standard error (failures are
    printed above it as they happen); otherwise, with ``lines``, a plain line
    per tenant on standard output. Failed tenants make the command exit 1,
    each named in an ``Error:`` line, after the table. Ctrl-C prints the
    table of what was done before the command stops.
    """
    import sys
    import time

    from .tenants import Interrupted, default_jobs

    tty = sys.stderr.isatty()
    began = time.perf_counter()
    bar_shown = False

    def on_tenant(progress: t.Any) -> None:
        nonlocal bar_shown
        if tty:
            if not progress.last.ok:
                click.echo("\r\x1b[2K" + _render.tenant_line(progress), err=True)
            click.echo("\r\x1b[2K" + _render.progress_bar(progress), err=True, nl=False)
            bar_shown = True
        elif lines:
            click.echo(_render.tenant_line(progress))

    def summary(results: t.Sequence[t.Any]) -> None:
        if bar_shown:
            click.echo(err=True)
        if table is not None:
            if lines and not tty:
                click.echo()
            for line in _render.tenant_table(results, table):
                click.echo(line)
            workers = jobs or default_jobs(len(results))
            click.echo(_render.tenant_counts(results, time.perf_counter() - began, workers))

    try:
        results = call(on_tenant)
    except Interrupted as exc:
        summary(exc.results)
        raise KeyboardInterrupt(str(exc)) from None
    summary(results)
    return results


def _exit_for_failures(results: t.Sequence[t.Any]) -> None:
    """An ``Error:`` line per failed tenant, and exit status 1, if any failed."""
    failed = [r for r in results if not r.ok and r.outcome != "not started"]
    skipped = [r for r in results if r.outcome == "not started"]
    for result in failed:
        click.echo(f"Error: {' '.join((result.error or result.outcome).split())}", err=True)
    if skipped:
        # --fail-fast, or (rarely) every worker process died
        why = "--fail-fast" if failed else "the worker processes exited unexpectedly"
        click.echo(
            f"Error: {len(skipped)} tenant{'s' if len(skipped) != 1 else ''} not started "
            f"({why}).", err=True,
        )
    if failed or skipped:
        raise click.exceptions.Exit(1)


class CommandFailed(click.ClickException):
    """A command failed: one line ``Error: <message>`` on stderr, exit status 1.

    The message is folded onto one line and any password written in it is
    hidden here, so that no raiser can forget to.
    """

    exit_code = 1

    def __init__(self, message: str) -> None:
        from .errors import passwords_in, scrub

        line = " ".join(message.split()) or "unknown error"
        super().__init__(scrub(line, passwords_in(line)))

    def show(self, file: t.IO[t.Any] | None = None) -> None:
        # NOTE: click's own show() prints the same line, but translates the
        # prefix through gettext; scripts and our tests match "Error: " exactly.
        click.echo(f"Error: {self.format_message()}", file=file, err=True)


def _print_traceback(exc: BaseException, secrets: t.Iterable[str]) -> None:
    import traceback

    from .errors import passwords_in, scrub

    text = "".join(traceback.format_exception(exc))
    click.echo(scrub(text, [*secrets, *passwords_in(text)]), err=True, nl=False)


def _traceback_variable() -> str:
    """The environment variable of this group's --traceback option."""
    ctx = click.get_current_context(silent=True)
    while ctx is not None and ctx.parent is not None and ctx.parent.parent is not None:
        ctx = ctx.parent
    name = (ctx.info_name if ctx is not None else None) or "db"
    return f"FLASK_{name.upper().replace('-', '_')}_TRACEBACK"


def _library_dirs() -> tuple[str, ...]:
    import os
    import sysconfig

    import alembic
    import flask
    import sqlalchemy

    dirs = [sysconfig.get_paths()["stdlib"], os.path.dirname(__file__)]
    for module in (alembic, sqlalchemy, flask, click):
        dirs.append(os.path.dirname(module.__file__ or ""))
    return tuple(os.path.join(d, "") for d in dirs if d)


def _where(exc: BaseException) -> str | None:
    """The innermost place in the user's own code (env.py, a revision) that failed."""
    import os
    import traceback

    libraries = _library_dirs()
    place = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if not frame.filename.startswith(libraries) and not frame.filename.startswith("<"):
            place = frame
    if place is None:
        return None
    path = place.filename
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(path)
        if not relative.startswith(".."):
            path = relative
    return f"{path}, line {place.lineno}"


@contextlib.contextmanager
def _terminate_as_interrupt() -> t.Iterator[None]:
    """Let SIGTERM unwind the command like Ctrl-C does.

    Python's default for SIGTERM is to die on the spot; raising instead runs
    every ``finally``: transactions roll back and locks are released.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: t.Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _handle_errors(f: t.Callable[P, R]) -> t.Callable[P, R]:
    """Turn a failure into one ``Error:`` line, or a scrubbed traceback on request."""

    @functools.wraps(f)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with _terminate_as_interrupt():
                return f(*args, **kwargs)
        except KeyboardInterrupt as exc:
            # every lock and transaction was released on the way out
            signal_name = str(exc) or "SIGINT"
            raise CommandFailed(
                f"Interrupted by {signal_name}. What was in progress was rolled "
                "back where the database allows it; locks were released."
            ) from None
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - this is the CLI's last line
            from alembic.util import CommandError

            from .errors import scrub
            from .runner import secrets as _secrets

            secrets = _secrets()
            if getattr(g, "migrate_traceback", False):
                _print_traceback(exc, secrets)
                raise click.exceptions.Exit(1) from None
            if isinstance(exc, CommandError):
                message = str(exc)
            else:
                # Not an error we anticipated (often a bug in env.py or in a
                # revision): name it and where it happened, and say how to see more.
                where = _where(exc)
                message = (
                    f"{type(exc).__name__}: {exc}"
                    + (f" (in {where})" if where else "")
                    + f". Set {_traceback_variable()}=1 to see the traceback."
                )
            # the cause stays out of sight: it may hold what scrub() removed
            raise CommandFailed(scrub(message, secrets)) from None

    return wrapper


# AppGroup: every command also pushes the app context when run on its own
@click.group(cls=AppGroup)
@_directory_option
@_x_arg_option
@click.option(
    "--traceback",
    is_flag=True,
    help="Show the full traceback of an error (passwords hidden) instead of one line.",
)
@_lock_options
@with_appcontext
def db(
    directory: str | None,
    x_arg: tuple[str, ...],
    traceback: bool,
    lock_timeout: float | None,
    no_lock: bool | None,
    ddl_lock_timeout: float | None,
    ddl_lock_retries: int | None,
) -> None:
    """Perform database migrations."""
    # picked up by Migrate.get_config() and by the commands below
    g.directory = directory
    g.x_arg = x_arg
    g.migrate_traceback = traceback
    g.lock_timeout = lock_timeout
    g.no_lock = no_lock
    g.ddl_lock_timeout = ddl_lock_timeout
    g.ddl_lock_retries = ddl_lock_retries


def _dir(directory: str | None) -> str | None:
    return directory or getattr(g, "directory", None)


def _tenant_dir(directory: str | None) -> str | None:
    """The migrations folder of a command for tenants.

    The command's own ``-d`` wins; then ``Migrate(tenant_directory=...)``
    (``None`` here lets the operation pick it up); the ``flask db`` group's
    ``-d`` (or ``FLASK_DB_DIRECTORY``) only when there is none, since it
    names the application's history, which the tenants may not share.
    """
    from flask import current_app

    if directory:
        return directory
    if getattr(current_app.extensions.get("migrate"), "migrate", None) is not None and (
        current_app.extensions["migrate"].migrate.tenant_directory is not None
    ):
        return None
    return _dir(None)


@db.command()
@_directory_option
@_x_arg_option
@_handle_errors
def list_templates(directory: str | None, x_arg: tuple[str, ...]) -> None:
    """List available templates."""
    from . import operations

    for line in _render.templates(operations.list_templates()):
        click.echo(line)


@db.command()
@_directory_option
@click.option("--multidb", is_flag=True, help="Support multiple databases")
@click.option(
    "-t",
    "--template",
    default=None,
    help='Repository template to use (default is "flask"), a name or a path',
)
@click.option(
    "--package",
    is_flag=True,
    help="Write empty __init__.py files to the environment and version locations",
)
@_x_arg_option
@click.option(
    "--tenants",
    is_flag=True,
    help='Create the tenants\' own history (default folder: Migrate(tenant_directory=...), '
    'else "tenant_migrations"), from the flask-tenants template.',
)
@_handle_errors
def init(
    directory: str | None,
    multidb: bool,
    template: str | None,
    package: bool,
    x_arg: tuple[str, ...],
    tenants: bool,
) -> None:
    """Creates a new migration repository."""
    import os

    from flask import current_app

    from . import operations

    path = operations.init(
        directory if tenants else _dir(directory), multidb, template, package, x_arg, quiet=False, tenants=tenants
    )
    if not tenants:
        return
    configured = current_app.extensions["migrate"].migrate.tenant_directory
    if configured is None or os.path.abspath(configured) != os.path.abspath(path):
        # the commands for tenants find the folder only through Migrate()
        click.echo(
            f'Pass tenant_directory="{path.as_posix()}" to Migrate() so that the commands '
            "for tenants use this folder."
        )


def _revision_options(f: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    for option in reversed(
        [
            _directory_option,
            click.option("-m", "--message", default=None, help="Revision message"),
            _sql_option,
            click.option(
                "--head",
                default="head",
                help="Specify head revision or <branchname>@head to base new revision on",
            ),
            click.option(
                "--splice",
                is_flag=True,
                help='Allow a non-head revision as the "head" to splice onto',
            ),
            _branch_label_option,
            click.option(
                "--version-path",
                default=None,
                help="Specify specific path from config for version file",
            ),
            _rev_id_option,
            _x_arg_option,
        ]
    ):
        f = option(f)
    return f


@db.command()
@_revision_options
@click.option(
    "--autogenerate",
    is_flag=True,
    help="Populate revision script with candidate migration operations, "
    "based on comparison of database to model",
)
@click.option(
    "--tenants",
    is_flag=True,
    help="A revision of the tenants' own history (Migrate(tenant_directory=...)); "
    "--autogenerate compares with a scratch tenant.",
)
@_handle_errors
def revision(
    directory: str | None,
    message: str | None,
    sql: bool,
    head: str,
    splice: bool,
    branch_label: str | None,
    version_path: str | None,
    rev_id: str | None,
    x_arg: tuple[str, ...],
    autogenerate: bool,
    tenants: bool,
) -> None:
    """Create a new revision file."""
    from . import operations

    script = operations.revision(
        _tenant_dir(directory) if tenants else _dir(directory), message, autogenerate, sql, head, splice, branch_label,
        version_path, rev_id, x_arg, quiet=False, tenants=tenants,
    )
    if script is None and autogenerate:
        click.echo("No changes in schema detected.")


@db.command()
@_revision_options
@click.option(
    "--tenants",
    is_flag=True,
    help="For the tenants' own history (Migrate(tenant_directory=...)), compared "
    "with a scratch tenant brought to its head and removed afterwards.",
)
@_handle_errors
def migrate(
    directory: str | None,
    message: str | None,
    sql: bool,
    head: str,
    splice: bool,
    branch_label: str | None,
    version_path: str | None,
    rev_id: str | None,
    x_arg: tuple[str, ...],
    tenants: bool,
) -> None:
    """Autogenerate a new revision file (Alias for 'revision --autogenerate')"""
    from . import operations

    script = operations.migrate(
        _tenant_dir(directory) if tenants else _dir(directory), message, sql, head, splice, branch_label, version_path,
        rev_id, x_arg, quiet=False, tenants=tenants,
    )
    if script is None:
        click.echo("No changes in schema detected.")
    elif not sql:
        _warn_lint(directory, x_arg, script)


def _warn_lint(directory: str | None, x_arg: tuple[str, ...], script: t.Any) -> None:
    """Print what the linter finds in a revision just written, as warnings."""
    from . import operations
    from .errors import MigrateError

    try:
        report = operations.lint(_dir(directory), x_arg=x_arg, scripts=[script])
    except MigrateError as exc:
        click.echo(f"Warning: the new revision was not linted: {exc}", err=True)
        return
    for finding in report.findings:
        click.echo(f"Warning: {_render.lint_finding(finding)}", err=True)
    if report.findings:
        click.echo(
            "Warning: see 'flask db lint' and the rules in the docs; accept a finding "
            "with a '# flask-migrate: allow <RULE-ID>' comment on its line.",
            err=True,
        )


@db.command()
@_directory_option
@_x_arg_option
@click.argument("revision", default="head")
@_handle_errors
def edit(directory: str | None, x_arg: tuple[str, ...], revision: str) -> None:
    """Edit a revision file"""
    from . import operations

    operations.edit(_dir(directory), revision, x_arg)


@db.command()
@_directory_option
@click.option("-m", "--message", default=None, help="Merge revision message")
@_branch_label_option
@_rev_id_option
@_x_arg_option
@click.argument("revisions", nargs=-1)
@_handle_errors
def merge(
    directory: str | None,
    message: str | None,
    branch_label: str | None,
    rev_id: str | None,
    x_arg: tuple[str, ...],
    revisions: tuple[str, ...],
) -> None:
    """Merge two revisions together, creating a new revision file"""
    from . import operations

    operations.merge(
        _dir(directory), revisions, message, branch_label, rev_id, x_arg, quiet=False
    )


@db.command()
@_directory_option
@_sql_option
@_tag_option
@_x_arg_option
@_lock_options
@click.option(
    "--from-archive",
    is_flag=True,
    help="First bring a database left at a revision 'flask db squash' replaced to the "
    "squash's revision, with the archived revisions.",
)
@_tenant_options
@click.argument("revision", default="head")
@_handle_errors
def upgrade(
    directory: str | None,
    sql: bool,
    tag: str | None,
    x_arg: tuple[str, ...],
    lock_timeout: float | None,
    no_lock: bool | None,
    ddl_lock_timeout: float | None,
    ddl_lock_retries: int | None,
    from_archive: bool,
    all_tenants: bool,
    tenant_names: tuple[str, ...],
    jobs: int | None,
    fail_fast: bool,
    revision: str,
) -> None:
    """Upgrade to a later version"""
    from . import operations

    tenants = _tenants_arg(all_tenants, tenant_names, jobs, fail_fast)
    if tenants is not None:
        _exit_for_failures(_for_tenants(lambda on_tenant: operations.upgrade(
            _tenant_dir(directory), revision, sql, tag, x_arg,
            lock=_lock(lock_timeout, no_lock, ddl_lock_timeout, ddl_lock_retries),
            from_archive=from_archive, tenants=tenants, jobs=jobs, fail_fast=fail_fast,
            on_tenant=on_tenant,
        ), jobs))
        return
    operations.upgrade(
        _dir(directory), revision, sql, tag, x_arg, quiet=False,
        lock=_lock(lock_timeout, no_lock, ddl_lock_timeout, ddl_lock_retries),
        on_step=_step_printer(), from_archive=from_archive,
    )


# "-2" is a revision, not an option
@db.command(context_settings={"ignore_unknown_options": True})
@_directory_option
@_sql_option
@_tag_option
@_x_arg_option
@_lock_options
@_tenant_options
@click.argument("revision", default="-1")
@_handle_errors
def downgrade(
    directory: str | None,
    sql: bool,
    tag: str | None,
    x_arg: tuple[str, ...],
    lock_timeout: float | None,
    no_lock: bool | None,
    ddl_lock_timeout: float | None,
    ddl_lock_retries: int | None,
    all_tenants: bool,
    tenant_names: tuple[str, ...],
    jobs: int | None,
    fail_fast: bool,
    revision: str,
) -> None:
    """Revert to a previous version"""
    from . import operations

    tenants = _tenants_arg(all_tenants, tenant_names, jobs, fail_fast)
    if tenants is not None:
        _exit_for_failures(_for_tenants(lambda on_tenant: operations.downgrade(
            _tenant_dir(directory), revision, sql, tag, x_arg,
            lock=_lock(lock_timeout, no_lock, ddl_lock_timeout, ddl_lock_retries),
            tenants=tenants, jobs=jobs, fail_fast=fail_fast, on_tenant=on_tenant,
        ), jobs))
        return
    operations.downgrade(
        _dir(directory), revision, sql, tag, x_arg, quiet=False,
        lock=_lock(lock_timeout, no_lock, ddl_lock_timeout, ddl_lock_retries),
        on_step=_step_printer(),
    )


@db.command()
@_directory_option
@_x_arg_option
@click.argument("revision", default="head")
@_handle_errors
def show(directory: str | None, x_arg: tuple[str, ...], revision: str) -> None:
    """Show the revision denoted by the given symbol."""
    from . import operations

    for line in _render.show(operations.show(_dir(directory), revision, x_arg)):
        click.echo(line)


@db.command()
@_directory_option
@click.option(
    "-r", "--rev-range", default=None,
    help="Specify a revision range; format is [start]:[end]",
)
@_verbose_option
@click.option(
    "-i", "--indicate-current", is_flag=True, help="Indicate current version",
)
@_x_arg_option
@_handle_errors
def history(
    directory: str | None,
    rev_range: str | None,
    verbose: bool,
    indicate_current: bool,
    x_arg: tuple[str, ...],
) -> None:
    """List changeset scripts in chronological order."""
    from . import operations

    result = operations.history(
        _dir(directory), rev_range, verbose, indicate_current, x_arg
    )
    for line in _render.history(result, verbose):
        click.echo(line)


@db.command()
@_directory_option
@_verbose_option
@click.option(
    "--resolve-dependencies", is_flag=True,
    help="Treat dependency versions as down revisions",
)
@_x_arg_option
@_handle_errors
def heads(
    directory: str | None, verbose: bool, resolve_dependencies: bool, x_arg: tuple[str, ...]
) -> None:
    """Show current available heads in the script directory"""
    from . import operations

    scripts = operations.heads(_dir(directory), verbose, resolve_dependencies, x_arg)
    for line in _render.heads(scripts, verbose):
        click.echo(line)


@db.command()
@_directory_option
@_verbose_option
@_x_arg_option
@_handle_errors
def branches(directory: str | None, verbose: bool, x_arg: tuple[str, ...]) -> None:
    """Show current branch points"""
    from . import operations

    for line in _render.branches(operations.branches(_dir(directory), verbose, x_arg), verbose):
        click.echo(line)


@db.command()
@_directory_option
@_verbose_option
@_x_arg_option
@_tenant_options
@_handle_errors
def current(
    directory: str | None,
    verbose: bool,
    x_arg: tuple[str, ...],
    all_tenants: bool,
    tenant_names: tuple[str, ...],
    jobs: int | None,
    fail_fast: bool,
) -> None:
    """Display the current revision for each database."""
    from . import operations

    tenants = _tenants_arg(all_tenants, tenant_names, jobs, fail_fast)
    if tenants is not None:
        _exit_for_failures(_for_tenants(lambda on_tenant: operations.current(
            _tenant_dir(directory), verbose, x_arg, tenants=tenants, jobs=jobs, fail_fast=fail_fast,
            on_tenant=on_tenant,
        ), jobs, lines=False, table="revisions"))
        return
    for line in _render.current(operations.current(_dir(directory), verbose, x_arg), verbose):
        click.echo(line)


@db.command()
@_directory_option
@_sql_option
@_tag_option
@click.option(
    "--purge", is_flag=True,
    help="Delete the version in the alembic_version table before stamping",
)
@_x_arg_option
@_lock_options
@_tenant_options
@click.argument("revision", default="head")
@_handle_errors
def stamp(
    directory: str | None,
    sql: bool,
    tag: str | None,
    purge: bool,
    x_arg: tuple[str, ...],
    lock_timeout: float | None,
    no_lock: bool | None,
    ddl_lock_timeout: float | None,
    ddl_lock_retries: int | None,
    all_tenants: bool,
    tenant_names: tuple[str, ...],
    jobs: int | None,
    fail_fast: bool,
    revision: str,
) -> None:
    """'stamp' the revision table with the given revision; don't run any
    migrations"""
    from . import operations

    tenants = _tenants_arg(all_tenants, tenant_names, jobs, fail_fast)
    if tenants is not None:
        _exit_for_failures(_for_tenants(lambda on_tenant: operations.stamp(
            _tenant_dir(directory), revision, sql, tag, purge, x_arg,
            lock=_lock(lock_timeout, no_lock, ddl_lock_timeout, ddl_lock_retries),
            tenants=tenants, jobs=jobs, fail_fast=fail_fast, on_tenant=on_tenant,
        ), jobs))
        return
    operations.stamp(
        _dir(directory), revision, sql, tag, purge, x_arg, quiet=False,
        lock=_lock(lock_timeout, no_lock, ddl_lock_timeout, ddl_lock_retries),
        on_step=_step_printer(),
    )


@db.command()
@_directory_option
@_x_arg_option
@_tenant_options
@_handle_errors
def check(
    directory: str | None,
    x_arg: tuple[str, ...],
    all_tenants: bool,
    tenant_names: tuple[str, ...],
    jobs: int | None,
    fail_fast: bool,
) -> None:
    """Check if there are any new operations to migrate"""
    from . import operations

    tenants = _tenants_arg(all_tenants, tenant_names, jobs, fail_fast)
    if tenants is not None:
        results = _for_tenants(lambda on_tenant: operations.check(
            _tenant_dir(directory), x_arg, tenants=tenants, jobs=jobs, fail_fast=fail_fast,
            on_tenant=on_tenant,
        ), jobs, lines=False, table="outcomes")
        if all(r.ok for r in results):
            click.echo("No new upgrade operations detected.")
        _exit_for_failures(results)
        return
    operations.check(_dir(directory), x_arg)
    click.echo("No new upgrade operations detected.")


@db.command()
@_directory_option
@_x_arg_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option(
    "--check",
    is_flag=True,
    help="Exit with status 1 when a database is not at head or has a problem.",
)
@click.option(
    "--recent",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many journal entries to show per database.",
)
@_tenant_options
@_handle_errors
def status(
    directory: str | None,
    x_arg: tuple[str, ...],
    as_json: bool,
    check: bool,
    recent: int,
    all_tenants: bool,
    tenant_names: tuple[str, ...],
    jobs: int | None,
    fail_fast: bool,
) -> None:
    """Show each database's revision, pending revisions, recent steps and problems.

    With --all-tenants (or --tenant NAME): how many tenants are at each
    revision, and the tenants that are behind, failed or were interrupted.
    """
    import json

    from . import operations

    tenants = _tenants_arg(all_tenants, tenant_names, jobs, fail_fast)
    if tenants is not None:
        results = _for_tenants(lambda on_tenant: operations.status(
            _tenant_dir(directory), x_arg, max(recent, 1), tenants=tenants, jobs=jobs,
            fail_fast=fail_fast, on_tenant=on_tenant,
        ), jobs, lines=False, table=None)
        if as_json:
            click.echo(json.dumps(_render.tenants_status_dict(results), indent=2))
        else:
            for line in _render.tenants_status(results):
                click.echo(line)
        unreadable = [r for r in results if not r.ok]
        if unreadable:
            _exit_for_failures(unreadable)  # as plain status does for a database it cannot read
        if check and not _render.tenants_status_dict(results)["ok"]:
            raise click.exceptions.Exit(1)
        return
    result = operations.status(_dir(directory), x_arg, recent)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        for line in _render.status(result):
            click.echo(line)
    if check and not result.ok:
        raise click.exceptions.Exit(1)


@db.command()
@_directory_option
@_x_arg_option
@click.option(
    "-r", "--rev-range", default=None, metavar="[START]:[END]",
    help="Lint this range of revisions (as for 'history').",
)
@click.option("--all", "all_revisions", is_flag=True, help="Lint the whole history.")
@click.option("--strict", is_flag=True, help="Exit with status 1 on warnings too.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@_handle_errors
def lint(
    directory: str | None,
    x_arg: tuple[str, ...],
    rev_range: str | None,
    all_revisions: bool,
    strict: bool,
    as_json: bool,
) -> None:
    """Check revision files for risky operations (by default, those not applied yet)."""
    import json

    from . import operations

    report = operations.lint(_dir(directory), rev_range, all_revisions, x_arg)
    if as_json:
        click.echo(json.dumps(_render.lint_dict(report), indent=2))
        if report.failed(strict):
            raise click.exceptions.Exit(1)
        return
    for line in _render.lint(report):
        click.echo(line)
    if report.failed(strict):
        raise CommandFailed(
            f"Lint found {report.errors} error(s) and {report.warnings} warning(s), listed "
            "above. Fix the revisions, or accept a finding with a '# flask-migrate: allow "
            "<RULE-ID>' comment on its line."
        )

def _bind_url(value: str) -> tuple[str | None, str]:
    """``URL`` or ``BIND=URL`` (a URL's own '=' come after its '://')."""
    name, sep, rest = value.partition("=")
    if sep and "://" not in name and ":" not in name and "/" not in name:
        return name, rest
    return None, value


@db.command()
@_directory_option
@_x_arg_option
@click.option(
    "--url",
    "urls",
    multiple=True,
    metavar="[BIND=]URL",
    help="An empty database to use instead of a new scratch database (BIND=URL for "
    "a bind; repeatable). It is emptied again afterwards.",
)
@click.option(
    "--head",
    "heads",
    multiple=True,
    help="A head the history should have (repeatable); by default it must have one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_handle_errors
def verify(
    directory: str | None,
    x_arg: tuple[str, ...],
    urls: tuple[str, ...],
    heads: tuple[str, ...],
    as_json: bool,
) -> None:
    """Check the history on scratch databases: heads, upgrade, downgrade, models."""
    import json
    import sys

    from . import verify as verifying

    named: dict[str | None, str] = {}
    for value in urls:
        bind, url = _bind_url(value)
        if bind in named:
            raise CommandFailed(f"--url given twice for the {bind or 'default'} database.")
        named[bind] = url
    progress = None
    if not as_json and sys.stderr.isatty():
        def progress(index: int, total: int, sc: t.Any) -> None:
            click.echo(f"\r  verifying {index}/{total} {sc.revision}\033[K", err=True, nl=False)

    report = verifying.verify(
        _dir(directory), urls=named, heads=heads, x_arg=x_arg, on_progress=progress
    )
    if progress is not None:
        click.echo("\r\033[K", err=True, nl=False)
    if as_json:
        click.echo(json.dumps(_render.verify_dict(report), indent=2))
        if not report.passed:
            raise click.exceptions.Exit(1)
        return
    for line in _render.verify(report):
        click.echo(line)
    if not report.passed:
        failed = [c.name for c in report.checks if c.status == "failed"]
        raise CommandFailed(
            f"Verification failed: {', '.join(failed)} "
            f"({sum(len(c.failures) for c in report.checks)} problem(s) above)."
        )


@db.command()
@_directory_option
@_x_arg_option
@click.option(
    "--data",
    type=click.Choice(["drop", "keep"]),
    default=None,
    help="What to do with data operations (SQL that is not DDL, bulk_insert, Python code) "
    "in the squashed revisions: drop them (fresh databases do not get them) or keep them "
    "(copied after the schema). Without it, squash refuses when there are any.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be done and the new revision; change nothing.")
@click.option("-m", "--message", default=None, help="The new revision's message.")
@click.argument("revision", default="head")
@_handle_errors
def squash(
    directory: str | None,
    x_arg: tuple[str, ...],
    data: str | None,
    dry_run: bool,
    message: str | None,
    revision: str,
) -> None:
    """Replace the history from base to REVISION (default: head) with one revision."""
    from . import squash as squashing

    result = squashing.squash(
        _dir(directory), revision, data=data, dry_run=dry_run, message=message, x_arg=x_arg
    )
    for line in _render.squash(result):
        click.echo(line)
