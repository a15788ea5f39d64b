"""``flask db squash``: a long history replaced by one revision that builds the very same schema."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner
from flask_sqlalchemy import SQLAlchemy

from conftest import Database, DatabaseFactory, create_app, run_flask, write_app, write_revision
from flask_migrate.results import SquashResult
from flask_migrate.squash import SquashError, squash
from flask_migrate.verify import reflect, verify

# -- a 30-revision history -------------------------------------------------------------------
# Tables, columns added and altered, indexes (unique too), foreign keys (and a cycle), a
# named enum, server defaults, a check constraint, a column rename and a table rename. Every
# alteration is in batch mode, so that SQLite runs it too.

HISTORY: list[tuple[str, str, str]] = [
    ("create user", """
op.create_table("user", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(64)))
""", 'op.drop_table("user")'),
    ("index user name", 'op.create_index("ix_user_name", "user", ["name"])',
     'op.drop_index("ix_user_name", table_name="user")'),
    ("user email", """
with op.batch_alter_table("user") as b:
    b.add_column(sa.Column("email", sa.String(120)))
""", """
with op.batch_alter_table("user") as b:
    b.drop_column("email")
"""),
    ("unique email", 'op.create_index("ix_user_email", "user", ["email"], unique=True)',
     'op.drop_index("ix_user_email", table_name="user")'),
    ("create team", """
op.create_table(
    "team",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False, server_default="unnamed"),
)
""", 'op.drop_table("team")'),
    ("user team", """
with op.batch_alter_table("user") as b:
    b.add_column(sa.Column("team_id", sa.Integer))
    b.create_foreign_key("fk_user_team", "team", ["team_id"], ["id"])
""", """
with op.batch_alter_table("user") as b:
    b.drop_constraint("fk_user_team", type_="foreignkey")
    b.drop_column("team_id")
"""),
    ("create post", """
op.create_table(
    "post",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("body", sa.Text),
    sa.ForeignKeyConstraint(["user_id"], ["user.id"], name="fk_post_user", ondelete="CASCADE"),
)
""", 'op.drop_table("post")'),
    ("index post user", 'op.create_index("ix_post_user_id", "post", ["user_id"])',
     'op.drop_index("ix_post_user_id", table_name="post")'),
    ("create tag with an enum", """
op.create_table(
    "tag",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column(
        "kind", sa.Enum("topic", "person", "place", name="tag_kind"),
        nullable=False, server_default="topic",
    ),
)
""", """
op.drop_table("tag")
sa.Enum(name="tag_kind").drop(op.get_bind(), checkfirst=True)
"""),
    ("unique tag name", 'op.create_index("ix_tag_name", "tag", ["name"], unique=True)',
     'op.drop_index("ix_tag_name", table_name="tag")'),
    ("create post_tag", """
op.create_table(
    "post_tag",
    sa.Column("post_id", sa.Integer, nullable=False),
    sa.Column("tag_id", sa.Integer, nullable=False),
    sa.ForeignKeyConstraint(["post_id"], ["post.id"], name="fk_post_tag_post"),
    sa.ForeignKeyConstraint(["tag_id"], ["tag.id"], name="fk_post_tag_tag"),
    sa.PrimaryKeyConstraint("post_id", "tag_id", name="pk_post_tag"),
)
""", 'op.drop_table("post_tag")'),
    ("post created_at", """
with op.batch_alter_table("post") as b:
    b.add_column(sa.Column("created_at", sa.DateTime, server_default=sa.text("CURRENT_TIMESTAMP")))
""", """
with op.batch_alter_table("post") as b:
    b.drop_column("created_at")
"""),
    ("longer user name", """
with op.batch_alter_table("user") as b:
    b.alter_column("name", type_=sa.String(100), existing_type=sa.String(64))
""", """
with op.batch_alter_table("user") as b:
    b.alter_column("name", type_=sa.String(64), existing_type=sa.String(100))
"""),
    ("rename user name", """
with op.batch_alter_table("user") as b:
    b.alter_column("name", new_column_name="username", existing_type=sa.String(100))
