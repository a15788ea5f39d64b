"""Turning operation results into the text Flask-Migrate and Alembic print.

Shared by the ``flask db`` commands and the Flask-Migrate-compatible
functions, so both print exactly what the original printed.
"""

from __future__ import annotations

import contextlib
import typing as t

from . import _alembic

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic.script import Script

    from .lint import Finding as LintFinding
    from .results import (
        BranchPoint, CurrentRevisions, History, LintReport, SquashResult, Step, TemplateInfo,
        VerifyReport,
    )
    from .results import TenantResult
    from .status import Status
    from .tenants import Progress


def templates(found: t.Iterable[TemplateInfo]) -> list[str]:
    return ["Available templates:", ""] + [f"{i.name} - {i.synopsis}" for i in found]


def history(result: History, verbose: bool) -> list[str]:
    lines = []
    for sc in result.scripts:
        if result.current is not None:
            # Alembic's own formatter adds "(current)" (see _alembic)
            _alembic.set_current_indicator(sc, sc.revision in result.current)
        lines.append(
            sc.cmd_format(
                verbose=verbose,
                include_branches=True,
                include_doc=True,
                include_parents=True,
            )
        )
        if result.current is not None:
            _alembic.set_current_indicator(sc, None)
    return lines


def heads(scripts: t.Iterable[Script], verbose: bool) -> list[str]:
    return [
        sc.cmd_format(verbose, include_branches=True, tree_indicators=False)
        for sc in scripts
    ]


def branches(found: t.Iterable[BranchPoint], verbose: bool) -> list[str]:
    lines = []
    for point in found:
        pad = " " * len(str(point.script.revision))
        lines.append(point.script.cmd_format(verbose, include_branches=True))
        lines.extend(
            f"{pad} -> "
            + child.cmd_format(False, include_branches=True, include_doc=verbose)
            for child in point.children
        )
        lines.append("")
    return lines


def current(found: t.Iterable[CurrentRevisions], verbose: bool) -> list[str]:
    lines = []
    for db in found:
        if verbose:
            lines.append(f"Current revision(s) for {db.database}:")
        lines.extend(sc.cmd_format(verbose) for sc in db.scripts)
        unknown = set(db.revisions) - {sc.revision for sc in db.scripts}
        lines.extend(f"{rev} (not in the migrations folder)" for rev in sorted(unknown))
    return lines


def show(scripts: t.Iterable[Script]) -> list[str]:
    return [sc.log_entry for sc in scripts]


def step(step: Step, with_database: bool) -> str:
    """One applied step, as it finishes: ``upgrade a1 -> a2, message (0.12 s)``."""
    source = ", ".join(step.source) or "<base>"
    destination = ", ".join(step.destination) or "<base>"
    note = f", {step.message}" if step.message else ""
    where = f" on {step.database}" if with_database else ""
    took = f" ({step.duration:.2f} s)" if step.duration is not None else ""
    return f"{step.direction.capitalize()} {source} -> {destination}{note}{where}{took}"


def _revision_line(rev: str, message: str | None) -> str:
    return f"{rev} ({message})" if message else rev


def status(result: Status) -> list[str]:
    """The ``flask db status`` screen: one block per database."""
    lines: list[str] = []
    for db in result.databases:
        title = f"Database {db.bind!r}: {db.database}" if db.bind else f"Database: {db.database}"
        lines.append(title)
        current = [_revision_line(r, db.messages.get(r)) for r in db.current] or ["<base>"]
        heads = [_revision_line(r, db.messages.get(r)) for r in db.heads] or ["<base> (no revisions)"]
        lines.append("  Current:  " + "; ".join(current))
        if db.in_progress:
            lines.append(f"  Running:  a migration holds the lock ({db.in_progress})")
        lines.append("  Head:     " + "; ".join(heads))
        if db.pending:
            count = len(db.pending)
            lines.append(
                f"  Pending:  {count} revision{'s' if count != 1 else ''}, in the order "
                "'upgrade' applies them:"
            )
            width = max(len(p.revision) for p in db.pending)
            for p in db.pending:
                lines.append(f"    {p.revision:<{width}}  {p.message or ''}  ({p.file})")
        elif db.at_head:
            lines.append("  Up to date.")
        if db.recent:
            lines.append("  Last applied:")
            for entry in db.recent:
                took = f"{entry.duration_ms / 1000:.2f} s" if entry.duration_ms is not None else "-"
                what = entry.direction or entry.kind
                lines.append(
                    f"    {entry.started_at:%Y-%m-%d %H:%M:%S} UTC  {what:<9} "
                    f"{entry.revision or '':<14} {took:>8}  {entry.state}"
                    + (f"  {entry.message}" if entry.message else "")
                )
        elif not db.has_journal:
            lines.append("  Journal:  empty (it starts with the next upgrade, downgrade or stamp)")
        if db.last_run is not None and db.last_run.state == "failed":
            lines.append(
                f"  Last run: failed, {db.last_run.started_at:%Y-%m-%d %H:%M:%S} UTC"
                + (f": {db.last_run.message.splitlines()[0]}" if db.last_run.message else "")
            )
        if db.problems:
            lines.append(f"  Problems ({len(db.problems)}):")
            for problem in db.problems:
                lines.append(f"    - {problem.message}")
                lines.append(f"      What to do: {problem.fix}")
        else:
            lines.append("  No problems.")
        lines.append("")
    return lines


