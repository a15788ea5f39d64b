"""The built-in rules.

Data loss is an error; a lock held, or a table rewritten, for as long as the
table is big is a warning. During a zero-downtime deploy the previous release
keeps serving requests while the migration runs, and for a while after: a rule
also fires for changes that break that release (a renamed column, say).

Operations on a table created earlier in the same upgrade function are left
alone by the rules about existing tables: the table is empty, and no running
code knows it yet.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from .core import UNKNOWN, Context, Operation, literal, rule
from .sqltypes import narrowing, parse_type, rewrite_free_on_postgresql

Hits = Iterator[tuple[int, str]]


def _name(value: object) -> str:
    return repr(value) if isinstance(value, str) else "?"


def _object_name(op: Operation, param: str) -> str | None:
    """The name of an index or constraint, also when written ``op.f("ix_...")``."""
    node = op.arg(param)
    if isinstance(node, ast.Call) and node.args and getattr(node.func, "attr", None) == "f":
        node = node.args[0]
    value = literal(node) if node is not None else None
    return value if isinstance(value, str) else None


def _table(op: Operation) -> str:
    return repr(op.table) if op.table else "a table"


def _column(op: Operation, param: str = "column_name") -> str:
    """``'user.email'``, for messages."""
    column = op.literal(param)
    table = op.table or "?"
    return repr(f"{table}.{column}") if isinstance(column, str) else f"a column of {_table(op)}"


# -- data loss -----------------------------------------------------------------


@rule("FM101", "drop-table", "error")
def drop_table(ctx: Context) -> Hits:
    """Dropping a table deletes every row in it, and the release still serving
    requests during the deploy (and any rollback to it) fails as soon as it
    touches the table. A downgrade can recreate the table, but not its data.

    Remove the table in two releases: first ship code that no longer reads or
    writes it (and the model without it), then drop it in a later revision once
    no running code uses it. Back the data up first if it may be needed again,
    and suppress the finding on that later ``op.drop_table()`` line.
    """
    for op in ctx.operations:
        if op.name == "drop_table" and not op.new_table:
            yield op.line, (
                f"op.drop_table({_name(op.table)}) deletes the table and its rows; "
                "drop it only once no running release uses it"
            )


@rule("FM102", "drop-column", "error")
def drop_column(ctx: Context) -> Hits:
    """Dropping a column deletes its data, and the release still serving
    requests during the deploy fails on every query that names it: SQLAlchemy
    selects every mapped column, so any load of the model fails, not just the
    code that uses the column.

    Drop a column in two releases: first remove it from the model (so no query
    names it) and ship that, then drop it in a later revision. If the data may
    be needed again, copy it somewhere first.
    """
    for op in ctx.operations:
        if op.name == "drop_column" and not op.new_table:
            yield op.line, (
                f"{op.describe()} drops {_column(op)} and its data; the running release "
                "still selects it: remove it from the model first, drop it in a later release"
            )


@rule("FM103", "narrowing-type", "error")
def narrowing_type(ctx: Context) -> Hits:
    """Changing a column to a narrower type (a shorter ``VARCHAR``, ``TEXT`` to
    ``VARCHAR``, ``BIGINT`` to ``INTEGER``, fewer ``NUMERIC`` digits, ``FLOAT``
    to ``INTEGER``, ``DATETIME`` to ``DATE``, an enum without some of its values,
    text to a number...) either fails on the rows that do not fit, or, on MySQL
    outside strict mode, silently truncates or rounds them. It also rewrites the
    table under an exclusive lock.

    Check the data first (``SELECT max(length(col))``, the values out of range)
    and fix the rows that do not fit in a data migration. Often the safer change
    is a new column of the narrower type, filled by the application and a
    backfill, with the old column dropped later. Suppress the finding when the
    data is known to fit.
    """
    for op in ctx.operations:
        if op.name != "alter_column" or op.new_table or op.arg("type_") is None:
            continue
        old, new = op.arg("existing_type"), op.arg("type_")
        if old is None or new is None:
            continue
        why = narrowing(parse_type(old), parse_type(new))
        if why is not None:
            yield op.line, (
                f"{op.describe()} changes {_column(op)} from {ast.unparse(old)} to "
                f"{ast.unparse(new)}: {why}"
            )


@rule("FM104", "change-type", "warning")
def change_type(ctx: Context) -> Hits:
    """Changing the type of a column rewrites the whole table under an exclusive
    lock on PostgreSQL for most changes (not for a longer ``VARCHAR``,
    ``VARCHAR`` to ``TEXT`` or more ``NUMERIC`` precision at the same scale) and
    on MySQL (which copies the table); reads and writes wait for as long as the
    rewrite takes. The release still running may also not expect the new type.
    Without ``existing_type=`` nobody can tell what the change does (and
    autogenerate could not render the downgrade).

    On a big table, add a column of the new type, have the application write
    both, backfill the new one in batches, switch reads over, and drop the old
    column in a later release. On a small table, suppress the finding. Always
    pass ``existing_type=``.
    """
    for op in ctx.operations:
        new = op.arg("type_")
        if op.name != "alter_column" or op.new_table or new is None or literal(new) is None:
            continue
        old = op.arg("existing_type")
        if old is None:
            yield op.line, (
                f"{op.describe()} changes the type of {_column(op)} to {ast.unparse(new)} "
                "without existing_type=: cannot tell what it rewrites or loses; pass existing_type="
            )
            continue
        before, after = parse_type(old), parse_type(new)
        if before.key() == after.key() or narrowing(before, after) is not None:
            continue  # no change, or FM103's
        if ctx.dialect == "postgresql" and rewrite_free_on_postgresql(before, after):
            continue
        yield op.line, (
            f"{op.describe()} changes {_column(op)} from {ast.unparse(old)} to {ast.unparse(new)}: "
            "this can rewrite the table under an exclusive lock"
        )


# -- locks and rewrites ----------------------------------------------------------


def _column_call(node: ast.expr | None) -> ast.Call | None:
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name == "Column":
            return node
    return None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _fills_itself(column: ast.Call) -> bool:
    """The column has a server default, an identity or is computed."""
    default = _keyword(column, "server_default")
    if default is not None and literal(default) is not None:
        return True
    for arg in column.args:
        if isinstance(arg, ast.Call):
            func = arg.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("Identity", "Computed", "FetchedValue", "DefaultClause"):
                return True
    return False


@rule("FM201", "add-not-null-column", "error")
def add_not_null_column(ctx: Context) -> Hits:
    """Adding a ``NOT NULL`` column without a server default to a table that has
    rows fails (PostgreSQL, SQLite), or fills every row with a made-up value
    such as ``0`` or ``''`` (MySQL). A Python-side ``default=`` does not help:
    the database never sees it. And the release still running inserts rows
    without the column.

    Add the column as nullable, or with a ``server_default``; backfill the
    existing rows in batches; once every running release writes the column, set
    it ``NOT NULL`` in a later revision (see FM202). On PostgreSQL 11 and later,
    adding a column with a constant ``server_default`` does not rewrite the
    table.
    """
    for op in ctx.operations:
        if op.name != "add_column" or op.new_table:
            continue
        column = _column_call(op.arg("column"))
        if column is None:
            continue
        nullable = _keyword(column, "nullable")
        primary = _keyword(column, "primary_key")
        not_null = (
            literal(nullable) is False if nullable is not None
            else primary is not None and literal(primary) is True
        )
        if not_null and not _fills_itself(column):
            name = literal(column.args[0]) if column.args else UNKNOWN
            what = repr(f"{op.table or '?'}.{name}") if isinstance(name, str) else "a column"
            yield op.line, (
                f"{op.describe()} adds NOT NULL {what} without server_default: fails on a table "
                "with rows; add it nullable (or with a server_default), backfill, then set NOT NULL"
            )


@rule("FM202", "set-not-null", "warning")
def set_not_null(ctx: Context) -> Hits:
    """Setting a column ``NOT NULL`` scans the whole table to check for nulls
    while holding an exclusive lock (PostgreSQL), or rebuilds the table (MySQL,
    and SQLite's batch mode); reads and writes wait meanwhile. It fails if a
    null is left, and the release still running may still insert nulls.

    Backfill the nulls first, and ship code that never writes a null. On
    PostgreSQL 12 and later, avoid the long lock: add ``CHECK (col IS NOT
    NULL) NOT VALID`` (``op.create_check_constraint(...,
    postgresql_not_valid=True)``), ``VALIDATE CONSTRAINT`` it in a separate
    step (this scans without blocking writes), then ``SET NOT NULL`` (which
    uses the validated constraint instead of a scan) and drop the check.
    """
    for op in ctx.operations:
        if (
            op.name == "alter_column" and not op.new_table
            and op.literal("nullable") is False and op.literal("existing_nullable") is not False
        ):
            yield op.line, (
                f"{op.describe()} sets {_column(op)} NOT NULL: the whole table is checked under "
                "an exclusive lock"
            )


@rule("FM203", "create-index-blocking", "warning", dialects=["postgresql"])
def create_index_blocking(ctx: Context) -> Hits:
    """``CREATE INDEX`` blocks every write to the table (inserts, updates,
    deletes) until the index is built, which on a big table takes minutes.

    Build it with ``postgresql_concurrently=True``, which lets writes through,
    inside ``with op.get_context().autocommit_block():`` (see FM204)::

        with op.get_context().autocommit_block():
            op.create_index("ix_user_email", "user", ["email"],
                            postgresql_concurrently=True)

    A concurrent build that fails leaves an ``INVALID`` index behind: drop it
    and run the revision again.
    """
    for op in ctx.operations:
        if op.name == "create_index" and not op.new_table and op.literal(
            "postgresql_concurrently"
        ) is not True:
            index = _object_name(op, "index_name")
            what = f"index {index!r}" if index else "an index"
            yield op.line, (
                f"{op.describe()} builds {what} on {_table(op)} without "
                f"postgresql_concurrently=True: writes to the table block until it is built"
                f"{ctx.on('postgresql')}"
            )


_CONCURRENT_SQL = re.compile(
    r"\b(?:INDEX|REINDEX\s+\w+|PARTITION\s+\S+)\s+CONCURRENTLY\b", re.IGNORECASE
)


def _sql(node: ast.expr | None) -> str | None:
    """The SQL of ``op.execute("...")`` or ``op.execute(sa.text("..."))``."""
    if isinstance(node, ast.Call) and node.args:
        node = node.args[0]
    value = literal(node) if node is not None else None
    return value if isinstance(value, str) else None


@rule("FM204", "concurrently-in-transaction", "error", dialects=["postgresql"])
def concurrently_in_transaction(ctx: Context) -> Hits:
    """``CREATE INDEX CONCURRENTLY`` and ``DROP INDEX CONCURRENTLY`` cannot run
    inside a transaction block, and Alembic runs every revision in one: the
    migration fails with ``cannot run inside a transaction block``.

    Put the operation in an autocommit block, which commits what came before
    it and runs it outside the transaction::

        with op.get_context().autocommit_block():
            op.create_index(..., postgresql_concurrently=True)

    Keep such a revision to that one operation if you can: what ran before the
    block is committed, and is not rolled back if the index build fails.
    """
    for op in ctx.operations + ctx.downgrade_operations:
        if op.autocommit:
            continue
        if op.literal("postgresql_concurrently") is True:
            yield op.line, (
                f"{op.describe()} with postgresql_concurrently=True outside "
                "`with op.get_context().autocommit_block():` fails inside the migration's "
                f"transaction{ctx.on('postgresql')}"
            )
        elif op.name == "execute" and _CONCURRENT_SQL.search(_sql(op.arg("sqltext")) or ""):
            yield op.line, (
                "CONCURRENTLY in op.execute() outside `with op.get_context().autocommit_block():` "
                f"fails inside the migration's transaction{ctx.on('postgresql')}"
            )


@rule("FM205", "constraint-validates-table", "warning", dialects=["postgresql"])
def constraint_validates_table(ctx: Context) -> Hits:
    """Adding a foreign key or a check constraint to an existing table checks
    every row while holding a lock: a foreign key blocks writes to the table
    and to the referenced table, a check constraint blocks reads too. A unique
    constraint builds its index while blocking reads and writes.

    Add foreign keys and check constraints with ``postgresql_not_valid=True``
    (``NOT VALID``: only new rows are checked, instantly), then validate them in
    a later step, which checks the old rows without blocking writes::

        op.create_foreign_key("fk_post_user", "post", "user", ["user_id"],
                              ["id"], postgresql_not_valid=True)
        op.execute("ALTER TABLE post VALIDATE CONSTRAINT fk_post_user")

    A unique constraint has no ``NOT VALID``: build a unique index with
    ``postgresql_concurrently=True`` (in an autocommit block), then attach it
    with ``ALTER TABLE ... ADD CONSTRAINT ... UNIQUE USING INDEX ...``.
    """
    for op in ctx.operations:
        if op.new_table:
            continue
        if op.name in ("create_foreign_key", "create_check_constraint"):
            if op.literal("postgresql_not_valid") is not True:
                if op.name == "create_foreign_key":
                    kind, blocked = "foreign key", "writes"
                else:
                    kind, blocked = "check constraint", "reads and writes"
                yield op.line, (
                    f"{op.describe()} checks every row of {_table(op)} while blocking {blocked}"
                    f"{ctx.on('postgresql')}; add the {kind} with postgresql_not_valid=True "
                    "and VALIDATE it afterwards"
                )
        elif op.name == "create_unique_constraint":
            yield op.line, (
                f"{op.describe()} builds a unique index on {_table(op)} while blocking reads "
                "and writes"
                f"{ctx.on('postgresql')}; build the index CONCURRENTLY, then ADD CONSTRAINT "
                "... UNIQUE USING INDEX"
            )


# -- rolling deploys ---------------------------------------------------------------


@rule("FM301", "rename-column", "warning")
def rename_column(ctx: Context) -> Hits:
    """While a deploy rolls out, the previous release keeps running and uses the
    old column name: every query of its models fails from the moment the
    rename commits until the last old process is gone (and again after a
    rollback of the code).

    Rename in steps: add the new column, have the application write both,
    backfill the new one, switch reads to it, and drop the old column in a
    later release. If a short outage is acceptable, suppress the finding.
    """
    for op in ctx.operations:
        if op.name == "alter_column" and not op.new_table and op.literal(
            "new_column_name"
        ) is not None:
            yield op.line, (
                f"{op.describe()} renames {_column(op)} to {_name(op.literal('new_column_name'))}: "
                "the release still running uses the old name"
            )


@rule("FM302", "rename-table", "warning")
def rename_table(ctx: Context) -> Hits:
    """While a deploy rolls out, the previous release keeps running and uses the
    old table name: its queries on the table fail from the moment the rename
    commits.

    Create the new table, have the application write both, copy the rows over,
    switch reads, and drop the old table in a later release; or, where the
    database supports it, rename the table and leave an updatable view under
    the old name until the old release is gone.
    """
    for op in ctx.operations:
        if op.name == "rename_table" and not op.new_table:
            yield op.line, (
                f"op.rename_table({_name(op.table)}, {_name(op.literal('new_table_name'))}): "
                "the release still running uses the old name"
            )


# -- reversibility and hygiene ------------------------------------------------------

_NAMED_CONSTRAINTS = (
    "create_foreign_key", "create_unique_constraint", "create_check_constraint",
    "create_primary_key", "drop_constraint",
)


@rule("FM401", "unnamed-constraint", "warning")
def unnamed_constraint(ctx: Context) -> Hits:
    """A constraint created without a name gets one the database makes up, which
    differs between PostgreSQL, MySQL and SQLite, so the downgrade (which
    autogenerate writes as ``drop_constraint(None, ...)``) cannot drop it and
    fails. Autogenerate writes ``None`` when the model's constraint has no name.

    Name the constraint in the revision, and in the model. Better, give the
    ``MetaData`` a naming convention (``SQLAlchemy(metadata=MetaData(
    naming_convention={...}))``) so that autogenerate writes every name for
    you as ``op.f("...")``.
    """
    ops = [o for o in ctx.operations if not o.new_table] + list(ctx.downgrade_operations)
    for op in sorted(ops, key=lambda o: o.line):
        if op.name in _NAMED_CONSTRAINTS and op.has("constraint_name") and op.literal(
            "constraint_name", UNKNOWN
        ) is None:
            yield op.line, (
                f"{op.describe()} without a constraint name: the database makes one up, "
                "so it cannot be dropped by name; name it (or use a naming convention)"
            )


def _does_nothing(function: ast.FunctionDef) -> bool:
    """Only a docstring, ``pass`` or ``...``."""
    return all(
        isinstance(stmt, ast.Pass)
        or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))
        for stmt in function.body
    )


def _raise(function: ast.FunctionDef) -> ast.Raise | None:
    return next((n for n in ast.walk(function) if isinstance(n, ast.Raise)), None)


@rule("FM402", "irreversible-downgrade", "warning")
def irreversible_downgrade(ctx: Context) -> Hits:
    """A revision whose ``downgrade()`` is empty or raises cannot be rolled back:
    ``flask db downgrade`` stops at it (or, when it is empty, records the
    downgrade without undoing anything). That is found out on the day a
    release must be rolled back.

    Write the downgrade: undo what the upgrade does, in reverse order. When the
    change truly cannot be undone (data was dropped), raise
    ``NotImplementedError`` with the reason, so that the downgrade stops
    loudly instead of lying, and suppress this finding on that line.
    """
    for upgrade in ctx.upgrades:
        if _does_nothing(upgrade):
            continue
        downgrade = ctx.downgrade_for(upgrade)
        name = "downgrade" + upgrade.name[len("upgrade"):]
        if downgrade is None:
            yield upgrade.lineno, (
                f"{upgrade.name}() has no {name}(): 'flask db downgrade' cannot go below "
                "this revision"
            )
        elif (raised := _raise(downgrade)) is not None:
            yield raised.lineno, (
                f"{name}() raises: 'flask db downgrade' cannot go below this revision"
            )
        elif _does_nothing(downgrade):
            yield downgrade.lineno, (
                f"{name}() is empty: it does not undo {upgrade.name}(), so 'flask db downgrade' "
                "cannot really go below this revision"
            )


@rule("FM403", "app-import", "warning")
def app_import(ctx: Context) -> Hits:
    """A revision runs for years, against whatever the application's code is at
    the time: importing the application's models (or any of its modules) makes
    the revision depend on today's models, which change after it was written.
    Old revisions then break on fresh databases, or do something different
    from what they did in production. Importing the application also runs its
    start-up code.

    Keep revisions self-contained: describe the tables they need inline with
    ``sa.table("user", sa.column("id"), sa.column("email"))`` (or
    ``sa.Table`` on a local ``MetaData``), and copy constants and enum values
    into the revision.
    """
    for node in ast.walk(ctx.module):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            modules = [f"{base}.{a.name}".strip(".") for a in node.names]
            if node.level:
                modules = ["." * node.level + m for m in modules]
        else:
            continue
        bad = [m for m in modules if _is_app_module(m, ctx.app_packages)]
        if bad:
            yield node.lineno, (
                f"the revision imports application code ({', '.join(bad)}); it depends on "
                "today's models: describe the tables it needs inside the revision"
            )


def _is_app_module(module: str, app_packages: frozenset[str]) -> bool:
    parts = module.lstrip(".").split(".")
    return "models" in parts or (not module.startswith(".") and parts[0] in app_packages)


def _empty_or_raising(function: ast.FunctionDef) -> bool:
    return _does_nothing(function) or _raise(function) is not None


@rule("FM404", "irreversible-sql", "warning")
def irreversible_sql(ctx: Context) -> Hits:
    """Raw SQL run with ``op.execute()`` is invisible to autogenerate, and when
    the downgrade runs no SQL at all, rolling back leaves whatever the upgrade's
    SQL did (new rows, changed data, a trigger, a view) in place, or fails on
    it.

    Undo the statement in the downgrade with the matching ``op.execute()``
    (delete the rows, drop the view...). If the data change cannot be undone
    and need not be, suppress the finding on the ``op.execute()`` line.
    """
    for upgrade in ctx.upgrades:
        downgrade = ctx.downgrade_for(upgrade)
        if downgrade is None or _empty_or_raising(downgrade):
            continue  # FM402's finding says it
        if any(o.name == "execute" and o.function is downgrade for o in ctx.downgrade_operations):
            continue
        for op in ctx.operations:
            if op.name == "execute" and op.function is upgrade:
                yield op.line, (
                    f"{op.describe()} in {upgrade.name}() but no op.execute() in "
                    f"{downgrade.name}(): the downgrade does not undo this SQL"
                )


_SQLITE_CANNOT = {
    "alter_column": "change a column",
    "drop_constraint": "drop a constraint",
    "create_foreign_key": "add a foreign key",
    "create_unique_constraint": "add a unique constraint",
    "create_check_constraint": "add a check constraint",
    "create_primary_key": "add a primary key",
    "drop_column": "drop a column (before SQLite 3.35)",
}


def _only_renames(op: Operation) -> bool:
    """``alter_column()`` that renames and changes nothing else (SQLite >= 3.25 can)."""
    changes = {k for k in op.args if not k.startswith("existing_")} - {
        "table_name", "column_name", "schema",
    }
    return changes == {"new_column_name"}


@rule("FM405", "alter-without-batch", "error", dialects=["sqlite"])
def alter_without_batch(ctx: Context) -> Hits:
    """SQLite's ``ALTER TABLE`` can add and rename columns and little else: it
    cannot change a column's type, nullability or default, nor add or drop a
    constraint, and drops columns only since SQLite 3.35. Such an operation
    fails with ``No support for ALTER of constraints in SQLite dialect`` (or a
    syntax error).

    Use batch mode, which recreates the table with the change and copies the
    rows::

        with op.batch_alter_table("user") as batch_op:
            batch_op.alter_column("email", nullable=False)

    Flask-Migrate sets ``render_as_batch=True`` by default, so autogenerate
    writes batch operations; this rule finds hand-written ones.
    """
    for op in sorted(ctx.operations + ctx.downgrade_operations, key=lambda o: o.line):
        if op.batch or op.name not in _SQLITE_CANNOT:
            continue
        if op.name == "alter_column" and _only_renames(op):
            continue
        yield op.line, (
            f"op.{op.name}() outside batch mode: SQLite cannot {_SQLITE_CANNOT[op.name]} "
            f"with ALTER TABLE{ctx.on('sqlite')}; use `with op.batch_alter_table({_name(op.table)}) "
            "as batch_op:`"
        )
