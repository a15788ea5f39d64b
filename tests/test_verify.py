"""``flask db verify``: the history walked on scratch databases, never on the application's own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner
from alembic.script import Script
from flask_sqlalchemy import SQLAlchemy

from conftest import (
    FLASK,
    SERVER_URLS,
    Database,
    DatabaseFactory,
    create_app,
    run_flask,
    write_app,
    write_revision,
)
from flask_migrate.errors import MigrateError
from flask_migrate.results import Finding, VerifyReport
from flask_migrate.scratch import PREFIX
from flask_migrate.verify import verify

# -- revision bodies ------------------------------------------------------------------

CREATE_USER = """
op.create_table(
    "user",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128)),
)
"""
DROP_USER = 'op.drop_table("user")'
CREATE_TAG = 'op.create_table("tag", sa.Column("id", sa.Integer, primary_key=True))'
DROP_TAG = 'op.drop_table("tag")'

# a table with one of everything the stairway compares
CREATE_FULL_TAG = """
op.create_table(
    "tag",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, nullable=False),
    sa.Column("label", sa.String(32), nullable=False, server_default="new"),
    sa.ForeignKeyConstraint(["user_id"], ["user.id"], name="fk_tag_user", ondelete="CASCADE"),
    sa.UniqueConstraint("user_id", "label", name="uq_tag_user_label"),
    sa.CheckConstraint("length(label) > 0", name="ck_tag_label"),
)
op.create_index("ix_tag_label", "tag", ["label"])
"""
DROP_FULL_TAG = """
op.drop_index("ix_tag_label", table_name="tag")
op.drop_table("tag")
"""


# -- helpers --------------------------------------------------------------------------


@dataclass
class Project:
    """An in-process app with an initialised migrations folder."""

    app: Flask
    db: SQLAlchemy
    migrations: Path
    #: the databases the app's engines pointed at while ``verify()`` walked the history
    scratch: set[str] = field(default_factory=set)

    @property
    def versions(self) -> Path:
        return self.migrations / "versions"

    @property
    def runner(self) -> FlaskCliRunner:
        return self.app.test_cli_runner()

    def verify(
        self, on_progress: Callable[[int, int, Script], None] | None = None, **kwargs: object
    ) -> VerifyReport:
        """``verify()`` in an app context, noting the scratch databases it points the app at."""

        def progress(index: int, total: int, sc: Script) -> None:
            self.scratch.update(str(e.url.database) for e in self.db.engines.values())
            if on_progress is not None:
                on_progress(index, total, sc)

        with self.app.app_context():
            return verify(on_progress=progress, **kwargs)  # type: ignore[arg-type]

    def assert_scratch_dropped(self, backend: str, count: int = 1) -> None:
        """``verify()`` used ``count`` scratch databases of its own, and none is left."""
        assert len(self.scratch) == count, self.scratch
        for name in self.scratch:
            assert not scratch_exists(backend, name), name


@pytest.fixture
def make_project(migrations: Path) -> Iterator[Callable[..., Project]]:
    """Apps on given databases, with ``flask db init`` (or ``init --multidb``) done."""
    made: list[Project] = []

    def make(
        url: str,
        models: str = "user",
        binds: dict[str, str] | None = None,
        multidb: bool = False,
    ) -> Project:
        app, db, _ = create_app(url, migrations, binds=binds, models=models)
        project = Project(app, db, migrations)
        result = project.runner.invoke(args=["db", "init", *(["--multidb"] if multidb else [])])
        assert result.exit_code == 0, (result.output, result.exception)
        made.append(project)
        return project

    yield make
    for project in made:
        with project.app.app_context():
            for engine in project.db.engines.values():
                engine.dispose()


@pytest.fixture
def project(database: Database, make_project: Callable[..., Project]) -> Project:
    """An app (model: ``user``) on the test's fresh database, ``flask db init`` done."""
    return make_project(database.url)


def scratch_exists(backend: str, name: str) -> bool:
    """Whether the scratch database ``name`` (for SQLite: a file in its own folder) exists."""
    if backend == "sqlite":
        assert Path(name).parent.name.startswith("flask-migrate-scratch-"), name
        return Path(name).parent.exists()
    assert name.startswith(PREFIX), name
    return database_exists(backend, name)


