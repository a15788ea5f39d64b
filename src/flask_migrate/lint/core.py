"""What the linter is made of: findings, rules and their registry, and what a check sees.

Nothing here imports Flask, SQLAlchemy or Alembic: the linter reads revision
files as Python source and never runs them.
"""

from __future__ import annotations

import ast
import inspect
import re
import typing as t
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Context", "Finding", "Operation", "Rule", "UNKNOWN", "rule", "rules",
]

SEVERITIES = ("error", "warning")

#: The dialects a rule may be limited to; MariaDB is linted as MySQL.
DIALECTS = ("postgresql", "mysql", "sqlite")

_DIALECT_NAMES = {"postgresql": "PostgreSQL", "mysql": "MySQL", "sqlite": "SQLite"}

_ID = re.compile(r"^[A-Z]+[0-9]+$")


def normalise_dialect(name: str | None) -> str | None:
    """The name rules are keyed by: lower case, ``mariadb`` read as ``mysql``."""
    if name is None:
        return None
    name = name.lower()
    return "mysql" if name == "mariadb" else name


@dataclass(frozen=True)
class Finding:
    """One risky thing found in one revision file."""

    #: The revision file.
    path: Path
    #: The line the finding is about (1-based).
    line: int
    #: The rule id, such as ``"FM102"``.
    rule: str
    #: ``"error"`` or ``"warning"``, after the project's severity overrides.
    severity: str
    #: What is risky and what to do instead, for people.
    message: str
    #: The revision id, when the file was linted as an Alembic script.
    revision: str | None = None

    def format(self) -> str:
        """``path:line: RULE-ID severity: message``, the way compilers report."""
        return f"{self.path}:{self.line}: {self.rule} {self.severity}: {self.message}"


@dataclass(frozen=True)
class Rule:
    """A registered check: what it is called, how bad its findings are, and why."""

    #: ``"FM101"``: letters then digits; used in suppression comments and config.
    id: str
    #: ``"drop-table"``: a short name in kebab-case.
    name: str
    #: The default severity, ``"error"`` or ``"warning"``.
    severity: str
    #: Why it matters and how to make the change safely (reStructuredText).
    doc: str
    #: Yields ``(line, message)`` for each hit.
    check: Callable[[Context], Iterable[tuple[int, str]]]
    #: The dialects the rule applies to; ``None`` for all of them.
    dialects: frozenset[str] | None = None


class _Unknown:
    """The value of an argument that is not a literal (a variable, a call...)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        return False


#: What :meth:`Operation.literal` returns for an argument that is not a literal.
UNKNOWN: t.Final = _Unknown()


@dataclass(frozen=True)
class Operation:
    """One ``op.<name>(...)`` (or ``batch_op.<name>(...)``) call of a revision."""

    #: The operation: ``"add_column"``, ``"create_index"``, ...
    name: str
    #: The table it works on, when the revision writes it as a literal.
    table: str | None
    #: The call itself.
    call: ast.Call
    #: The ``upgrade()``/``downgrade()`` function (or ``upgrade_<bind>()``...) it is in.
    function: ast.FunctionDef
    #: Called on the ``batch_op`` of ``with op.batch_alter_table(table) as batch_op:``.
    batch: bool
    #: Inside ``with op.get_context().autocommit_block():``.
    autocommit: bool
    #: Its table was created by ``op.create_table()`` earlier in the same function,
    #: so it is empty and no running code uses it yet.
    new_table: bool
    #: The arguments by parameter name (positional ones mapped to Alembic's names;
    #: the batch forms omit the table).
    args: Mapping[str, ast.expr] = field(default_factory=dict, compare=False)

    @property
    def line(self) -> int:
        """The first line of the call."""
        return self.call.lineno

    def arg(self, name: str) -> ast.expr | None:
        """The expression passed for parameter ``name``, or ``None`` if it was not passed."""
        return self.args.get(name)

    def has(self, name: str) -> bool:
        """Whether the parameter ``name`` was passed at all."""
        return name in self.args

    def literal(self, name: str, default: object = None) -> object:
        """The literal value passed for ``name``; ``default`` if absent, :data:`UNKNOWN`
        if it is not a literal."""
        node = self.args.get(name)
        if node is None:
            return default
        return literal(node)

    def describe(self) -> str:
        """``op.drop_column()`` or ``batch_op.drop_column()``, for messages."""
        prefix = "batch_op" if self.batch else "op"
        return f"{prefix}.{self.name}()"


def literal(node: ast.expr) -> object:
    """The value of a literal expression, or :data:`UNKNOWN`."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return UNKNOWN


