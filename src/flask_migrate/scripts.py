"""Revision files: loading the migrations folder and checking its history.

Everything here reads files only; no database is touched. A broken folder
(no ``env.py``, a syntax error, two files with one revision id, a dangling
``down_revision``) fails here with one clear message, before ``env.py`` runs.
"""

from __future__ import annotations

import typing as t
import warnings
from pathlib import Path

from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionMap
from alembic.util import CommandError

from . import _alembic
from .errors import MigrateError, NoMigrationsFolder

if t.TYPE_CHECKING:  # pragma: no cover
    from .config import Config


def load(config: Config, command: str = "db") -> ScriptDirectory:
    """The migrations folder of ``config``, with every revision loaded and checked.

    :param command: the name of the CLI group, for the hints in messages.
    """
    location = config.get_main_option("script_location") or "migrations"
    path = Path(location)
    if not path.is_dir():
        raise NoMigrationsFolder(location, command=command)
    env_py = path / "env.py"
    if not env_py.is_file():
        raise NoMigrationsFolder(location, "env.py", command)
    # a syntax error in env.py must fail before anything touches a database
    compile(env_py.read_bytes(), str(env_py), "exec")
    script = ScriptDirectory.from_config(config)
    for version_location in _alembic.version_locations(script):
        if not Path(version_location).is_dir():
            raise NoMigrationsFolder(location, "versions/ folder", command)
    # Load every revision now, before env.py touches a database: a broken
    # file, a cycle or a dangling down_revision then fails with nothing done.
    script.revision_map = RevisionMap(_unique_revisions(script))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            script.revision_map.heads  # noqa: B018 - builds and checks the map
        except KeyError as exc:
            # Alembic warns "Revision X referenced from ... is not present",
            # then fails on the missing key
            said = "; ".join(str(w.message) for w in caught if "not present" in str(w.message))
            raise MigrateError(
                f"The revision history is broken: a down_revision names {exc}, which "
                f"is not in the migrations folder ({said or 'no such revision'}). "
                "Fix that revision's down_revision."
            ) from None
    for warning in caught:  # anything else Alembic had to say still gets said
        warnings.warn_explicit(
            warning.message, warning.category, warning.filename, warning.lineno
        )
    return script


def _unique_revisions(script: ScriptDirectory) -> t.Callable[[], t.Iterator[Script]]:
    """The scripts of the folder, refusing two files with one revision id.

    Alembic only warns and then silently uses one of the two files.
    """

    def generate() -> t.Iterator[Script]:
        seen: dict[str, Script] = {}
        for sc in _alembic.load_revisions(script):
            if sc.revision in seen:
                raise MigrateError(
                    f"Revision id {sc.revision!r} is used by two files: "
                    f"{seen[sc.revision].path} and {sc.path}. Give one of them a new "
                    "revision id (and fix the down_revision of its children)."
                )
            seen[sc.revision] = sc
            yield sc

    return generate


def known_script(script: ScriptDirectory, rev: str) -> Script | None:
    """The script of ``rev``, or ``None`` when the migrations folder lacks it."""
    try:
        return script.get_revision(rev)
    except CommandError:  # ScriptDirectory's form of "no such revision"
        return None


def first_line(text: str | None) -> str | None:
    """The first line of a revision message (its docstring)."""
    return text.strip().splitlines()[0] if text and text.strip() else None


def check_heads(
    script: ScriptDirectory, heads: t.Sequence[str], database: str, table: str
) -> None:
    """Refuse to move a database whose version table makes no sense."""
    repair = "run 'flask db stamp --purge <revision>' to record the revision it is really at"
    if any(not h for h in heads):
        raise MigrateError(
            f"The version table {table} of {database} holds an empty revision id. "
            f"Check the schema, then {repair}."
        )
    unknown = [h for h in heads if known_script(script, h) is None]
    if unknown:
        raise MigrateError(
            f"{database} is at revision {', '.join(unknown)}, which is not in the "
            f"migrations folder {script.dir}. Check out the code that has that "
            f"revision, or {repair}."
        )
    for i, upper in enumerate(heads):
        for lower in heads[i + 1 :]:
            for a, b in ((upper, lower), (lower, upper)):
                ancestors = {
                    r.revision
                    for r in script.revision_map.iterate_revisions(a, "base")
                    if r is not None
                }
                if b in ancestors:
                    raise MigrateError(
                        f"The version table {table} of {database} lists both {b} and "
                        f"{a}, but {a} comes after {b}: they cannot both be current. "
                        f"Check the schema, then {repair}."
                    )
