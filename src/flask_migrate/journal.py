"""The journal: every step applied to a database, with checksums and timings.

Alembic's version table only says which revision a database is at. The
journal, a table named ``flask_migrate_journal`` next to it (the version
table is left exactly as Alembic expects, so stock Alembic keeps working on
the same database), records:

* one ``run`` row per ``upgrade``/``downgrade``/``stamp`` that changes the
  database, written and committed *before* its first step, under the
  migration lock, and marked ``done`` or ``failed`` when it ends. A run still
  marked ``running`` when the next one starts died on the way;
* one ``step`` row per applied revision: direction, SHA-256 of the revision
  file (line endings normalised), file name, start, end, duration, host,
  process id and package version. The row is written in the same
  transaction as the revision and its version-table change wherever the
  database has transactional DDL (PostgreSQL, SQLite). On MariaDB/MySQL,
  whose DDL commits on its own, a step row left ``running`` marks a revision
  that may be half-applied;
* one ``baseline`` row per current revision when the journal is created in a
  database that was migrated before it existed.

Each version table has its own journal (``flask_migrate_journal`` beside
``alembic_version``, ``flask_migrate_journal_<table>`` beside any other), in
the version table's schema, so that independent histories in one database
never see each other's runs.

Where a whole run is one transaction (PostgreSQL and SQLite by default), the
run row, the step rows and the run's end are written in that transaction:
they commit with the run or vanish with it, and a run that failed is then
recorded as ``failed`` afterwards. Where each revision commits on its own
(``transaction_per_migration=True``, or MariaDB/MySQL, whose DDL commits
implicitly), the run row is committed before the first step.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import typing as t
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from . import _alembic

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection

#: The journal's table name (beside the default version table).
JOURNAL_TABLE = "flask_migrate_journal"
# PostgreSQL allows 63 characters; leave room for the index name's "ix_..._run_id"
_MAX_NAME = 50

RUNNING = "running"
DONE = "done"
FAILED = "failed"
INTERRUPTED = "interrupted"
RESOLVED = "resolved"
APPLIED = "applied"


def journal_name(version_table: str = "alembic_version") -> str:
    """The name of the journal kept beside the version table ``version_table``."""
    if version_table == "alembic_version":
        return JOURNAL_TABLE
    name = f"{JOURNAL_TABLE}_{version_table}"
    if len(name) > _MAX_NAME:
        digest = hashlib.sha256(version_table.encode()).hexdigest()[:12]
        name = f"{JOURNAL_TABLE}_{version_table[: _MAX_NAME - len(JOURNAL_TABLE) - 14]}_{digest}"
    return name


def is_journal(name: str | None) -> bool:
    """Whether a table name is one of the journals (hidden from autogenerate)."""
    return bool(name) and (name == JOURNAL_TABLE or str(name).startswith(JOURNAL_TABLE + "_"))


def journal_table(
    name: str = JOURNAL_TABLE, schema: str | None = None, *, version_table: str | None = None
) -> sa.Table:
    """The journal's table definition (on a MetaData of its own).

    :param version_table: name the journal after this version table instead.
    """
    if version_table is not None:
        name = journal_name(version_table)
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("direction", sa.String(16)),
        sa.Column("revision", sa.String(255)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("checksum", sa.String(64)),
        sa.Column("filename", sa.String(512)),
        sa.Column("message", sa.String(255)),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("duration_ms", sa.Integer),
        sa.Column("host", sa.String(255)),
        sa.Column("pid", sa.Integer),
        sa.Column("version", sa.String(32)),
        schema=schema,
    )


@dataclass(frozen=True)
class JournalEntry:
    """One row of the journal."""

    id: int
    run_id: str
    kind: str
    direction: str | None
    revision: str | None
    state: str
    checksum: str | None
    filename: str | None
    message: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    duration_ms: int | None
    host: str | None
    pid: int | None
    version: str | None

    def describe_origin(self) -> str:
        when = _utc(self.started_at)
        return f"pid {self.pid} on host {self.host}, started {when:%Y-%m-%d %H:%M:%S} UTC"


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite and MariaDB return naive datetimes; the journal writes UTC
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def file_checksum(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a revision file, with CRLF and CR line endings read as LF."""
    data = Path(path).read_bytes().replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return hashlib.sha256(data).hexdigest()