""", """
with op.batch_alter_table("user") as b:
    b.alter_column("username", new_column_name="name", existing_type=sa.String(100))
"""),
    ("create comment", """
op.create_table(
    "comment",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("post_id", sa.Integer, nullable=False),
    sa.Column("author_id", sa.Integer),
    sa.Column("body", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(["post_id"], ["post.id"], name="fk_comment_post"),
    sa.ForeignKeyConstraint(["author_id"], ["user.id"], name="fk_comment_author"),
)
""", 'op.drop_table("comment")'),
    ("index comment post", 'op.create_index("ix_comment_post_id", "comment", ["post_id"])',
     'op.drop_index("ix_comment_post_id", table_name="comment")'),
    ("user is_active", """
with op.batch_alter_table("user") as b:
    b.add_column(sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()))
""", """
with op.batch_alter_table("user") as b:
    b.drop_column("is_active")
"""),
    ("team name default", """
with op.batch_alter_table("team") as b:
    b.alter_column("name", server_default="team", existing_type=sa.String(50), existing_nullable=False)
""", """
with op.batch_alter_table("team") as b:
    b.alter_column("name", server_default="unnamed", existing_type=sa.String(50), existing_nullable=False)
"""),
    ("comment check", """
with op.batch_alter_table("comment") as b:
    b.create_check_constraint("ck_comment_body", "length(body) > 0")
""", """
with op.batch_alter_table("comment") as b:
    b.drop_constraint("ck_comment_body", type_="check")
"""),
    ("team slug", """
with op.batch_alter_table("team") as b:
    b.add_column(sa.Column("slug", sa.String(50)))
""", """
with op.batch_alter_table("team") as b:
    b.drop_column("slug")
"""),
    ("unique team slug", """
with op.batch_alter_table("team") as b:
    b.create_unique_constraint("uq_team_slug", ["slug"])
""", """
with op.batch_alter_table("team") as b:
    b.drop_constraint("uq_team_slug", type_="unique")
"""),
    ("create audit_log", """
op.create_table(
    "audit_log",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("at", sa.DateTime),
    sa.ForeignKeyConstraint(["user_id"], ["user.id"], name="fk_audit_user", ondelete="SET NULL"),
)
""", 'op.drop_table("audit_log")'),
    ("composite post index", """
op.create_index("ix_post_user_created", "post", ["user_id", "created_at"])
op.drop_index("ix_post_user_id", table_name="post")
""", """
op.create_index("ix_post_user_id", "post", ["user_id"])
op.drop_index("ix_post_user_created", table_name="post")
"""),
    ("rename audit_log", 'op.rename_table("audit_log", "audit_entry")',
     'op.rename_table("audit_entry", "audit_log")'),
    ("comment edited", """
with op.batch_alter_table("comment") as b:
    b.add_column(sa.Column("edited", sa.Boolean))
""", """
with op.batch_alter_table("comment") as b:
    b.drop_column("edited")
"""),
    ("drop comment edited", """
with op.batch_alter_table("comment") as b:
    b.drop_column("edited")
""", """
with op.batch_alter_table("comment") as b:
    b.add_column(sa.Column("edited", sa.Boolean))
"""),
    ("create setting", """
op.create_table("setting", sa.Column("key", sa.String(50), primary_key=True), sa.Column("value", sa.Text))
""", 'op.drop_table("setting")'),
    ("team owner: a foreign key cycle", """
with op.batch_alter_table("team") as b:
    b.add_column(sa.Column("owner_id", sa.Integer))
    b.create_foreign_key("fk_team_owner", "user", ["owner_id"], ["id"])
""", """
with op.batch_alter_table("team") as b:
    b.drop_constraint("fk_team_owner", type_="foreignkey")
    b.drop_column("owner_id")
"""),
    ("longer tag name", """
with op.batch_alter_table("tag") as b:
    b.alter_column("name", type_=sa.String(60), existing_type=sa.String(40), existing_nullable=False)
""", """
with op.batch_alter_table("tag") as b:
    b.alter_column("name", type_=sa.String(40), existing_type=sa.String(60), existing_nullable=False)