def verify(report: VerifyReport) -> list[str]:
    """The ``flask db verify`` report: a line per check, then its findings."""
    shown = ", ".join(report.databases) or "no database"
    several = len(report.databases) > 1
    count = f"{report.revisions} revision{'s' if report.revisions != 1 else ''}"
    lines = [f"Verified {count} on scratch databases for the {shown} in {report.duration:.1f} s"]
    for check in report.checks:
        lines.append(f"  {check.status.upper():<8} {check.name:<9} {check.summary}")
        for kind, findings in (("failed", check.failures), ("warning", check.warnings)):
            for finding in findings:
                where = f" [{finding.database}]" if finding.database and several else ""
                about = f"{finding.revision}: " if finding.revision else ""
                lines.append(f"    {kind}: {about}{finding.message}{where}")
    return lines


def verify_dict(report: VerifyReport) -> dict[str, t.Any]:
    """The report as plain data, for ``--json``."""
    import dataclasses

    return {"passed": report.passed, **dataclasses.asdict(report)}


def lint_finding(finding: LintFinding) -> str:
    """``path:line: RULE-ID severity: message``, the path relative to here when it is below."""
    import os

    path = str(finding.path)
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(path)
        if not relative.startswith(".."):
            path = relative
    return f"{path}:{finding.line}: {finding.rule} {finding.severity}: {finding.message}"


def lint(report: LintReport) -> list[str]:
    """The ``flask db lint`` report: one line per finding, then a summary."""
    lines = [lint_finding(f) for f in report.findings]
    count = len(report.revisions)
    what = {"pending": "not yet applied", "range": "in the range", "all": "in the history"}[report.scope]
    summary = (
        f"{report.errors} error(s), {report.warnings} warning(s) in {count} "
        f"revision{'s' if count != 1 else ''} {what}"
    )
    if report.dialect:
        summary += f" (rules for {report.dialect})"
    lines.append(summary + ".")
    if report.note:
        lines.append(f"Note: {report.note}.")
    return lines


def lint_dict(report: LintReport) -> dict[str, t.Any]:
    """The report as plain data, for ``--json``."""
    return {
        "scope": report.scope,
        "dialect": report.dialect,
        "note": report.note,
        "revisions": list(report.revisions),
        "errors": report.errors,
        "warnings": report.warnings,
        "findings": [
            {
                "path": str(f.path), "line": f.line, "rule": f.rule, "severity": f.severity,
                "message": f.message, "revision": f.revision,
            }
            for f in report.findings
        ],
    }


def _here(path: t.Any) -> str:
    """A path relative to the current directory when it is below it."""
    import os

    text = str(path)
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(text)
        if not relative.startswith(".."):
            return relative
    return text


