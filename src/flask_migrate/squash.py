"""``flask db squash``: replace a long linear history with one revision.

A history of hundreds of revisions makes every fresh database (a new
developer's, CI's, each test run's) replay all of them. :func:`squash`
replaces the revisions from base up to a revision ``R`` with a single
revision that creates the schema as it stands at ``R`` and **keeps R's id**:
every database already at ``R`` or later needs no change, and the revisions
after ``R`` are untouched.

How the new revision is made, in order, before anything is written:

1. **The range is checked** (files only): ``R`` and all its ancestors must
   form a straight line, nothing outside may build on or depend on a
   revision inside (other than ``R``), and only ``R`` may carry branch labels.
2. **Data operations are found** (:func:`data_operations`, reading the files
   with :mod:`ast`): SQL that is not a schema change, ``bulk_insert``,
   connections and sessions, loops, helper functions, imports of the
   application. They are refused unless ``data="drop"`` (not replayed on
   fresh databases, and listed as such) or ``data="keep"`` (copied into the
   new revision, after the schema).
3. **The schema is generated from the history, not from the models**: the
   original history is upgraded to ``R`` on scratch databases (one per bind,
   see :mod:`.scratch`), each database ``env.py`` configures is reflected, and
   Alembic's own renderer writes the operations that create it (tables in
   dependency order, indexes, enum types, sequences) and drop it again, in
   the project's ``script.py.mako``.
4. **Self-check**: the new revision alone runs on fresh scratch databases;
   the schema it builds must be the history's, object by object (the
   comparison of ``flask db verify``), and its downgrade must leave them
   empty. Any difference refuses the squash, listing it.
5. **Writing** (not with ``dry_run``): the replaced files move to
   ``<migrations>/squashed/<R>-<timestamp>/versions/`` with a note
   (``SQUASHED.md``) and a record (``squash.json``); the new file takes
   their place. Nothing is deleted.

A database left at a replaced revision is refused by ``upgrade`` with one
clear error (see :class:`.scripts.StrandedRevision`); ``flask db upgrade
--from-archive`` brings it to ``R`` with the archived revisions.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import datetime as dt
import json
import re
import shutil
import tempfile
import textwrap
import typing as t
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from flask import current_app

from . import _alembic, journal, runner, scratch, scripts, verify
from .errors import MigrateError
from .locking import LockOptions
from .results import DataOperation, SquashResult
from .runner import get_config, load_scripts, translate_errors

if t.TYPE_CHECKING:  # pragma: no cover
    import os

    from alembic.operations.ops import MigrateOperation
    from alembic.runtime.migration import MigrationContext
    from alembic.script import Script, ScriptDirectory
    from sqlalchemy.engine import Connection

    from .config import Config

__all__ = ["SquashError", "data_operations", "squash"]

#: How data operations may be treated (``data=``).
DATA_CHOICES = ("drop", "keep")


class SquashError(MigrateError):
    """``squash`` refused; the message says why and what to do.

    :attr:`problems` lists the individual reasons (data operations,
    differences found by the self-check), when there are several.
    """

    def __init__(self, message: str, problems: t.Sequence[str] = ()) -> None:
        self.problems = tuple(problems)
        super().__init__(message)


@translate_errors
def squash(
    directory: str | os.PathLike[str] | None = None,
    revision: str = "head",
    *,
    data: str | None = None,
    dry_run: bool = False,
    message: str | None = None,
    x_arg: str | t.Sequence[str] | None = None,
) -> SquashResult:
    """Replace the history from base to ``revision`` with one revision of the same id.

    :param revision: the last revision to squash (default: the head). The
        revisions after it are left alone.
    :param data: what to do with data operations in the range (see
        :func:`data_operations`): ``None`` refuses when there are any,
        ``"drop"`` leaves them out (fresh databases will not get that data),
        ``"keep"`` copies them into the new revision, after the schema.
    :param dry_run: do everything (generation and self-check included) but
        write and move nothing.
    :param message: the new revision's message.
    :returns: what was (or would be) done, the new revision's source included.
    :raises SquashError: for every refusal, with the reason.
    """
    if data not in (None, *DATA_CHOICES):
        raise SquashError(f"Unknown treatment of data operations {data!r}; use 'drop' or 'keep'.")
    config = get_config(directory, x_arg=x_arg)
    script = load_scripts(config)
    target = _resolve(script, revision)
    chain = _history(script, target)
    ids = tuple(sc.revision for sc in chain)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    files = [_RevisionFile.read(sc) for sc in chain]
    found = [f for rf in files for f in _scan(rf, [app.import_name.split(".")[0]])]
    operations = tuple(f.operation for f in found)
    if operations and data is None:
        raise SquashError(
            f"{len(operations)} data operation(s) in the revisions to squash: "
            + "; ".join(_relative_operation(o) for o in operations)
            + ". A squashed revision is made from the schema alone. Run again with "
            "'--data drop' (fresh databases will not get what they do) or "
            "'--data keep' (they are copied into the new revision, after the schema).",
            [o.format() for o in operations],
        )
    kept = _kept(files, found, app.import_name.split(".")[0]) if data == "keep" else {}
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    root = Path(script.dir)
    archive = root / scripts.SQUASHED_FOLDER / f"{target.revision}-{now:%Y%m%dT%H%M%SZ}"
    _check_archive_place(script, archive)
    new_file = Path(target.path).parent / f"{target.revision}_squashed.py"
    if new_file.exists() and new_file != Path(target.path):
        raise SquashError(f"{new_file} already exists; move it away first.")

    state = runner.state()
    engines = dict(getattr(state.db, "engines", None) or {})
    if not engines:
        raise SquashError("The application declares no database: there is no schema to squash.")
    with verify._quiet_alembic(), tempfile.TemporaryDirectory(prefix="flask-migrate-squash-") as tmp:
        with scratch.databases_for(engines) as databases, scratch.pointed_at(app, state.db, databases):
            parts = _generate(config, script, target, databases)
        text = _docstring(message, target, ids, archive, root, data, operations, now)
        source_path = _write_revision(script, target, parts, kept, text, Path(tmp))
        with scratch.databases_for(engines) as databases, scratch.pointed_at(app, state.db, databases):
            _self_check(config, script, Path(tmp), parts, databases)
        source = source_path.read_text(encoding="utf-8")
    labels = tuple(p.bind_label for p in parts)
    if not dry_run:
        _archive(script, chain, archive, new_file, source, data, operations, labels, now)
    return SquashResult(
        revision=target.revision,
        replaced=ids,
        replaced_files=tuple(Path(sc.path) for sc in chain),
        data_operations=operations,
        data=data if operations else None,
        archive=archive,
        new_file=new_file,
        databases=labels,
        dry_run=dry_run,
        source=source,
    )


# -- the range ---------------------------------------------------------------------------


def _resolve(script: ScriptDirectory, revision: str) -> Script:
    found = [sc for sc in script.get_revisions(revision) if sc is not None]
    if not found:
        raise SquashError(
            f"{revision!r} is the base: there is nothing to squash. Name the last "
            "revision to squash (by default, the head)."
        )
    if len(found) > 1:
        shown = ", ".join(sc.revision for sc in found)
        raise SquashError(
            f"{revision!r} names several revisions ({shown}); squash takes one. Name the "
            "last revision to squash, or merge the heads first ('flask db merge heads')."
        )
    return found[0]


def _tuple(value: t.Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _history(script: ScriptDirectory, target: Script) -> list[Script]:
    """``target`` and its ancestors, base first; refuses what cannot be squashed."""
    chain: list[Script] = []
    sc: Script | None = target
    while sc is not None:
        downs = _tuple(sc.down_revision)
        if len(downs) > 1:
            raise SquashError(
                f"The history up to {target.revision} is not linear: {sc.revision} merges "
                f"{', '.join(downs)}. Squash only a straight line of revisions: name a "
                "revision after the merge only once its branches are squashed separately, "
                "or squash up to a revision before the branches split."
            )
        chain.append(sc)
        sc = script.get_revision(downs[0]) if downs else None
    chain.reverse()
    if len(chain) == 1:
        raise SquashError(
            f"{target.revision} is the first revision: there is nothing to squash."
        )
    inside = {c.revision for c in chain}
    for c in chain:
        labels = _tuple(getattr(c.module, "branch_labels", None))
        if labels and c is not target:
            raise SquashError(
                f"{c.revision} carries the branch label(s) {', '.join(labels)}, and would "
                f"disappear into {target.revision}: anything that names the label would "
                "break. Squash up to that revision (its labels are kept), or remove the labels."
            )
        for dep in _dependencies(script, c):
            if dep not in inside:
                raise SquashError(
                    f"{c.revision} depends on {dep}, outside the history up to "
                    f"{target.revision}; a squashed revision starts from base and cannot "
                    "keep that dependency. Remove the depends_on, or squash elsewhere."
                )
    for other in script.walk_revisions():
        if other.revision in inside:
            continue
        for down in _tuple(other.down_revision):
            if down in inside and down != target.revision:
                raise SquashError(
                    f"The history up to {target.revision} is not linear: {other.revision} "
                    f"builds on {down}, which would be squashed away and leave it stranded. "
                    f"Squash up to {down} at most, or merge the branches first."
                )
        for dep in _dependencies(script, other):
            if dep in inside and dep != target.revision:
                raise SquashError(
                    f"{other.revision} depends on {dep}, which would be squashed into "
                    f"{target.revision}. Make it depend on {target.revision} instead, or "
                    f"squash up to {dep} at most."
                )
    return chain


def _dependencies(script: ScriptDirectory, sc: Script) -> set[str]:
    ids: set[str] = set()
    for dep in _tuple(sc.dependencies):
        ids.update(r.revision for r in script.get_revisions(dep) if r is not None)
    return ids


def _check_archive_place(script: ScriptDirectory, archive: Path) -> None:
    """The archive must be where Alembic does not look for revisions."""
    versions = (archive / "versions").resolve()
    for location in _alembic.version_locations(script):
        where = Path(location).resolve()
        if where == versions or (script.recursive_version_locations and where in versions.parents):
            raise SquashError(
                f"The archive folder {archive} would be inside the version location "
                f"{location} (recursive_version_locations), where Alembic would load the "
                "replaced revisions again. Keep the revision files in a folder of their own "
                "(the default: versions/), or turn recursive_version_locations off."
            )


# -- data operations -------------------------------------------------------------------

#: Statements that change neither the schema nor the data: nothing to replay.
_HARMLESS_SQL = re.compile(r"^(SET|RESET|ANALYZE|VACUUM)\b", re.I)
#: Statements that change the schema in ways reflection sees.
_SCHEMA_SQL = re.compile(r"^(CREATE|ALTER|DROP|COMMENT)\b", re.I)
#: DDL of objects reflection does not see: a squash would lose them silently.
_UNREFLECTED_SQL = re.compile(
    r"^(CREATE|ALTER|DROP)\s+(OR\s+REPLACE\s+)?(DEFINER\s*=\s*\S+\s+)?(ALGORITHM\s*=\s*\S+\s+)?"
    r"(TEMP\s+|TEMPORARY\s+)?(MATERIALIZED\s+|RECURSIVE\s+)?"
    r"(VIEW|TRIGGER|FUNCTION|PROCEDURE|EXTENSION|RULE|POLICY|DOMAIN|EVENT|AGGREGATE|"
    r"OPERATOR|ROLE|USER|LANGUAGE|PUBLICATION|SUBSCRIPTION|SERVER|COLLATION)\b",
    re.I,
)
_ENUM_TYPE_SQL = re.compile(r"^(CREATE\s+TYPE\s+\S+\s+AS\s+ENUM|DROP\s+TYPE|ALTER\s+TYPE)\b", re.I)
#: SQLAlchemy DDL constructs passed to ``op.execute()``: schema changes.
_DDL_CONSTRUCTS = frozenset({
    "AddConstraint", "CreateIndex", "CreateSchema", "CreateSequence", "CreateTable",
    "DropConstraint", "DropIndex", "DropSchema", "DropSequence", "DropTable",
    "SetColumnComment", "SetTableComment", "DropColumnComment", "DropTableComment",
})
#: ``op`` methods that do not change the schema (the others do).
_OP_NOT_SCHEMA = frozenset({
    "bulk_insert", "execute", "f", "get_bind", "get_context", "inline_literal",
    "invoke", "run_async",
})


@dataclass
class _RevisionFile:
    script: Script
    path: Path
    source: str
    module: ast.Module
    #: the names ``alembic.op`` has in the file
    op_names: frozenset[str]

    @classmethod
    def read(cls, sc: Script) -> _RevisionFile:
        path = Path(sc.path)
        source = path.read_text(encoding="utf-8")
        module = ast.parse(source, str(path))
        names = {"op"}
        for node in ast.walk(module):
            if isinstance(node, ast.ImportFrom) and node.module == "alembic" and not node.level:
                names |= {a.asname or a.name for a in node.names if a.name == "op"}
        return cls(sc, path, source, module, frozenset(names))

    def functions(self, prefix: str) -> list[ast.FunctionDef]:
        return [
            node for node in self.module.body
            if isinstance(node, ast.FunctionDef)
            and (node.name == prefix or node.name.startswith(prefix + "_"))
        ]

    def is_op(self, node: ast.expr) -> bool:
        return isinstance(node, ast.Name) and node.id in self.op_names


@dataclass
class _Found:
    operation: DataOperation
    #: the upgrade function it is in (``None``: at module level)
    function: ast.FunctionDef | None = None
    #: the top-level statement of that function it is in
    statement: ast.stmt | None = None


def data_operations(revisions: t.Iterable[Script], app_packages: t.Iterable[str] = ()) -> list[DataOperation]:
    """What the revisions do beyond changing the schema, read from their files.

    Found in ``upgrade()`` (and ``upgrade_<bind>()``): ``op.execute()`` of SQL
    that is not a schema change (or of DDL for objects reflection does not
    see: views, triggers, functions, grants, ...), ``op.bulk_insert()``,
    ``.execute()`` on connections and sessions, ORM sessions, loops, calls of
    functions defined in the file; anywhere in the file: imports of the
    application's modules (``app_packages``) or of a ``models`` module.
    """
    packages = list(app_packages)
    return [f.operation for sc in revisions for f in _scan(_RevisionFile.read(sc), packages)]


def _scan(rf: _RevisionFile, app_packages: list[str]) -> list[_Found]:
    found: list[_Found] = []
    rev = rf.script.revision

    def add(line: int, what: str, function: ast.FunctionDef | None = None,
            statement: ast.stmt | None = None) -> None:
        found.append(_Found(DataOperation(rev, rf.path, line, what), function, statement))

    for node in ast.walk(rf.module):
        modules = _imported_modules(node)
        bad = [m for m in modules if _is_app_module(m, app_packages)]
        if bad and isinstance(node, (ast.Import, ast.ImportFrom)):
            shown = bad if isinstance(node, ast.Import) else ["." * node.level + (node.module or "")]
            add(node.lineno, f"imports {', '.join(shown)} from the application "
                "(today's code, not the history's)")
    helpers = {
        node.name for node in rf.module.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and not node.name.startswith(("upgrade", "downgrade"))
    }
    for function in rf.functions("upgrade"):
        batches = {
            item.optional_vars.id
            for node in ast.walk(function) if isinstance(node, ast.With)
            for item in node.items
            if isinstance(item.optional_vars, ast.Name) and isinstance(item.context_expr, ast.Call)
            and isinstance(item.context_expr.func, ast.Attribute)
            and item.context_expr.func.attr == "batch_alter_table"
        }
        for statement in function.body:
            for node in ast.walk(statement):
                what = _data_node(rf, node, batches, helpers)
                if what is not None:
                    add(getattr(node, "lineno", statement.lineno), what, function, statement)
    found.sort(key=lambda f: f.operation.line)
    return found


def _imported_modules(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = "." * node.level + (node.module or "")
        return [f"{base}.{a.name}" if base and not base.endswith(".") else base + a.name for a in node.names]
    return []


def _is_app_module(module: str, app_packages: list[str]) -> bool:
    parts = module.lstrip(".").split(".")
    return "models" in parts or (not module.startswith(".") and parts[0] in app_packages)


def _data_node(rf: _RevisionFile, node: ast.AST, batches: set[str], helpers: set[str]) -> str | None:
    """What ``node`` does beyond the schema, or ``None``."""
    if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
        return "a loop (Python code, which the schema does not capture)"
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Name):
        if func.id in helpers:
            return f"calls {func.id}(), a function of the revision file (Python code)"
        if func.id in ("Session", "sessionmaker"):
            return f"{func.id}() (an ORM session)"
        return None
    if not isinstance(func, ast.Attribute):
        return None
    owner = func.value
    op_like = rf.is_op(owner) or (isinstance(owner, ast.Name) and owner.id in batches)
    if func.attr == "bulk_insert" and op_like:
        return "op.bulk_insert() (inserts rows)"
    if func.attr == "execute":
        if not op_like:
            return f"{_short(owner)}.execute() (SQL run on a connection or session)"
        return _classify_sql(node.args[0] if node.args else _keyword(node, "sqltext"))
    if func.attr in ("Session", "sessionmaker"):
        return f"{func.attr}() (an ORM session)"
    if func.attr == "query" and not op_like:
        return f"{_short(owner)}.query() (an ORM query)"
    return None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def _short(node: ast.expr) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 30 else text[:27] + "..."


def _classify_sql(arg: ast.expr | None) -> str | None:
    """Why ``op.execute(arg)`` is a data operation, or ``None`` when it changes the schema only."""
    if arg is None:
        return "op.execute() of SQL built at run time"
    if isinstance(arg, ast.Call):
        name = arg.func.attr if isinstance(arg.func, ast.Attribute) else getattr(arg.func, "id", "")
        if name in _DDL_CONSTRUCTS:
            return None
        if name == "text" and arg.args:
            arg = arg.args[0]
        else:
            inner = arg  # levels.update().where(...).values(...): name levels.update()
            while isinstance(inner.func, ast.Attribute) and isinstance(inner.func.value, ast.Call):
                inner = inner.func.value
            return f"op.execute() of {_short(inner.func)}(...), a statement built in Python"
    if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
        return "op.execute() of SQL built at run time"
    text = re.sub(r"/\*.*?\*/", " ", arg.value, flags=re.S)
    text = re.sub(r"--[^\n]*", " ", text)
    for part in text.split(";"):
        statement = " ".join(part.split())
        if not statement:
            continue
        words = " ".join(statement.split()[:3])
        if re.match(r"^(GRANT|REVOKE)\b", statement, re.I):
            return f"op.execute() of '{words}...': privileges are not reflected"
        if _UNREFLECTED_SQL.match(statement) or (
            re.match(r"^CREATE\s+TYPE\b", statement, re.I) and not _ENUM_TYPE_SQL.match(statement)
        ):
            return (
                f"op.execute() of '{words}...': reflection does not see such objects, so the "
                "squashed revision would not rebuild it"
            )
        if _HARMLESS_SQL.match(statement):
            continue
        if not _SCHEMA_SQL.match(statement):
            return f"op.execute() of '{words}...' (not a schema change)"
    return None


def _relative_operation(operation: DataOperation) -> str:
    return f"{operation.path.name}:{operation.line}: {operation.what}"


# -- data="keep": the statements copied --------------------------------------------------

_BUILTINS = frozenset(dir(builtins))


def _token(function: str) -> str:
    """The template argument of an upgrade function: ``upgrades``, ``<bind>_upgrades``."""
    return "upgrades" if function == "upgrade" else function[len("upgrade_"):] + "_upgrades"


def _kept(files: list[_RevisionFile], found: list[_Found], app_package: str) -> dict[str, list[str]]:
    """The code copied for ``data="keep"``: template token -> lines, history order."""
    kept: dict[str, list[str]] = {}
    for rf in files:
        mine = [f for f in found if f.operation.revision == rf.script.revision and f.function is not None]
        for function in rf.functions("upgrade"):
            statements = [f.statement for f in mine if f.function is function and f.statement is not None]
            if not statements:
                continue
            chosen, preamble = _closure(rf, function, statements, [app_package])
            lines = [f"# kept from {rf.script.revision} ({rf.path.name}) by 'flask db squash --data keep'"]
            for node in preamble + chosen:
                lines.extend(_statement_lines(rf, node))
            kept.setdefault(_token(function.name), []).extend(lines)
    return kept


def _closure(
    rf: _RevisionFile, function: ast.FunctionDef, flagged: list[ast.stmt], app_packages: list[str],
) -> tuple[list[ast.stmt], list[ast.stmt]]:
    """The statements to copy: the flagged ones, and those that define the names they use.

    Returns (statements of the function, in order; module-level imports and
    assignments they need). ``t = op.create_table(...)``, the usual way to
    get a table for ``op.bulk_insert(t, ...)``, is copied as
    ``t = sa.Table(..., sa.MetaData(), ...)``: the same table, not created
    twice. Refuses a name that cannot be brought along.
    """
    body = function.body
    chosen: dict[int, ast.stmt] = {id(s): s for s in flagged}
    preamble: dict[int, ast.stmt] = {}
    while True:
        nodes = list(chosen.values()) + list(preamble.values())
        bound = set().union(*(_bound(n) for n in nodes))
        needed = set().union(*(_loaded(n) for n in nodes)) - bound - {"op", "sa"} - _BUILTINS
        if not needed:
            break
        name = sorted(needed)[0]
        last = max(i for i, s in enumerate(body) if id(s) in chosen)
        source = next((s for s in reversed(body[:last]) if name in _bound(s)), None)
        if source is not None:
            chosen[id(source)] = _as_table(rf, source) or source
            _refuse_schema_changes(rf, chosen[id(source)], name, app_packages)
            continue
        source = next((s for s in rf.module.body if _module_definition(s) and name in _bound(s)), None)
        if source is None:
            raise SquashError(
                f"Cannot keep the data operations of {rf.script.revision}: "
                f"{rf.path.name} uses {name!r}, which is not defined by the copied statements "
                "(only 'op', 'sa', built-ins and names those statements or the file's imports "
                "define can be used). Use '--data drop' and write a data migration of your own."
            )
        _refuse_schema_changes(rf, source, name, app_packages)
        preamble[id(source)] = source
    for statement in flagged:
        _refuse_schema_changes(rf, statement, None, app_packages)
    ordered = [chosen[id(s)] for s in body if id(s) in chosen]
    return ordered, [s for s in rf.module.body if id(s) in preamble]


def _as_table(rf: _RevisionFile, node: ast.stmt) -> ast.stmt | None:
    """``t = op.create_table(name, *columns, **kw)`` as ``t = sa.Table(name, sa.MetaData(), ...)``."""
    if not (
        isinstance(node, ast.Assign) and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute) and rf.is_op(node.value.func.value)
        and node.value.func.attr == "create_table" and node.value.args
    ):
        return None
    call = node.value
    metadata = ast.Call(ast.Attribute(ast.Name("sa", ast.Load()), "MetaData", ast.Load()), [], [])
    table = ast.Call(
        ast.Attribute(ast.Name("sa", ast.Load()), "Table", ast.Load()),
        [call.args[0], metadata, *call.args[1:]], call.keywords,
    )
    rewritten = ast.fix_missing_locations(ast.copy_location(ast.Assign(node.targets, table), node))
    setattr(rewritten, "_flask_migrate_rewritten", True)  # noqa: B010
    return rewritten


def _module_definition(node: ast.stmt) -> bool:
    return isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign))


def _refuse_schema_changes(
    rf: _RevisionFile, node: ast.stmt, name: str | None, app_packages: list[str]
) -> None:
    """A copied statement must not change the schema: the new revision already did."""
    for call in ast.walk(node):
        if (
            isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and rf.is_op(call.func.value) and call.func.attr not in _OP_NOT_SCHEMA
        ):
            why = f", which defines {name!r} for a data operation," if name else ""
            raise SquashError(
                f"Cannot keep the data operations of {rf.script.revision}: the statement at "
                f"{rf.path.name}:{node.lineno}{why} also changes the schema (op.{call.func.attr}()), "
                "and copying it would do that twice. Use '--data drop' and write a data "
                "migration of your own, or split the statement."
            )
    for module in _imported_modules(node):
        if _is_app_module(module, app_packages) or module.startswith("."):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
            raise SquashError(
                f"Cannot keep the data operations of {rf.script.revision}: they use "
                f"{name!r} from {module}, the application's code, which is today's and not "
                "the history's. Use '--data drop' and write a data migration of your own."
            )


def _bound(node: ast.AST) -> set[str]:
    names: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            names.add(sub.id)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in sub.names)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(sub.name)
        elif isinstance(sub, ast.arg):
            names.add(sub.arg)
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            names.add(sub.name)
    return names


def _loaded(node: ast.AST) -> set[str]:
    return {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load)}


def _statement_lines(rf: _RevisionFile, node: ast.stmt) -> list[str]:
    """The statement's source, dedented; unparsed when its lines cannot be re-indented exactly."""
    if getattr(node, "_flask_migrate_rewritten", False):  # made by _as_table()
        comment = "# the table as the revision created it, for the statements below"
        return [comment, *ast.unparse(node).splitlines()]
    assert node.end_lineno is not None
    lines = rf.source.splitlines()[node.lineno - 1 : node.end_lineno]
    indent = node.col_offset
    after = lines[-1].encode()[node.end_col_offset or 0 :].decode(errors="replace").strip() if lines else ""
    alone = not lines[0][:indent].strip() and (not after or after.startswith("#")) if lines else False
    if (
        alone and indent == 4
        and all(not line.strip() or line[:indent].isspace() for line in lines[1:])
    ):
        return [line[indent:] if line.strip() else "" for line in lines]
    # NOTE: a string whose lines start further left than the statement (or a
    # statement sharing its line with another) cannot be moved by re-indenting
    # without changing it: its exact equivalent is written instead
    return ast.unparse(node).splitlines()