def script_checksum(sc: t.Any) -> str:
    """:func:`file_checksum` of a revision's file, as the revision cache knows it if it does."""
    known = getattr(sc, "checksum", None)
    return known if isinstance(known, str) else file_checksum(sc.path)


def _package_version() -> str:
    from . import __version__

    return __version__


_ORIGIN: dict[str, t.Any] = {}


def _origin() -> dict[str, t.Any]:
    """Where a row comes from: host, process and our version (computed once per process)."""
    if _ORIGIN.get("pid") != os.getpid():
        _ORIGIN.update(host=socket.gethostname()[:255], pid=os.getpid(), version=_package_version())
    return dict(_ORIGIN)


def new_run_id() -> str:
    return uuid.uuid4().hex


def exists(conn: Connection, table: sa.Table) -> bool:
    return sa.inspect(conn).has_table(table.name, schema=table.schema)


def ensure(conn: Connection, table: sa.Table, heads: t.Sequence[str], files: dict[str, Path]) -> bool:
    """Create the journal if it is missing; returns whether it was created.

    A database that already has revisions gets a ``baseline`` row for each,
    so that its journal starts where the database is.
    """
    if exists(conn, table):
        return False
    table.create(conn)
    stamp = now()
    run_id = new_run_id()
    for head in heads:
        path = files.get(head)
        conn.execute(
            table.insert().values(
                run_id=run_id,
                kind="baseline",
                direction=None,
                revision=head,
                state=DONE,
                checksum=file_checksum(path) if path is not None and path.exists() else None,
                filename=path.name if path is not None else None,
                message="journal started at this revision",
                started_at=stamp,
                finished_at=stamp,
                duration_ms=0,
                **_origin(),
            )
        )
    return True


def start_run(conn: Connection, table: sa.Table, run_id: str, direction: str, target: str) -> None:
    conn.execute(
        table.insert().values(
            run_id=run_id,
            kind="run",
            direction=direction,
            revision=target[:255],
            state=RUNNING,
            started_at=now(),
            **_origin(),
        )
    )


def finish_run(
    conn: Connection, table: sa.Table, run_id: str, error: str | None,
    started_at: dt.datetime | None = None,
) -> None:
    finished = now()
    if started_at is None:
        started_at = conn.execute(
            sa.select(table.c.started_at).where(table.c.run_id == run_id, table.c.kind == "run")
        ).scalar()
    duration = None
    if started_at is not None:
        duration = int((finished - _utc(started_at)).total_seconds() * 1000)
    conn.execute(
        table.update()
        .where(table.c.run_id == run_id, table.c.kind == "run")
        .values(
            state=FAILED if error else DONE,
            message=(error or None) and error[:255],
            finished_at=finished,
            duration_ms=duration,
        )
    )


def step_row(
    run_id: str,
    direction: str,
    revision: str | None,
    checksum: str | None,
    filename: str | None,
    message: str | None,
) -> dict[str, t.Any]:
    """The journal row of a step that starts now (state ``running``)."""
    return {
        "run_id": run_id,
        "kind": "step",
        "direction": direction,
        "revision": revision,
        "state": RUNNING,
        "checksum": checksum,
        "filename": filename,
        "message": (message or None) and message[:255],
        "started_at": now(),
        "finished_at": None,
        "duration_ms": None,
        **_origin(),
    }


def start_step(conn: Connection, table: sa.Table, row: dict[str, t.Any]) -> int:
    """Write a step's row before the step runs; returns its id.

    Only where the row must outlive a crash in the middle of the step: on
    databases whose DDL commits by itself, and before a step leaves its
    transaction (``autocommit_block()``). Elsewhere a step's row is written
    once, finished, in the step's own transaction (:func:`insert_steps`).
    """
    result = conn.execute(table.insert().values(**row))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def finish_step(conn: Connection, table: sa.Table, step_id: int, duration_ms: int) -> None:
    conn.execute(
        table.update()
        .where(table.c.id == step_id)
        .values(state=APPLIED, finished_at=now(), duration_ms=duration_ms)
    )


def finished_step(row: dict[str, t.Any], duration_ms: int) -> dict[str, t.Any]:
    """``row`` (see :func:`step_row`), marked applied now."""
    return {**row, "state": APPLIED, "finished_at": now(), "duration_ms": duration_ms}