def squash(result: SquashResult) -> list[str]:
    """The ``flask db squash`` report (``--dry-run``: what would be done, and the new revision)."""
    would = result.dry_run
    count = len(result.replaced)
    lines = [
        f"{'Would squash' if would else 'Squashed'} {count} revisions, from base "
        f"({result.replaced[0]}) to {result.revision}, into one revision {result.revision} "
        f"for the {', '.join(result.databases)}.",
        f"  {'New file (would be):' if would else 'New file:'} {_here(result.new_file)}",
        f"  {'Archive (would be): ' if would else 'Archive: '} {_here(result.archive)} "
        f"({count} files {'would be ' if would else ''}moved there, with SQUASHED.md)",
        "  Self-check passed: on fresh databases the new revision builds the schema the "
        "history builds, and its downgrade removes it.",
    ]
    if result.data_operations:
        how = {
            "drop": "dropped: fresh databases do not get them",
            "keep": "kept: copied after the schema",
        }.get(result.data or "", "")
        lines.append(f"  Data operations ({how}):")
        lines.extend(f"    {_here(o.path)}:{o.line}: {o.what}" for o in result.data_operations)
    else:
        lines.append("  Data operations: none.")
    lines.append(
        f"Databases at {result.revision} or later need nothing; a database at a replaced "
        "revision needs 'flask db upgrade --from-archive'."
    )
    if would:
        lines += ["", f"The new revision ({result.new_file.name}):", "", *result.source.splitlines()]
    return lines


# -- tenants ---------------------------------------------------------------------------


def _revisions(revs: tuple[str, ...] | None) -> str:
    if revs is None:
        return "?"
    return ", ".join(revs) or "<base>"


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 60 else f"{int(value // 60)}:{int(value % 60):02d} min"


def tenant_line(progress: Progress) -> str:
    """One finished tenant, as a plain line: ``[  3/200] acme: migrated <base> -> a1 (0.42 s)``."""
    result = progress.last
    width = len(str(progress.total))
    head = f"[{progress.done:>{width}}/{progress.total}] {result.tenant}: {result.outcome}"
    if result.error:
        error = result.error.removeprefix(f"Tenant {result.tenant}: ")
        return f"{head}: {error}"
    if result.steps or result.before != result.after:
        count = len(result.steps)
        moved = f" {_revisions(result.before)} -> {_revisions(result.after)}"
        moved += f" ({count} step{'s' if count != 1 else ''}, {_seconds(result.duration)})"
    elif result.after is not None:
        moved = f" at {_revisions(result.after)} ({_seconds(result.duration)})"
    else:
        moved = f" ({_seconds(result.duration)})"
    waited = ", after another process released it" if result.waited else ""
    return head + moved + waited


def progress_bar(progress: Progress, width: int = 30) -> str:
    """A one-line progress bar with counts and an ETA, for a terminal."""
    filled = int(width * progress.done / progress.total) if progress.total else width
    bar = "#" * filled + "." * (width - filled)
    failed = f", {progress.failed} failed" if progress.failed else ""
    eta = progress.eta
    left = f", ETA {int(eta // 60)}:{int(eta % 60):02d}" if eta is not None and progress.done < progress.total else ""
    return f"[{bar}] {progress.done}/{progress.total} tenants{failed}{left}"


def tenant_table(results: t.Sequence[TenantResult], kind: str = "moves") -> list[str]:
    """The summary: a row per tenant (tenant, from, to, duration, result).

    ``kind``: ``"moves"`` (from, to), ``"revisions"`` (the revision only) or
    ``"outcomes"`` (neither).
    """
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    if kind == "outcomes":
        header = ("tenant", "duration", "result")
        rows = [(r.tenant, _seconds(r.duration) if r.outcome != "not started" else "-", _outcome(r))
                for r in results]
    elif kind == "moves":
        header = ("tenant", "from", "to", "duration", "result")
        rows = [
            (r.tenant, _revisions(r.before), _revisions(r.after),
             _seconds(r.duration) if r.outcome != "not started" else "-", _outcome(r))
            for r in results
        ]
    else:
        header = ("tenant", "revision", "duration", "result")
        rows = [
            (r.tenant, _revisions(r.after), _seconds(r.duration) if r.outcome != "not started" else "-",
             _outcome(r))
            for r in results
        ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in [header, *rows]
    ]


def _outcome(result: TenantResult) -> str:
    return f"{result.outcome} (waited for another process)" if result.waited else result.outcome


def tenant_counts(results: t.Sequence[TenantResult], elapsed: float, jobs: int) -> str:
    """``200 tenants: 198 migrated, 2 failed (12.3 s, 4 workers)``."""
    counts: dict[str, int] = {}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    parts = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    workers = f"{jobs} worker{'s' if jobs != 1 else ''}"
    return f"{len(results)} tenant{'s' if len(results) != 1 else ''}: {parts} ({_seconds(elapsed)}, {workers})"


