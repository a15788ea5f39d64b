"""The frozen dataclasses that the operations return.

Rendering them (text, JSON) is the CLI's job; see :mod:`flask_migrate._render`.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from pathlib import Path

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic.script import Script

__all__ = ["BranchPoint", "CurrentRevisions", "History", "Step", "TemplateInfo"]


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
