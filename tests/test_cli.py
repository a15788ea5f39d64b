"""Every ``flask db`` command and option, through the Flask CLI test runner.

Each test runs on SQLite, PostgreSQL and MariaDB (unless it only makes sense on
one) against a fresh database, and checks what the command did to that
database, to the migrations folder, or to ``env.py``'s view of the world.
"""

from __future__ import annotations

import json
import re
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner

from conftest import SERVER_URLS, Database, create_app
from flask_migrate import Migrate

# -- helpers ------------------------------------------------------------------------


def invoke(runner: FlaskCliRunner, *args: str, **kwargs: Any) -> Result:
    """Run ``flask <args>``; it must succeed."""
    result = runner.invoke(args=list(args), **kwargs)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def fail(runner: FlaskCliRunner, *args: str, **kwargs: Any) -> str:
    """Run ``flask <args>``; it must fail cleanly. Returns the error message."""
    result = runner.invoke(args=list(args), **kwargs)
    assert result.exit_code == 1, (result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0][len("Error: "):]


def execute(database: Database, sql: str) -> None:
    """Run a statement on the test database, committed."""
    engine = database.engine()
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
    finally:
        engine.dispose()


def version_file(migrations: Path, rev_id: str) -> Path:
    """The revision file of ``rev_id``, wherever under the folder it was written."""
    [path] = migrations.rglob(f"{rev_id}_*.py")
    return path


def add_table(path: Path, table: str) -> None:
    """Make the (empty) revision file at ``path`` create and drop ``table``."""
    source = path.read_text()
    source = source.replace(
        "def upgrade():\n    pass",
        f"def upgrade():\n    op.create_table('{table}', "
        "sa.Column('id', sa.Integer(), primary_key=True))",
    )
    source = source.replace(
        "def downgrade():\n    pass", f"def downgrade():\n    op.drop_table('{table}')"
    )
    path.write_text(source)


def new_revision(
    runner: FlaskCliRunner, migrations: Path, rev_id: str, *options: str,
    table: str | None = None,
) -> Path:
    """``flask db revision`` with a fixed id; optionally creating ``table``."""
    invoke(runner, "db", "revision", "--rev-id", rev_id, "-m", f"step {rev_id}", *options)
    path = version_file(migrations, rev_id)
    if table is not None:
        add_table(path, table)
    return path


def linear_history(runner: FlaskCliRunner, migrations: Path) -> None:
    """``aaa`` (creates t_aaa) <- ``bbb`` (creates t_bbb) <- ``ccc`` (creates t_ccc)."""
    invoke(runner, "db", "init")
    for rev_id in ("aaa", "bbb", "ccc"):
        new_revision(runner, migrations, rev_id, table=f"t_{rev_id}")


def two_heads(runner: FlaskCliRunner, migrations: Path) -> None:
    """``aaa`` with two children, ``bbb`` and ``ccc``: two heads."""
    invoke(runner, "db", "init")
    new_revision(runner, migrations, "aaa", table="t_aaa")
    new_revision(runner, migrations, "bbb", table="t_bbb")
    new_revision(runner, migrations, "ccc", "--head", "aaa", "--splice", table="t_ccc")


RECORDER = """
import json as _json
import pathlib as _pathlib
_pathlib.Path(__file__).with_name("record.json").write_text(_json.dumps({
    "x": context.get_x_argument(),
    "x_dict": context.get_x_argument(as_dictionary=True),
    "tag": context.get_tag_argument(),
    "option": config.get_main_option("fm_test_option"),
}))
"""


def install_recorder(migrations: Path) -> Path:
    """Make ``env.py`` record what it was given (-x, --tag, an ini option)."""
    env = migrations / "env.py"
    source = env.read_text()
    anchor = "config = context.config\n"
    assert anchor in source
    env.write_text(source.replace(anchor, anchor + RECORDER, 1))
    return migrations / "record.json"


