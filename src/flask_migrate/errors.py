"""Exceptions raised by the operations layer, and message scrubbing.

Every exception here is a subclass of Alembic's :class:`~alembic.util.CommandError`,
so code written against the original Flask-Migrate (or Alembic) that catches
``CommandError`` keeps working. The exceptions carry data as attributes; their
``str()`` is the one-line message a person reads.
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from alembic.util import CommandError


class MigrateError(CommandError):
    """Base class of every error the operations layer raises on purpose."""


class NoMigrationsFolder(MigrateError):
    """The migrations folder (or a file Alembic needs in it) does not exist."""

    def __init__(self, directory: str, missing: str | None = None) -> None:
        self.directory = directory
        self.missing = missing
        if missing is None:
            message = (
                f"No migrations folder at {directory!r}. "
                "Run 'flask db init' to create one."
            )
        else:
            message = (
                f"The migrations folder {directory!r} has no {missing}. "
                "Restore it from version control, or run 'flask db init' "
                "in an empty folder to start over."
            )
        super().__init__(message)


class TemplateNotFound(MigrateError):
    """``init`` was given a template name or path that does not exist."""

    def __init__(self, template: str, available: Iterable[str]) -> None:
        self.template = template
        self.available = tuple(available)
        super().__init__(
            f"No template named {template!r}. Available templates: "
            f"{', '.join(self.available)} (or give the path of a template folder)."
        )


class DirectoryNotEmpty(MigrateError):
    """``init`` was pointed at a folder that already has files in it."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        super().__init__(
            f"The folder {directory!r} already exists and is not empty. "
            "Choose another folder with -d, or remove this one."
        )


class PendingChanges(MigrateError):
    """``check`` found model changes that no revision covers yet."""

    def __init__(self, diffs: list[t.Any]) -> None:
        self.diffs = diffs
        super().__init__(
            f"New upgrade operations detected: {diffs}. "
            "Run 'flask db migrate' to create a revision for them."
        )


class DatabaseError(MigrateError):
    """The database could not be reached or refused a statement."""

    def __init__(self, message: str, url: str | None = None) -> None:
        self.url = url
        super().__init__(message)


def secret_forms(password: str) -> set[str]:
    """Every spelling of ``password`` that could end up in a message.

    A password travels raw, URL-quoted (two flavours) and, in ``alembic.ini``
    values, with ``%`` doubled; each of those may be quoted again.
    """
    forms = {password, quote(password, safe=""), quote_plus(password, safe="")}
    forms |= {f.replace("%", "%%") for f in list(forms)}
    return {f for f in forms if f}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every form of every secret in ``text`` with ``***``."""
    forms: set[str] = set()
    for secret in secrets:
        forms |= secret_forms(secret)
    # longest first, so that a quoted form is not half-replaced by a raw one
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text