@dataclass(frozen=True)
class Context:
    """What a rule's check sees of one revision file."""

    #: The revision file.
    path: Path
    #: Its source.
    source: str
    #: Its parsed module.
    module: ast.Module
    #: ``upgrade()`` and every ``upgrade_<bind>()`` (multi-database revisions), in
    #: file order.
    upgrades: tuple[ast.FunctionDef, ...]
    #: ``downgrade()`` and every ``downgrade_<bind>()``, in file order.
    downgrades: tuple[ast.FunctionDef, ...]
    #: The operations of the upgrade functions, in source order.
    operations: tuple[Operation, ...]
    #: The operations of the downgrade functions, in source order.
    downgrade_operations: tuple[Operation, ...]
    #: The dialect being linted for (``"postgresql"``, ``"mysql"``, ``"sqlite"``),
    #: or ``None`` when unknown: then every rule runs.
    dialect: str | None
    #: Top-level packages of the application (revisions must not import them).
    app_packages: frozenset[str]

    @property
    def upgrade(self) -> ast.FunctionDef | None:
        """The ``upgrade()`` function, if the file has one."""
        return next((f for f in self.upgrades if f.name == "upgrade"), None)

    @property
    def downgrade(self) -> ast.FunctionDef | None:
        """The ``downgrade()`` function, if the file has one."""
        return next((f for f in self.downgrades if f.name == "downgrade"), None)

    @property
    def created_tables(self) -> frozenset[str]:
        """Every table that upgrade code creates with ``op.create_table()``."""
        return frozenset(
            o.table for o in self.operations if o.name == "create_table" and o.table
        )

    def downgrade_for(self, upgrade: ast.FunctionDef) -> ast.FunctionDef | None:
        """The downgrade function paired with an upgrade function
        (``upgrade_users`` -> ``downgrade_users``)."""
        name = "downgrade" + upgrade.name[len("upgrade"):]
        return next((f for f in self.downgrades if f.name == name), None)

    def on(self, dialect: str) -> str:
        """``" on PostgreSQL"`` when the dialect is unknown, else ``""``: for messages
        of dialect-specific rules, which then run without knowing."""
        if self.dialect is None:
            return f" on {_DIALECT_NAMES.get(dialect, dialect)}"
        return ""


F = t.TypeVar("F", bound=Callable[[Context], Iterable[tuple[int, str]]])

_registry: dict[str, Rule] = {}


def rule(
    id: str, name: str, severity: str, *, dialects: Iterable[str] | None = None
) -> Callable[[F], F]:
    """Register a check function as a lint rule; its docstring is the rule's doc.

    The function takes a :class:`Context` and yields ``(line, message)`` for each
    hit. Projects register their own rules with it (import the module that
    defines them before linting)::

        @rule("ACME001", "no-raw-drop", "error")
        def no_raw_drop(ctx):
            \"""Why it matters. How to do it safely.\"""
            for op in ctx.operations:
                ...

    :param id: letters then digits, such as ``"FM102"``; unique.
    :param severity: ``"error"`` or ``"warning"`` (a project can override it).
    :param dialects: the dialects it applies to (``"postgresql"``, ``"mysql"``,
        ``"mariadb"``, ``"sqlite"``); all of them by default.
    :raises ValueError: for a malformed id or severity, an id already taken,
        or a function without a docstring.
    """
    if not _ID.match(id):
        raise ValueError(f"Rule id {id!r} must be capital letters then digits, like 'FM102'.")
    if severity not in SEVERITIES:
        raise ValueError(f"Rule {id}: severity must be 'error' or 'warning', not {severity!r}.")
    only = None if dialects is None else frozenset(
        t.cast(str, normalise_dialect(d)) for d in dialects
    )

    def register(check: F) -> F:
        doc = inspect.cleandoc(check.__doc__ or "")
        if not doc:
            raise ValueError(
                f"Rule {id} ({check.__name__}) has no docstring: say why it matters "
                "and how to make the change safely."
            )
        if id in _registry and _registry[id].check is not check:
            raise ValueError(f"Rule id {id} is already registered ({_registry[id].name}).")
        _registry[id] = Rule(id, name, severity, doc, check, only)
        return check

    return register


def rules() -> list[Rule]:
    """Every registered rule, in id order."""
    return [_registry[k] for k in sorted(_registry)]