def user_history(versions: Path, record: Path | None = None) -> None:
    """r1 creates the ``user`` table of the default models.

    With ``record``, its upgrade also appends the name of the database it runs on to that file.
    """
    upgrade = CREATE_USER
    if record is not None:
        upgrade += f"""
with open({str(record)!r}, "a") as f:
    f.write(str(op.get_bind().engine.url.database) + "\\n")
"""
    write_revision(versions, "r1", None, upgrade, DROP_USER, message="create user")


def assert_app_points_at(project: Project, database: Database) -> None:
    """The app's engine and config are its own again (verify points them elsewhere while it runs)."""
    with project.app.app_context():
        assert project.db.engine.url.database == sa.make_url(database.url).database
    assert project.app.config["SQLALCHEMY_DATABASE_URI"] == database.url


def failures(report: VerifyReport, check: str) -> list[tuple[str | None, str]]:
    return [(f.revision, f.message) for f in report.check(check).failures]


def statuses(report: VerifyReport) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


ALL_PASSED = {"heads": "passed", "upgrade": "passed", "stairway": "passed", "models": "passed"}


# -- 1. a good history --------------------------------------------------------------------


def test_good_history_passes_and_leaves_the_application_database_alone(
    backend: str, database: Database, make_project: Callable[..., Project]
) -> None:
    """A sound history passes all four checks on a scratch database, dropped afterwards; the app's database gets nothing."""
    project = make_project(database.url, models="user+email")
    user_history(project.versions)
    write_revision(project.versions, "r2", "r1", CREATE_FULL_TAG, DROP_FULL_TAG, message="tag")
    write_revision(project.versions, "r3", "r2", DROP_FULL_TAG, CREATE_FULL_TAG, message="no tag")
    write_revision(
        project.versions, "r4", "r3",
        'op.add_column("user", sa.Column("email", sa.String(128)))',
        'op.drop_column("user", "email")',
        message="email",
    )
    seen: list[tuple[int, int, str]] = []

    report = project.verify(on_progress=lambda i, n, sc: seen.append((i, n, sc.revision)))

    assert statuses(report) == ALL_PASSED, report
    assert report.passed
    assert report.revisions == 4
    assert report.databases == (f"default database ({'mysql' if backend == 'mariadb' else backend})",)
    assert seen == [(1, 4, "r1"), (2, 4, "r2"), (3, 4, "r3"), (4, 4, "r4")]
    assert all(not c.failures and not c.warnings for c in report.checks)
    assert database.table_names(journal=True) == set()
    project.assert_scratch_dropped(backend)
    assert_app_points_at(project, database)
    assert database.url not in project.scratch and database.url.rsplit("/", 1)[1] not in project.scratch


# -- 2. PostgreSQL: enum types, server defaults, a renamed column ---------------------------

ENUM_PREAMBLE = 'status = sa.Enum("open", "closed", name="ticket_status")'
CREATE_TICKET = """
op.create_table(
    "ticket",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("status", status, nullable=False, server_default="open"),
    sa.Column("title", sa.String(64), server_default="untitled"),
    sa.Column("opened", sa.DateTime, server_default=sa.func.now()),
    sa.Column("votes", sa.Integer, nullable=False, server_default=sa.text("0")),
)
"""


def ticket_models(db: SQLAlchemy) -> None:
    class Ticket(db.Model):  # type: ignore[name-defined]
        __tablename__ = "ticket"
        id = db.Column(db.Integer, primary_key=True)
        status = db.Column(
            sa.Enum("open", "closed", name="ticket_status"), nullable=False, server_default="open"
        )
        subject = db.Column(db.String(64), server_default="untitled")
        opened = db.Column(db.DateTime, server_default=sa.func.now())
        votes = db.Column(db.Integer, nullable=False, server_default=sa.text("0"))


