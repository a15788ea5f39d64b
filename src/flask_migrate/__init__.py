"""SQLAlchemy database migrations for Flask applications, using Alembic.

A drop-in replacement for Flask-Migrate 4.1. Importing this package and
creating ``Migrate(app, db)`` does not import Alembic; it is loaded when a
migration command runs. The package's names are imported when first used, so
that its pytest plugin and its linter load without Flask.
"""

from __future__ import annotations

import typing as t

_COMPAT = frozenset({
    "branches", "catch_errors", "check", "current", "downgrade", "edit", "heads", "history",
    "init", "list_templates", "log", "merge", "migrate", "revision", "show", "stamp", "upgrade",
})

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic import command

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
    from .extension import Migrate, _MigrateConfig
    from .tenancy import Tenant
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
    "Tenant",
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
    # NOTE: every name is imported when first asked for: importing a submodule
    # (the pytest plugin, the linter) then costs neither Flask nor Alembic, and
    # an app pays for Flask-Migrate's modules only as it uses them.
    if name in _COMPAT:
        from . import compat

        value = globals()[name] = getattr(compat, name)
        return value
    if name in ("Migrate", "_MigrateConfig"):
        from . import extension

        value = globals()[name] = getattr(extension, name)
        return value
    if name == "Tenant":
        from .tenancy import Tenant

        value = globals()[name] = Tenant
        return value
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
