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

if t.TYPE_CHECKING:  # pragma: no cover
    from sqlalchemy.engine import Connection

#: The journal's table name.
JOURNAL_TABLE = "flask_migrate_journal"

RUNNING = "running"
DONE = "done"
FAILED = "failed"
INTERRUPTED = "interrupted"
RESOLVED = "resolved"
APPLIED = "applied"


def journal_table(name: str = JOURNAL_TABLE, schema: str | None = None) -> sa.Table:
    """The journal's table definition (on a MetaData of its own)."""
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


def _package_version() -> str:
    from . import __version__

    return __version__


def _origin() -> dict[str, t.Any]:
    return {"host": socket.gethostname()[:255], "pid": os.getpid(), "version": _package_version()}


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


def finish_run(conn: Connection, table: sa.Table, run_id: str, error: str | None) -> None:
    finished = now()
    row = conn.execute(
        sa.select(table.c.started_at).where(table.c.run_id == run_id, table.c.kind == "run")
    ).first()
    duration = None
    if row is not None:
        duration = int((finished - _utc(row.started_at)).total_seconds() * 1000)
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


def start_step(
    conn: Connection,
    table: sa.Table,
    run_id: str,
    direction: str,
    revision: str | None,
    path: Path | None,
    message: str | None,
) -> int:
    result = conn.execute(
        table.insert().values(
            run_id=run_id,
            kind="step",
            direction=direction,
            revision=revision,
            state=RUNNING,
            checksum=file_checksum(path) if path is not None and path.exists() else None,
            filename=path.name if path is not None else None,
            message=(message or None) and message[:255],
            started_at=now(),
            **_origin(),
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def finish_step(conn: Connection, table: sa.Table, step_id: int, duration_ms: int) -> None:
    conn.execute(
        table.update()
        .where(table.c.id == step_id)
        .values(state=APPLIED, finished_at=now(), duration_ms=duration_ms)
    )


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


def applied_checksums(conn: Connection, table: sa.Table) -> dict[str, JournalEntry]:
    """For each revision, the entry of its latest upgrade (or baseline)."""
    rows = conn.execute(
        sa.select(table)
        .where(
            table.c.kind.in_(("step", "baseline")),
            table.c.state.in_((APPLIED, DONE)),
            sa.or_(table.c.direction == "upgrade", table.c.kind == "baseline"),
        )
        .order_by(table.c.id)
    )
    latest: dict[str, JournalEntry] = {}
    for entry in _entries(rows):
        if entry.revision is not None:
            latest[entry.revision] = entry
    return latest


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
    """The journal side of one ``upgrade``, ``downgrade`` or ``stamp``.

    :meth:`prepare` runs under the migration lock before ``env.py``, on a
    connection of its own; :meth:`start_step` and :meth:`finish_step` run on
    the migration's connection, inside each revision's transaction;
    :meth:`finish` runs after ``env.py``, on a connection of its own.
    """

    def __init__(self, direction: str, target: str, schema: str | None = None) -> None:
        self.direction = direction
        self.target = target
        self.table = journal_table(schema=schema)
        self.run_id = new_run_id()
        #: Databases (password-hidden URLs) whose run row was written.
        self.active: dict[str, t.Any] = {}
        #: What the previous runs left unfinished, as notes for people.
        self.notes: list[str] = []

    def prepare(
        self,
        conn: Connection,
        database: str,
        heads: t.Sequence[str],
        steps: t.Sequence[t.Any],
        files: dict[str, Path],
        engine: t.Any,
    ) -> None:
        """Check what earlier runs left, and open this run (if it does anything)."""
        if exists(conn, self.table):
            left = unfinished(conn, self.table)
            half_applied = [e for e in left if e.kind == "step"]
            if half_applied and self.direction != "stamp" and conn.dialect.name in ("mysql", "mariadb"):
                raise InterruptedRevision(database, half_applied[0])
            for entry in left:
                what = "revision " + str(entry.revision) if entry.kind == "step" else f"{entry.direction} to {entry.revision}"
                self.notes.append(
                    f"An earlier {what} on {database} did not finish ({entry.describe_origin()})"
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
        ensure(conn, self.table, heads, files)
        start_run(conn, self.table, self.run_id, self.direction, self.target)
        self.active[database] = engine

    def finish(self, conn: Connection, error: str | None) -> None:
        finish_run(conn, self.table, self.run_id, error)