def ticket_history(versions: Path, drop_type: bool) -> None:
    user_history(versions)
    downgrade = 'op.drop_table("ticket")'
    if drop_type:
        downgrade += "\nstatus.drop(op.get_bind())"
    write_revision(
        versions, "r2", "r1", CREATE_TICKET, downgrade, message="ticket", preamble=ENUM_PREAMBLE
    )
    write_revision(
        versions, "r3", "r2",
        'op.alter_column("ticket", "title", new_column_name="subject")',
        'op.alter_column("ticket", "subject", new_column_name="title")',
        message="rename title",
    )


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_postgresql_enum_defaults_and_rename_pass(
    database: Database, make_project: Callable[..., Project]
) -> None:
    """An enum type made and dropped, server defaults and a column rename pass on PostgreSQL."""
    project = make_project(database.url)
    ticket_models(project.db)
    ticket_history(project.versions, drop_type=True)

    report = project.verify()

    assert statuses(report) == ALL_PASSED, report
    assert database.table_names(journal=True) == set()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_postgresql_enum_type_left_behind_fails_at_its_revision(
    backend: str, database: Database, make_project: Callable[..., Project]
) -> None:
    """A downgrade that drops the table but not its enum type fails the stairway there, naming the type."""
    project = make_project(database.url)
    ticket_models(project.db)
    ticket_history(project.versions, drop_type=False)

    report = project.verify()

    assert report.check("upgrade").status == "passed"
    assert report.check("stairway").status == "failed"
    first = report.check("stairway").failures[0]
    assert first.revision == "r2"
    assert first.message == (
        "downgrade does not undo the upgrade: left enum type 'ticket_status' behind"
    )
    assert first.database == "default database"
    assert not report.passed
    with project.app.app_context():
        enums = sa.inspect(project.db.engine).get_enums()  # type: ignore[attr-defined]
    assert enums == []
    project.assert_scratch_dropped(backend)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_postgresql_sequence_left_in_a_database_without_tables(project: Project) -> None:
    """A first revision whose downgrade leaves its sequence is reported, though no table is left to reflect."""
    write_revision(
        project.versions, "r0", None,
        'sa.Sequence("counter_seq").create(op.get_bind(), checkfirst=True)', "pass",
        message="counter",
    )
    write_revision(project.versions, "r1", "r0", CREATE_USER, DROP_USER, message="create user")

    report = project.verify()

    assert failures(report, "stairway") == [
        ("r0", "downgrade does not undo the upgrade: left sequence 'counter_seq' behind"),
    ]
    assert statuses(report) == {**ALL_PASSED, "stairway": "failed"}, report


# -- 3. downgrades that fail or leave things behind -------------------------------------------


def test_failing_downgrades_fail_the_stairway_at_their_revisions(
    backend: str, project: Project, database: Database
) -> None:
    """A downgrade naming a missing table, and one raising, fail at exactly their revisions; the walk goes on."""
    user_history(project.versions)
    write_revision(
        project.versions, "r2", "r1", CREATE_TAG, 'op.drop_table("no_such_table")', message="tag"
    )
    write_revision(
        project.versions, "r3", "r2", DROP_TAG, 'raise RuntimeError("boom in r3")', message="no tag"
    )
    write_revision(project.versions, "r4", "r3", "pass", "pass", message="empty")

    report = project.verify()

    assert statuses(report) == {**ALL_PASSED, "stairway": "failed"}, report
    [(rev2, message2), (rev3, message3)] = failures(report, "stairway")
    assert rev2 == "r2" and message2.startswith("downgrade failed: ")
    assert "no_such_table" in message2
    assert (rev3, message3) == ("r3", "downgrade failed: RuntimeError: boom in r3")
    assert report.check("stairway").failures[0].database == "default database"
    assert database.table_names(journal=True) == set()