"""),
    ("index comment author", 'op.create_index("ix_comment_author", "comment", ["author_id"])',
     'op.drop_index("ix_comment_author", table_name="comment")'),
]
assert len(HISTORY) == 30


def rev(n: int) -> str:
    return f"r{n:02d}"


def write_history(versions: Path, count: int = len(HISTORY)) -> None:
    for n, (message, upgrade, downgrade) in enumerate(HISTORY[:count], 1):
        write_revision(versions, rev(n), rev(n - 1) if n > 1 else None, upgrade, downgrade, message=message)


# -- helpers ------------------------------------------------------------------------------------


@dataclass
class Project:
    """An in-process app on one database, with the test's migrations folder."""

    app: Flask
    db: SQLAlchemy
    database: Database
    migrations: Path

    @property
    def versions(self) -> Path:
        return self.migrations / "versions"

    @property
    def runner(self) -> FlaskCliRunner:
        return self.app.test_cli_runner()

    def cli(self, *args: str, code: int = 0) -> str:
        result = self.runner.invoke(args=["db", *args])
        assert result.exit_code == code, (args, result.output, result.exception)
        return result.output

    def squash(self, **kwargs: object) -> SquashResult:
        with self.app.app_context():
            return squash(**kwargs)  # type: ignore[arg-type]

    def schema(self) -> dict[tuple[str, str, str, str], str]:
        """Everything ``verify`` compares, of the app's database (its version table aside)."""
        engine = self.database.engine()
        try:
            with engine.connect() as conn:
                return reflect(conn, exclude={(None, "alembic_version")})
        finally:
            engine.dispose()


@pytest.fixture
def make_project(migrations: Path) -> Iterator[Callable[..., Project]]:
    """Apps on given databases sharing the test's migrations folder (``flask db init`` on first use)."""
    made: list[Project] = []

    def make(database: Database, binds: dict[str, Database] | None = None, multidb: bool = False) -> Project:
        app, db, _ = create_app(
            database.url, migrations, binds={k: v.url for k, v in (binds or {}).items()} or None,
            models="none",
        )
        project = Project(app, db, database, migrations)
        if not migrations.exists():
            project.cli("init", *(["--multidb"] if multidb else []))
        made.append(project)
        return project

    yield make
    for project in made:
        with project.app.app_context():
            for engine in project.db.engines.values():
                engine.dispose()


def model_history(project: Project) -> None:
    """Make the app's models those of the migrated database (so that 'check' has something to pass)."""
    engine = project.database.engine()
    try:
        project.db.metadata.reflect(
            engine, only=lambda name, _: name != "alembic_version" and not name.startswith("flask_migrate")
        )
    finally:
        engine.dispose()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not {"__pycache__", ".flask-migrate-cache"} & set(p.parts)
    }


# -- 1. the whole history ----------------------------------------------------------------------


def test_squash_at_head_builds_the_same_schema_and_leaves_migrated_databases_valid(
    backend: str, make_database: DatabaseFactory, make_project: Callable[..., Project]
) -> None:
    """30 revisions become one: a fresh database gets the history's schema exactly; one at head stays valid."""
    old = make_project(make_database())
    write_history(old.versions)
    old.cli("upgrade")
    expected = old.schema()
    assert ("table", "", "audit_entry", "") in expected and ("column", "", "user", "username") in expected
    model_history(old)
    old.cli("check")

    output = old.cli("squash")

    assert output.startswith("Squashed 30 revisions, from base (r01) to r30, into one revision r30 ")
    assert "Self-check passed" in output and "Data operations: none." in output
    [new_file] = old.versions.glob("*.py")
    assert new_file.name == "r30_squashed.py"
    source = new_file.read_text()
    assert "revision = 'r30'" in source and "down_revision = None" in source
    [archive] = (old.migrations / "squashed").iterdir()
    assert archive.name.startswith("r30-")
    assert sorted(p.name for p in (archive / "versions").iterdir()) == sorted(
        f"{rev(n)}_{message.replace(' ', '_')}.py" for n, (message, _, _) in enumerate(HISTORY, 1)
    )
    record = json.loads((archive / "squash.json").read_text())
    assert record["revision"] == "r30" and record["replaced"] == [rev(n) for n in range(1, 31)]
    assert record["new_file"] == "versions/r30_squashed.py"
    note = (archive / "SQUASHED.md").read_text()
    assert "`versions/r30_squashed.py`" in note and "flask db upgrade --from-archive" in note
    assert "- `r14` rename user name (`versions/r14_rename_user_name.py`)" in note

    # a fresh database: one step, the very same schema, object by object
    fresh = make_project(make_database())
    assert fresh.cli("upgrade").count("Upgrade") == 1
    assert fresh.schema() == expected
    # the database that was at head: nothing to do, nothing to report
    assert old.cli("current").split() == ["r30", "(head)"]
    old.cli("check")
    status = old.cli("status", "--check")
    assert "No problems." in status and "Up to date." in status
    assert "Upgrade" not in old.cli("upgrade") and old.schema() == expected
    with old.app.app_context():
        report = verify()
    assert report.passed, report