def insert_steps(conn: Connection, table: sa.Table, rows: t.Sequence[dict[str, t.Any]]) -> None:
    """Write finished steps' rows: one statement, whatever their number."""
    if rows:
        conn.execute(table.insert(), list(rows))


def _entries(rows: t.Iterable[t.Any]) -> list[JournalEntry]:
    return [
        JournalEntry(
            id=r.id,
            run_id=r.run_id,
            kind=r.kind,
            direction=r.direction,
            revision=r.revision,
            state=r.state,
            checksum=r.checksum,
            filename=r.filename,
            message=r.message,
            started_at=_utc(r.started_at),
            finished_at=_utc(r.finished_at) if r.finished_at is not None else None,
            duration_ms=r.duration_ms,
            host=r.host,
            pid=r.pid,
            version=r.version,
        )
        for r in rows
    ]


def unfinished(conn: Connection, table: sa.Table) -> list[JournalEntry]:
    """Runs and steps still marked ``running``: their process died."""
    rows = conn.execute(
        sa.select(table).where(table.c.state == RUNNING).order_by(table.c.id)
    )
    return _entries(rows)


def mark(conn: Connection, table: sa.Table, ids: t.Iterable[int], state: str, note: str) -> None:
    ids = list(ids)
    if ids:
        conn.execute(
            table.update().where(table.c.id.in_(ids)).values(state=state, message=note[:255])
        )


def recent_steps(conn: Connection, table: sa.Table, limit: int = 10) -> list[JournalEntry]:
    """The last ``limit`` steps, newest first."""
    rows = conn.execute(
        sa.select(table)
        .where(table.c.kind.in_(("step", "baseline")))
        .order_by(table.c.id.desc())
        .limit(limit)
    )
    return _entries(rows)


def last_run(conn: Connection, table: sa.Table) -> JournalEntry | None:
    """The newest run of the journal (its state says whether it failed)."""
    rows = conn.execute(
        sa.select(table).where(table.c.kind == "run").order_by(table.c.id.desc()).limit(1)
    )
    entries = _entries(rows)
    return entries[0] if entries else None


@dataclass(frozen=True)
class AppliedFile:
    """The file a revision was last applied from: its checksum and name."""

    revision: str
    checksum: str | None
    filename: str | None


def applied_checksums(conn: Connection, table: sa.Table) -> dict[str, AppliedFile]:
    """For each revision, the file of its latest upgrade (or baseline).

    NOTE: three columns only: a no-op ``upgrade`` reads this for every
    revision ever applied, and whole rows (timestamps parsed, on SQLite) cost
    several times as much.
    """
    rows = conn.execute(
        sa.select(table.c.revision, table.c.checksum, table.c.filename)
        .where(
            table.c.kind.in_(("step", "baseline")),
            table.c.state.in_((APPLIED, DONE)),
            sa.or_(table.c.direction == "upgrade", table.c.kind == "baseline"),
            table.c.revision.is_not(None),
        )
        .order_by(table.c.id)
    )
    return {rev: AppliedFile(rev, checksum, filename) for rev, checksum, filename in rows}


# -- applied files that changed since ---------------------------------------------


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



def changed_files(
    script: ScriptDirectory,
    current: tuple[str, ...],
    unknown: list[str],
    applied: dict[str, AppliedFile],
) -> list[ChangedFile]:
    """Applied revisions whose file was edited, deleted or renamed since."""
    from alembic.util import CommandError

    if not applied:
        return []
    known_current = tuple(rev for rev in current if rev not in unknown)
    in_database = set(unknown) | _alembic.ancestors(script, known_current)
    changed = []
    for rev in sorted(in_database):
        entry = applied.get(rev)
        if entry is None or entry.checksum is None:
            continue  # applied before the journal existed
        try:
            sc = script.get_revision(rev)
        except CommandError:  # the migrations folder lacks it
            sc = None
        if sc is None:
            changed.append(ChangedFile(rev, "missing", entry.filename, None, entry.checksum, None))
            continue
        checksum = script_checksum(sc)
        name = os.path.basename(sc.path)
        if checksum != entry.checksum:
            changed.append(ChangedFile(rev, "edited", entry.filename, name, entry.checksum, checksum))
        elif entry.filename is not None and name != entry.filename:
            changed.append(ChangedFile(rev, "renamed", entry.filename, name, entry.checksum, checksum))
    return changed