def test_failing_upgrade_fails_the_upgrade_check_and_stops(backend: str, project: Project) -> None:
    """An upgrade that raises fails the upgrade check at its revision; the rest is skipped."""
    user_history(project.versions)
    write_revision(
        project.versions, "r2", "r1", CREATE_TAG + '\nraise ValueError("bad upgrade")', DROP_TAG,
        message="tag",
    )
    write_revision(project.versions, "r3", "r2", "pass", "pass", message="later")

    report = project.verify()

    assert statuses(report) == {
        "heads": "passed", "upgrade": "failed", "stairway": "skipped", "models": "skipped",
    }, report
    assert report.check("upgrade").failures == (
        Finding("r2", "upgrade failed: ValueError: bad upgrade", "default database"),
    )
    assert report.check("upgrade").summary == "stopped: upgrade of r2 failed"


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_mariadb_half_done_downgrade_stops_the_walk(project: Project) -> None:
    """Without transactional DDL, a downgrade that fails half-way leaves the database changed: the walk stops there."""
    user_history(project.versions)
    write_revision(
        project.versions, "r2", "r1", CREATE_TAG, DROP_TAG + '\nop.drop_table("no_such")', message="tag"
    )
    write_revision(project.versions, "r3", "r2", DROP_TAG, CREATE_TAG, message="no tag")

    report = project.verify()

    stairway = report.check("stairway")
    assert stairway.status == "failed"
    [finding] = stairway.failures
    assert finding.revision == "r2" and finding.message.startswith("downgrade failed: ")
    assert stairway.summary.startswith(
        "stopped: the failed downgrade of r2 left default database changed"
    )
    assert report.check("models").status == "skipped"


def test_downgrade_leaving_a_table_fails_at_its_revision(backend: str, project: Project) -> None:
    """A downgrade that forgets to drop the table it made: "left table 'tag' behind" at that revision."""
    user_history(project.versions)
    write_revision(project.versions, "r2", "r1", CREATE_TAG, "pass", message="tag")
    write_revision(project.versions, "r3", "r2", "pass", "pass", message="later")

    report = project.verify()

    assert report.check("upgrade").status == "passed"
    stairway = report.check("stairway")
    assert stairway.status == "failed"
    assert stairway.failures[0].revision == "r2"
    assert stairway.failures[0].message.startswith("downgrade does not undo the upgrade: ")
    assert "left table 'tag' behind" in stairway.failures[0].message
    # upgrading r2 again cannot work on top of what its downgrade left: the walk stops there
    assert {f.revision for f in stairway.failures} == {"r2"}
    assert report.check("models").status == "skipped"
    assert not report.passed


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_downgrade_leaving_a_column_an_index_or_another_type(project: Project) -> None:
    """A downgrade leaving a column and an index, and one restoring another type, are each reported."""
    user_history(project.versions)
    write_revision(
        project.versions, "r2", "r1",
        """
        with op.batch_alter_table("user") as batch:
            batch.alter_column("name", type_=sa.String(256), existing_type=sa.String(128))
        """,
        """
        with op.batch_alter_table("user") as batch:
            batch.alter_column("name", type_=sa.String(64), existing_type=sa.String(256))
        """,
        message="longer name",
    )
    write_revision(
        project.versions, "r3", "r2",
        """
        op.add_column("user", sa.Column("email", sa.String(128)))
        op.create_index("ix_user_email", "user", ["email"])
        """,
        "pass",
        message="email",
    )

    report = project.verify()

    assert failures(report, "stairway")[:2] == [
        ("r2", "downgrade does not undo the upgrade: "
               "column 'user.name' is VARCHAR(64) NULL, was VARCHAR(128) NULL before the upgrade"),
        ("r3", "downgrade does not undo the upgrade: left column 'user.email' behind; "
               "left index 'ix_user_email' on 'user' behind"),
    ]


COLLATIONS = {  # the upgrade's, and the (different) one its downgrade sets
    "postgresql": ('"C"', '"POSIX"'),
    "mariadb": ("utf8mb4_bin", "utf8mb4_unicode_ci"),
}


def set_collation(backend: str, collation: str) -> str:
    if backend == "postgresql":
        sql = f'ALTER TABLE "user" ALTER COLUMN name TYPE VARCHAR(128) COLLATE {collation}'
    else:
        sql = f"ALTER TABLE user MODIFY name VARCHAR(128) COLLATE {collation}"
    return f"op.execute({sql!r})"


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_downgrade_restoring_another_collation(backend: str, project: Project) -> None:
    """A downgrade that gives a column back another collation than it had is reported (types alike)."""
    user_history(project.versions)
    upgrade, downgrade = COLLATIONS[backend]
    write_revision(
        project.versions, "r2", "r1",
        set_collation(backend, upgrade), set_collation(backend, downgrade), message="collation",
    )

    report = project.verify()

    [(revision, message)] = failures(report, "stairway")
    assert revision == "r2"
    assert message.startswith("downgrade does not undo the upgrade: column 'user.name' is ")
    assert downgrade.strip('"') in message and "before the upgrade" in message