# -- 2. part of the history ----------------------------------------------------------------------


def test_squash_in_the_middle_and_catching_up_a_stranded_database(
    backend: str, make_database: DatabaseFactory, make_project: Callable[..., Project]
) -> None:
    """Squash at r15: later revisions untouched; a database at r08 is refused, then caught up."""
    reference = make_project(make_database())
    write_history(reference.versions)
    stranded, later = make_project(make_database()), make_project(make_database())
    stranded.cli("upgrade", "r08")
    later.cli("upgrade", "r20")
    reference.cli("upgrade")
    expected = reference.schema()
    after = {p.name: p.read_bytes() for p in reference.versions.glob("*.py") if p.name >= "r16"}

    result = reference.squash(revision="r15")

    assert result.revision == "r15" and result.replaced == tuple(rev(n) for n in range(1, 16))
    assert {p.name: p.read_bytes() for p in reference.versions.glob("*.py") if p.name >= "r16"} == after
    assert sorted(p.name for p in reference.versions.glob("*.py"))[0] == "r15_squashed.py"
    fresh = make_project(make_database())
    fresh.cli("upgrade")
    assert fresh.schema() == expected
    later.cli("upgrade")
    assert later.schema() == expected

    refused = stranded.runner.invoke(args=["db", "upgrade"])
    assert refused.exit_code == 1
    [line] = refused.stderr.splitlines()
    name = sa.make_url(stranded.database.url).database
    assert re.match(rf"Error: \S+/{name}(\?\S+)? is at r08, which 'flask db squash' replaced on ", line), line
    assert " by r15 (archive: " in line
    assert line.endswith(
        "Run 'flask db upgrade --from-archive' to bring it to r15 with the archived revisions, "
        "then upgrade as usual."
    )
    caught_up = stranded.cli("upgrade", "--from-archive")
    assert "Upgrade r08 -> r09" in caught_up and "Upgrade r14 -> r15" in caught_up
    assert stranded.schema() == expected
    assert stranded.cli("current").split() == ["r30", "(head)"]
    model_history(stranded)
    assert "No problems." in stranded.cli("status")


# -- 3. refusals ------------------------------------------------------------------------------------


def test_branches_and_merges_in_the_range_are_refused(
    database: Database, make_project: Callable[..., Project]
) -> None:
    """A merge inside the range, or a branch leaving it, is refused with the reason; nothing changes."""
    project = make_project(database)
    write_history(project.versions, 3)
    write_revision(
        project.versions, "b4", "r02", 'op.create_table("b", sa.Column("id", sa.Integer, primary_key=True))',
        'op.drop_table("b")', message="branch",
    )
    write_revision(project.versions, "m5", ("r03", "b4"), message="merge")
    before = snapshot(project.migrations)

    merged = project.runner.invoke(args=["db", "squash"])
    assert merged.exit_code == 1
    assert merged.stderr.startswith("Error: The history up to m5 is not linear: m5 merges r03, b4.")
    stranded = project.runner.invoke(args=["db", "squash", "r03"])
    assert stranded.exit_code == 1
    assert stranded.stderr.startswith(
        "Error: The history up to r03 is not linear: b4 builds on r02, which would be squashed away"
    )
    with pytest.raises(SquashError, match="r01 is the first revision: there is nothing to squash"):
        project.squash(revision="r01")
    assert snapshot(project.migrations) == before


