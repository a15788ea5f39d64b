"""SQLAlchemy database migrations for Flask applications, using Alembic.

A drop-in replacement for Flask-Migrate 4.1. Importing this package and
creating ``Migrate(app, db)`` does not import Alembic; it is loaded when a
migration command runs.
"""

from __future__ import annotations

import typing as t

from .compat import (
    branches,
    catch_errors,
    check,
    current,
    downgrade,
    edit,
    heads,
    history,
    init,
    list_templates,
    log,
    merge,
    migrate,
    revision,
    show,
    stamp,
    upgrade,
)
from .extension import Migrate, _MigrateConfig  # noqa: F401 - importable as in 4.1

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic import command
    from alembic.util import CommandError

    from .config import Config
    from .errors import MigrateError

    alembic_version: tuple[int, ...]

#: The version of this package (the only place it is written down).
__version__ = "5.0.0.dev0"

__all__ = [
    "CommandError",
    "Config",
    "Migrate",
    "MigrateError",
    "alembic_version",
    "branches",
    "catch_errors",
    "check",
    "command",
    "current",
    "downgrade",
    "edit",
    "heads",
    "history",
    "init",
    "list_templates",
    "log",
    "merge",
    "migrate",
    "revision",
    "show",
    "stamp",
    "upgrade",
]


def __getattr__(name: str) -> t.Any:
    # These names need Alembic; import it only when someone asks for them.
    if name == "Config":
        from .config import Config

        return Config
    if name == "CommandError":
        from alembic.util import CommandError

        return CommandError
    if name == "command":
        from alembic import command

        return command
    if name == "MigrateError":
        from .errors import MigrateError

        return MigrateError
    if name == "alembic_version":
        from alembic import __version__ as alembic_full_version

        return tuple(int(v) for v in alembic_full_version.split(".")[:3])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
