"""Reading a revision file's source into a :class:`~.core.Context`.

The file is parsed, never imported: the operations are the ``op.<name>(...)``
calls of its upgrade and downgrade functions, with their arguments mapped to
Alembic's parameter names, and what surrounds them (batch mode, an autocommit
block, a table created a few lines earlier).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from .core import Context, Operation, literal, normalise_dialect

#: The positional parameters of ``op.<name>()``, as Alembic names them. The
#: batch forms take the same ones without the table (see ``_TABLE_PARAMETER``).
_POSITIONAL: dict[str, tuple[str, ...]] = {
    "add_column": ("table_name", "column"),
    "alter_column": ("table_name", "column_name"),
    "bulk_insert": ("table", "rows"),
    "create_check_constraint": ("constraint_name", "table_name", "condition"),
    "create_exclude_constraint": ("constraint_name", "table_name"),
    "create_foreign_key": (
        "constraint_name", "source_table", "referent_table", "local_cols", "remote_cols",
    ),
    "create_index": ("index_name", "table_name", "columns"),
    "create_primary_key": ("constraint_name", "table_name", "columns"),
    "create_table": ("table_name",),
    "create_table_comment": ("table_name", "comment"),
    "create_unique_constraint": ("constraint_name", "table_name", "columns"),
    "drop_column": ("table_name", "column_name"),
    "drop_constraint": ("constraint_name", "table_name", "type_"),
    "drop_index": ("index_name", "table_name"),
    "drop_table": ("table_name",),
    "drop_table_comment": ("table_name",),
    "execute": ("sqltext",),
    "rename_table": ("old_table_name", "new_table_name"),
}

_TABLE_PARAMETER = {
    "bulk_insert": "table",
    "create_foreign_key": "source_table",
    "execute": None,
    "rename_table": "old_table_name",
}

#: Methods of ``op`` that are not schema operations.
_HELPERS = frozenset({
    "batch_alter_table", "context", "f", "get_bind", "get_context", "implementation_for",
    "inline_literal", "invoke", "register_operation", "run_async",
})


def table_parameter(name: str) -> str | None:
    """The parameter naming the table an operation works on."""
    return _TABLE_PARAMETER.get(name, "table_name")


def revision_functions(module: ast.Module, prefix: str) -> tuple[ast.FunctionDef, ...]:
    """``upgrade()`` and ``upgrade_<bind>()`` (or the downgrade ones), in file order."""
    return tuple(
        node for node in module.body
        if isinstance(node, ast.FunctionDef)
        and (node.name == prefix or node.name.startswith(prefix + "_"))
    )


def build_context(
    source: str,
    path: Path,
    module: ast.Module,
    *,
    dialect: str | None,
    app_packages: Iterable[str],
) -> Context:
    """Everything a rule sees of one parsed revision file."""
    names = _OpNames.of(module)
    upgrades = revision_functions(module, "upgrade")
    downgrades = revision_functions(module, "downgrade")
    return Context(
        path=path,
        source=source,
        module=module,
        upgrades=upgrades,
        downgrades=downgrades,
        operations=tuple(op for f in upgrades for op in _operations(f, names)),
        downgrade_operations=tuple(op for f in downgrades for op in _operations(f, names)),
        dialect=normalise_dialect(dialect),
        app_packages=frozenset(app_packages),
    )


@dataclass(frozen=True)
class _OpNames:
    """How the file spells ``op``: ``from alembic import op [as x]`` or ``import alembic``."""

    op: frozenset[str]
    alembic: frozenset[str]

    @classmethod
    def of(cls, module: ast.Module) -> _OpNames:
        op = {"op"}
        alembic = set()
        for node in ast.walk(module):
            if isinstance(node, ast.ImportFrom) and node.module == "alembic" and not node.level:
                op |= {a.asname or a.name for a in node.names if a.name == "op"}
            elif isinstance(node, ast.Import):
                alembic |= {a.asname or a.name for a in node.names if a.name == "alembic"}
        return cls(frozenset(op), frozenset(alembic))

    def is_op(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.op
        return (
            isinstance(node, ast.Attribute) and node.attr == "op"
            and isinstance(node.value, ast.Name) and node.value.id in self.alembic
        )


@dataclass
class _Scope:
    """What surrounds the statements being walked."""

    function: ast.FunctionDef
    #: ``batch_op`` name -> its table (``None`` when the table is not a literal).
    batches: dict[str, str | None] = field(default_factory=dict)
    autocommit: bool = False
    #: Tables created so far in the function (shared by nested scopes).
    created: set[str] = field(default_factory=set)


def _operations(function: ast.FunctionDef, names: _OpNames) -> Iterator[Operation]:
    yield from _walk(function, _Scope(function), names)


def _walk(node: ast.AST, scope: _Scope, names: _OpNames) -> Iterator[Operation]:
    """The operations under ``node``, in source order."""
    if isinstance(node, ast.With):
        for item in node.items:
            yield from _calls(item.context_expr, scope, names)
        scope = _with_scope(node, scope, names)
        for stmt in node.body:
            yield from _walk(stmt, scope, names)
        return
    for _, value in ast.iter_fields(node):
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)):
                yield from _walk(child, scope, names)
            elif isinstance(child, ast.expr):
                yield from _calls(child, scope, names)


def _with_scope(node: ast.With, scope: _Scope, names: _OpNames) -> _Scope:
    batches = dict(scope.batches)
    autocommit = scope.autocommit
    for item in node.items:
        call = item.context_expr
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
            continue
        if call.func.attr == "autocommit_block":
            autocommit = True
        elif (
            call.func.attr == "batch_alter_table" and names.is_op(call.func.value)
            and isinstance(item.optional_vars, ast.Name)
        ):
            table = _map_arguments(call, ("table_name", "schema")).get("table_name")
            value = literal(table) if table is not None else None
            batches[item.optional_vars.id] = value if isinstance(value, str) else None
    return replace(scope, batches=batches, autocommit=autocommit)


def _calls(expr: ast.expr, scope: _Scope, names: _OpNames) -> Iterator[Operation]:
    calls = [n for n in ast.walk(expr) if isinstance(n, ast.Call)]
    for call in sorted(calls, key=lambda c: (c.lineno, c.col_offset)):
        operation = _operation(call, scope, names)
        if operation is not None:
            yield operation
            if operation.name == "create_table" and operation.table:
                scope.created.add(operation.table)


def _operation(call: ast.Call, scope: _Scope, names: _OpNames) -> Operation | None:
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr in _HELPERS:
        return None
    name = func.attr
    table_param = table_parameter(name)
    positional = _POSITIONAL.get(name, ())
    if names.is_op(func.value):
        batch = False
        args = _map_arguments(call, positional)
        value = literal(args[table_param]) if table_param in args else None
        table = value if isinstance(value, str) else None
    elif isinstance(func.value, ast.Name) and func.value.id in scope.batches:
        batch = True
        args = _map_arguments(call, tuple(p for p in positional if p != table_param))
        table = scope.batches[func.value.id]
    else:
        return None
    return Operation(
        name=name,
        table=table,
        call=call,
        function=scope.function,
        batch=batch,
        autocommit=scope.autocommit,
        new_table=table is not None and table in scope.created,
        args=args,
    )


def _map_arguments(call: ast.Call, positional: tuple[str, ...]) -> dict[str, ast.expr]:
    args: dict[str, ast.expr] = {}
    for param, node in zip(positional, call.args):
        if isinstance(node, ast.Starred):
            break
        args[param] = node
    for keyword in call.keywords:
        if keyword.arg is not None:  # not **kw
            args[keyword.arg] = keyword.value
    return args