# -- generating the new revision ------------------------------------------------------------


@dataclass
class _Part:
    """The new revision's code for one database ``env.py`` configures."""

    bind_label: str
    #: the template arguments env.py's configure() names (upgrade_token, downgrade_token)
    upgrade_token: str
    downgrade_token: str
    upgrade: list[str]
    downgrade: list[str]
    imports: set[str]
    #: the schema the history built, and its views
    schema: verify.Schema
    views: tuple[str, ...]


class _ReflectingRun(verify._SnapshotRun):
    """Reflects each database after its steps; also notes its views."""

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.views: dict[str, tuple[str, ...]] = {}

    def finished(self, context: MigrationContext, error: BaseException | None) -> None:
        super().finished(context, error)
        target = self.target_for(context)
        if error is not None or target is None or target.connection is None:
            return
        self.views[target.database] = tuple(sorted(_views(target.connection)))


class _GeneratingRun(_ReflectingRun):
    """Upgrades the original history, then renders each database's schema."""

    def __init__(
        self, *args: t.Any, databases: t.Iterable[scratch.ScratchDatabase], revision: str,
        **kwargs: t.Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.labels = {scratch.identity(d.url): d.bind_label for d in databases}
        self.revision = revision
        self.parts: list[_Part] = []

    def finished(self, context: MigrationContext, error: BaseException | None) -> None:
        super().finished(context, error)
        target = self.target_for(context)
        if error is not None or target is None or target.connection is None:
            return
        conn = target.connection
        label = self.labels.get(scratch.identity(conn.engine.url), target.database)
        try:
            upgrade, downgrade, imports = _schema_code(conn, target, self.revision)
        except Exception as exc:
            raise SquashError(
                f"Could not write the schema of the {label} as a revision "
                f"({type(exc).__name__}: {exc}). Please report this, with the history's "
                "kind of objects (tables, types, ...)."
            ) from exc
        self.parts.append(_Part(
            bind_label=label,
            upgrade_token=context.opts.get("upgrade_token") or "upgrades",
            downgrade_token=context.opts.get("downgrade_token") or "downgrades",
            upgrade=upgrade,
            downgrade=downgrade,
            imports=imports,
            schema=self.after[target.database],
            views=self.views[target.database],
        ))


def _generate(
    config: Config, script: ScriptDirectory, target: Script,
    databases: dict[scratch.Bind, scratch.ScratchDatabase],
) -> list[_Part]:
    """Upgrade scratch databases to ``target`` with the original history; render their schemas."""
    rev = target.revision

    def compute(heads: t.Any) -> list[t.Any]:
        return _alembic.upgrade_steps(script, rev, heads)

    run = _GeneratingRun(
        config, script, lambda heads, context: compute(heads),
        plan=runner.Plan("upgrade", rev, compute), lock=LockOptions(enabled=False),
        journal=False, guard=scratch.guard(databases.values()), databases=databases.values(),
        revision=rev, as_sql=False, destination_rev=rev,
    )
    try:
        run.execute()
    except MigrateError:
        raise
    except Exception as exc:
        raise SquashError(
            f"The history does not upgrade to {rev} on a fresh database "
            f"({verify._error_text(exc)}), so there is no schema to squash. "
            "Fix the history first; 'flask db verify' shows where it fails."
        ) from exc
    if not run.parts:
        raise SquashError("env.py configured no database to migrate: there is no schema to squash.")
    tokens = [p.upgrade_token for p in run.parts]
    if len(set(tokens)) != len(tokens):
        raise SquashError(
            "env.py configures several databases with the same upgrade_token, so one "
            "revision file cannot hold the schema of each; use the flask-multidb template's env.py."
        )
    return run.parts


def _views(conn: Connection) -> list[str]:
    inspector = sa.inspect(conn)
    names = list(inspector.get_view_names())
    if conn.dialect.name == "postgresql":
        names += [f"materialized:{n}" for n in inspector.get_materialized_view_names()]
    return names


_NEXTVAL = re.compile(r"nextval\('(.+)'::regclass\)")

_PG_SEQUENCES = """
SELECT s.relname, q.seqstart, q.seqincrement, t.relname, a.attname, d.deptype
  FROM pg_class s
  JOIN pg_namespace n ON n.oid = s.relnamespace
  JOIN pg_sequence q ON q.seqrelid = s.oid
  LEFT JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
       AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  LEFT JOIN pg_class t ON t.oid = d.refobjid
  LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
 WHERE s.relkind = 'S' AND n.nspname = current_schema()
"""


@dataclass
class _Sequence:
    name: str
    start: int
    increment: int
    owner: tuple[str, str] | None
    identity: bool


def _schema_code(
    conn: Connection, target: runner.Target, revision: str
) -> tuple[list[str], list[str], set[str]]:
    """The upgrade and downgrade code that create and drop the schema of ``conn``, and imports."""
    from alembic.operations import ops
    from sqlalchemy.dialects import postgresql

    dialect = conn.dialect.name
    quote = conn.dialect.identifier_preparer.quote
    own = verify._own_tables(target)
    inspector = sa.inspect(conn)
    names = [
        name for name in inspector.get_table_names()
        if (None, name) not in own and not journal.is_journal(name)
        and not (target.version_table_schema is None and name == target.version_table)
    ]
    metadata = sa.MetaData()
    if names:
        metadata.reflect(conn, only=names)
    tables = [metadata.tables[name] for name in names]
    up_pre: list[str] = []
    up_post: list[str] = []
    down_pre: list[str] = []
    down_post: list[str] = []
    imports: set[str] = set()

    if dialect == "postgresql":
        enums = [e for e in inspector.get_enums() if e.get("visible", True)]  # type: ignore[attr-defined]
        for enum in enums:
            imports.add("from sqlalchemy.dialects import postgresql")
            created = postgresql.ENUM(*enum["labels"], name=enum["name"])
            up_pre.append(f"postgresql.{created!r}.create(op.get_bind())")
            down_post.append(
                f"postgresql.ENUM(name={enum['name']!r}).drop(op.get_bind(), checkfirst=True)"
            )
        for table in tables:
            for column in table.c:
                _no_create_type(column)
        sequences = _pg_sequences(conn)
        serial: set[str] = set()
        for table in tables:
            for column in table.c:
                name = _nextval(column)
                seq = sequences.get(name or "")
                # NOTE: as Alembic's autogenerate does, a SERIAL column loses its
                # nextval() default, and recreates its sequence itself; only when
                # that gives the very same sequence name
                if (
                    seq is not None and seq.owner == (table.name, column.name) and not seq.identity
                    and table.autoincrement_column is column
                    and seq.name == f"{table.name}_{column.name}_seq"
                ):
                    column.server_default = None
                    serial.add(seq.name)
                elif seq is not None:
                    # NOTE: SQLAlchemy makes an autoincrement column SERIAL
                    # whatever its default; this one keeps the sequence it has
                    column.autoincrement = False
        for seq in sorted(sequences.values(), key=lambda s: s.name):
            if seq.name in serial or seq.identity:
                continue
            options = "".join(
                f", {key}={value}" for key, value in (("start", seq.start), ("increment", seq.increment))
                if value != 1
            )
            up_pre.append(f"op.execute(sa.schema.CreateSequence(sa.Sequence({seq.name!r}{options})))")
            dropped = f"sa.schema.DropSequence(sa.Sequence({seq.name!r}), if_exists=True)"
            down_post.insert(0, f"op.execute({dropped})")
            if seq.owner is not None:
                owner_table, owner_column = seq.owner
                owned = (
                    f"ALTER SEQUENCE {quote(seq.name)} OWNED BY "
                    f"{quote(owner_table)}.{quote(owner_column)}"
                )
                up_post.append(f"op.execute({owned!r})")

    for table in tables:
        _tidy(table, "postgresql_ignore_search_path")
        for item in [*table.indexes, *table.constraints]:
            _tidy(item, "postgresql_include", "postgresql_nulls_not_distinct")
    ordered = sa.schema.sort_tables_and_constraints(tables)  # type: ignore[no-untyped-call]
    sorted_tables = [table for table, _ in ordered if table is not None]
    deferred: list[sa.ForeignKeyConstraint] = []
    if dialect != "sqlite":
        # NOTE: SQLite accepts a foreign key to a table created later; the
        # others need the foreign keys of a cycle added once the tables exist
        deferred = [fkc for table, fkcs in ordered if table is None for fkc in fkcs]
        for fkc in deferred:
            fkc.parent.constraints.discard(fkc)
    up_ops: list[MigrateOperation] = [ops.CreateTableOp.from_table(table) for table in sorted_tables]
    for table in sorted_tables:
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            if dialect in ("mysql", "mariadb") and _implicit_fk_index(index):
                continue  # MySQL makes it with the foreign key
            index.unique = bool(index.unique)
            up_ops.append(ops.CreateIndexOp.from_index(index))
    up_ops += [ops.CreateForeignKeyOp.from_constraint(fkc) for fkc in deferred]
    down_ops: list[MigrateOperation] = [ops.DropConstraintOp.from_constraint(fkc) for fkc in deferred]
    down_ops += [ops.DropTableOp(table.name) for table in reversed(sorted_tables)]

    for view in reversed(sorted(_views(conn))):
        kind, _, name = view.rpartition(":")
        what = "MATERIALIZED VIEW" if kind else "VIEW"
        cascade = " CASCADE" if dialect == "postgresql" else ""
        down_pre.append(f"op.execute({f'DROP {what} IF EXISTS {quote(name)}{cascade}'!r})")

    up_code, up_imports = _render(up_ops, conn.dialect)
    down_code, down_imports = _render(down_ops, conn.dialect)
    imports |= up_imports | down_imports
    if not (up_pre or up_code or up_post):
        return [], [*down_pre, *down_code, *down_post], imports
    header = f"# the schema the squashed revisions built up to {revision}, reflected by 'flask db squash'"
    return [header, *up_pre, *up_code, *up_post], [*down_pre, *down_code, *down_post], imports


def _tidy(item: t.Any, *names: str) -> None:
    """Leave out reflected options that ask for nothing (``postgresql_include=[]``, ...)."""
    for name in names:
        if name in item.dialect_kwargs and (
            not item.dialect_kwargs[name] or name == "postgresql_ignore_search_path"
        ):
            with contextlib.suppress(KeyError):  # a default, not set on the object
                del item.dialect_kwargs[name]


def _no_create_type(column: sa.Column[t.Any]) -> None:
    """PostgreSQL: enum types are created once, up front; columns must not create them again."""
    from sqlalchemy.dialects import postgresql

    type_ = column.type
    if isinstance(type_, postgresql.ARRAY) and isinstance(type_.item_type, postgresql.ENUM):
        type_.item_type.create_type = False
    elif isinstance(type_, postgresql.ENUM):
        type_.create_type = False


def _pg_sequences(conn: Connection) -> dict[str, _Sequence]:
    found: dict[str, _Sequence] = {}
    for name, start, increment, table, column, deptype in conn.exec_driver_sql(_PG_SEQUENCES):
        owner = (table, column) if table is not None and column is not None else None
        found[name] = _Sequence(name, int(start), int(increment), owner, deptype == "i")
    return found


def _nextval(column: sa.Column[t.Any]) -> str | None:
    default = column.server_default
    text = str(getattr(default, "arg", "")) if default is not None else ""
    match = _NEXTVAL.fullmatch(text)
    if match is None:
        return None
    name = match.group(1)
    if name.startswith('"') and name.endswith('"'):
        name = name[1:-1].replace('""', '"')
    return name


def _implicit_fk_index(index: sa.Index) -> bool:
    """MySQL/MariaDB: the index a named foreign key made for itself (same name, same columns)."""
    table = index.table
    if index.unique or table is None:
        return False
    columns = [c.name for c in index.columns]
    return any(
        fkc.name == index.name and [c.name for c in fkc.columns] == columns
        for fkc in table.foreign_key_constraints
    )


_ALEMBIC_MARKERS = (
    "# ### commands auto generated by Alembic - please adjust! ###",
    "# ### end Alembic commands ###",
)


def _render(operations: list[MigrateOperation], dialect: sa.Dialect) -> tuple[list[str], set[str]]:
    """Alembic's rendering of ``operations``: the lines (unindented) and the imports they need."""
    if not operations:
        return [], set()
    from alembic.autogenerate import render_python_code
    from alembic.operations import ops
    from alembic.runtime.migration import MigrationContext

    # NOTE: a context of its own, for the dialect's way of rendering types:
    # env.py's context would have the renderer look for its target_metadata
    context = MigrationContext.configure(dialect=dialect)

    contexts: list[t.Any] = []

    def remember(kind: str, obj: t.Any, autogen_context: t.Any) -> t.Literal[False]:
        # NOTE: the only public way to the imports the rendering needs
        # ("from sqlalchemy.dialects import postgresql"): the render_item hook
        # is given the renderer's context, which collects them
        contexts.append(autogen_context)
        return False

    text = render_python_code(
        ops.UpgradeOps(ops=list(operations)), migration_context=context, render_item=remember
    )
    lines = []
    for number, line in enumerate(text.splitlines()):
        if number and line.startswith("    "):
            line = line[4:]
        if line.strip() in _ALEMBIC_MARKERS:
            continue
        lines.append(line)
    imports = set(contexts[0].imports) if contexts else set()
    return lines, imports


def _docstring(
    message: str | None, target: Script, ids: tuple[str, ...], archive: Path, root: Path,
    data: str | None, operations: tuple[DataOperation, ...], now: dt.datetime,
) -> str:
    first = message or f"Squashed history: {len(ids)} revisions from base to {target.revision}"
    where = _relative(archive, root.parent)
    text = [
        first,
        "",
        f"Made by 'flask db squash' on {now:%Y-%m-%d %H:%M} UTC from the schema that the",
        f"revisions from base to {target.revision} built ({len(ids)} revisions, archived in",
        f"{where}/versions). Databases at {target.revision} or later need",
        "nothing; for older ones see SQUASHED.md there ('flask db upgrade --from-archive').",
    ]
    if operations and data == "drop":
        text += ["", "Data operations of those revisions, not replayed on fresh databases (--data drop):"]
        text += [f"    {_relative_operation(o)}" for o in operations]
    elif operations and data == "keep":
        text += ["", "Data operations of those revisions, copied after the schema (--data keep):"]
        text += [f"    {_relative_operation(o)}" for o in operations]
    joined = "\n".join(text)
    # the message goes inside the template's triple-quoted docstring
    return joined.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _relative(path: Path, base: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(base))
    return str(path)


def _join(lines: list[str]) -> str:
    """Lines as the template wants a function body: the first line is indented by the template."""
    return "\n".join(("    " + line) if line and i else line for i, line in enumerate(lines)).lstrip()


def _write_revision(
    script: ScriptDirectory, target: Script, parts: list[_Part], kept: dict[str, list[str]],
    message: str, folder: Path,
) -> Path:
    """Render the new revision with the project's ``script.py.mako`` into ``folder``."""
    clone = scripts.with_versions(script, folder)
    template_args: dict[str, str] = {}
    imports: set[str] = set()
    tokens = {p.upgrade_token for p in parts}
    for token in kept:
        if token not in tokens:
            function = "upgrade()" if token == "upgrades" else f"upgrade_{token[: -len('_upgrades')]}()"
            raise SquashError(
                f"Cannot keep the data operations of {function}: env.py configures no database "
                f"whose revisions run that function (it passes no upgrade_token {token!r})."
            )
    for part in parts:
        upgrade = list(part.upgrade)
        if part.upgrade_token in kept:
            upgrade += ([""] if upgrade else []) + kept[part.upgrade_token]
        if upgrade:
            template_args[part.upgrade_token] = _join(upgrade)
        if part.downgrade:
            template_args[part.downgrade_token] = _join(part.downgrade)
        imports |= part.imports
    template_args["imports"] = "\n".join(sorted(imports))
    labels = _tuple(getattr(target.module, "branch_labels", None)) or None
    new = clone.generate_revision(
        target.revision, message, head="base", branch_labels=labels,
        **t.cast("dict[str, t.Any]", template_args),
    )
    if new is None:  # pragma: no cover - Alembic returns None only for sourceless files
        raise SquashError("The new revision could not be loaded back.")
    return Path(new.path)


# -- the self-check -------------------------------------------------------------------------

# phrases for verify._differences(): (added, removed, changed)
_PHRASES = (
    "the new revision creates {}, which the history does not",
    "the new revision does not create {}",
    "{} is {} from the new revision, {} from the history",
)


def _self_check(
    config: Config, script: ScriptDirectory, folder: Path, parts: list[_Part],
    databases: dict[scratch.Bind, scratch.ScratchDatabase],
) -> None:
    """Run the new revision alone on fresh databases: same schema as the history, then empty."""
    clone = scripts.with_versions(script, folder)
    labels = {scratch.identity(d.url): d.bind_label for d in databases.values()}
    guard = scratch.guard(databases.values())

    def run(direction: str, destination: str) -> _ReflectingRun:
        def compute(heads: t.Any) -> list[t.Any]:
            if direction == "upgrade":
                return _alembic.upgrade_steps(clone, destination, heads)
            return _alembic.downgrade_steps(clone, destination, heads)

        reflecting = _ReflectingRun(
            config, clone, lambda heads, context: compute(heads),
            plan=runner.Plan(direction, destination, compute), lock=LockOptions(enabled=False),
            journal=False, guard=guard, as_sql=False, destination_rev=destination,
        )
        try:
            reflecting.execute()
        except MigrateError:
            raise
        except Exception as exc:
            raise SquashError(
                f"Self-check failed: the new revision's {direction} fails on a fresh database "
                f"({verify._error_text(exc)}). Nothing was written. Please report this with "
                "'flask db squash --dry-run' output."
            ) from exc
        return reflecting

    def by_label(found: dict[str, t.Any]) -> dict[str, t.Any]:
        return {labels.get(scratch.identity(database), database): value for database, value in found.items()}

    problems: list[str] = []
    up = run("upgrade", "heads")
    schemas, views = by_label(up.after), by_label(up.views)
    for part in parts:
        text = verify._differences(part.schema, schemas.get(part.bind_label, {}), _PHRASES)
        if text:
            problems.append(f"{part.bind_label}: {text}")
        missing = sorted(set(part.views) - set(views.get(part.bind_label, ())))
        if missing:
            problems.append(
                f"{part.bind_label}: the new revision does not create the view(s) "
                f"{', '.join(v.rpartition(':')[2] for v in missing)} (use '--data keep' to copy "
                "the statements that made them)"
            )
    if problems:
        raise SquashError(
            "Self-check failed: the new revision does not build the schema the history "
            "builds, so nothing was written: " + "; ".join(problems) + ".",
            problems,
        )
    down = run("downgrade", "base")
    for label, schema in by_label(down.after).items():
        text = verify._differences({}, schema, ("its downgrade leaves {} behind", "{}", "{}"))
        left = by_label(down.views).get(label, ())
        if left:
            leftover = f"its downgrade leaves the view(s) {', '.join(left)} behind"
            text = "; ".join(filter(None, [text, leftover]))
        if text:
            problems.append(f"{label}: {text}")
    if problems:
        raise SquashError(
            "Self-check failed: the new revision's downgrade does not empty the database, so "
            "nothing was written: " + "; ".join(problems) + ".",
            problems,
        )


# -- writing -----------------------------------------------------------------------------------


def _archive(
    script: ScriptDirectory, chain: list[Script], archive: Path, new_file: Path, source: str,
    data: str | None, operations: tuple[DataOperation, ...], databases: tuple[str, ...],
    now: dt.datetime,
) -> None:
    """Move the replaced files to the archive, write the note and the record, then the new file."""
    target = chain[-1]
    versions = archive / "versions"
    try:
        versions.mkdir(parents=True)
    except FileExistsError:
        raise SquashError(f"The archive folder {archive} exists already; try again in a second.") from None
    root = Path(script.dir)
    moved: list[tuple[Path, Path]] = []
    replaced_files: dict[str, dict[str, str]] = {}
    written = False
    try:
        for sc in chain:
            source_path = Path(sc.path)
            destination = versions / source_path.name
            if destination.exists():
                destination = versions / f"{sc.revision}_{source_path.name}"
            replaced_files[sc.revision] = {
                "file": source_path.name,
                "sha256": journal.file_checksum(source_path),
                "was": _relative(source_path, root),
            }
            shutil.move(str(source_path), destination)
            moved.append((source_path, destination))
        new_file.write_text(source, encoding="utf-8")
        written = True
        record = {
            "revision": target.revision,
            "replaced": [sc.revision for sc in chain],
            "replaced_files": replaced_files,
            "created_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "new_file": _relative(new_file, root),
            "new_file_sha256": journal.file_checksum(new_file),
            "data": data if operations else None,
            "data_operations": [
                {"revision": o.revision, "file": o.path.name, "line": o.line, "what": o.what}
                for o in operations
            ],
            "databases": list(databases),
        }
        (archive / "squash.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (archive / "SQUASHED.md").write_text(
            _note(chain, archive, new_file, root, data, operations, databases, now), encoding="utf-8"
        )
    except BaseException:
        # put everything back as it was: the history must never be left half-squashed
        if written:
            with contextlib.suppress(OSError):
                new_file.unlink()
        for original, destination in reversed(moved):
            with contextlib.suppress(OSError):
                shutil.move(str(destination), original)
        shutil.rmtree(archive, ignore_errors=True)
        raise


def _note(
    chain: list[Script], archive: Path, new_file: Path, root: Path, data: str | None,
    operations: tuple[DataOperation, ...], databases: tuple[str, ...], now: dt.datetime,
) -> str:
    target = chain[-1].revision
    lines = [
        f"# Squashed history: base to {target}",
        "",
        f"On {now:%Y-%m-%d %H:%M} UTC, `flask db squash` replaced the {len(chain)} revisions "
        f"from base to {target} with one revision, `{_relative(new_file, root)}`, which "
        f"kept the id {target} and creates the schema these revisions built "
        f"({', '.join(databases)}). It was checked on fresh databases before it was written: "
        "same tables, columns, constraints, indexes, enum types and sequences, and a "
        "downgrade that removes them all.",
        "",
        "The replaced files are in `versions/` here, unchanged; nothing was deleted. Alembic "
        "does not load them from here.",
        "",
        "## Replaced revisions, base first",
        "",
    ]
    for sc in chain:
        message = scripts.first_line(sc.doc)
        about = f" {message}" if message else ""
        lines.append(f"- `{sc.revision}`{about} (`versions/{Path(sc.path).name}`)")
    lines += ["", "## Data operations", ""]
    if not operations:
        lines.append("None: the replaced revisions only changed the schema.")
    else:
        treatment = {
            "drop": "They are **not replayed** on fresh databases (`--data drop`): a database "
            "built from the new revision does not get what they did.",
            "keep": "They were **copied** into the new revision's upgrade, after the schema, "
            "in history order (`--data keep`).",
        }[t.cast(str, data)]
        lines += [treatment, ""]
        lines += [f"- `{o.revision}` `{o.path.name}:{o.line}`: {o.what}" for o in operations]
    lines += [
        "",
        "## Databases",
        "",
        f"- At {target} or a later revision: nothing to do.",
        "- Fresh databases: `flask db upgrade` runs the new revision.",
        "- At one of the replaced revisions: `flask db upgrade` refuses and says so. Run "
        f"`flask db upgrade --from-archive`: it brings the database to {target} with the "
        "revisions in this folder, then upgrades as usual.",
        "",
    ]
    return "\n".join(lines)
