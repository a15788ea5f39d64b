"""The revision linter: each rule on a risky revision and on the safe way, suppression,
severities, dialects, multidb revisions, project rules, Alembic scripts. No database."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flask_migrate.errors import MigrateError
from flask_migrate.lint import (
    Context,
    Finding,
    lint_file,
    lint_scripts,
    lint_source,
    rule,
    rules,
)
from flask_migrate.lint import core

HEADER = '''\
"""A revision.

Revision ID: a1
Revises:
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

revision = "a1"
down_revision = None
'''

#: A downgrade that does something but runs no SQL of its own.
UNDO = 'op.drop_table("placeholder")'


def revision(upgrade: str, downgrade: str = UNDO) -> str:
    """A revision file with these bodies for upgrade() and downgrade()."""
    body = textwrap.indent(textwrap.dedent(upgrade).strip("\n"), "    ")
    down = textwrap.indent(textwrap.dedent(downgrade).strip("\n"), "    ")
    return f"{HEADER}\n\ndef upgrade():\n{body}\n\n\ndef downgrade():\n{down}\n"


def line_of(source: str, needle: str) -> int:
    """The line number of the first line containing ``needle``."""
    for number, line in enumerate(source.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the source")


def lint(source: str, **kwargs: Any) -> list[Finding]:
    return lint_source(source, "rev.py", **kwargs)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rules registered in the test are gone afterwards."""
    monkeypatch.setattr(core, "_registry", dict(core._registry))


def ids(findings: Iterable[Finding]) -> list[str]:
    return [f.rule for f in findings]


# -- each rule, on a risky revision ------------------------------------------------

RISKY = [
    pytest.param(
        "FM101", "error", 'op.drop_table("old")', None, 'op.drop_table("old")',
        "op.drop_table('old') deletes the table and its rows; drop it only once no running "
        "release uses it",
        id="FM101",
    ),
    pytest.param(
        "FM102", "error", 'op.drop_column("user", "legacy")', None, "drop_column",
        "op.drop_column() drops 'user.legacy' and its data; the running release still selects "
        "it: remove it from the model first, drop it in a later release",
        id="FM102",
    ),
    pytest.param(
        "FM102", "error",
        '''
        with op.batch_alter_table("user", schema=None) as batch_op:
            batch_op.drop_column("legacy")
        ''',
        None, "batch_op.drop_column",
        "batch_op.drop_column() drops 'user.legacy' and its data; the running release still "
        "selects it: remove it from the model first, drop it in a later release",
        id="FM102-batch",
    ),
    pytest.param(
        "FM103", "error",
        '''
        op.alter_column("user", "name",
                        existing_type=sa.VARCHAR(length=100),
                        type_=sa.String(length=50))
        ''',
        None, "op.alter_column",
        "op.alter_column() changes 'user.name' from sa.VARCHAR(length=100) to "
        "sa.String(length=50): values longer than 50 are truncated or rejected (length was 100)",
        id="FM103",
    ),
    pytest.param(
        "FM104", "warning",
        'op.alter_column("user", "id", existing_type=sa.Integer(), type_=sa.BigInteger())',
        None, "op.alter_column",
        "op.alter_column() changes 'user.id' from sa.Integer() to sa.BigInteger(): this can "
        "rewrite the table under an exclusive lock",
        id="FM104",
    ),
    pytest.param(
        "FM104", "warning", 'op.alter_column("user", "id", type_=sa.BigInteger())',
        None, "op.alter_column",
        "op.alter_column() changes the type of 'user.id' to sa.BigInteger() without "
        "existing_type=: cannot tell what it rewrites or loses; pass existing_type=",
        id="FM104-no-existing-type",
    ),
    pytest.param(
        "FM201", "error", 'op.add_column("user", sa.Column("age", sa.Integer(), nullable=False))',
        None, "add_column",
        "op.add_column() adds NOT NULL 'user.age' without server_default: fails on a table "
        "with rows; add it nullable (or with a server_default), backfill, then set NOT NULL",
        id="FM201",
    ),
    pytest.param(
        "FM202", "warning",
        'op.alter_column("user", "email", existing_type=sa.String(100), nullable=False)',
        None, "alter_column",
        "op.alter_column() sets 'user.email' NOT NULL: the whole table is checked under an "
        "exclusive lock",
        id="FM202",
    ),
    pytest.param(
        "FM203", "warning", 'op.create_index("ix_user_email", "user", ["email"])',
        "postgresql", "create_index",
        "op.create_index() builds index 'ix_user_email' on 'user' without "
        "postgresql_concurrently=True: writes to the table block until it is built",
        id="FM203",
    ),
    pytest.param(
        "FM204", "error",
        'op.drop_index("ix_user_email", table_name="user", postgresql_concurrently=True)',
        "postgresql", "drop_index",
        "op.drop_index() with postgresql_concurrently=True outside `with "
        "op.get_context().autocommit_block():` fails inside the migration's transaction",
        id="FM204",
    ),
    pytest.param(
        "FM204", "error",
        '''
        op.execute(sa.text("CREATE INDEX CONCURRENTLY ix_user_email ON \\"user\\" (email)"))
        op.execute("DROP INDEX old")
        ''',
        "postgresql", "CONCURRENTLY",
        "CONCURRENTLY in op.execute() outside `with op.get_context().autocommit_block():` "
        "fails inside the migration's transaction",
        id="FM204-sql",
    ),
    pytest.param(
        "FM205", "warning",
        'op.create_foreign_key("fk_post_user", "post", "user", ["user_id"], ["id"])',
        "postgresql", "create_foreign_key",
        "op.create_foreign_key() checks every row of 'post' while blocking writes; add the "
        "foreign key with postgresql_not_valid=True and VALIDATE it afterwards",
        id="FM205-fk",
    ),
    pytest.param(
        "FM205", "warning", 'op.create_check_constraint("ck_age", "user", "age >= 0")',
        "postgresql", "create_check_constraint",
        "op.create_check_constraint() checks every row of 'user' while blocking reads and "
        "writes; add the check constraint with postgresql_not_valid=True and VALIDATE it afterwards",
        id="FM205-check",
    ),
    pytest.param(
        "FM205", "warning", 'op.create_unique_constraint("uq_email", "user", ["email"])',
        "postgresql", "create_unique_constraint",
        "op.create_unique_constraint() builds a unique index on 'user' while blocking reads and "
        "writes; build the index CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE USING INDEX",
        id="FM205-unique",
    ),
    pytest.param(
        "FM301", "warning", 'op.alter_column("user", "email", new_column_name="mail")',
        None, "alter_column",
        "op.alter_column() renames 'user.email' to 'mail': the release still running uses the "
        "old name",
        id="FM301",
    ),
    pytest.param(
        "FM302", "warning", 'op.rename_table("user", "account")', None, "rename_table",
        "op.rename_table('user', 'account'): the release still running uses the old name",
        id="FM302",
    ),
    pytest.param(
        "FM401", "warning", 'op.create_foreign_key(None, "post", "user", ["user_id"], ["id"])',
        "sqlite", "create_foreign_key",
        "op.create_foreign_key() without a constraint name: the database makes one up, so it "
        "cannot be dropped by name; name it (or use a naming convention)",
        id="FM401",
    ),
    pytest.param(
        "FM404", "warning", """op.execute("UPDATE \\"user\\" SET age = 0")""", None, "execute",
        "op.execute() in upgrade() but no op.execute() in downgrade(): the downgrade does not "
        "undo this SQL",
        id="FM404",
    ),
    pytest.param(
        "FM405", "error", 'op.alter_column("user", "email", nullable=True)', "sqlite",
        "alter_column",
        "op.alter_column() outside batch mode: SQLite cannot change a column with ALTER TABLE; "
        "use `with op.batch_alter_table('user') as batch_op:`",
        id="FM405",
    ),
    pytest.param(
        "FM405", "error", 'op.create_unique_constraint("uq_email", "user", ["email"])', "sqlite",
        "create_unique_constraint",
        "op.create_unique_constraint() outside batch mode: SQLite cannot add a unique "
        "constraint with ALTER TABLE; use `with op.batch_alter_table('user') as batch_op:`",
        id="FM405-unique",
    ),
]


@pytest.mark.parametrize(("rule_id", "severity", "upgrade", "dialect", "needle", "message"), RISKY)
def test_rule_reports_the_risky_operation(
    rule_id: str, severity: str, upgrade: str, dialect: str | None, needle: str, message: str
) -> None:
    """The rule fires on the call's first line, with its severity and message."""
    source = revision(upgrade)
    found = [f for f in lint(source, dialect=dialect) if f.rule == rule_id]
    line = line_of(source, needle)
    assert found == [Finding(Path("rev.py"), line, rule_id, severity, message)]
    assert found[0].format() == f"rev.py:{line}: {rule_id} {severity}: {message}"


def test_unnamed_constraint_in_downgrade() -> None:
    """drop_constraint(None, ...), which autogenerate writes in downgrades, is reported."""
    source = revision(
        UNDO,
        """
        with op.batch_alter_table("post") as batch_op:
            batch_op.drop_constraint(None, type_="foreignkey")
        """,
    )
    found = [f for f in lint(source) if f.rule == "FM401"]
    assert [(f.line, f.message.split(" without")[0]) for f in found] == [
        (line_of(source, "drop_constraint"), "batch_op.drop_constraint()")
    ]


@pytest.mark.parametrize(
    ("downgrade", "needle", "message"),
    [
        ("pass", "def downgrade", "downgrade() is empty: it does not undo upgrade(), so "
         "'flask db downgrade' cannot really go below this revision"),
        ('"""Nothing to undo."""', "def downgrade", "downgrade() is empty: it does not undo "
         "upgrade(), so 'flask db downgrade' cannot really go below this revision"),
        ('raise NotImplementedError("the data is gone")', "raise",
         "downgrade() raises: 'flask db downgrade' cannot go below this revision"),
        ('if op.get_context().dialect.name == "sqlite":\n    raise RuntimeError("no")\n' + UNDO,
         "raise", "downgrade() raises: 'flask db downgrade' cannot go below this revision"),
    ],
    ids=["pass", "docstring", "NotImplementedError", "any-raise"],
)
def test_irreversible_downgrade(downgrade: str, needle: str, message: str) -> None:
    source = revision('op.add_column("user", sa.Column("age", sa.Integer()))', downgrade)
    found = [f for f in lint(source) if f.rule == "FM402"]
    line = line_of(source, needle)
    assert [f.format() for f in found] == [f"rev.py:{line}: FM402 warning: {message}"]


@pytest.mark.parametrize(
    ("imports", "app_packages", "reported"),
    [
        ("from myapp.models import User", ["myapp"], "myapp.models.User"),
        ("from myapp import db", ["myapp"], "myapp.db"),
        ("import myapp.tasks as tasks", ["myapp"], "myapp.tasks"),
        ("from app.models import User", [], "app.models.User"),
        ("from app import models", [], "app.models"),
        ("import models", [], "models"),
    ],
)
def test_app_import(imports: str, app_packages: list[str], reported: str) -> None:
    source = HEADER + imports + "\n\n\ndef upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n"
    found = [f for f in lint(source, app_packages=app_packages) if f.rule == "FM403"]
    line = line_of(source, imports)
    assert [f.format() for f in found] == [
        f"rev.py:{line}: FM403 warning: the revision imports application code ({reported}); "
        "it depends on today's models: describe the tables it needs inside the revision"
    ]


def test_missing_downgrade() -> None:
    source = revision('op.add_column("user", sa.Column("age", sa.Integer()))', "pass")
    source = source[: source.index("\n\ndef downgrade")] + "\n"
    found = lint(source)
    assert [f.format() for f in found] == [
        f"rev.py:{line_of(source, 'def upgrade')}: FM402 warning: upgrade() has no downgrade(): "
        "'flask db downgrade' cannot go below this revision"
    ]


def test_autogenerated_index_name() -> None:
    source = revision('op.create_index(op.f("ix_user_email"), "user", ["email"], unique=False)')
    assert "builds index 'ix_user_email' on 'user'" in lint(source)[0].message


def test_app_import_inside_a_function() -> None:
    source = revision("from myapp.models import User\nop.bulk_insert(User.__table__, [])")
    assert [f.line for f in lint(source, app_packages=["myapp"]) if f.rule == "FM403"] == [
        line_of(source, "import User")
    ]


# -- ... and the safe way -----------------------------------------------------------

NEW_TABLE = """
op.create_table(
    "post",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("title", sa.String(length=50)),
    sa.PrimaryKeyConstraint("id"),
)
"""

SAFE = [
    pytest.param(
        NEW_TABLE + """
op.add_column("post", sa.Column("user_id", sa.Integer(), nullable=False))
op.alter_column("post", "title", existing_type=sa.String(50), type_=sa.String(20),
                nullable=False, new_column_name="headline")
op.create_index("ix_post_title", "post", ["title"])
op.create_foreign_key("fk_post_user", "post", "user", ["user_id"], ["id"])
op.create_unique_constraint("uq_post_title", "post", ["title"])
op.create_check_constraint("ck_post_id", "post", "id > 0")
op.create_foreign_key(None, "post", "user", ["user_id"], ["id"])
op.drop_column("post", "title")
op.rename_table("post", "article")
op.drop_table("post")
""",
        "postgresql", [],
        id="operations-on-a-table-created-in-the-same-revision",
    ),
    pytest.param(
        NEW_TABLE + """
with op.batch_alter_table("post") as batch_op:
    batch_op.add_column(sa.Column("user_id", sa.Integer(), nullable=False))
    batch_op.create_index("ix_post_user_id", ["user_id"])
    batch_op.drop_column("title")
""",
        "postgresql", [],
        id="batch-on-a-table-created-in-the-same-revision",
    ),
    pytest.param(
        'op.add_column("user", sa.Column("age", sa.Integer(), nullable=False, '
        'server_default="0"))',
        None, [], id="not-null-with-server-default",
    ),
    pytest.param(
        'op.add_column("user", sa.Column("age", sa.Integer(), nullable=True))',
        None, [], id="nullable-column",
    ),
    pytest.param(
        'op.add_column("user", sa.Column("n", sa.BigInteger(), sa.Identity(), nullable=False))',
        None, [], id="identity-column",
    ),
    pytest.param(
        'op.alter_column("user", "email", existing_type=sa.String(100), nullable=False, '
        "existing_nullable=False, comment='e-mail')",
        "postgresql", [], id="not-null-already",
    ),
    pytest.param(
        """
with op.get_context().autocommit_block():
    op.create_index("ix_user_email", "user", ["email"], postgresql_concurrently=True)
    op.execute("DROP INDEX CONCURRENTLY ix_user_old")
""",
        "postgresql", [], id="concurrently-in-autocommit-block",
    ),
    pytest.param(
        """
op.create_foreign_key("fk_post_user", "post", "user", ["user_id"], ["id"],
                      postgresql_not_valid=True)
op.create_check_constraint("ck_age", "user", "age >= 0", postgresql_not_valid=True)
""",
        "postgresql", [], id="not-valid-constraints",
    ),
    pytest.param(
        'op.create_foreign_key(op.f("fk_post_user"), "post", "user", ["user_id"], ["id"], '
        "postgresql_not_valid=True)",
        "postgresql", [], id="named-constraint",
    ),
    pytest.param(
        """
with op.batch_alter_table("user") as batch_op:
    batch_op.alter_column("email", existing_type=sa.String(100), nullable=True)
    batch_op.create_unique_constraint("uq_email", ["email"])
op.alter_column("user", "email", new_column_name="mail", existing_type=sa.String(100))
""",
        "sqlite", ["FM301"], id="sqlite-batch-mode-and-plain-rename",
    ),
    pytest.param(
        'op.alter_column("user", "name", existing_type=sa.VARCHAR(length=50), '
        "type_=sa.String(length=50))",
        "mysql", [], id="same-type-spelled-differently",
    ),
    pytest.param(
        'op.alter_column("user", "name", existing_type=sa.VARCHAR(length=50), '
        "type_=sa.String(length=100))",
        "postgresql", [], id="longer-varchar-on-postgresql",
    ),
]


@pytest.mark.parametrize(("upgrade", "dialect", "expected"), SAFE)
def test_the_safe_way_is_not_reported(
    upgrade: str, dialect: str | None, expected: list[str]
) -> None:
    """Only the listed rules fire (those that are right to)."""
    source = revision(upgrade, 'op.execute("SELECT 1")')
    found = lint(source, dialect=dialect)
    assert ids(found) == expected


def test_dropping_in_the_downgrade_is_fine() -> None:
    source = revision(
        """
        op.add_column("user", sa.Column("age", sa.Integer()))
        op.create_table("tag", sa.Column("id", sa.Integer(), primary_key=True))
        """,
        """
        op.drop_table("tag")
        with op.batch_alter_table("user") as batch_op:
            batch_op.drop_column("age")
        """,
    )
    assert lint(source) == []


def test_downgrade_with_sql_undoes_upgrade_sql() -> None:
    source = revision('op.execute("INSERT INTO role (name) VALUES (\'admin\')")',
                      "op.execute(\"DELETE FROM role WHERE name = 'admin'\")")
    assert lint(source) == []


def test_irreversible_sql_is_left_to_fm402_when_downgrade_raises() -> None:
    source = revision('op.execute("UPDATE t SET a = 1")', "raise NotImplementedError()")
    assert ids(lint(source)) == ["FM402"]


def test_empty_upgrade_and_downgrade_are_fine() -> None:
    assert lint(revision("pass", "pass")) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("sa.VARCHAR(length=100)", "sa.String(length=50)", "FM103"),
        ("sa.String(50)", "sa.VARCHAR(length=50)", None),
        ("sa.String(50)", "sa.String(100)", "FM104"),
        ("sa.String()", "sa.String(100)", "FM103"),
        ("sa.Text()", "sa.String(length=255)", "FM103"),
        ("sa.String(length=255)", "sa.Text()", "FM104"),
        ("mysql.LONGTEXT()", "sa.Text()", "FM103"),
        ("sa.String(300)", "mysql.TINYTEXT()", "FM103"),
        ("sa.CHAR(10)", "sa.VARCHAR(10)", "FM104"),
        ("sa.BigInteger()", "sa.Integer()", "FM103"),
        ("sa.INTEGER()", "sa.SmallInteger()", "FM103"),
        ("mysql.INTEGER(display_width=11)", "sa.BigInteger()", "FM104"),
        ("sa.Integer()", "sa.Numeric(5, 0)", "FM103"),
        ("sa.Integer()", "sa.Numeric(12, 2)", "FM104"),
        ("sa.NUMERIC(precision=10, scale=2)", "sa.Numeric(8, 2)", "FM103"),
        ("sa.Numeric(10, 4)", "sa.Numeric(10, 2)", "FM103"),
        ("sa.Numeric(10, 2)", "sa.Numeric(10, 4)", "FM103"),
        ("sa.Numeric(10, 2)", "sa.Numeric(12, 2)", "FM104"),
        ("sa.Numeric(12, 0)", "sa.BigInteger()", "FM104"),
        ("sa.Float()", "sa.Integer()", "FM103"),
        ("sa.Double()", "sa.REAL()", "FM103"),
        ("sa.DateTime()", "sa.Date()", "FM103"),
        ("postgresql.TIMESTAMP(timezone=True)", "sa.Time()", "FM103"),
        ("sa.Date()", "sa.DateTime()", "FM104"),
        ("postgresql.ENUM('a', 'b', 'c', name='kind')", "postgresql.ENUM('a', 'b', name='kind')",
         "FM103"),
        ("sa.Enum('a', 'b', name='kind')", "sa.Enum('a', 'b', 'c', name='kind')", "FM104"),
        ("sa.Enum('short', 'much longer', name='kind')", "sa.String(5)", "FM103"),
        ("sa.String(20)", "sa.Integer()", "FM103"),
        ("sa.String(20)", "sa.Enum('a', name='kind')", "FM103"),
        ("sa.Integer()", "sa.Boolean()", "FM103"),
        ("sa.String(length=50).with_variant(sa.Text(), 'sqlite')", "sa.String(40)", "FM103"),
        ("postgresql.JSON(astext_type=sa.Text())", "postgresql.JSONB(astext_type=sa.Text())",
         "FM104"),
        ("MyType()", "MyType()", None),
    ],
)
def test_type_changes(old: str, new: str, expected: str | None) -> None:
    """Narrowing changes are FM103 errors; other changes FM104 warnings."""
    source = revision(f'op.alter_column("user", "c", existing_type={old}, type_={new})')
    found = [f for f in lint(source, dialect="mysql") if f.rule in ("FM103", "FM104")]
    assert ids(found) == ([expected] if expected else [])


# -- dialects --------------------------------------------------------------------------

PG_RISKS = revision("""
op.create_index("ix_user_email", "user", ["email"], postgresql_concurrently=True)
op.create_unique_constraint("uq_email", "user", ["email"])
op.alter_column("user", "email", nullable=True)
""")


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (None, ["FM204", "FM205", "FM405", "FM405"]),
        ("postgresql", ["FM204", "FM205"]),
        ("sqlite", ["FM405", "FM405"]),
        ("mysql", []),
        ("mariadb", []),
        ("MySQL", []),
        ("mssql", []),
    ],
)
def test_dialect_specific_rules_run_for_their_dialect_or_an_unknown_one(
    dialect: str | None, expected: list[str]
) -> None:
    assert ids(lint(PG_RISKS, dialect=dialect)) == expected


def test_unknown_dialect_names_the_database_in_messages() -> None:
    unknown = lint(PG_RISKS)
    known = lint(PG_RISKS, dialect="postgresql") + lint(PG_RISKS, dialect="sqlite")
    assert [f.message.count(" on PostgreSQL") for f in unknown if f.rule.startswith("FM2")] == [1, 1]
    assert all(" on SQLite" in f.message for f in unknown if f.rule == "FM405")
    assert not any(" on PostgreSQL" in f.message or " on SQLite" in f.message for f in known)


# -- suppression -------------------------------------------------------------------------


def test_suppression_comment_on_the_line() -> None:
    source = revision("""
op.drop_column("user", "legacy")  # flask-migrate: allow FM102
op.drop_column("user", "other")
""")
    assert [f.line for f in lint(source, dialect="postgresql")] == [line_of(source, '"other"')]


def test_suppression_comment_on_any_line_of_a_multiline_call() -> None:
    source = revision("""
op.alter_column(
    "user",
    "name",
    existing_type=sa.VARCHAR(length=200),
    type_=sa.String(length=100),
)  # flask-migrate: allow FM103 (no name is longer than 100)
with op.batch_alter_table("user") as batch_op:
    batch_op.alter_column(
        "email",  # flask-migrate: allow FM202, FM301 -- both on purpose
        nullable=False,
        new_column_name="mail",
    )
""")
    assert lint(source, dialect="postgresql") == []


def test_suppression_is_per_rule_and_per_call() -> None:
    source = revision("""
op.alter_column("user", "email", nullable=False, new_column_name="mail")  # flask-migrate: allow FM301
with op.batch_alter_table("user") as batch_op:  # flask-migrate: allow FM102
    batch_op.drop_column("legacy")
""")
    assert [(f.rule, f.line) for f in lint(source, dialect="postgresql")] == [
        ("FM202", line_of(source, '"email"')), ("FM102", line_of(source, '"legacy"')),
    ]


def test_suppression_on_a_def_line() -> None:
    source = revision("op.drop_table('x')  # flask-migrate: allow FM101", "pass").replace(
        "def downgrade():", "def downgrade():  # flask-migrate: allow FM402"
    )
    assert lint(source) == []


def test_suppression_with_several_ids_separated_by_spaces() -> None:
    source = revision(
        'op.alter_column("user", "email", nullable=False, new_column_name="mail")'
        "  # flask-migrate: allow FM202 fm301, FM405"
    )
    assert lint(source) == []


# -- severities ------------------------------------------------------------------------------

RISKS = revision("""
op.drop_column("user", "legacy")
op.create_index("ix_user_email", "user", ["email"])
""")


def test_severity_override() -> None:
    found = lint(RISKS, dialect="postgresql", severities={"FM102": "warning", "FM203": "error"})
    assert [(f.rule, f.severity) for f in found] == [("FM102", "warning"), ("FM203", "error")]
    assert found[0].format().startswith(f"rev.py:{line_of(RISKS, 'legacy')}: FM102 warning: ")


def test_severity_off_disables_the_rule_by_id_or_name() -> None:
    off = {"FM203": "off", "drop-column": "off"}
    assert ids(lint(RISKS, dialect="postgresql", severities=off)) == []
    assert ids(lint(RISKS, severities=off)) == ["FM405"]


def test_unknown_rule_in_severities() -> None:
    with pytest.raises(MigrateError) as info:
        lint(RISKS, severities={"FM999": "off"})
    message = str(info.value)
    assert "'FM999'" in message and "FM101" in message and "FM405" in message


def test_unknown_severity() -> None:
    with pytest.raises(MigrateError, match="'error', 'warning' or 'off', not 'fatal'"):
        lint(RISKS, severities={"FM101": "fatal"})


# -- files, syntax errors, multi-database revisions ---------------------------------------------


def test_syntax_error_is_one_finding() -> None:
    source = revision("op.drop_table('x'")
    found = lint(source)
    assert len(found) == 1
    finding = found[0]
    assert (finding.rule, finding.severity) == ("FM000", "error")
    assert finding.line == line_of(source, "drop_table")
    assert finding.format().startswith(
        f"rev.py:{finding.line}: FM000 error: the revision does not parse: "
    )


def test_lint_file(tmp_path: Path) -> None:
    path = tmp_path / "a1_drop.py"
    path.write_text(revision('op.drop_table("old")'))
    broken = tmp_path / "b2_broken.py"
    broken.write_text("def upgrade(:\n")
    assert [(f.path, f.rule) for f in lint_file(path)] == [(path, "FM101")]
    assert [(f.path, f.rule, f.line) for f in lint_file(broken)] == [(broken, "FM000", 1)]


MULTIDB = HEADER + '''