def read_record(record: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(record.read_text())
    record.unlink()  # so that a run that does not reach env.py cannot pass
    return data


#: For commands that only read or write the migrations folder: one backend is enough.
FILES_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

CREATE_USER = re.compile(r'CREATE TABLE ["`]?user["`]? \(')


def insert_version(rev: str) -> re.Pattern[str]:
    return re.compile(rf"INSERT INTO alembic_version \(version_num\) VALUES \('{rev}'\)")


@pytest.fixture
def make_app(database: Database, migrations: Path) -> Iterator[Callable[..., tuple[Flask, Migrate]]]:
    """More apps on the test's database and migrations folder (other models, options)."""
    made: list[tuple[Flask, Any]] = []

    def make(models: str = "user", **kwargs: Any) -> tuple[Flask, Migrate]:
        app, db, migrate = create_app(database.url, migrations, models=models, **kwargs)
        made.append((app, db))
        return app, migrate

    yield make
    for app, db in made:
        with app.app_context():
            db.engine.dispose()


# -- history, heads, branches, show, current ------------------------------------------


@FILES_ONLY
def test_history_lists_newest_first(runner: FlaskCliRunner, migrations: Path) -> None:
    """``history`` shows every revision, newest first, with parents and messages."""
    linear_history(runner, migrations)
    lines = invoke(runner, "db", "history").stdout.splitlines()
    assert lines == [
        "bbb -> ccc (head), step ccc",
        "aaa -> bbb, step bbb",
        "<base> -> aaa, step aaa",
    ]


@FILES_ONLY
def test_history_range(runner: FlaskCliRunner, migrations: Path) -> None:
    """``history -r start:end`` limits the listing, with open ends allowed."""
    linear_history(runner, migrations)
    out = invoke(runner, "db", "history", "-r", "aaa:bbb").stdout
    assert "-> bbb" in out and "-> aaa" in out and "ccc" not in out
    out = invoke(runner, "db", "history", "-r", "bbb:").stdout
    assert "-> ccc" in out and "-> bbb" in out and "<base> -> aaa" not in out
    out = invoke(runner, "db", "history", "--rev-range", ":aaa").stdout
    assert out.splitlines() == ["<base> -> aaa, step aaa"]


@FILES_ONLY
def test_history_verbose(runner: FlaskCliRunner, migrations: Path) -> None:
    """``history -v`` shows each revision's id, parent, file path and full message."""
    linear_history(runner, migrations)
    out = invoke(runner, "db", "history", "-v").stdout
    assert "Rev: ccc (head)" in out
    assert "Parent: bbb" in out
    assert f"Path: {version_file(migrations, 'ccc')}" in out
    assert "Revision ID: aaa" in out


def test_history_indicates_current(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``history -i`` marks the revision the database is at, and only that one."""
    linear_history(runner, migrations)
    invoke(runner, "db", "upgrade", "bbb")
    assert database.versions() == {"bbb"}
    lines = invoke(runner, "db", "history", "-i").stdout.splitlines()
    assert [line for line in lines if "(current)" in line] == ["aaa -> bbb (current), step bbb"]
    assert "(current)" not in invoke(runner, "db", "history").stdout


def test_history_range_from_current(runner: FlaskCliRunner, migrations: Path) -> None:
    """``history -r current:`` lists what the database has not applied yet, and current."""
    linear_history(runner, migrations)
    invoke(runner, "db", "upgrade", "bbb")
    out = invoke(runner, "db", "history", "-r", "current:").stdout
    assert "-> ccc" in out and "-> bbb" in out and "-> aaa" not in out


@FILES_ONLY
def test_heads_and_verbose(runner: FlaskCliRunner, migrations: Path) -> None:
    """``heads`` lists each head; ``-v`` adds the parent, path and message."""
    two_heads(runner, migrations)
    assert invoke(runner, "db", "heads").stdout.splitlines() == ["bbb (head)", "ccc (head)"]
    out = invoke(runner, "db", "heads", "-v").stdout
    assert "Rev: bbb (head)" in out and "Rev: ccc (head)" in out
    assert out.count("Parent: aaa") == 2
    assert f"Path: {version_file(migrations, 'ccc')}" in out


@FILES_ONLY
def test_heads_resolve_dependencies(runner: FlaskCliRunner, migrations: Path) -> None:
    """``heads --resolve-dependencies`` drops a head that another head depends on."""
    invoke(runner, "db", "init")
    new_revision(runner, migrations, "a1")
    new_revision(runner, migrations, "b1", "--head", "base", "--branch-label", "other")
    a2 = new_revision(runner, migrations, "a2", "--head", "a1")
    a2.write_text(a2.read_text().replace("depends_on = None", "depends_on = 'b1'"))
    out = invoke(runner, "db", "heads").stdout
    assert "a2 (head)" in out and "b1 (other)" in out
    out = invoke(runner, "db", "heads", "--resolve-dependencies").stdout
    assert out.splitlines() == ["a2 (head)"]


@FILES_ONLY
def test_branches_and_verbose(runner: FlaskCliRunner, migrations: Path) -> None:
    """``branches`` shows the branch point and its children; ``-v`` adds details."""
    two_heads(runner, migrations)
    out = invoke(runner, "db", "branches").stdout
    assert out.splitlines()[:3] == [
        "aaa (branchpoint)",
        "    -> bbb (head)",
        "    -> ccc (head)",
    ]
    out = invoke(runner, "db", "branches", "-v").stdout
    assert "Rev: aaa (branchpoint)" in out
    assert re.search(r"Branches into: (bbb, ccc|ccc, bbb)\n", out)  # Alembic's set order
    assert "-> bbb (head), step bbb" in out and "-> ccc (head), step ccc" in out


@FILES_ONLY
def test_branches_without_branch_points_prints_nothing(
    runner: FlaskCliRunner, migrations: Path
) -> None:
    """A linear history has no branch points."""
    linear_history(runner, migrations)
    assert invoke(runner, "db", "branches").stdout == ""


def test_show_revision_head_and_current(runner: FlaskCliRunner, migrations: Path) -> None:
    """``show`` describes a named revision, ``head`` and the database's ``current``."""
    linear_history(runner, migrations)
    invoke(runner, "db", "upgrade", "aaa")
    out = invoke(runner, "db", "show", "bbb").stdout
    assert out.startswith("Rev: bbb\n") and "Parent: aaa" in out
    assert f"Path: {version_file(migrations, 'bbb')}" in out
    assert invoke(runner, "db", "show").stdout.startswith("Rev: ccc (head)\n")
    assert invoke(runner, "db", "show", "head").stdout.startswith("Rev: ccc (head)\n")
    assert invoke(runner, "db", "show", "current").stdout.startswith("Rev: aaa\n")


def test_current(runner: FlaskCliRunner, migrations: Path, database: Database) -> None:
    """``current`` prints nothing at base and the revision once upgraded."""
    linear_history(runner, migrations)
    assert invoke(runner, "db", "current").stdout == ""
    invoke(runner, "db", "upgrade")
    assert invoke(runner, "db", "current").stdout.splitlines() == ["ccc (head)"]
    invoke(runner, "db", "downgrade")
    assert invoke(runner, "db", "current").stdout.splitlines() == ["bbb"]
    assert database.versions() == {"bbb"}


def test_current_verbose_names_the_database(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``current -v`` names the database and describes the revision."""
    linear_history(runner, migrations)
    invoke(runner, "db", "upgrade", "bbb")
    out = invoke(runner, "db", "current", "-v").stdout
    url = sa.make_url(database.url).render_as_string(hide_password=True)
    # Flask-SQLAlchemy may add query options (MariaDB: ?charset=utf8mb4)
    assert re.match(rf"Current revision\(s\) for {re.escape(url)}[?:]", out)
    assert "Rev: bbb" in out and "Parent: aaa" in out


PASSWORD = "s3cr3t-p@ss:w/rd"


@pytest.fixture
def password_url(backend: str, database: Database) -> Iterator[str]:
    """A URL for the test database, as a user that has a password."""
    assert backend != "sqlite", "SQLite URLs have no password"
    user = f"fm_user_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    in_db = sa.create_engine(database.url, isolation_level="AUTOCOMMIT")
    name = sa.make_url(database.url).database
    quoted = PASSWORD.replace("'", "''")
    try:
        if backend == "postgresql":
            with admin.connect() as conn:
                conn.execute(sa.text(f"CREATE ROLE {user} LOGIN PASSWORD '{quoted}'"))
                conn.execute(sa.text(f"GRANT ALL ON DATABASE {name} TO {user}"))
            with in_db.connect() as conn:
                conn.execute(sa.text(f"GRANT ALL ON SCHEMA public TO {user}"))
        else:
            with admin.connect() as conn:
                conn.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{quoted}'"))
                conn.execute(sa.text(f"GRANT ALL ON {name}.* TO '{user}'@'%'"))
        yield sa.make_url(database.url).set(username=user, password=PASSWORD).render_as_string(
            hide_password=False
        )
    finally:
        if backend == "postgresql":
            with in_db.connect() as conn:
                conn.execute(sa.text(f"DROP OWNED BY {user}"))
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP ROLE {user}"))
        else:
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
        in_db.dispose()
        admin.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_current_verbose_hides_the_password(
    password_url: str, migrations: Path, database: Database
) -> None:
    """``current -v`` prints the database URL without its password, in any spelling."""
    app, db, _ = create_app(password_url, migrations)
    runner = app.test_cli_runner()
    try:
        linear_history(runner, migrations)
        invoke(runner, "db", "upgrade", "aaa")
        assert database.versions() == {"aaa"}
        out = invoke(runner, "db", "current", "-v").output
    finally:
        with app.app_context():
            db.engine.dispose()
    safe = sa.make_url(password_url).render_as_string(hide_password=True)
    assert f"Current revision(s) for {safe}" in out
    assert ":***@" in out
    for form in (PASSWORD, "s3cr3t", "p%40ss", "w%2Frd"):
        assert form not in out


# -- branches, merge -------------------------------------------------------------------


def test_upgrade_with_two_heads_fails_until_merged(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """Two heads make ``upgrade`` fail cleanly; ``merge heads`` joins them."""
    two_heads(runner, migrations)
    message = fail(runner, "db", "upgrade")
    assert "Multiple head revisions" in message
    assert "t_aaa" not in database.table_names()

    invoke(
        runner, "db", "merge", "heads", "-m", "join the heads", "--rev-id", "mmm",
        "--branch-label", "mainline",
    )
    merge_file = version_file(migrations, "mmm")
    assert merge_file.name == "mmm_join_the_heads.py"
    source = merge_file.read_text()
    assert "down_revision = ('bbb', 'ccc')" in source
    assert "branch_labels = ('mainline',)" in source
    assert invoke(runner, "db", "heads").stdout.splitlines() == ["mmm (mainline) (head)"]

    invoke(runner, "db", "upgrade")
    assert database.versions() == {"mmm"}
    assert {"t_aaa", "t_bbb", "t_ccc"} <= database.table_names()
    assert "(mergepoint)" in invoke(runner, "db", "current").stdout
    invoke(runner, "db", "upgrade", "mainline@head")  # the label names the merge


def test_upgrade_heads_applies_both_branches(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``upgrade heads`` applies both branches; the version table holds both heads."""
    two_heads(runner, migrations)
    invoke(runner, "db", "upgrade", "heads")
    assert database.versions() == {"bbb", "ccc"}
    assert invoke(runner, "db", "current").stdout.splitlines() == ["bbb (head)", "ccc (head)"]


def test_merge_named_revisions(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``merge REV REV`` merges the named revisions, with a generated id."""
    two_heads(runner, migrations)
    invoke(runner, "db", "upgrade", "bbb")
    invoke(runner, "db", "merge", "bbb", "ccc", "-m", "merge")
    [merge_file] = [
        p for p in (migrations / "versions").glob("*_merge.py")
    ]
    assert "down_revision = ('bbb', 'ccc')" in merge_file.read_text()
    invoke(runner, "db", "upgrade")
    assert {"t_aaa", "t_bbb", "t_ccc"} <= database.table_names()
    assert len(database.versions()) == 1


@FILES_ONLY
def test_merge_without_revisions_fails(runner: FlaskCliRunner, migrations: Path) -> None:
    """``merge`` with nothing to merge says what to give it."""
    two_heads(runner, migrations)
    assert "merge heads" in fail(runner, "db", "merge")


# -- revision options ---------------------------------------------------------------------


@FILES_ONLY
def test_revision_message_and_rev_id(runner: FlaskCliRunner, migrations: Path) -> None:
    """``revision -m --rev-id`` names the file and writes the message and the id."""
    invoke(runner, "db", "init")
    out = invoke(runner, "db", "revision", "-m", "Add things", "--rev-id", "abc123").stdout
    path = migrations / "versions" / "abc123_add_things.py"
    assert path.is_file()
    assert "Generating" in out and str(path) in out
    source = path.read_text()
    assert source.startswith('"""Add things')
    assert "revision = 'abc123'" in source and "down_revision = None" in source
    invoke(runner, "db", "revision", "--message", "second", "--rev-id", "def456")
    assert "down_revision = 'abc123'" in version_file(migrations, "def456").read_text()


def test_revision_branch_label_and_head(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``--branch-label`` starts a labelled branch; ``--head label@head`` extends it."""
    invoke(runner, "db", "init")
    new_revision(runner, migrations, "m1", table="t_m1")
    new_revision(runner, migrations, "f1", "--head", "base", "--branch-label", "feature",
                 table="t_f1")
    f2 = new_revision(runner, migrations, "f2", "--head", "feature@head", table="t_f2")
    assert "down_revision = 'f1'" in f2.read_text()
    assert "branch_labels = ('feature',)" in version_file(migrations, "f1").read_text()
    assert invoke(runner, "db", "heads").stdout.splitlines() == ["f2 (feature) (head)", "m1 (head)"]

    invoke(runner, "db", "upgrade", "feature@head")
    assert database.versions() == {"f2"}
    tables = database.table_names()
    assert {"t_f1", "t_f2"} <= tables and "t_m1" not in tables


@FILES_ONLY
def test_revision_head_needs_splice_for_a_non_head(
    runner: FlaskCliRunner, migrations: Path
) -> None:
    """``--head`` on a revision that is not a head fails unless ``--splice`` is given."""
    linear_history(runner, migrations)
    assert "splice" in fail(runner, "db", "revision", "--head", "aaa", "--rev-id", "xxx")
    assert not list(migrations.rglob("xxx_*.py"))
    path = new_revision(runner, migrations, "xxx", "--head", "aaa", "--splice")
    assert "down_revision = 'aaa'" in path.read_text()
    assert invoke(runner, "db", "heads").stdout.splitlines() == ["ccc (head)", "xxx (head)"]


def test_revision_version_path(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``--version-path`` writes the file into another configured version location."""
    invoke(runner, "db", "init")
    extra = migrations / "extra"
    extra.mkdir()
    ini = migrations / "alembic.ini"
    ini.write_text(
        ini.read_text().replace(
            "[alembic]\n",
            "[alembic]\npath_separator = space\n"
            "version_locations = %(here)s/versions %(here)s/extra\n",
            1,
        )
    )
    # with several locations, Alembic needs to be told where each file goes
    new_revision(runner, migrations, "v1", "--version-path", str(migrations / "versions"),
                 table="t_v1")
    new_revision(runner, migrations, "e1", "--version-path", str(extra), table="t_e1")
    assert version_file(migrations, "v1").parent == migrations / "versions"
    assert version_file(migrations, "e1").parent == extra
    assert "down_revision = 'v1'" in version_file(migrations, "e1").read_text()
    invoke(runner, "db", "upgrade")
    assert database.versions() == {"e1"}
    assert {"t_v1", "t_e1"} <= database.table_names()


@FILES_ONLY
def test_revision_version_path_must_be_configured(
    runner: FlaskCliRunner, migrations: Path, tmp_path: Path
) -> None:
    """A ``--version-path`` that is not a configured version location is refused."""
    invoke(runner, "db", "init")
    (tmp_path / "elsewhere").mkdir()
    fail(runner, "db", "revision", "--version-path", str(tmp_path / "elsewhere"))
    assert not list((tmp_path / "elsewhere").iterdir())


def test_revision_autogenerate(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``revision --autogenerate`` compares models and database; empty diffs write nothing."""
    invoke(runner, "db", "init")
    invoke(runner, "db", "revision", "--autogenerate", "-m", "auto", "--rev-id", "auto1")
    assert "op.create_table('user'" in version_file(migrations, "auto1").read_text()
    invoke(runner, "db", "upgrade")
    assert "user" in database.table_names()
    out = invoke(runner, "db", "revision", "--autogenerate", "--rev-id", "auto2").stdout
    assert "No changes in schema detected." in out
    assert not list(migrations.rglob("auto2_*.py"))


def test_revision_without_autogenerate_is_empty(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """Plain ``revision`` writes an empty script and does not touch the database."""
    invoke(runner, "db", "init")
    path = new_revision(runner, migrations, "r1")
    assert "op.create_table" not in path.read_text()
    assert "def upgrade():\n    pass" in path.read_text()
    assert database.table_names() == set()


def test_migrate_revision_options(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``migrate`` takes the revision options: ``-m``, ``--rev-id``, ``--branch-label``, ``--head``."""
    invoke(runner, "db", "init")
    new_revision(runner, migrations, "r1")
    invoke(runner, "db", "upgrade")  # autogenerate needs the database at the heads
    invoke(
        runner, "db", "migrate", "--message", "users here", "--rev-id", "mg1",
        "--branch-label", "users", "--head", "base",
    )
    path = version_file(migrations, "mg1")
    assert path.name == "mg1_users_here.py"
    source = path.read_text()
    assert "down_revision = None" in source and "branch_labels = ('users',)" in source
    assert "op.create_table('user'" in source
    invoke(runner, "db", "upgrade", "users@head")
    assert database.versions() == {"r1", "mg1"}
    assert "user" in database.table_names()


def test_migrate_splice(runner: FlaskCliRunner, migrations: Path) -> None:
    """``migrate --head REV --splice`` builds on a revision that is not a head."""
    linear_history(runner, migrations)
    invoke(runner, "db", "upgrade")  # autogenerate needs the database at the heads
    assert "splice" in fail(runner, "db", "migrate", "--head", "aaa", "--rev-id", "sp1")
    invoke(runner, "db", "migrate", "--head", "aaa", "--splice", "--rev-id", "sp1")
    assert "down_revision = 'aaa'" in version_file(migrations, "sp1").read_text()


def test_migrate_sql_is_refused(runner: FlaskCliRunner, migrations: Path) -> None:
    """``migrate --sql`` makes no sense (autogenerate needs the database): a clean error."""
    invoke(runner, "db", "init")
    fail(runner, "db", "migrate", "--sql")
    assert not list((migrations / "versions").iterdir())


# -- offline SQL ---------------------------------------------------------------------------


def migrated_user(runner: FlaskCliRunner, migrations: Path, database: Database) -> None:
    """init; ``u1`` creates the user table (autogenerated); ``u2`` is empty."""
    invoke(runner, "db", "init")
    invoke(runner, "db", "migrate", "-m", "users", "--rev-id", "u1")
    new_revision(runner, migrations, "u2")
    # autogenerate created the (empty) version table, as Alembic always does
    assert database.table_names() == {"alembic_version"}


def test_upgrade_sql_prints_and_changes_nothing(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``upgrade --sql`` prints the DDL and version inserts and leaves the database alone."""
    migrated_user(runner, migrations, database)
    out = invoke(runner, "db", "upgrade", "--sql").stdout
    assert "CREATE TABLE alembic_version" in out
    assert CREATE_USER.search(out)
    assert insert_version("u1").search(out)
    assert "-- Running upgrade u1 -> u2" in out
    assert "UPDATE alembic_version SET version_num='u2'" in out
    assert database.table_names() == {"alembic_version"}
    assert database.versions() == set()


def test_upgrade_sql_range(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``upgrade --sql start:end`` prints only the steps after ``start``."""
    migrated_user(runner, migrations, database)
    out = invoke(runner, "db", "upgrade", "--sql", "u1:u2").stdout
    assert "-- Running upgrade u1 -> u2" in out
    assert "UPDATE alembic_version SET version_num='u2'" in out
    assert not CREATE_USER.search(out)
    assert "CREATE TABLE alembic_version" not in out
    out = invoke(runner, "db", "upgrade", "--sql", ":u1").stdout
    assert CREATE_USER.search(out) and "u2" not in out
    assert database.table_names() == {"alembic_version"}
    assert database.versions() == set()


def test_upgrade_range_without_sql_fails(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """A revision range is for ``--sql`` only."""
    migrated_user(runner, migrations, database)
    assert "--sql" in fail(runner, "db", "upgrade", "u1:u2")


def test_downgrade_sql(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``downgrade --sql`` defaults to ``head:-1``; ``rev:base`` reverts to base; no DB change."""
    migrated_user(runner, migrations, database)
    invoke(runner, "db", "upgrade")
    out = invoke(runner, "db", "downgrade", "--sql").stdout
    assert "-- Running downgrade u2 -> u1" in out
    assert "UPDATE alembic_version SET version_num='u1'" in out
    assert "DROP TABLE" not in out

    out = invoke(runner, "db", "downgrade", "--sql", "u1:base").stdout
    assert "-- Running downgrade u1 -> " in out
    assert re.search(r'DROP TABLE ["`]?user["`]?;', out)
    assert "DELETE FROM alembic_version WHERE alembic_version.version_num = 'u1'" in out
    assert "u2" not in out

    assert "user" in database.table_names()
    assert database.versions() == {"u2"}


def test_downgrade_sql_needs_a_range(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``downgrade --sql REV`` without a start revision fails cleanly."""
    migrated_user(runner, migrations, database)
    assert "range" in fail(runner, "db", "downgrade", "--sql", "u1")


def test_stamp_sql(runner: FlaskCliRunner, migrations: Path, database: Database) -> None:
    """``stamp --sql`` prints the version table DDL and insert only."""
    migrated_user(runner, migrations, database)
    out = invoke(runner, "db", "stamp", "--sql").stdout
    assert "CREATE TABLE alembic_version" in out
    assert insert_version("u2").search(out)
    assert not CREATE_USER.search(out)
    out = invoke(runner, "db", "stamp", "--sql", "u1").stdout
    assert insert_version("u1").search(out)
    assert database.versions() == set()


def test_sql_tag_and_x_arg_reach_env(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``--tag`` and ``-x`` reach a custom env.py in ``--sql`` mode."""
    migrated_user(runner, migrations, database)
    record = install_recorder(migrations)
    invoke(runner, "db", "upgrade", "--sql", "--tag", "release-7", "-x", "k=v")
    assert read_record(record)["tag"] == "release-7"
    invoke(runner, "db", "downgrade", "--sql", "--tag", "back", "u2:u1")
    assert read_record(record)["tag"] == "back"
    invoke(runner, "db", "stamp", "--sql", "--tag", "stamped")
    assert read_record(record)["tag"] == "stamped"


def test_tag_reaches_env_online(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``--tag`` reaches env.py for online upgrades too; without it, the tag is None."""
    migrated_user(runner, migrations, database)
    record = install_recorder(migrations)
    invoke(runner, "db", "upgrade", "--tag", "online")
    assert read_record(record)["tag"] == "online"
    assert database.versions() == {"u2"}
    invoke(runner, "db", "current")
    assert read_record(record)["tag"] is None


# -- stamp ---------------------------------------------------------------------------------


def test_stamp_head_base_and_revision(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``stamp`` sets the version table without running any migration."""
    linear_history(runner, migrations)
    invoke(runner, "db", "stamp")
    assert database.versions() == {"ccc"}
    assert "t_aaa" not in database.table_names()
    invoke(runner, "db", "stamp", "bbb")
    assert database.versions() == {"bbb"}
    invoke(runner, "db", "stamp", "base")
    assert database.versions() == set()
    invoke(runner, "db", "stamp", "head")
    assert database.versions() == {"ccc"}
    assert not {"t_aaa", "t_bbb", "t_ccc"} & database.table_names()


def test_stamp_purge_replaces_unknown_revision(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """With an unknown revision in the table, ``stamp`` fails and ``stamp --purge`` fixes it."""
    linear_history(runner, migrations)
    invoke(runner, "db", "upgrade", "aaa")
    execute(database, "UPDATE alembic_version SET version_num = 'deadbeef'")
    assert "deadbeef" in fail(runner, "db", "stamp", "head")
    assert "deadbeef (not in the migrations folder)" in invoke(runner, "db", "current").stdout
    assert database.versions() == {"deadbeef"}
    invoke(runner, "db", "stamp", "--purge", "bbb")
    assert database.versions() == {"bbb"}
    invoke(runner, "db", "upgrade")
    assert database.versions() == {"ccc"}
    assert "t_ccc" in database.table_names()


# -- check ---------------------------------------------------------------------------------


def test_check(
    runner: FlaskCliRunner, migrations: Path, database: Database,
    make_app: Callable[..., tuple[Flask, Migrate]],
) -> None:
    """``check`` fails while the models are ahead of the migrations and passes once migrated."""
    invoke(runner, "db", "init")
    assert "New upgrade operations detected" in fail(runner, "db", "check")
    invoke(runner, "db", "migrate", "-m", "users")
    assert "not up to date" in fail(runner, "db", "check")
    invoke(runner, "db", "upgrade")
    out = invoke(runner, "db", "check").stdout
    assert "No new upgrade operations detected." in out

    changed, _ = make_app(models="user+email")
    changed_runner = changed.test_cli_runner()
    message = fail(changed_runner, "db", "check")
    assert "add_column" in message and "email" in message
    assert "email" not in database.column_names("user")  # check changes nothing
    invoke(changed_runner, "db", "migrate", "-m", "email")
    invoke(changed_runner, "db", "upgrade")
    assert "email" in database.column_names("user")
    invoke(changed_runner, "db", "check")


# -- -x / --x-arg -----------------------------------------------------------------------------

X_COMMANDS: list[tuple[str, ...]] = [
    ("upgrade",),
    ("current",),
    ("stamp", "head"),
    ("check",),
    ("show", "current"),
    ("migrate",),
    ("revision", "--autogenerate"),
    ("edit", "current"),
    ("downgrade",),
]


@pytest.mark.parametrize(
    ("group_x", "command_x", "expected"),
    [
        (["-x", "a=1"], [], ["a=1"]),
        ([], ["-x", "a=1"], ["a=1"]),
        (["--x-arg", "a=1"], ["--x-arg", "b=2", "-x", "c=3"], ["a=1", "b=2", "c=3"]),
    ],
    ids=["group", "command", "both"],
)
def test_x_arg_reaches_env(
    runner: FlaskCliRunner, migrations: Path, tmp_path: Path, database: Database,
    group_x: list[str], command_x: list[str], expected: list[str],
) -> None:
    """``-x`` on the group and on each command reaches env.py once each, in order."""
    migrated_user(runner, migrations, database)
    invoke(runner, "db", "upgrade")
    record = install_recorder(migrations)
    editor = write_editor(tmp_path)
    for command in X_COMMANDS:
        invoke(runner, "db", *group_x, *command, *command_x, env={"EDITOR": str(editor)})
        data = read_record(record)
        assert data["x"] == expected, command
        assert data["x_dict"] == dict(item.split("=") for item in expected), command


def test_no_x_arg_gives_env_an_empty_list(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """Without ``-x``, env.py sees no arguments (none left over from an earlier command)."""
    migrated_user(runner, migrations, database)
    record = install_recorder(migrations)
    invoke(runner, "db", "-x", "first=1", "upgrade")
    assert read_record(record)["x"] == ["first=1"]
    invoke(runner, "db", "current")
    assert read_record(record)["x"] == []


def test_x_arg_from_environment(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """``FLASK_DB_X_ARG`` gives the group's ``-x`` values (space separated)."""
    migrated_user(runner, migrations, database)
    record = install_recorder(migrations)
    invoke(runner, "db", "current", env={"FLASK_DB_X_ARG": "a=1 b=2"}, auto_envvar_prefix="FLASK")
    assert read_record(record)["x"] == ["a=1", "b=2"]


# -- -d / --directory, command name, list-templates ----------------------------------------------


def test_directory_on_the_group(
    runner: FlaskCliRunner, migrations: Path, tmp_path: Path, database: Database
) -> None:
    """``db -d DIR`` makes every command use that folder."""
    folder = tmp_path / "custom folder"
    invoke(runner, "db", "-d", str(folder), "init")
    assert (folder / "env.py").is_file()
    invoke(runner, "db", "--directory", str(folder), "migrate", "--rev-id", "d1")
    assert version_file(folder, "d1").parent == folder / "versions"
    invoke(runner, "db", "-d", str(folder), "upgrade")
    assert database.versions() == {"d1"}
    assert "d1 (head)" in invoke(runner, "db", "-d", str(folder), "current").stdout
    assert "d1" in invoke(runner, "db", "-d", str(folder), "history").stdout
    assert not migrations.exists()
    assert "No migrations folder" in fail(runner, "db", "current")


def test_directory_on_commands(
    runner: FlaskCliRunner, migrations: Path, tmp_path: Path, database: Database
) -> None:
    """``db COMMAND -d DIR`` uses that folder for that command."""
    folder = str(tmp_path / "other")
    invoke(runner, "db", "init", "-d", folder)
    invoke(runner, "db", "migrate", "-d", folder, "--rev-id", "d1")
    new_revision(runner, Path(folder), "d2", "-d", folder, table="t_d2")
    invoke(runner, "db", "upgrade", "--directory", folder)
    assert database.versions() == {"d2"}
    assert {"user", "t_d2"} <= database.table_names()
    for command in (["current"], ["heads"], ["history"], ["show", "d2"]):
        assert "d2" in invoke(runner, "db", *command, "-d", folder).stdout, command
    invoke(runner, "db", "downgrade", "-d", folder, "base")
    assert database.versions() == set()
    invoke(runner, "db", "stamp", "-d", folder, "d1")
    assert database.versions() == {"d1"}
    assert not migrations.exists()


@FILES_ONLY
def test_command_directory_wins_over_group_directory(
    runner: FlaskCliRunner, tmp_path: Path
) -> None:
    """A ``-d`` given to the command takes precedence over the group's."""
    invoke(runner, "db", "-d", str(tmp_path / "group"), "init", "-d", str(tmp_path / "cmd"))
    assert (tmp_path / "cmd" / "env.py").is_file()
    assert not (tmp_path / "group").exists()


def test_directory_from_environment(
    runner: FlaskCliRunner, migrations: Path, tmp_path: Path, database: Database
) -> None:
    """``FLASK_DB_DIRECTORY`` sets the group's ``--directory``."""
    folder = str(tmp_path / "from_env")
    kwargs: dict[str, Any] = {"env": {"FLASK_DB_DIRECTORY": folder}, "auto_envvar_prefix": "FLASK"}
    invoke(runner, "db", "init", **kwargs)
    invoke(runner, "db", "migrate", "--rev-id", "e1", **kwargs)
    invoke(runner, "db", "upgrade", **kwargs)
    assert database.versions() == {"e1"}
    assert (Path(folder) / "env.py").is_file() and not migrations.exists()


def test_migrate_directory_set_on_the_extension(
    make_app: Callable[..., tuple[Flask, Migrate]], migrations: Path, database: Database
) -> None:
    """``Migrate(app, db, directory=...)`` is the default folder of every command."""
    app, migrate = make_app()
    assert migrate.directory == str(migrations)
    runner = app.test_cli_runner()
    invoke(runner, "db", "init")
    invoke(runner, "db", "migrate")
    invoke(runner, "db", "upgrade")
    assert (migrations / "env.py").is_file()
    assert "user" in database.table_names()


def test_command_name(
    make_app: Callable[..., tuple[Flask, Migrate]], migrations: Path, database: Database
) -> None:
    """``Migrate(app, db, command='database')`` names the group ``flask database``."""
    app, _ = make_app(command="database")
    runner = app.test_cli_runner()
    invoke(runner, "database", "init")
    invoke(runner, "database", "migrate", "--rev-id", "c1")
    invoke(runner, "database", "upgrade")
    assert database.versions() == {"c1"}
    result = runner.invoke(args=["db", "current"])
    assert result.exit_code == 2 and "No such command 'db'" in result.output


@FILES_ONLY
def test_list_templates(runner: FlaskCliRunner) -> None:
    """``list-templates`` prints one ``name - synopsis`` line per template, sorted."""
    out = invoke(runner, "db", "list-templates").stdout
    lines = [line for line in out.splitlines() if " - " in line]
    names = [line.split(" - ", 1)[0] for line in lines]
    assert names == sorted(names)
    assert {"flask", "flask-multidb", "aioflask", "aioflask-multidb"} <= set(names)
    assert all(line.split(" - ", 1)[1].strip() for line in lines)
    assert "flask - Single-database configuration for Flask." in lines


# -- configure callbacks and Migrate kwargs ------------------------------------------------------


def test_configure_callbacks_run_in_order(
    make_app: Callable[..., tuple[Flask, Migrate]], migrations: Path
) -> None:
    """``@migrate.configure`` callbacks run in registration order and change the config."""
    app, migrate = make_app()
    calls: list[str] = []

    @migrate.configure
    def first(config: Any) -> Any:
        calls.append("first")
        config.set_main_option("fm_test_option", "first")
        return config

    @migrate.configure
    def second(config: Any) -> Any:
        calls.append("second")
        config.set_main_option(
            "fm_test_option", config.get_main_option("fm_test_option") + "+second"
        )
        return config

    assert first is not None and second is not None  # the decorator returns the function
    runner = app.test_cli_runner()
    invoke(runner, "db", "init")
    record = install_recorder(migrations)
    calls.clear()
    invoke(runner, "db", "current")
    assert calls == ["first", "second"]
    assert read_record(record)["option"] == "first+second"


def test_configure_callback_changes_file_template(
    make_app: Callable[..., tuple[Flask, Migrate]], migrations: Path
) -> None:
    """A configure callback's main option is what Alembic uses (here: the file names)."""
    app, migrate = make_app()

    @migrate.configure
    def file_names(config: Any) -> Any:
        config.set_main_option("file_template", "custom_%%(rev)s_%%(slug)s")
        return config

    runner = app.test_cli_runner()
    invoke(runner, "db", "init")
    invoke(runner, "db", "revision", "-m", "named", "--rev-id", "ft1")
    assert (migrations / "versions" / "custom_ft1_named.py").is_file()


def test_migrate_kwargs_reach_context_configure(
    make_app: Callable[..., tuple[Flask, Migrate]], migrations: Path, database: Database
) -> None:
    """``Migrate(app, db, version_table='my_versions')`` names the version table."""
    app, _ = make_app(version_table="my_versions")
    runner = app.test_cli_runner()
    invoke(runner, "db", "init")
    invoke(runner, "db", "migrate", "--rev-id", "k1")
    invoke(runner, "db", "upgrade")
    tables = database.table_names()
    assert "my_versions" in tables and "alembic_version" not in tables
    assert database.versions("my_versions") == {"k1"}
    assert invoke(runner, "db", "current").stdout.splitlines() == ["k1 (head)"]
    out = invoke(runner, "db", "upgrade", "--sql").stdout
    assert "CREATE TABLE my_versions" in out


def test_init_app_kwargs(database: Database, migrations: Path) -> None:
    """``Migrate()`` then ``init_app(app, db, directory=..., command=..., **kwargs)`` works."""
    app = Flask(f"late_{uuid.uuid4().hex[:6]}")
    app.config["SQLALCHEMY_DATABASE_URI"] = database.url
    from flask_sqlalchemy import SQLAlchemy

    from conftest import define_models

    db = SQLAlchemy(app)
    define_models(db, "user", None)
    Migrate().init_app(app, db, directory=migrations, command="dbx", version_table="late_v")
    runner = app.test_cli_runner()
    try:
        invoke(runner, "dbx", "init")
        invoke(runner, "dbx", "migrate", "--rev-id", "l1")
        invoke(runner, "dbx", "upgrade")
    finally:
        with app.app_context():
            db.engine.dispose()
    assert database.versions("late_v") == {"l1"}


# -- batch mode: dropping a column -----------------------------------------------------------------


def test_drop_column_through_batch_mode(
    runner: FlaskCliRunner, migrations: Path, database: Database,
    make_app: Callable[..., tuple[Flask, Migrate]],
) -> None:
    """Removing a model column autogenerates a batch ``drop_column``; the other data survives."""
    wide, _ = make_app(models="user+email")
    wide_runner = wide.test_cli_runner()
    invoke(wide_runner, "db", "init")
    invoke(wide_runner, "db", "migrate", "-m", "users", "--rev-id", "w1")
    invoke(wide_runner, "db", "upgrade")
    user = quoted_user(database)
    execute(database, f"INSERT INTO {user} (id, name, email) VALUES (1, 'ann', 'a@example.com')")
    execute(database, f"INSERT INTO {user} (id, name, email) VALUES (2, 'bob', NULL)")

    invoke(runner, "db", "migrate", "-m", "drop email", "--rev-id", "n1")
    source = version_file(migrations, "n1").read_text()
    assert "with op.batch_alter_table('user', schema=None) as batch_op:" in source
    assert "batch_op.drop_column('email')" in source
    invoke(runner, "db", "upgrade")
    assert database.column_names("user") == {"id", "name"}
    assert database.scalar(f"SELECT name FROM {user} WHERE id = 1") == "ann"
    assert database.scalar(f"SELECT COUNT(*) FROM {user}") == 2

    invoke(runner, "db", "downgrade")
    assert database.column_names("user") == {"id", "name", "email"}
    assert database.scalar(f"SELECT name FROM {user} WHERE id = 2") == "bob"


def quoted_user(database: Database) -> str:
    """The ``user`` table name, quoted for the backend (it is a reserved word)."""
    return "`user`" if database.backend == "mariadb" else '"user"'


# -- edit ---------------------------------------------------------------------------------------------


def write_editor(tmp_path: Path) -> Path:
    """An ``$EDITOR`` that appends a marker line to the file it is given."""
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\necho "# edited by the test editor" >> "$1"\n')
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    return editor


MARKER = "# edited by the test editor\n"


def test_edit_opens_the_revision_in_editor(
    runner: FlaskCliRunner, migrations: Path, tmp_path: Path
) -> None:
    """``edit`` opens head by default, a named revision, or the current revision."""
    linear_history(runner, migrations)
    env = {"EDITOR": str(write_editor(tmp_path)), "VISUAL": str(write_editor(tmp_path))}
    invoke(runner, "db", "edit", env=env)
    assert version_file(migrations, "ccc").read_text().endswith(MARKER)
    invoke(runner, "db", "edit", "aaa", env=env)
    assert version_file(migrations, "aaa").read_text().endswith(MARKER)
    assert not version_file(migrations, "bbb").read_text().endswith(MARKER)
    invoke(runner, "db", "upgrade", "bbb")
    invoke(runner, "db", "edit", "current", env=env)
    assert version_file(migrations, "bbb").read_text().endswith(MARKER)
    assert version_file(migrations, "ccc").read_text().count(MARKER) == 1


def test_edit_current_at_base_fails(
    runner: FlaskCliRunner, migrations: Path, tmp_path: Path
) -> None:
    """``edit current`` on a database at base fails cleanly, opening nothing."""
    linear_history(runner, migrations)
    env = {"EDITOR": str(write_editor(tmp_path))}
    assert "base" in fail(runner, "db", "edit", "current", env=env)
    assert not any(MARKER in p.read_text() for p in migrations.rglob("*.py"))


# -- init --------------------------------------------------------------------------------------------


@FILES_ONLY
def test_init_default_template(runner: FlaskCliRunner, migrations: Path) -> None:
    """``init`` writes the single-database template and says what it created."""
    out = invoke(runner, "db", "init").stdout
    assert {p.name for p in migrations.iterdir()} >= {
        "alembic.ini", "env.py", "README", "script.py.mako", "versions"
    }
    assert "Single-database" in (migrations / "README").read_text()
    assert f"Generating {migrations / 'env.py'}" in out
    assert not list(migrations.rglob("__init__.py"))


@FILES_ONLY
def test_init_multidb_and_package(runner: FlaskCliRunner, migrations: Path) -> None:
    """``init --multidb --package`` uses the multidb template and writes ``__init__.py`` files."""
    invoke(runner, "db", "init", "--multidb", "--package")
    assert "Multiple-database" in (migrations / "README").read_text()
    assert "bind_names()" in (migrations / "env.py").read_text()
    assert (migrations / "__init__.py").is_file()
    assert (migrations / "versions" / "__init__.py").is_file()


@pytest.mark.parametrize("option", ["-t", "--template"])
@FILES_ONLY
def test_init_template(runner: FlaskCliRunner, migrations: Path, option: str) -> None:
    """``init -t NAME`` uses the named template."""
    invoke(runner, "db", "init", option, "aioflask")
    assert "asyncio" in (migrations / "env.py").read_text()


@FILES_ONLY
def test_init_template_folder(runner: FlaskCliRunner, migrations: Path, tmp_path: Path) -> None:
    """``init -t PATH`` uses a template folder of the user's own."""
    from flask_migrate.config import TEMPLATES_DIR

    mine = tmp_path / "templates" / "mine"
    mine.mkdir(parents=True)
    for item in (TEMPLATES_DIR / "flask").iterdir():
        (mine / item.name).write_bytes(item.read_bytes())
    (mine / "README").write_text("My own template.\n")
    invoke(runner, "db", "init", "-t", str(mine))
    assert (migrations / "README").read_text() == "My own template.\n"


@FILES_ONLY
def test_init_unknown_template(runner: FlaskCliRunner, migrations: Path) -> None:
    """An unknown template name fails cleanly and lists the ones there are."""
    message = fail(runner, "db", "init", "-t", "nosuchtemplate")
    assert "nosuchtemplate" in message and "flask-multidb" in message
    assert not migrations.exists()


# -- tracebacks --------------------------------------------------------------------------------------


@FILES_ONLY
def test_traceback_switch(runner: FlaskCliRunner, migrations: Path) -> None:
    """``db --traceback`` (or ``FLASK_DB_TRACEBACK``) prints the traceback instead of one line."""
    linear_history(runner, migrations)
    result = runner.invoke(args=["db", "--traceback", "show", "nosuchrev"])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "CommandError" in result.stderr
    result = runner.invoke(
        args=["db", "show", "nosuchrev"], env={"FLASK_DB_TRACEBACK": "1"},
        auto_envvar_prefix="FLASK",
    )
    assert "Traceback (most recent call last)" in result.stderr
    assert "nosuchrev" in fail(runner, "db", "show", "nosuchrev")


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("upgrade", "nosuchrev"),
        ("downgrade", "nosuchrev"),
        ("show", "nosuchrev"),
        ("stamp", "nosuchrev"),
        ("edit", "nosuchrev"),
        ("history", "-r", "nosuchrev:"),
        ("revision", "--head", "nosuchrev"),
        ("merge", "aaa", "nosuchrev"),
    ],
    ids=lambda args: "-".join(args),
)
def test_unknown_revision_is_one_error_line(
    runner: FlaskCliRunner, migrations: Path, database: Database, args: tuple[str, ...]
) -> None:
    """An unknown revision gives exit code 1 and one ``Error:`` line, no traceback."""
    linear_history(runner, migrations)
    invoke(runner, "db", "upgrade", "aaa")
    message = fail(runner, "db", *args)
    assert "nosuchrev" in message
    assert database.versions() == {"aaa"}


@pytest.mark.parametrize(
    "args",
    [("upgrade",), ("current",), ("history",), ("heads",), ("migrate",), ("check",)],
    ids=lambda args: "-".join(args),
)
def test_missing_migrations_folder_is_one_error_line(
    runner: FlaskCliRunner, args: tuple[str, ...]
) -> None:
    """Commands run before ``init`` say to run ``flask db init``."""
    assert "flask db init" in fail(runner, "db", *args)


@FILES_ONLY
def test_init_into_non_empty_folder_fails(runner: FlaskCliRunner, migrations: Path) -> None:
    """``init`` refuses a folder that already has files, leaving them alone."""
    invoke(runner, "db", "init")
    env_py = (migrations / "env.py").read_text()
    assert "not empty" in fail(runner, "db", "init")
    assert (migrations / "env.py").read_text() == env_py


def test_error_in_revision_is_one_error_line(
    runner: FlaskCliRunner, migrations: Path, database: Database
) -> None:
    """A revision whose upgrade() raises gives one ``Error:`` line naming the exception."""
    invoke(runner, "db", "init")
    path = new_revision(runner, migrations, "bad")
    path.write_text(path.read_text().replace(
        "def upgrade():\n    pass", "def upgrade():\n    raise ValueError('broken revision')"
    ))
    message = fail(runner, "db", "upgrade")
    assert "ValueError" in message and "broken revision" in message
    # PostgreSQL rolls the version table back too; elsewhere it stays empty
    if "alembic_version" in database.table_names():
        assert database.versions() == set()


# -- how a command exits -----------------------------------------------------------------------------
# cli.py never calls sys.exit(): it raises click's exceptions and lets click end
# the process. So a caller that runs the group with standalone_mode=False gets
# the exception (or the exit status) back instead of a SystemExit.


@FILES_ONLY
def test_failure_is_exactly_one_line_on_stderr(runner: FlaskCliRunner, migrations: Path) -> None:
    """No "Usage:", no doubled "Error: Error:", nothing on stdout: one line and status 1."""
    linear_history(runner, migrations)
    result = runner.invoke(args=["db", "show", "nosuchrev"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert re.fullmatch(r"Error: (?!Error:)[^\n]*nosuchrev[^\n]*\n", result.stderr), result.stderr


@FILES_ONLY
def test_failure_is_a_click_exception(runner: FlaskCliRunner, migrations: Path) -> None:
    """Outside standalone mode a failure surfaces as a ClickException with exit code 1."""
    linear_history(runner, migrations)
    result = runner.invoke(args=["db", "show", "nosuchrev"], standalone_mode=False)
    assert isinstance(result.exception, click.ClickException)
    assert not isinstance(result.exception, click.UsageError)
    assert result.exception.exit_code == 1
    message = result.exception.format_message()
    assert "nosuchrev" in message and not message.startswith("Error")
    assert result.stderr == ""  # click shows it only in standalone mode


@FILES_ONLY
def test_traceback_and_status_check_exit_through_click(
    runner: FlaskCliRunner, migrations: Path
) -> None:
    """``--traceback`` and ``status --check`` end with click's Exit(1), not SystemExit."""
    linear_history(runner, migrations)
    result = runner.invoke(args=["db", "--traceback", "show", "nosuchrev"], standalone_mode=False)
    assert result.exception is None and result.return_value == 1
    assert "Traceback (most recent call last)" in result.stderr
    result = runner.invoke(args=["db", "status", "--check"], standalone_mode=False)
    assert result.exception is None and result.return_value == 1  # three revisions pending
    assert runner.invoke(args=["db", "status", "--check"]).exit_code == 1
    invoke(runner, "db", "upgrade")
    assert runner.invoke(args=["db", "status", "--check"]).exit_code == 0


@FILES_ONLY
def test_interrupt_is_one_error_line(
    runner: FlaskCliRunner, migrations: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during a command is one ``Error:`` line saying so, not click's "Aborted!"."""
    from flask_migrate import operations

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    invoke(runner, "db", "init")
    monkeypatch.setattr(operations, "heads", interrupted)
    message = fail(runner, "db", "heads")
    assert message.startswith("Interrupted by SIGINT.")
    assert "Aborted" not in runner.invoke(args=["db", "heads"]).output


@FILES_ONLY
def test_error_message_is_one_line_without_passwords(
    runner: FlaskCliRunner, migrations: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A multi-line message naming a URL is folded onto one line with the password hidden."""
    from flask_migrate import operations
    from flask_migrate.errors import MigrateError

    def failing(*args: object, **kwargs: object) -> None:
        raise MigrateError("cannot reach\n  postgresql://scott:tiger-pw@db.invalid/app\n")

    invoke(runner, "db", "init")
    monkeypatch.setattr(operations, "heads", failing)
    message = fail(runner, "db", "heads")
    assert message.startswith("cannot reach postgresql://scott:")
    assert "tiger-pw" not in message