# -- one command's journal ----------------------------------------------------------


class InterruptedRevision(Exception):
    """Raised by :meth:`JournalRun.prepare`; operations turns it into a MigrateError."""

    def __init__(self, database: str, entry: JournalEntry) -> None:
        self.database = database
        self.entry = entry
        super().__init__(
            f"Revision {entry.revision} ({entry.direction}) was interrupted on {database} "
            f"({entry.describe_origin()}), and this database cannot roll DDL back: "
            "its changes may be half-applied. Fix the schema by hand to match "
            f"{entry.revision} or the revision before it, then run 'flask db stamp "
            "<revision>' to record the one it matches."
        )


class JournalRun:
    """The journal side of one ``upgrade``, ``downgrade`` or ``stamp`` on one database.

    :meth:`prepare` runs under the migration lock, on the connection that
    ``env.py`` configured, before Alembic reads the version table; the step
    rows are written inside each revision's transaction (see
    :func:`insert_steps` and :func:`start_step`); :meth:`finish` closes the run.
    """

    def __init__(self, direction: str, target: str, table: sa.Table, database: str) -> None:
        self.direction = direction
        self.target = target
        self.table = table
        self.database = database
        self.run_id = new_run_id()
        #: Whether this run's row was written (the command does something here).
        self.opened = False
        #: Whether the run has been closed (done or failed).
        self.closed = False
        #: When this run's row was written (``None``: not written by this process).
        self.started_at: dt.datetime | None = None
        #: What the previous runs left unfinished, as notes for people.
        self.notes: list[str] = []
        self._heads: tuple[str, ...] = ()
        self._files: dict[str, Path] = {}

    def prepare(
        self,
        conn: Connection,
        heads: t.Sequence[str],
        steps: t.Sequence[t.Any],
        files: dict[str, Path],
        has_journal: bool | None = None,
    ) -> None:
        """Check what earlier runs left, and open this run (if it does anything).

        :raises InterruptedRevision: a revision was left half-applied on a
            database that cannot roll DDL back.
        """
        self._heads, self._files = tuple(heads), files
        if has_journal is None:
            has_journal = exists(conn, self.table)
        if has_journal:
            left = unfinished(conn, self.table)
            half_applied = [e for e in left if e.kind == "step"]
            if half_applied and self.direction != "stamp" and conn.dialect.name in ("mysql", "mariadb"):
                raise InterruptedRevision(self.database, half_applied[0])
            for entry in left:
                what = "revision " + str(entry.revision) if entry.kind == "step" else f"{entry.direction} to {entry.revision}"
                self.notes.append(
                    f"An earlier {what} on {self.database} did not finish ({entry.describe_origin()})"
                    + ("; recorded as resolved by this stamp." if self.direction == "stamp"
                       else "; its revision was rolled back, carrying on.")
                )
            mark(
                conn, self.table, [e.id for e in left if e.kind == "step"],
                RESOLVED, f"resolved by {self.direction} in run {self.run_id}",
            )
            mark(
                conn, self.table, [e.id for e in left if e.kind == "run"],
                INTERRUPTED, f"found unfinished by run {self.run_id}",
            )
        if not steps:
            return
        if not has_journal:
            ensure(conn, self.table, heads, files)
        start_run(conn, self.table, self.run_id, self.direction, self.target)
        self.started_at = now()
        self.opened = True

    def finish(self, conn: Connection, error: str | None) -> None:
        """Mark this run done (or failed, with ``error``)."""
        finish_run(conn, self.table, self.run_id, error, self.started_at)
        self.closed = True

    def record_failure(self, conn: Connection, error: str, started_at: dt.datetime) -> None:
        """Record a run whose rows vanished with its rolled-back transaction."""
        ensure(conn, self.table, self._heads, self._files)
        finished = now()
        conn.execute(
            self.table.insert().values(
                run_id=self.run_id,
                kind="run",
                direction=self.direction,
                revision=self.target[:255],
                state=FAILED,
                message=error[:255],
                started_at=started_at,
                finished_at=finished,
                duration_ms=int((finished - started_at).total_seconds() * 1000),
                **_origin(),
            )
        )
        self.closed = True
