"""How the journal's rows are written: no round trip per revision where DDL is transactional.

* a run that is one transaction (Alembic's default on PostgreSQL and SQLite)
  writes its step rows in one statement at the end, whatever their number;
* with ``transaction_per_migration=True``, one INSERT per revision, in the
  revision's own transaction;
* on MariaDB (DDL commits by itself) each step's row says "running" before the
  step's DDL (which commits it) and is marked finished with the version table;
* a step that leaves its transaction (``autocommit_block()``) gets its row,
  and the earlier steps theirs, committed before it does.

Statements are counted with SQLAlchemy's ``before_cursor_execute`` event.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from flask_migrate import operations

from conftest import JOURNAL, Database, create_app, write_revision


def _history(versions: Path, n: int, body: str = "op.create_table('t{i}', sa.Column('id', sa.Integer, primary_key=True))") -> list[str]:
    revs = [f"r{i:02d}" for i in range(n)]
    for i, rev in enumerate(revs):
        write_revision(
            versions, rev, revs[i - 1] if i else None,
            upgrade=body.format(i=i), downgrade=f"op.drop_table('t{i}')",
        )
    return revs


class Statements:
    """The statements sent to the journal while the context is active."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bool]] = []

    def __enter__(self) -> Statements:
        sa.event.listen(sa.Engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(sa.Engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: object, cursor: object, statement: str, params: object,
              context: object, executemany: bool) -> None:
        if JOURNAL in statement:
            self.sent.append((statement.split()[0].upper(), executemany))

    def count(self, verb: str) -> int:
        return sum(1 for v, _ in self.sent if v == verb)


@pytest.fixture
def project(database: Database, tmp_path: Path) -> Iterator[tuple[Database, Path, Path]]:
    yield database, tmp_path / "migrations", tmp_path


def _rows(database: Database) -> list[tuple[str, str | None, str, int | None]]:
    engine = database.engine()
    try:
        with engine.connect() as conn:
            return [
                tuple(r) for r in conn.execute(sa.text(
                    f"SELECT kind, revision, state, duration_ms FROM {JOURNAL} ORDER BY id"
                ))
            ]
    finally:
        engine.dispose()


@pytest.mark.parametrize("per_migration", [False, True], ids=["one-transaction", "per-migration"])
def test_step_rows_cost_no_round_trip_per_revision(
    project: tuple[Database, Path, Path], per_migration: bool
) -> None:
    database, migrations, _ = project
    kwargs = {"transaction_per_migration": True} if per_migration else {}
    app, db, _ = create_app(database.url, migrations, models="none", **kwargs)
    with app.app_context():
        operations.init()
        revs = _history(migrations / "versions", 6)
        with Statements() as seen:
            steps = operations.upgrade()
        db.engine.dispose()
    assert [s.revision for s in steps] == revs
    rows = _rows(database)
    assert [(k, r, s) for k, r, s, _ in rows] == (
        [("run", "head", "done")] + [("step", rev, "applied") for rev in revs]
    )
    assert all(ms is not None and ms >= 0 for _, _, _, ms in rows)
    if database.backend == "mariadb":
        # "running" before each step's DDL, "applied" with its version row
        assert seen.count("INSERT") == 1 + len(revs)
        assert seen.count("UPDATE") == 1 + len(revs)
    elif per_migration:
        assert seen.count("INSERT") == 1 + len(revs)
        assert seen.count("UPDATE") == 1
    else:
        # the run's row, then every step's row in one (executemany) statement
        assert seen.sent.count(("INSERT", True)) == 1
        assert seen.count("INSERT") == 2
        assert seen.count("UPDATE") == 1


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_rows_are_committed_before_a_step_leaves_its_transaction(
    project: tuple[Database, Path, Path],
) -> None:
    database, migrations, _ = project
    app, db, _ = create_app(database.url, migrations, models="none")
    with app.app_context():
        operations.init()
        versions = migrations / "versions"
        revs = _history(versions, 2)
        write_revision(
            versions, "r02", revs[-1],
            upgrade="""
                with op.get_context().autocommit_block():
                    op.execute("CREATE INDEX CONCURRENTLY ix_t0 ON t0 (id)")
                raise RuntimeError("after the block")
            """,
        )
        with pytest.raises(RuntimeError, match="after the block"):
            operations.upgrade()
        db.engine.dispose()
    # the first two revisions (and their rows) committed with the block; the
    # third left its transaction, so its row stays "running" for the next run
    assert database.versions() == {revs[-1]}
    steps = [(r, s) for k, r, s, _ in _rows(database) if k == "step"]
    assert steps == [(revs[0], "applied"), (revs[1], "applied"), ("r02", "running")]
