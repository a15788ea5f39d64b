"""Running the registered rules over revision files."""

from __future__ import annotations

import ast
import io
import re
import tokenize
import typing as t
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from .core import Finding, Rule, normalise_dialect, rules
from .parse import build_context

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic.script import Script

#: The rule id of a revision file that does not parse.
SYNTAX_ERROR = "FM000"

_SUPPRESSION = re.compile(r"#\s*flask-migrate:\s*allow\b(?P<ids>.*)", re.IGNORECASE)
_RULE_ID = re.compile(r"^[A-Za-z]+[0-9]+$")


def lint_source(
    source: str,
    path: str | Path,
    *,
    dialect: str | None = None,
    severities: Mapping[str, str] | None = None,
    app_packages: Iterable[str] = (),
) -> list[Finding]:
    """Lint the source of one revision file; the file is parsed, never imported.

    :param path: where the source comes from, for the findings.
    :param dialect: ``"postgresql"``, ``"mysql"`` (or ``"mariadb"``), ``"sqlite"``:
        rules for other dialects are skipped. ``None`` runs every rule.
    :param severities: rule id (or name) -> ``"error"``, ``"warning"`` or ``"off"``,
        overriding the rules' own severities; ``"off"`` disables a rule.
    :param app_packages: the top-level packages of the application, which
        revisions must not import (FM403).
    :returns: the findings, by line. A syntax error is one ``FM000`` error.
    :raises flask_migrate.errors.MigrateError: ``severities`` names an unknown rule
        or an unknown severity.
    """
    path = Path(path)
    chosen = _severities(severities)
    try:
        module = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError) as exc:  # ValueError: a NUL byte, before 3.12
        line = getattr(exc, "lineno", None) or 1
        message = getattr(exc, "msg", None) or str(exc)
        return [Finding(path, line, SYNTAX_ERROR, "error", f"the revision does not parse: {message}")]
    context = build_context(source, path, module, dialect=dialect, app_packages=app_packages)
    allowed = _suppressions(source)
    spans = _spans(module)
    findings = []
    for r in rules():
        severity = chosen.get(r.id, r.severity)
        if severity == "off" or not _applies(r, context.dialect):
            continue
        for line, message in r.check(context):
            last = max(line, spans.get(line, line))
            if any(r.id in allowed.get(n, ()) for n in range(line, last + 1)):
                continue
            findings.append(Finding(path, line, r.id, severity, message))
    findings.sort(key=lambda f: (f.line, f.rule))
    return findings


def lint_file(
    path: str | Path,
    *,
    dialect: str | None = None,
    severities: Mapping[str, str] | None = None,
    app_packages: Iterable[str] = (),
) -> list[Finding]:
    """Lint one revision file (see :func:`lint_source`)."""
    path = Path(path)
    try:
        with tokenize.open(path) as file:  # honours a ``# coding:`` line
            source = file.read()
    except (SyntaxError, UnicodeDecodeError) as exc:
        _severities(severities)
        return [Finding(path, 1, SYNTAX_ERROR, "error", f"the revision cannot be read: {exc}")]
    return lint_source(
        source, path, dialect=dialect, severities=severities, app_packages=app_packages
    )


def lint_scripts(
    scripts: Iterable[Script],
    *,
    dialect: str | None = None,
    severities: Mapping[str, str] | None = None,
    app_packages: Iterable[str] = (),
) -> list[Finding]:
    """Lint Alembic revision scripts (``ScriptDirectory.walk_revisions()``...), in the
    order given; each finding carries its script's revision id."""
    packages = tuple(app_packages)
    findings = []
    for script in scripts:
        for finding in lint_file(
            script.path, dialect=dialect, severities=severities, app_packages=packages
        ):
            findings.append(replace(finding, revision=script.revision))
    return findings


def _applies(r: Rule, dialect: str | None) -> bool:
    return r.dialects is None or dialect is None or normalise_dialect(dialect) in r.dialects


def _severities(severities: Mapping[str, str] | None) -> dict[str, str]:
    """Rule id -> severity, from a mapping keyed by rule id or name."""
    if not severities:
        return {}
    known = rules()
    by_key = {r.id: r for r in known} | {r.name: r for r in known}
    chosen = {}
    for key, value in severities.items():
        found = by_key.get(str(key)) or by_key.get(str(key).upper())
        severity = value.lower() if isinstance(value, str) else value
        if found is None:
            from ..errors import MigrateError

            raise MigrateError(
                f"Unknown lint rule {key!r} in the lint severities (MIGRATE_LINT_SEVERITY). "
                "Known rules: "
                f"{', '.join(r.id for r in known)}."
            )
        if severity not in ("error", "warning", "off"):
            from ..errors import MigrateError

            raise MigrateError(
                f"Lint rule {found.id}: severity must be 'error', 'warning' or 'off', "
                f"not {value!r} (in the lint severities, MIGRATE_LINT_SEVERITY)."
            )
        chosen[found.id] = severity
    return chosen


def _suppressions(source: str) -> dict[int, set[str]]:
    """Line -> the rule ids its ``# flask-migrate: allow FM102, FM201`` comment allows."""
    allowed: dict[int, set[str]] = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover - the source parsed
        return allowed
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        match = _SUPPRESSION.match(token.string)
        if match is None:
            continue
        ids = set()
        for word in re.split(r"[\s,]+", match.group("ids").strip()):
            if not _RULE_ID.match(word):
                break  # the rest is the reason
            ids.add(word.upper())
        allowed.setdefault(token.start[0], set()).update(ids)
    return allowed


def _spans(module: ast.Module) -> dict[int, int]:
    """First line -> last line of the calls and simple statements starting there.

    Compound statements (``with``, ``def``...) are left out: a comment in a
    block's body must not silence a finding about the block's first line.
    """
    spans: dict[int, int] = {}
    for node in ast.walk(module):
        simple = isinstance(node, ast.stmt) and not (
            hasattr(node, "body") or hasattr(node, "cases")
        )
        if not (simple or isinstance(node, ast.Call)):
            continue
        assert isinstance(node, (ast.stmt, ast.expr))
        if node.end_lineno is not None:
            spans[node.lineno] = max(spans.get(node.lineno, node.lineno), node.end_lineno)
    return spans
