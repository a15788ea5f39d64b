"""``flask db status``: where each database stands, and what is wrong with it.

:func:`collect` reads each database of the application (the default one and
every bind) directly, without running ``env.py``: its version table, its
tables and its journal; and compares them with the migrations folder and the
application's models. The result is a frozen :class:`Status`; rendering it
(text or JSON) is the CLI's job.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlalchemy as sa

from . import journal
from .connections import sync_engine_for
from .locking import lock_for
from .operations import _first_line, _known_script, _version_table

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic.script import ScriptDirectory

    from .extension import _MigrateConfig


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
class ChangedFile:
    """An applied revision whose file is not the one that was applied."""

    revision: str
    #: ``edited``, ``missing`` or ``renamed``.
    change: str
    applied_file: str | None
    current_file: str | None
    applied_checksum: str | None
    current_checksum: str | None


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


def collect(state: _MigrateConfig, script: ScriptDirectory, recent: int = 10) -> Status:
    """Read the status of every database of the application."""
    heads = tuple(script.get_heads())
    version_table, schema = _version_table(state)
    journal_table = journal.journal_table(schema=schema)
    found = []
    for key in [None, *state.bind_names()]:
        engine = state.get_engine(key)
        found.append(
            _collect_one(
                key or "", engine, state.get_metadata(key), script, heads,
                version_table, schema, journal_table, recent,
            )
        )
    return Status(tuple(found))


def _collect_one(
    bind: str,
    engine: t.Any,
    metadata: sa.MetaData,
    script: ScriptDirectory,
    heads: tuple[str, ...],
    version_table: str,
    schema: str | None,
    journal_table: sa.Table,
    recent: int,
) -> DatabaseStatus:
    from alembic.runtime.migration import MigrationContext

    label = engine.url.render_as_string(hide_password=True)
    problems: list[Problem] = []
    # a run marked "running" is only interrupted if nobody holds the lock now
    lock = lock_for(engine, version_table)
    holder = lock.probe() if lock is not None else None
    in_progress = holder.describe() if holder is not None else None
    with sync_engine_for(engine) as sync_engine, sync_engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names(schema=schema))
        has_version = version_table in tables
        current: tuple[str, ...] = ()
        if has_version:
            context = MigrationContext.configure(
                conn, opts={"version_table": version_table, "version_table_schema": schema}
            )
            current = tuple(context.get_current_heads())
        has_journal = journal_table.name in tables
        entries: list[journal.JournalEntry] = []
        unfinished: list[journal.JournalEntry] = []
        applied: dict[str, journal.JournalEntry] = {}
        if has_journal:
            entries = journal.recent_steps(conn, journal_table, recent)
            unfinished = journal.unfinished(conn, journal_table)
            applied = journal.applied_checksums(conn, journal_table)
        dialect = conn.dialect.name

    if len(heads) > 1:
        problems.append(Problem(
            "multiple-heads",
            f"The migrations folder has {len(heads)} heads: {', '.join(heads)}.",
            "Run 'flask db merge heads' to join them into one.",
        ))
    unknown = [rev for rev in current if _known_script(script, rev) is None]
    for rev in unknown:
        problems.append(Problem(
            "unknown-revision",
            f"The database is at revision {rev}, which the migrations folder does not have.",
            "Check out the code that has it, or run 'flask db stamp --purge <revision>' "
            "to record the revision the database is really at.",
        ))
    others = tables - {version_table, journal_table.name}
    if not has_version and others:
        shown = ", ".join(sorted(others)[:5]) + (", ..." if len(others) > 5 else "")
        problems.append(Problem(
            "unversioned-tables",
            f"The database has tables ({shown}) but no {version_table} table.",
            "If its schema matches the models, run 'flask db stamp head' to adopt it.",
        ))
    if not metadata.tables:
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

    changed = _changed_files(script, current, unknown, applied)
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
            steps = script._upgrade_revs("heads", t.cast(t.Any, current))
        except Exception:  # noqa: BLE001 - a history upgrade cannot walk is a problem shown above
            steps = []
        pending = tuple(
            PendingRevision(
                step.revision.revision, _first_line(step.revision.doc), _relative(step.revision.path)
            )
            for step in steps
        )
    return DatabaseStatus(
        bind=bind,
        database=label,
        current=current,
        heads=heads,
        pending=pending,
        recent=tuple(entries),
        changed_files=tuple(changed),
        problems=tuple(problems),
        has_journal=has_journal,
        in_progress=in_progress,
        messages={
            rev: _first_line(sc.doc)
            for rev in (*current, *heads)
            if (sc := _known_script(script, rev)) is not None
        },
    )


def _changed_files(
    script: ScriptDirectory,
    current: tuple[str, ...],
    unknown: list[str],
    applied: dict[str, journal.JournalEntry],
) -> list[ChangedFile]:
    """Applied revisions whose file was edited, deleted or renamed since."""
    if not applied:
        return []
    known_current = tuple(rev for rev in current if rev not in unknown)
    in_database: set[str] = set(unknown)
    if known_current:
        in_database |= {
            sc.revision for sc in script.revision_map.iterate_revisions(known_current, "base")
            if sc is not None
        }
    changed = []
    for rev in sorted(in_database):
        entry = applied.get(rev)
        if entry is None or entry.checksum is None:
            continue  # applied before the journal existed
        sc = _known_script(script, rev)
        if sc is None:
            changed.append(ChangedFile(rev, "missing", entry.filename, None, entry.checksum, None))
            continue
        checksum = journal.file_checksum(sc.path)
        name = Path(sc.path).name
        if checksum != entry.checksum:
            changed.append(ChangedFile(rev, "edited", entry.filename, name, entry.checksum, checksum))
        elif entry.filename is not None and name != entry.filename:
            changed.append(ChangedFile(rev, "renamed", entry.filename, name, entry.checksum, checksum))
    return changed
