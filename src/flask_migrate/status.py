"""``flask db status``: where each database stands, and what is wrong with it.

:func:`collect` runs ``env.py`` without changing anything and reads each
connection it configures, with the version table it names: the version
table, the tables and the journal; and compares them with the migrations
folder and the ``target_metadata`` that ``env.py`` passes. A bind that
``env.py`` does not migrate is not shown. The result is a frozen
:class:`Status`; rendering it (text or JSON) is the CLI's job.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing as t
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlalchemy as sa

from . import _alembic, journal, runner, scripts
from .journal import ChangedFile
from .locking import lock_for, lock_key
from .scripts import first_line as _first_line
from .scripts import known_script as _known_script

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from .config import Config

__all__ = ["ChangedFile", "DatabaseStatus", "PendingRevision", "Problem", "Status", "collect"]


@dataclass(frozen=True)
class Problem:
    """Something that needs a person's attention, and what to do about it."""

    #: A stable identifier: ``multiple-heads``, ``unknown-revision``,
    #: ``unversioned-tables``, ``no-models``, ``interrupted-run``,
    #: ``interrupted-step``, ``edited-file``, ``missing-file``, ``renamed-file``.
    code: str
    message: str
    fix: str


@dataclass(frozen=True)
class PendingRevision:
    """A revision ``upgrade`` would apply, in the order it would apply it."""

    revision: str
    message: str | None
    file: str


@dataclass(frozen=True)
class DatabaseStatus:
    """One database of the application."""

    #: The bind key; ``""`` for the default database.
    bind: str
    #: The database URL, password hidden.
    database: str
    #: The revisions in its version table.
    current: tuple[str, ...]
    #: The heads of the migrations folder.
    heads: tuple[str, ...]
    pending: tuple[PendingRevision, ...]
    #: The last steps of the journal, newest first.
    recent: tuple[journal.JournalEntry, ...]
    changed_files: tuple[ChangedFile, ...]
    problems: tuple[Problem, ...]
    #: Whether the journal table exists yet.
    has_journal: bool = False
    #: The first line of the message of each current and head revision.
    messages: dict[str, str | None] = field(default_factory=dict)
    #: Who holds the migration lock, when a migration is running right now.
    in_progress: str | None = None
    #: The newest run in the journal (``state`` ``"failed"`` when it failed).
    last_run: journal.JournalEntry | None = None

    @property
    def at_head(self) -> bool:
        return set(self.current) == set(self.heads) and not self.pending