def _tenant_state(result: TenantResult) -> str:
    """``ok``, ``behind``, ``failed``, ``interrupted``, ``problem`` or ``unreadable``."""
    db = result.status
    if db is None:
        return "unreadable"
    codes = {p.code for p in db.problems}
    if codes & {"interrupted-run", "interrupted-step"}:
        return "interrupted"
    if db.last_run is not None and db.last_run.state == "failed":
        return "failed"
    if db.problems:
        return "problem"
    if not db.at_head:
        return "behind"
    return "ok"


def tenants_status_dict(results: t.Sequence[TenantResult]) -> dict[str, t.Any]:
    """``status --all-tenants --json``: the counts per revision, and each tenant's state."""
    heads: tuple[str, ...] = ()
    messages: dict[str, str | None] = {}
    at: dict[tuple[str, ...], int] = {}
    tenants = []
    for result in results:
        db = result.status
        state = _tenant_state(result)
        entry: dict[str, t.Any] = {"tenant": result.tenant, "state": state}
        if db is not None:
            heads = db.heads or heads
            messages.update(db.messages)
            at[db.current] = at.get(db.current, 0) + 1
            entry.update(
                current=list(db.current), pending=len(db.pending),
                problems=[{"code": p.code, "message": p.message, "fix": p.fix} for p in db.problems],
            )
            last_run = db.last_run
            if last_run is not None:
                entry["last_run"] = {
                    "state": last_run.state, "started_at": last_run.started_at.isoformat(),
                    "message": last_run.message,
                }
        if result.error:
            entry["error"] = result.error
        tenants.append(entry)
    revisions = [
        {
            "revisions": list(current),
            "message": "; ".join(m for m in (messages.get(r) for r in current) if m) or None,
            "head": set(current) == set(heads),
            "tenants": count,
        }
        for current, count in sorted(at.items(), key=lambda item: (-item[1], item[0]))
    ]
    states = [entry["state"] for entry in tenants]
    return {
        "heads": list(heads),
        "tenants": len(results),
        "revisions": revisions,
        "counts": {state: states.count(state) for state in dict.fromkeys(states)},
        "not_ok": [e for e in tenants if e["state"] != "ok"],
        "ok": all(state == "ok" for state in states),
        "details": tenants,
    }


def tenants_status(results: t.Sequence[TenantResult]) -> list[str]:
    """``status --all-tenants``: how many tenants at each revision, and those that need a look."""
    data = tenants_status_dict(results)
    heads = ", ".join(data["heads"]) or "<base> (no revisions)"
    lines = [f"Tenants: {data['tenants']}    Head: {heads}", ""]
    if data["revisions"]:
        rows = [("revision", "tenants", "")] + [
            (", ".join(r["revisions"]) or "<base>", str(r["tenants"]),
             ("(head) " if r["head"] else "") + (r["message"] or ""))
            for r in data["revisions"]
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        for name, count, note in rows:
            lines.append(f"  {name:<{widths[0]}}  {count:>{widths[1]}}  {note}".rstrip())
        lines.append("")
    counts = ", ".join(f"{n} {state}" for state, n in data["counts"].items())
    lines.append(f"States: {counts}")
    for state in ("failed", "interrupted", "problem", "unreadable", "behind"):
        listed = [e for e in data["not_ok"] if e["state"] == state]
        if not listed:
            continue
        lines.append("")
        lines.append(f"{state.capitalize()} ({len(listed)}):")
        for entry in listed:
            where = ", ".join(entry.get("current", [])) or ("<base>" if "current" in entry else "?")
            if state == "behind":
                detail = f"at {where}, {entry['pending']} pending"
            elif state in ("failed",) and "last_run" in entry:
                message = (entry["last_run"]["message"] or "failed").splitlines()[0]
                detail = f"at {where}; last run {entry['last_run']['started_at'][:19]}: {message}"
            elif entry.get("problems"):
                detail = f"at {where}; " + "; ".join(p["message"] for p in entry["problems"])
            else:
                detail = entry.get("error") or ""
            lines.append(f"  {entry['tenant']}: {detail}")
    return lines
