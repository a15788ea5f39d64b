"""A static linter for Alembic revision files: risky operations for zero-downtime deploys.

Revision files are read as Python source (with :mod:`ast`), never imported,
and no database is needed. Each rule is a function registered with
:func:`rule`; its docstring says why the operation is risky and how to make
the change safely. A finding can be silenced on the lines of the offending
call with ``# flask-migrate: allow FM102``.

Importing this package imports neither SQLAlchemy nor Alembic.
"""

from __future__ import annotations

from . import builtin as _builtin  # noqa: F401 - registers the built-in rules
from .core import UNKNOWN, Context, Finding, Operation, Rule, rule, rules
from .linter import SYNTAX_ERROR, lint_file, lint_scripts, lint_source

__all__ = [
    "SYNTAX_ERROR",
    "UNKNOWN",
    "Context",
    "Finding",
    "Operation",
    "Rule",
    "lint_file",
    "lint_scripts",
    "lint_source",
    "rule",
    "rules",
]
