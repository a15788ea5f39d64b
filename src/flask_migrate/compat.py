"""The functions of Flask-Migrate 4.1, with their signatures and behaviour.

Each one prints what the original printed and, on failure, logs
``Error: <message>`` on the ``flask_migrate`` logger and exits with status 1
(:func:`catch_errors`). Unlike the original, they also *return* what they
computed. Programs that would rather handle errors themselves call
:mod:`flask_migrate.operations`, which raises instead of exiting.

Alembic is imported only when one of these functions runs.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import typing as t

from . import _render

if t.TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from alembic.script import Script

    from .results import BranchPoint, CurrentRevisions, History, Step

log = logging.getLogger("flask_migrate")

P = t.ParamSpec("P")
R = t.TypeVar("R")

PathArg = t.Union[str, "os.PathLike[str]", None]
XArg = t.Union[str, t.Sequence[str], None]


def catch_errors(f: t.Callable[P, R]) -> t.Callable[P, R]:
    """Log ``Error: <message>`` and exit with status 1 when ``f`` fails.

    As in Flask-Migrate 4.1, this catches Alembic's ``CommandError`` (which
    every :class:`~flask_migrate.errors.MigrateError` is) and ``RuntimeError``;
    everything else reaches the caller with its own type. Programs that retry
    an ``upgrade()`` on ``sqlalchemy.exc.OperationalError`` while the database
    starts keep working: a database error is raised as SQLAlchemy raised it,
    not turned into an exit.
    """

    @functools.wraps(f)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        from alembic.script.revision import RevisionError
        from alembic.util import CommandError

        from .errors import MigrateError

        try:
            return f(*args, **kwargs)
        except MigrateError as exc:
            original = exc.original
            if original is not None and not isinstance(
                original, (CommandError, RuntimeError, RevisionError)
            ):
                # 4.1 let this through (SQLAlchemy errors, SyntaxError in env.py, ...)
                raise original from None
            log.error("Error: %s", exc)
            sys.exit(1)
        except (CommandError, RuntimeError) as exc:
            log.error("Error: %s", exc)
            sys.exit(1)

    return wrapped


def _echo(lines: t.Iterable[str]) -> None:
    for line in lines:
        print(line)


@catch_errors
def list_templates() -> list[tuple[str, str]]:
    """List the available templates; returns ``(name, synopsis)`` pairs."""
    from . import operations

    found = operations.list_templates()
    _echo(_render.templates(found))
    return [(i.name, i.synopsis) for i in found]


@catch_errors
def init(
    directory: PathArg = None,
    multidb: bool = False,
    template: str | None = None,
    package: bool = False,
) -> Path:
    """Create a new migrations folder; returns its path."""
    from . import operations

    return operations.init(directory, multidb, template, package, quiet=False)


@catch_errors
def revision(
    directory: PathArg = None,
    message: str | None = None,
    autogenerate: bool = False,
    sql: bool = False,
    head: str = "head",
    splice: bool = False,
    branch_label: str | None = None,
    version_path: str | None = None,
    rev_id: str | None = None,
    x_arg: XArg = None,
) -> Script | None:
    """Create a new revision file; returns its script."""
    from . import operations

    script = operations.revision(
        directory, message, autogenerate, sql, head, splice, branch_label,
        version_path, rev_id, x_arg, quiet=False,
    )
    if script is None and autogenerate:
        log.info("No changes in schema detected.")
    return script


@catch_errors
def migrate(
    directory: PathArg = None,
    message: str | None = None,
    sql: bool = False,
    head: str = "head",
    splice: bool = False,
    branch_label: str | None = None,
    version_path: str | None = None,
    rev_id: str | None = None,
    x_arg: XArg = None,
) -> Script | None:
    """Autogenerate a new revision file (alias for ``revision --autogenerate``).

    Returns the new script, or ``None`` when no change was detected.
    """
    from . import operations

    script = operations.migrate(
        directory, message, sql, head, splice, branch_label, version_path,
        rev_id, x_arg, quiet=False,
    )
    if script is None:
        log.info("No changes in schema detected.")
    return script


@catch_errors
def edit(directory: PathArg = None, revision: str = "current", x_arg: XArg = None) -> list[Path]:
    """Open a revision file in ``$EDITOR``; returns the paths opened."""
    from . import operations

    return operations.edit(directory, revision, x_arg)


@catch_errors
def merge(
    directory: PathArg = None,
    revisions: str | t.Sequence[str] = "",
    message: str | None = None,
    branch_label: str | None = None,
    rev_id: str | None = None,
    x_arg: XArg = None,
) -> Script:
    """Merge revisions together, creating a new revision file."""
    from . import operations

    return operations.merge(
        directory, revisions, message, branch_label, rev_id, x_arg, quiet=False
    )


@catch_errors
def upgrade(
    directory: PathArg = None,
    revision: str = "head",
    sql: bool = False,
    tag: str | None = None,
    x_arg: XArg = None,
) -> list[Step]:
    """Upgrade to a later version; returns the steps applied."""
    from . import operations

    steps: list[Step] = operations.upgrade(directory, revision, sql, tag, x_arg, quiet=False)
    return steps


@catch_errors
def downgrade(
    directory: PathArg = None,
    revision: str = "-1",
    sql: bool = False,
    tag: str | None = None,
    x_arg: XArg = None,
) -> list[Step]:
    """Revert to a previous version; returns the steps applied."""
    from . import operations

    steps: list[Step] = operations.downgrade(directory, revision, sql, tag, x_arg, quiet=False)
    return steps


@catch_errors
def show(directory: PathArg = None, revision: str = "head", x_arg: XArg = None) -> list[Script]:
    """Show the revision denoted by the given symbol; returns its scripts."""
    from . import operations

    scripts = operations.show(directory, revision, x_arg)
    _echo(_render.show(scripts))
    return scripts


@catch_errors
def history(
    directory: PathArg = None,
    rev_range: str | None = None,
    verbose: bool = False,
    indicate_current: bool = False,
    x_arg: XArg = None,
) -> History:
    """List revision scripts in chronological order (newest first)."""
    from . import operations

    result = operations.history(directory, rev_range, verbose, indicate_current, x_arg)
    _echo(_render.history(result, verbose))
    return result


@catch_errors
def heads(
    directory: PathArg = None,
    verbose: bool = False,
    resolve_dependencies: bool = False,
    x_arg: XArg = None,
) -> list[Script]:
    """Show the heads of the migrations folder; returns their scripts."""
    from . import operations

    scripts = operations.heads(directory, verbose, resolve_dependencies, x_arg)
    _echo(_render.heads(scripts, verbose))
    return scripts


@catch_errors
def branches(directory: PathArg = None, verbose: bool = False, x_arg: XArg = None) -> list[BranchPoint]:
    """Show the branch points; returns them."""
    from . import operations

    points = operations.branches(directory, verbose, x_arg)
    _echo(_render.branches(points, verbose))
    return points


@catch_errors
def current(directory: PathArg = None, verbose: bool = False, x_arg: XArg = None) -> list[CurrentRevisions]:
    """Show the current revision of each database; returns them."""
    from . import operations

    found: list[CurrentRevisions] = operations.current(directory, verbose, x_arg)
    _echo(_render.current(found, verbose))
    return found


@catch_errors
def stamp(
    directory: PathArg = None,
    revision: str = "head",
    sql: bool = False,
    tag: str | None = None,
    purge: bool = False,
    x_arg: XArg = None,
) -> list[Step]:
    """Set the version table to a revision without running migrations."""
    from . import operations

    steps: list[Step] = operations.stamp(
        directory, revision, sql, tag, purge, x_arg, quiet=False
    )
    return steps


@catch_errors
def check(directory: PathArg = None, x_arg: XArg = None) -> None:
    """Exit with an error when there are model changes to migrate."""
    from . import operations

    operations.check(directory, x_arg)
    print("No new upgrade operations detected.")