# -- 4. data operations -------------------------------------------------------------------------------

SEED = [
    ("create role", """
role = op.create_table(
    "role", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(20))
)
op.bulk_insert(role, [{"id": 1, "name": "admin"}, {"id": 2, "name": "user"}])
""", 'op.drop_table("role")'),
    ("rename roles", """
op.execute("UPDATE role SET name = 'member' WHERE name = 'user'")
op.execute("CREATE INDEX ix_role_name ON role (name)")
""", 'op.drop_index("ix_role_name", table_name="role")'),
    ("role level", """
with op.batch_alter_table("role") as b:
    b.add_column(sa.Column("level", sa.Integer, nullable=False, server_default="0"))
levels = sa.table("role", sa.column("name", sa.String), sa.column("level", sa.Integer))
for name, level in [("admin", 9), ("member", 1)]:
    op.execute(levels.update().where(levels.c.name == name).values(level=level))
""", """
with op.batch_alter_table("role") as b:
    b.drop_column("level")
"""),
]


def write_seed(versions: Path) -> None:
    for n, (message, upgrade, downgrade) in enumerate(SEED, 1):
        write_revision(versions, f"s{n}", f"s{n - 1}" if n > 1 else None, upgrade, downgrade, message=message)


def test_data_operations_are_refused_dropped_or_kept(
    backend: str, make_database: DatabaseFactory, make_project: Callable[..., Project]
) -> None:
    """Data operations are listed and refused; --data drop leaves them out, --data keep copies them."""
    project = make_project(make_database())
    write_seed(project.versions)
    before = snapshot(project.migrations)

    refused = project.runner.invoke(args=["db", "squash"])
    assert refused.exit_code == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith("Error: 4 data operation(s) in the revisions to squash: ")
    for expected in (
        "s1_create_role.py:22: op.bulk_insert() (inserts rows)",
        "s2_rename_roles.py:19: op.execute() of 'UPDATE role SET...' (not a schema change)",
        "s3_role_level.py:22: a loop (Python code, which the schema does not capture)",
        "s3_role_level.py:23: op.execute() of levels.update(...), a statement built in Python",
    ):
        assert expected in line
    assert "'--data drop'" in line and "'--data keep'" in line
    assert snapshot(project.migrations) == before

    dropped = project.squash(data="drop", dry_run=True)
    assert [(o.revision, o.line) for o in dropped.data_operations] == [
        ("s1", 22), ("s2", 19), ("s3", 22), ("s3", 23)
    ]
    assert (
        "not replayed on fresh databases (--data drop):\n    s1_create_role.py:22: op.bulk_insert()"
        in dropped.source
    )
    assert "bulk_insert" not in dropped.source.split("def upgrade")[1]
    assert snapshot(project.migrations) == before

    output = project.cli("squash", "--data", "keep")
    assert "Data operations (kept: copied after the schema):" in output
    source = (project.versions / "s3_squashed.py").read_text()
    body = source.split("def upgrade():\n")[1].split("def downgrade")[0]
    assert "    # kept from s1 (s1_create_role.py) by 'flask db squash --data keep'\n" in body
    fresh = make_project(make_database())
    fresh.cli("upgrade")
    engine = fresh.database.engine()
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT name, level FROM role ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("admin", 9), ("member", 1)]


