"""Turning operation results into the text Flask-Migrate and Alembic print.

Shared by the ``flask db`` commands and the Flask-Migrate-compatible
functions, so both print exactly what the original printed.
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic.script import Script

    from .operations import BranchPoint, CurrentRevisions, History, TemplateInfo


def templates(found: t.Iterable[TemplateInfo]) -> list[str]:
    return ["Available templates:", ""] + [f"{i.name} - {i.synopsis}" for i in found]


def history(result: History, verbose: bool) -> list[str]:
    lines = []
    for sc in result.scripts:
        if result.current is not None:
            # NOTE: Alembic's own formatter reads this attribute to add "(current)"
            sc._db_current_indicator = sc.revision in result.current
        lines.append(
            sc.cmd_format(
                verbose=verbose,
                include_branches=True,
                include_doc=True,
                include_parents=True,
            )
        )
        if result.current is not None:
            sc._db_current_indicator = None
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