# -- 4. heads -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_two_heads_fail_unless_both_are_named(project: Project) -> None:
    """Two heads fail the heads check naming both; --head for each makes it pass."""
    user_history(project.versions)
    write_revision(project.versions, "r2a", "r1", "pass", "pass", message="left")
    write_revision(project.versions, "r2b", "r1", "pass", "pass", message="right")

    report = project.verify()
    assert statuses(report) == {**ALL_PASSED, "heads": "failed"}, report
    [(revision, message)] = failures(report, "heads")
    assert revision is None
    assert message.startswith("2 heads: ") and "r2a (left)" in message and "r2b (right)" in message

    named = project.verify(heads=("r2a", "r2b"))
    assert named.passed and statuses(named) == ALL_PASSED, named

    one = project.verify(heads=("r2a",))
    [(_, message)] = failures(one, "heads")
    assert message.startswith("The heads are ") and "r2a (left)" in message and "r2b (right)" in message
    assert message.endswith("; expected but not heads: none; heads not expected: r2b.")

    write_revision(project.versions, "r3", ("r2a", "r2b"), "pass", "pass", message="merge")  # type: ignore[arg-type]
    merged = project.verify()
    assert merged.passed and statuses(merged) == ALL_PASSED, merged
    assert merged.revisions == 4

    with pytest.raises(MigrateError, match=r"Cannot resolve the head 'nope' \(given with --head\)"):
        project.verify(heads=("nope",))


# -- 5. models ----------------------------------------------------------------------------------


def test_models_drifting_from_the_history_fail_the_models_check(
    backend: str, database: Database, make_project: Callable[..., Project]
) -> None:
    """A model column that no revision creates fails the models check, which names it."""
    project = make_project(database.url, models="user+email")
    user_history(project.versions)

    report = project.verify()

    assert statuses(report) == {**ALL_PASSED, "models": "failed"}, report
    [(revision, message)] = failures(report, "models")
    assert revision is None
    assert message.startswith("Autogenerate finds changes no revision makes: ")
    assert "add_column" in message and "user.email" in message


