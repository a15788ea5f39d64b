"""The frozen dataclasses that the operations return.

Rendering them (text, JSON) is the CLI's job; see :mod:`flask_migrate._render`.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from pathlib import Path

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic.script import Script

    from .lint import Finding as LintFinding

__all__ = [
    "BranchPoint", "CheckResult", "CurrentRevisions", "DataOperation", "Finding", "History",
    "LintReport", "SquashResult", "Step", "TemplateInfo", "TenantResult", "VerifyReport",
]


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


@dataclass(frozen=True)
class Finding:
    """A failure or a warning of one verification check."""

    #: The revision it is about (``None`` when it is about the whole history).
    revision: str | None
    message: str
    #: The database it happened on: ``"default database"`` or ``"bind '<key>'"``.
    database: str | None = None


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check of ``verify``."""

    #: ``"heads"``, ``"upgrade"``, ``"stairway"`` or ``"models"``.
    name: str
    #: ``"passed"``, ``"failed"`` or ``"skipped"`` (an earlier check failed).
    status: str
    #: One line for people: what was checked, or why it was skipped.
    summary: str
    failures: tuple[Finding, ...] = ()
    warnings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class VerifyReport:
    """The result of ``verify``."""

    #: The databases the history ran on (on scratch databases made for them), such as
    #: ``"default database (postgresql)"`` or ``"bind 'users' (sqlite)"``.
    databases: tuple[str, ...]
    #: The number of revisions in the history.
    revisions: int
    checks: tuple[CheckResult, ...]
    #: Seconds the verification took.
    duration: float

    @property
    def passed(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return all(check.status != "failed" for check in self.checks)

    def check(self, name: str) -> CheckResult:
        """The result of the check called ``name``."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)


@dataclass(frozen=True)
class LintReport:
    """The result of ``lint``."""

    #: What was linted, in order from base to heads.
    revisions: tuple[str, ...]
    findings: tuple[LintFinding, ...]
    #: ``"pending"`` (not applied to the database yet), ``"range"`` or ``"all"``.
    scope: str
    #: The dialect the rules were chosen for (``None``: all rules ran).
    dialect: str | None = None
    #: Why the scope is not what was asked for (the database could not be read).
    note: str | None = None

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == "warning")

    def failed(self, strict: bool = False) -> bool:
        """Whether the findings fail the check (errors; with ``strict``, warnings too)."""
        return bool(self.errors or (strict and self.warnings))


@dataclass(frozen=True)
class DataOperation:
    """Something a revision does beyond changing the schema (found by ``squash``)."""

    #: The revision id.
    revision: str
    #: The revision file.
    path: Path
    #: The line (1-based).
    line: int
    #: What it is, for people: ``"op.bulk_insert()"``, ``"a loop"``, ...
    what: str

    def format(self) -> str:
        """``file:line: what``."""
        return f"{self.path}:{self.line}: {self.what}"


@dataclass(frozen=True)
class SquashResult:
    """The result of ``squash`` (or what it would do, with ``dry_run``)."""

    #: The revision whose history was squashed; the new revision keeps its id.
    revision: str
    #: The revisions replaced, from base to :attr:`revision` (which is included).
    replaced: tuple[str, ...]
    #: Their files, in the same order (where they were before the squash).
    replaced_files: tuple[Path, ...]
    #: What the replaced revisions do beyond the schema.
    data_operations: tuple[DataOperation, ...]
    #: How :attr:`data_operations` were treated: ``None`` (there were none),
    #: ``"drop"`` (not replayed on fresh databases) or ``"keep"`` (copied).
    data: str | None
    #: The archive folder the replaced files were moved to.
    archive: Path
    #: The new revision file.
    new_file: Path
    #: The databases the new revision was generated for: ``"default database"``,
    #: ``"bind '<key>'"``.
    databases: tuple[str, ...]
    #: True when nothing was written or moved.
    dry_run: bool
    #: The new revision's source.
    source: str


@dataclass(frozen=True)
class TenantResult:
    """What a command did for one tenant (``--all-tenants``, ``tenants=...``)."""

    #: The tenant's name.
    tenant: str
    #: ``"migrated"`` (steps applied), ``"up to date"`` (nothing to do),
    #: ``"ok"`` (``current``, ``status``, ``check`` read it), ``"changes"``
    #: (``check`` found model changes), ``"failed"``, ``"interrupted"``
    #: (Ctrl-C while it ran) or ``"not started"`` (``--fail-fast`` or Ctrl-C
    #: before its turn).
    outcome: str
    #: The revisions in its version table before the command (``None``: unknown).
    before: tuple[str, ...] | None = None
    #: The revisions in its version table after the command (``None``: unknown).
    after: tuple[str, ...] | None = None
    #: The steps applied (``upgrade``, ``downgrade``, ``stamp``).
    steps: tuple[Step, ...] = ()
    #: Seconds the tenant's run took.
    duration: float = 0.0
    #: Why it failed (or what ``check`` found), naming the tenant's database.
    error: str | None = None
    #: ``status``: the tenant's :class:`~flask_migrate.status.DatabaseStatus`.
    status: t.Any = None
    #: Whether another process held the tenant's lock at first, so that it
    #: was taken up again at the end (after that process was done).
    waited: bool = False

    @property
    def ok(self) -> bool:
        """Whether the command succeeded for this tenant."""
        return self.outcome in ("migrated", "up to date", "ok")