def upgrade(engine_name):
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name):
    globals()["downgrade_%s" % engine_name]()


def upgrade_():
    op.create_table("audit", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade_():
    op.drop_table("audit")


def upgrade_users():
    op.add_column("audit", sa.Column("user_id", sa.Integer(), nullable=False))
    op.drop_column("user", "legacy")


def downgrade_users():
    pass
'''


def test_multidb_upgrade_functions_are_upgrade_code() -> None:
    """upgrade_<bind>() functions are linted, tables created in another one are not new,
    and each is paired with its downgrade_<bind>()."""
    found = lint(MULTIDB, dialect="postgresql")
    assert [(f.rule, f.line) for f in found] == [
        ("FM201", line_of(MULTIDB, '"user_id"')),
        ("FM102", line_of(MULTIDB, '"legacy"')),
        ("FM402", line_of(MULTIDB, "def downgrade_users")),
    ]
    assert found[-1].message.startswith("downgrade_users() is empty: it does not undo upgrade_users()")


def test_op_under_another_name() -> None:
    source = revision('alembic_op.drop_table("a")\nalembic.op.drop_table("b")').replace(
        "from alembic import op", "import alembic\nfrom alembic import op as alembic_op"
    )
    assert ids(lint(source)) == ["FM101", "FM101"]


@pytest.mark.usefixtures("registry")
def test_context_describes_the_revision() -> None:
    """What a check sees: functions, normalised operations, batch, autocommit, new tables."""
    seen: list[Context] = []
    source = revision("""
op.create_table("post", sa.Column("id", sa.Integer()))
with op.batch_alter_table("post") as batch_op:
    batch_op.add_column(sa.Column("title", sa.String(50)))
with op.get_context().autocommit_block():
    op.create_index("ix_user_email", table_name="user", columns=["email"])
""")
    rule("ZZ001", "capture", "warning")(_capture(seen))
    lint(source, dialect="mariadb", app_packages=["myapp"])
    ctx = seen[0]
    assert ctx.upgrade is not None and ctx.upgrade.name == "upgrade"
    assert ctx.downgrade is not None and [f.name for f in ctx.downgrades] == ["downgrade"]
    assert (ctx.dialect, ctx.app_packages) == ("mysql", frozenset({"myapp"}))
    assert [(o.name, o.table, o.batch, o.autocommit, o.new_table) for o in ctx.operations] == [
        ("create_table", "post", False, False, False),
        ("add_column", "post", True, False, True),
        ("create_index", "user", False, True, False),
    ]
    assert ctx.created_tables == {"post"}
    assert ctx.operations[2].literal("index_name") == "ix_user_email"
    assert [o.name for o in ctx.downgrade_operations] == ["drop_table"]


# -- the registry and project rules ---------------------------------------------------------------

BUILTIN = {
    "FM101": ("drop-table", "error", None),
    "FM102": ("drop-column", "error", None),
    "FM103": ("narrowing-type", "error", None),
    "FM104": ("change-type", "warning", None),
    "FM201": ("add-not-null-column", "error", None),
    "FM202": ("set-not-null", "warning", None),
    "FM203": ("create-index-blocking", "warning", {"postgresql"}),
    "FM204": ("concurrently-in-transaction", "error", {"postgresql"}),
    "FM205": ("constraint-validates-table", "warning", {"postgresql"}),
    "FM301": ("rename-column", "warning", None),
    "FM302": ("rename-table", "warning", None),
    "FM401": ("unnamed-constraint", "warning", None),
    "FM402": ("irreversible-downgrade", "warning", None),
    "FM403": ("app-import", "warning", None),
    "FM404": ("irreversible-sql", "warning", None),
    "FM405": ("alter-without-batch", "error", {"sqlite"}),
}


def test_builtin_rules_explain_themselves() -> None:
    """Every rule is registered in id order, and its doc says why, then how (two paragraphs)."""
    registered = rules()
    assert {r.id: (r.name, r.severity, r.dialects) for r in registered} == BUILTIN
    assert [r.id for r in registered] == sorted(BUILTIN)
    for r in registered:
        assert len([p for p in r.doc.split("\n\n") if p.strip()]) >= 2, r.id


def _capture(seen: list[Context]) -> Callable[[Context], Iterator[tuple[int, str]]]:
    def capture(ctx: Context) -> Iterator[tuple[int, str]]:
        """Records the context. Nothing to fix."""
        seen.append(ctx)
        return iter(())

    return capture


@pytest.mark.usefixtures("registry")
def test_project_rule() -> None:
    @rule("ACME001", "no-bulk-insert", "warning", dialects=["MariaDB"])
    def no_bulk_insert(ctx: Context) -> Iterator[tuple[int, str]]:
        """Large inserts belong in a data job.

        Move the rows to the job.
        """
        for op in ctx.operations:
            if op.name == "bulk_insert":
                yield op.line, f"op.bulk_insert() into {op.literal('table')!r}"

    registered = rules()[0]
    assert (registered.id, registered.name, registered.dialects) == (
        "ACME001", "no-bulk-insert", frozenset({"mysql"}),
    )
    assert registered.doc == "Large inserts belong in a data job.\n\nMove the rows to the job."
    source = revision("""
op.bulk_insert(sa.table("role"), [])
op.bulk_insert(t, [])  # flask-migrate: allow ACME001
""")
    line = line_of(source, "role")
    assert [f.format() for f in lint(source, dialect="mysql")] == [
        f"rev.py:{line}: ACME001 warning: op.bulk_insert() into UNKNOWN"
    ]
    assert ids(lint(source, dialect="postgresql")) == []
    assert ids(lint(source, severities={"ACME001": "error"})) == ["ACME001"]
    assert lint(source, severities={"no-bulk-insert": "off"}) == []


@pytest.mark.usefixtures("registry")
def test_rule_registration_is_checked() -> None:
    def undocumented(ctx: Context) -> Iterator[tuple[int, str]]:
        return iter(())

    with pytest.raises(ValueError, match="no docstring"):
        rule("ACME002", "x", "warning")(undocumented)
    with pytest.raises(ValueError, match="capital letters then digits"):
        rule("acme-2", "x", "warning")
    with pytest.raises(ValueError, match="'error' or 'warning'"):
        rule("ACME002", "x", "info")
    with pytest.raises(ValueError, match="already registered"):
        rule("FM101", "x", "error")(_capture([]))


def test_registry_is_clean_after_project_rule_tests() -> None:
    assert {r.id for r in rules()} == set(BUILTIN)


# -- Alembic scripts, imports ---------------------------------------------------------------------


def test_lint_scripts_sets_the_revision(tmp_path: Path) -> None:
    """Findings of real Alembic Script objects carry their revision id."""
    from alembic.script import ScriptDirectory

    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    first = revision('op.create_table("user", sa.Column("id", sa.Integer(), primary_key=True))',
                     'op.drop_table("user")')
    (versions / "a1_create_user.py").write_text(first)
    second = revision(
        'op.drop_column("user", "legacy")', 'op.add_column("user", sa.Column("legacy", sa.Text()))'
    ).replace('revision = "a1"\ndown_revision = None', 'revision = "b2"\ndown_revision = "a1"')
    (versions / "b2_drop_legacy.py").write_text(second)
    script = ScriptDirectory(str(tmp_path / "migrations"))
    scripts = list(script.walk_revisions())
    found = lint_scripts(scripts, dialect="postgresql")
    assert [(f.revision, f.rule, f.path.name, f.line) for f in found] == [
        ("b2", "FM102", "b2_drop_legacy.py", line_of(second, "legacy")),
    ]
    assert lint_scripts(scripts, severities={"FM102": "off", "FM405": "off"}) == []


def test_importing_the_linter_imports_no_alembic_sqlalchemy_or_flask() -> None:
    """Only the standard library (and what ``import flask_migrate`` already loads) is imported."""
    code = (
        "import sys\n"
        "import flask_migrate\n"
        "before = set(sys.modules)\n"
        "import flask_migrate.lint\n"
        "new = set(sys.modules) - before\n"
        "foreign = sorted(m for m in new if not m.startswith('flask_migrate.lint')\n"
        "                 and m.split('.')[0] not in sys.stdlib_module_names)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'sqlalchemy'))\n"
        "print(foreign, heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[] []"