@dataclass(frozen=True)
class Status:
    """The result of ``status``: one entry per database."""

    databases: tuple[DatabaseStatus, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """At head everywhere, and no problem anywhere (what ``--check`` asks)."""
        return all(db.at_head and not db.problems for db in self.databases)

    def to_dict(self) -> dict[str, t.Any]:
        """Plain data for JSON: datetimes as ISO 8601 strings."""

        def plain(value: t.Any) -> t.Any:
            if isinstance(value, dt.datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        data = plain(asdict(self))
        for db, status in zip(data["databases"], self.databases):
            db["at_head"] = status.at_head
        data["ok"] = self.ok
        return t.cast(dict[str, t.Any], data)


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def collect(config: Config, script: ScriptDirectory, recent: int = 10) -> Status:
    """Read the status of every database ``env.py`` configures."""
    heads = tuple(script.get_heads())
    found: list[DatabaseStatus] = []

    def read(rev: t.Any, context: MigrationContext) -> list[t.Any]:
        target = run.target_for(context)
        if target is not None and target.connection is not None:
            found.append(_collect_one(target, script, heads, recent))
        return []

    run = runner.Run(config, script, read, dont_mutate=True)
    # Alembic's "Context impl ..." lines are noise on this screen
    alembic_log = logging.getLogger("alembic.runtime.migration")
    alembic_log.addFilter(_no_info)
    try:
        run.execute()
    finally:
        alembic_log.removeFilter(_no_info)
    return Status(tuple(found))


def _no_info(record: logging.LogRecord) -> bool:
    return record.levelno > logging.INFO


def _bind_name(context: MigrationContext) -> str:
    """The bind key a multi-database env.py names the run after, if any."""
    token = context.opts.get("upgrade_token") or "upgrades"
    if token.endswith("_upgrades"):
        return t.cast(str, token[: -len("_upgrades")])
    return ""


def _collect_one(
    target: runner.Target,
    script: ScriptDirectory,
    heads: tuple[str, ...],
    recent: int,
) -> DatabaseStatus:
    conn = target.connection
    assert conn is not None
    label = target.database
    version_table, schema = target.version_table, target.version_table_schema
    journal_table = journal.journal_table(schema=schema, version_table=version_table)
    problems: list[Problem] = []
    # a run marked "running" is only interrupted if nobody holds the lock now
    lock = lock_for(conn, lock_key(version_table, schema))
    holder = lock.probe(conn) if lock is not None else None
    in_progress = holder.describe() if holder is not None else None
    tables = set(sa.inspect(conn).get_table_names(schema=schema))
    has_version = version_table in tables
    current: tuple[str, ...] = ()
    if has_version:
        current = tuple(target.context.get_current_heads())
    has_journal = journal_table.name in tables
    entries: list[journal.JournalEntry] = []
    unfinished: list[journal.JournalEntry] = []
    applied: dict[str, journal.AppliedFile] = {}
    last_run = None
    if has_journal:
        entries = journal.recent_steps(conn, journal_table, recent)
        last_run = journal.last_run(conn, journal_table)
        unfinished = journal.unfinished(conn, journal_table)
        applied = journal.applied_checksums(conn, journal_table)
    dialect = conn.dialect.name
    modelled = runner.metadata_tables(target.metadata)

    if len(heads) > 1:
        problems.append(Problem(
            "multiple-heads",
            f"The migrations folder has {len(heads)} heads: {', '.join(heads)}.",
            "Run 'flask db merge heads' to join them into one.",
        ))
    unknown = [rev for rev in current if _known_script(script, rev) is None]
    for rev in unknown:
        record = scripts.squashed_by(script, rev)
        if record is not None:
            problems.append(Problem(
                "unknown-revision",
                f"The database is at revision {rev}, which 'flask db squash' replaced by "
                f"{record.revision} (archive: {record.path}).",
                f"Run 'flask db upgrade --from-archive' to bring it to {record.revision} "
                "with the archived revisions.",
            ))
            continue
        problems.append(Problem(
            "unknown-revision",
            f"The database is at revision {rev}, which the migrations folder does not have.",
            "Check out the code that has it, or run 'flask db stamp --purge <revision>' "
            "to record the revision the database is really at.",
        ))
    others = {name for name in tables if name != version_table and not journal.is_journal(name)}
    # an empty version table ('flask db migrate' makes one) says no more than none
    if not current and others:
        shown = ", ".join(sorted(others)[:5]) + (", ..." if len(others) > 5 else "")
        where = f"no revision in its {version_table} table" if has_version else f"no {version_table} table"
        problems.append(Problem(
            "unversioned-tables",
            f"The database has tables ({shown}) but {where}.",
            "If its schema matches the models, run 'flask db stamp head' to adopt it.",
        ))
    if target.metadata is not None and not modelled:
        problems.append(Problem(
            "no-models",
            "The application's metadata has no tables for this database.",
            "Import the module that defines the models where the app is created; "
            "otherwise 'flask db migrate' finds no changes, or proposes dropping every table.",
        ))
    for entry in [] if in_progress else unfinished:
        if entry.kind == "step":
            half = dialect in ("mysql", "mariadb")
            problems.append(Problem(
                "interrupted-step",
                f"Revision {entry.revision} ({entry.direction}) was interrupted "
                f"({entry.describe_origin()})"
                + (" and may be half-applied: this database cannot roll DDL back." if half else "."),
                "Fix the schema by hand, then run 'flask db stamp <revision>' to "
                "record the revision it matches.",
            ))
        elif entry.kind == "run":
            problems.append(Problem(
                "interrupted-run",
                f"{'An' if (entry.direction or '').startswith('u') else 'A'} "
                f"{entry.direction} to {entry.revision} did not finish "
                f"({entry.describe_origin()}).",
                "Run 'flask db upgrade' again; it records the interruption and goes on.",
            ))

    changed = scripts.without_squashes(script, journal.changed_files(script, current, unknown, applied))
    for change in changed:
        problems.append(Problem(
            f"{change.change}-file",
            f"Revision {change.revision} was applied from {change.applied_file} "
            f"(sha256 {str(change.applied_checksum)[:12]}), but the file is now "
            + {
                "edited": f"different (sha256 {str(change.current_checksum)[:12]}).",
                "missing": "gone.",
                "renamed": f"named {change.current_file}.",
            }[change.change],
            "Restore the applied file from version control; put new changes in a new "
            "revision, since databases already migrated will not see edits.",
        ))

    pending: tuple[PendingRevision, ...] = ()
    if not unknown and heads:
        try:
            steps = _alembic.upgrade_steps(script, "heads", current)
        except Exception:  # noqa: BLE001 - a history upgrade cannot walk is a problem shown above
            steps = []
        pending = tuple(
            PendingRevision(
                step.revision.revision, _first_line(step.revision.doc), _relative(step.revision.path)
            )
            for step in steps
        )
    return DatabaseStatus(
        bind=_bind_name(target.context),
        database=label,
        current=current,
        heads=heads,
        pending=pending,
        recent=tuple(entries),
        changed_files=tuple(changed),
        problems=tuple(problems),
        has_journal=has_journal,
        in_progress=in_progress,
        last_run=last_run,
        messages={
            rev: _first_line(sc.doc)
            for rev in (*current, *heads)
            if (sc := _known_script(script, rev)) is not None
        },
    )