def test_kept_statements_may_only_use_what_they_bring(
    database: Database, make_project: Callable[..., Project], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--data keep refuses a statement that needs a helper function or the application's models."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "models.py").write_text(
        "import sqlalchemy as sa\n\nclass Role:\n    __table__ = sa.table('user', sa.column('name'))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("shop", "shop.models"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    project = make_project(database)
    write_history(project.versions, 2)
    write_revision(project.versions, "r03", "r02", "op.execute(grant_sql())", preamble="""
def grant_sql():
    return "UPDATE user SET name = 'x'"
""", message="helper")
    with pytest.raises(SquashError, match=r"helper.py uses 'grant_sql', which is not defined by the copied"):
        project.squash(data="keep", dry_run=True)
    (project.versions / "r03_helper.py").unlink()
    write_revision(project.versions, "r03", "r02", """
from shop.models import Role
op.bulk_insert(Role.__table__, [{"name": "admin"}])
""", message="models")
    [operation, *_] = project.squash(data="drop", dry_run=True).data_operations
    assert (operation.line, operation.what) == (
        19, "imports shop.models from the application (today's code, not the history's)"
    )
    with pytest.raises(SquashError, match=r"they use 'Role' from shop.models, the application's code"):
        project.squash(data="keep", dry_run=True)


def test_views_are_data_operations_and_the_self_check_refuses_what_the_revision_misses(
    database: Database, make_project: Callable[..., Project]
) -> None:
    """A view (DDL reflection does not rebuild) needs --data keep; with --data drop the self-check refuses."""
    project = make_project(database)
    write_history(project.versions, 5)
    write_revision(
        project.versions, "r06", "r05", 'op.execute("CREATE VIEW named_team AS SELECT id, name FROM team")',
        'op.execute("DROP VIEW named_team")', message="view",
    )
    before = snapshot(project.migrations)

    refusal = r"r06_view.py:19: op.execute\(\) of 'CREATE VIEW named_team...': reflection does not see"
    with pytest.raises(SquashError, match=refusal):
        project.squash()
    with pytest.raises(SquashError, match=r"Self-check failed: .*does not create the view\(s\) named_team"):
        project.squash(data="drop")
    assert snapshot(project.migrations) == before

    kept = project.squash(data="keep", dry_run=True)
    upgrade, downgrade = kept.source.split("def upgrade():")[1].split("def downgrade():")
    assert '    op.execute("CREATE VIEW named_team AS SELECT id, name FROM team")\n' in upgrade
    assert downgrade.startswith("\n    op.execute('DROP VIEW IF EXISTS named_team")
    assert snapshot(project.migrations) == before


# -- 5. --dry-run, a second squash, several databases, the real command ------------------------


def test_dry_run_changes_nothing_and_shows_the_new_revision(
    database: Database, make_project: Callable[..., Project]
) -> None:
    """--dry-run generates and checks the revision, prints it, and leaves every file as it was."""
    project = make_project(database)
    write_history(project.versions, 5)
    before = snapshot(project.migrations)

    output = project.cli("squash", "--dry-run", "-m", "baseline")

    assert output.startswith("Would squash 5 revisions, from base (r01) to r05, into one revision r05 "
                             "for the default database.\n  New file (would be): ")
    assert "(5 files would be moved there, with SQUASHED.md)" in output
    assert "\nThe new revision (r05_squashed.py):\n\n\"\"\"baseline\n" in output
    assert "    op.create_index('ix_user_email', 'user', ['email'], unique=True)\n" in output
    assert snapshot(project.migrations) == before
    assert not (project.migrations / "squashed").exists()


def test_squashing_twice_and_catching_up_through_both_archives(
    database: Database, make_database: DatabaseFactory, make_project: Callable[..., Project]
) -> None:
    """A later squash takes in an earlier one; --from-archive replays both archives in order."""
    project = make_project(database)
    write_history(project.versions, 20)
    behind = make_project(make_database())
    behind.cli("upgrade", "r05")
    project.cli("upgrade")
    expected = project.schema()

    project.squash(revision="r10")
    second = project.squash(revision="r20")

    assert second.replaced == tuple(rev(n) for n in range(10, 21))
    assert [p.name for p in project.versions.glob("*.py")] == ["r20_squashed.py"]
    assert len(list((project.migrations / "squashed").iterdir())) == 2
    assert "which 'flask db squash' replaced on " in behind.cli("upgrade", code=1)
    output = behind.cli("upgrade", "--from-archive")
    assert output.count("Upgrade") == 5 + 10  # r06..r10 from the first archive, r11..r20 from the second
    assert behind.schema() == expected
    assert project.cli("current").split() == ["r20", "(head)"]


MULTIDB_REVISION = '''\
"""{message}

Revision ID: {rev}
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade(engine_name):
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name):
    globals()["downgrade_%s" % engine_name]()


def upgrade_():
{default}


def downgrade_():
    pass


def upgrade_extra():
{extra}


def downgrade_extra():
    pass
'''

MULTIDB_HISTORY = [
    ("m1", None, """
op.create_table("user", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(64)))
""", """
op.create_table(
    "group_extra", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(64))
)
op.create_index("ix_group_name", "group_extra", ["name"], unique=True)
"""),
    ("m2", "m1", """
op.create_table(
    "ticket",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("user.id", name="fk_ticket_user")),
    sa.Column("state", sa.Enum("open", "closed", name="ticket_state"), server_default="open"),
)
""", """
with op.batch_alter_table("group_extra") as b:
    b.add_column(sa.Column("size", sa.Integer, nullable=False, server_default="0"))
"""),
]


def test_multidb_every_bind_is_squashed(
    backend: str, make_database: DatabaseFactory, make_project: Callable[..., Project]
) -> None:
    """With binds, the new revision has each database's schema in its upgrade_<bind>(); both are exact."""
    project = make_project(make_database(), binds={"extra": make_database()}, multidb=True)
    for name, down, default, extra in MULTIDB_HISTORY:
        (project.versions / f"{name}.py").write_text(MULTIDB_REVISION.format(
            message=name, rev=name, down=down,
            default=textwrap.indent(textwrap.dedent(default).strip(), "    "),
            extra=textwrap.indent(textwrap.dedent(extra).strip(), "    "),
        ))
    project.cli("upgrade")
    with project.app.app_context():
        expected = {bind: reflect_url(e.url) for bind, e in project.db.engines.items()}

    result = project.squash()

    assert sorted(result.databases) == ["bind 'extra'", "default database"]
    upgrade_default = result.source.split("def upgrade_():")[1].split("def downgrade_():")[0]
    upgrade_extra = result.source.split("def upgrade_extra():")[1].split("def downgrade_extra():")[0]
    assert "op.create_table('ticket'" in upgrade_default and "group_extra" not in upgrade_default
    assert "op.create_table('group_extra'" in upgrade_extra and "ticket" not in upgrade_extra
    fresh = make_project(make_database(), binds={"extra": make_database()})
    fresh.cli("upgrade")
    with fresh.app.app_context():
        assert {bind: reflect_url(e.url) for bind, e in fresh.db.engines.items()} == expected


def reflect_url(url: sa.URL) -> dict[tuple[str, str, str, str], str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return reflect(conn, exclude={(None, "alembic_version")})
    finally:
        engine.dispose()


def test_real_flask_command(database: Database, make_database: DatabaseFactory, tmp_path: Path) -> None:
    """The real entry point: squash with a message, then a fresh database upgrades in one step."""
    write_app(tmp_path)
    assert run_flask(tmp_path, "db", "init", url=database.url).returncode == 0
    write_history(tmp_path / "migrations" / "versions", 6)
    assert run_flask(tmp_path, "db", "upgrade", url=database.url).returncode == 0

    result = run_flask(tmp_path, "db", "squash", "-m", "baseline", url=database.url)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Squashed 6 revisions, from base (r01) to r06, into one revision r06 ")
    assert "  New file: migrations/versions/r06_squashed.py\n" in result.stdout
    source = (tmp_path / "migrations" / "versions" / "r06_squashed.py").read_text()
    assert source.startswith('"""baseline\n')
    fresh = make_database()
    upgrade = run_flask(tmp_path, "db", "upgrade", url=fresh.url)
    assert upgrade.returncode == 0, upgrade.stderr
    assert fresh.versions() == {"r06"} and "team_id" in fresh.column_names("user")
    again = run_flask(tmp_path, "db", "squash", url=database.url)
    assert again.returncode == 1
    assert again.stderr == "Error: r06 is the first revision: there is nothing to squash.\n"