# -- 6. irreversible on purpose -------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_downgrade_raising_not_implemented_is_a_warning(project: Project) -> None:
    """A downgrade raising NotImplementedError is a warning; the report passes and the command exits 0."""
    user_history(project.versions)
    write_revision(
        project.versions, "r2", "r1", DROP_USER, 'raise NotImplementedError("drops the users")',
        message="drop users",
    )
    write_revision(project.versions, "r3", "r2", CREATE_USER, DROP_USER, message="new users")

    report = project.verify()
    assert report.passed and statuses(report) == ALL_PASSED, report
    [warning] = report.check("stairway").warnings
    assert warning.revision == "r2"
    assert warning.message.startswith("downgrade raises NotImplementedError: drops the users")

    result = project.runner.invoke(args=["db", "verify"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "    warning: r2: downgrade raises NotImplementedError: drops the users" in result.stdout
    assert result.stderr == ""


# -- 7. several databases -------------------------------------------------------------------------


def test_multidb_every_bind_is_verified(
    backend: str, make_database: DatabaseFactory, make_project: Callable[..., Project]
) -> None:
    """With binds, each database gets a scratch twin; a bind's broken downgrade is reported with its name."""
    default, extra = make_database(), make_database()
    project = make_project(default.url, binds={"extra": extra.url}, multidb=True)
    result = project.runner.invoke(args=["db", "migrate", "-m", "create tables"])
    assert result.exit_code == 0, (result.output, result.exception)
    [script] = project.versions.glob("*_create_tables.py")
    source = script.read_text()
    assert source.count("op.drop_table('group_extra')") == 1
    # (Alembic makes the version table even when autogenerate only compares)
    before = default.table_names(journal=True), extra.table_names(journal=True)

    good = project.verify()
    label = "mysql" if backend == "mariadb" else backend
    assert sorted(good.databases) == [f"bind 'extra' ({label})", f"default database ({label})"]
    assert statuses(good) == ALL_PASSED, good

    script.write_text(source.replace("op.drop_table('group_extra')", "op.drop_table('no_such')"))
    bad = project.verify()
    assert bad.check("stairway").status == "failed", bad
    [finding] = bad.check("stairway").failures
    assert finding.database == "bind 'extra'"
    assert finding.message.startswith("downgrade failed: ") and "no_such" in finding.message
    assert (default.table_names(journal=True), extra.table_names(journal=True)) == before
    assert default.versions() == extra.versions() == set()
    project.assert_scratch_dropped(backend, count=4)  # two runs, two databases each

    # the command names the bind of each finding; --url BIND=URL takes an empty database for one bind
    named = make_database()
    result = project.runner.invoke(args=["db", "verify", "--url", f"extra={named.url}"])
    assert result.exit_code == 1
    [line] = [line for line in result.stdout.splitlines() if line.startswith("    failed: ")]
    assert "downgrade failed: " in line and "no_such" in line and line.endswith(" [bind 'extra']")
    assert named.table_names(journal=True) == set()


# -- 8. --url ---------------------------------------------------------------------------------------


def add_keep_table(database: Database) -> None:
    """A table with a row in it, to see that nothing touches it."""
    engine = database.engine()
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE keep (id INTEGER PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO keep (id) VALUES (7)"))
    finally:
        engine.dispose()


def other_spelling(url: str) -> str:
    """The same database, named another way (host or path spelled differently)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        return parsed.set(database=str(path.parent / "." / path.name)).render_as_string(False)
    port = {"postgresql": 5432}.get(parsed.get_backend_name(), 3306)
    return parsed.set(host="localhost", port=port).render_as_string(hide_password=False)


def test_url_empty_database_is_used_and_emptied_again(
    backend: str, project: Project, make_database: DatabaseFactory, database: Database,
    tmp_path: Path,
) -> None:
    """--url with an empty database: the history runs there (only there), and it is empty again afterwards."""
    ran_on = tmp_path / "ran_on.txt"
    user_history(project.versions, record=ran_on)
    write_revision(project.versions, "r2", "r1", CREATE_TAG, "pass", message="tag left")
    target = make_database()

    result = project.runner.invoke(args=["db", "verify", "--url", target.url])

    assert result.exit_code == 1, (result.output, result.exception)
    assert "left table 'tag' behind" in result.stdout
    # r1 upgraded twice (the stairway: up, down, up again), each time on the named database
    assert ran_on.read_text().splitlines() == [sa.make_url(target.url).database] * 2
    assert target.table_names(journal=True) == set()
    assert database.table_names(journal=True) == set()


def test_url_refuses_the_applications_own_database(
    backend: str, project: Project, database: Database
) -> None:
    """--url naming the app's database (spelled differently) is refused with one Error line; nothing changes."""
    user_history(project.versions)
    add_keep_table(database)

    result = project.runner.invoke(args=["db", "verify", "--url", other_spelling(database.url)])

    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ") and "is the application's own database" in line
    assert database.table_names(journal=True) == {"keep"}
    assert database.scalar("SELECT id FROM keep") == 7


def test_url_refuses_a_database_that_is_not_empty(
    backend: str, project: Project, make_database: DatabaseFactory, database: Database
) -> None:
    """--url naming a database with tables is refused, and its tables are left as they were."""
    user_history(project.versions)
    target = make_database()
    add_keep_table(target)

    result = project.runner.invoke(args=["db", "verify", "--url", target.url])

    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ") and "is not empty (it has keep)" in line
    assert target.table_names(journal=True) == {"keep"}
    assert target.scalar("SELECT id FROM keep") == 7
    assert database.table_names(journal=True) == set()


# -- 9. the guard -------------------------------------------------------------------------------------


def test_env_py_connecting_elsewhere_is_refused_before_anything_runs(
    backend: str, project: Project, database: Database
) -> None:
    """An env.py hard-coding the app's real URL is refused by the guard; the real database stays empty."""
    user_history(project.versions)
    env = project.migrations / "env.py"
    source = env.read_text()
    original = '        return db.engines[None]\n'
    assert original in source
    env.write_text(source.replace(
        original, f"        import sqlalchemy\n        return sqlalchemy.create_engine({database.url!r})\n"
    ))

    with pytest.raises(MigrateError, match="not a scratch database; stopped before running anything"):
        project.verify()
    project.assert_scratch_dropped(backend)
    assert_app_points_at(project, database)

    result = project.runner.invoke(args=["db", "verify"])
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: env.py configured a connection to ")
    assert database.table_names(journal=True) == set()


def test_env_py_reading_the_configured_url_runs_on_the_scratch_database(
    backend: str, project: Project, database: Database
) -> None:
    """An env.py that builds its engine from SQLALCHEMY_DATABASE_URI (2.x style) runs on the scratch database."""
    user_history(project.versions)
    env = project.migrations / "env.py"
    source = env.read_text()
    original = '        return db.engines[None]\n'
    env.write_text(source.replace(original, (
        "        import sqlalchemy\n"
        "        return sqlalchemy.create_engine(current_app.config['SQLALCHEMY_DATABASE_URI'])\n"
    )))

    report = project.verify()

    assert report.passed and statuses(report) == ALL_PASSED, report
    assert database.table_names(journal=True) == set()
    project.assert_scratch_dropped(backend)
    assert_app_points_at(project, database)


# -- servers: a database that does not exist yet, a user who may not create databases ----------


def database_exists(backend: str, name: str) -> bool:
    sql = {
        "postgresql": "SELECT count(*) FROM pg_database WHERE datname = :name",
        "mariadb": "SELECT count(*) FROM information_schema.schemata WHERE schema_name = :name",
    }[backend]
    engine = sa.create_engine(SERVER_URLS[backend], poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text(sql), {"name": name}).scalar())
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_application_database_need_not_exist(
    backend: str, make_project: Callable[..., Project]
) -> None:
    """verify needs only the server: the app's database may not exist yet, and is not created."""
    name = f"fmtest_missing_{uuid.uuid4().hex[:8]}"
    url = sa.make_url(SERVER_URLS[backend]).set(database=name).render_as_string(False)
    project = make_project(url)
    user_history(project.versions)

    report = project.verify()

    assert report.passed and statuses(report) == ALL_PASSED, report
    project.assert_scratch_dropped(backend)
    assert not database_exists(backend, name)


# -- 10. the command -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_cli_text_and_json(project: Project) -> None:
    """The report as text (a line per check, then findings) and as JSON; exit 1 on failure."""
    user_history(project.versions)
    good = project.runner.invoke(args=["db", "verify"])
    assert good.exit_code == 0, (good.output, good.exception)
    lines = good.stdout.splitlines()
    assert lines[0].startswith(
        "Verified 1 revision on scratch databases for the default database (sqlite) in "
    )
    assert [line.split()[:2] for line in lines[1:]] == [
        ["PASSED", "heads"], ["PASSED", "upgrade"], ["PASSED", "stairway"], ["PASSED", "models"],
    ]
    assert good.stderr == ""

    write_revision(project.versions, "r2", "r1", CREATE_TAG, "pass", message="tag")
    bad = project.runner.invoke(args=["db", "verify"])
    assert bad.exit_code == 1
    assert "  FAILED   stairway  " in bad.stdout
    assert "    failed: r2: downgrade does not undo the upgrade: left table 'tag' behind" in bad.stdout
    assert "  SKIPPED  models    " in bad.stdout
    assert bad.stderr.splitlines() == [
        "Error: Verification failed: stairway (2 problem(s) above)."
    ]

    as_json = project.runner.invoke(args=["db", "verify", "--json"])
    assert as_json.exit_code == 1
    assert as_json.stderr == ""
    data = json.loads(as_json.stdout)
    assert data["passed"] is False
    assert data["revisions"] == 2
    assert data["databases"] == ["default database (sqlite)"]
    assert [(c["name"], c["status"]) for c in data["checks"]] == [
        ("heads", "passed"), ("upgrade", "passed"), ("stairway", "failed"), ("models", "skipped"),
    ]
    first = data["checks"][2]["failures"][0]
    assert first == {
        "revision": "r2",
        "message": "downgrade does not undo the upgrade: left table 'tag' behind",
        "database": "default database",
    }

    for args, error in [
        (["--url", "nope=sqlite://"], "Error: No database bind named 'nope'; the application has (default)."),
        (["--url", "sqlite://", "--url", "sqlite://"], "Error: --url given twice for the default database."),
        (["--head", "nope"], "Error: Cannot resolve the head 'nope' (given with --head): "),
    ]:
        refused = project.runner.invoke(args=["db", "verify", *args])
        assert refused.exit_code == 1, args
        [line] = refused.stderr.splitlines()
        assert line.startswith(error), (args, line)
        assert refused.stdout == ""

    (project.versions / "r2_tag.py").unlink()
    passing = project.runner.invoke(args=["db", "verify", "--json"])
    assert passing.exit_code == 0, (passing.output, passing.exception)
    assert json.loads(passing.stdout)["passed"] is True


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_real_flask_command(database: Database, tmp_path: Path) -> None:
    """Through the real ``flask`` entry point: the report on stdout, one Error line on stderr, exit 1."""
    write_app(tmp_path)
    init = run_flask(tmp_path, "db", "init", url=database.url)
    assert init.returncode == 0, init.stderr
    versions = tmp_path / "migrations" / "versions"
    user_history(versions)
    write_revision(versions, "r2", "r1", CREATE_TAG, 'op.drop_table("gone")', message="tag")
    write_revision(versions, "r3", "r2", DROP_TAG, CREATE_TAG, message="no tag")

    result = run_flask(tmp_path, "db", "verify", url=database.url)

    assert result.returncode == 1, result
    assert result.stdout.startswith("Verified 3 revisions on scratch databases for the default database")
    assert "  FAILED   stairway  " in result.stdout
    assert "    failed: r2: downgrade failed: " in result.stdout
    assert "  PASSED   models    " in result.stdout
    assert result.stderr.splitlines() == [
        "Error: Verification failed: stairway (1 problem(s) above)."
    ]
    assert database.table_names(journal=True) == set()


# -- 11. Ctrl-C ---------------------------------------------------------------------------------------------

HANG = """
bind = op.get_bind()
op.create_table("hanging", sa.Column("id", sa.Integer, primary_key=True))
with open(os.environ["VERIFY_MARKER"] + ".tmp", "w") as f:
    f.write(bind.engine.url.database)
os.rename(os.environ["VERIFY_MARKER"] + ".tmp", os.environ["VERIFY_MARKER"])
deadline = time.monotonic() + 300
while not os.path.exists(os.environ["VERIFY_RELEASE"]) and time.monotonic() < deadline:
    time.sleep(0.02)
"""


def _sigint_default() -> None:
    # a child of a non-interactive shell may inherit SIGINT ignored; Ctrl-C must work
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_ctrl_c_drops_the_scratch_database(
    backend: str, database: Database, tmp_path: Path
) -> None:
    """SIGINT in the middle of a revision: exit 1, and the scratch database is dropped all the same."""
    write_app(tmp_path)
    init = run_flask(tmp_path, "db", "init", url=database.url)
    assert init.returncode == 0, init.stderr
    versions = tmp_path / "migrations" / "versions"
    user_history(versions)
    write_revision(versions, "r2", "r1", HANG, DROP_TAG, message="hang")
    marker, release = tmp_path / "marker", tmp_path / "release"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "TEST_BIND_"))}
    env.update(FLASK_APP="app.py", TEST_DATABASE_URL=database.url, PYTHONDONTWRITEBYTECODE="1",
               VERIFY_MARKER=str(marker), VERIFY_RELEASE=str(release))
    proc = subprocess.Popen(
        [FLASK, "db", "verify"], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_sigint_default,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            if proc.poll() is not None:
                raise AssertionError(f"verify ended first: {proc.communicate()}")
            assert time.monotonic() < deadline, "the revision never started"
            time.sleep(0.01)
        scratch_name = marker.read_text()
        assert scratch_name.startswith(PREFIX)
        assert scratch_exists(backend, scratch_name)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        release.touch()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 1, (out, err)
    [line] = err.splitlines()
    assert line.startswith("Error: Interrupted by SIGINT."), err
    assert not scratch_exists(backend, scratch_name)
    assert database.table_names(journal=True) == set()
