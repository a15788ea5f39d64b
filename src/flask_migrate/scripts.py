"""Revision files: loading the migrations folder and checking its history.

Everything here reads files only; no database is touched. A broken folder
(no ``env.py``, a syntax error, two files with one revision id, a dangling
``down_revision``) fails here with one clear message, before ``env.py`` runs.
"""

from __future__ import annotations

import datetime as dt
import json
import typing as t
import warnings
from dataclasses import dataclass
from pathlib import Path

from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionMap
from alembic.util import CommandError

from . import _alembic, revision_cache
from .errors import MigrateError, NoMigrationsFolder

if t.TYPE_CHECKING:  # pragma: no cover
    from .config import Config
    from .journal import ChangedFile


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
        for sc in revision_cache.load_revisions(script):
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
    for rev in unknown:
        record = squashed_by(script, rev)
        if record is not None:
            raise StrandedRevision(database, rev, record)
    if unknown:
        raise MigrateError(
            f"{database} is at revision {', '.join(unknown)}, which is not in the "
            f"migrations folder {script.dir}. Check out the code that has that "
            f"revision, or {repair}."
        )
    for i, upper in enumerate(heads):
        for lower in heads[i + 1 :]:
            for a, b in ((upper, lower), (lower, upper)):
                if b in _alembic.ancestors(script, [a]):
                    raise MigrateError(
                        f"The version table {table} of {database} lists both {b} and "
                        f"{a}, but {a} comes after {b}: they cannot both be current. "
                        f"Check the schema, then {repair}."
                    )


# -- squashed histories (see flask_migrate.squash) -------------------------------------

#: The folder, inside the migrations folder, that keeps squashed revisions.
SQUASHED_FOLDER = "squashed"


@dataclass(frozen=True)
class SquashRecord:
    """What one ``flask db squash`` replaced: read from its archive's ``squash.json``."""

    #: The revision that replaced the range (it kept its id).
    revision: str
    #: The revisions replaced, from base to :attr:`revision`.
    replaced: tuple[str, ...]
    #: When, in UTC.
    created_at: dt.datetime
    #: The archive folder (``<migrations>/squashed/<revision>-<timestamp>``).
    path: Path
    #: The new revision file, relative to the migrations folder.
    new_file: str
    #: SHA-256 of the new revision file as written, and of the file it replaced.
    new_checksum: str
    old_checksum: str

    @property
    def versions(self) -> Path:
        """The folder holding the archived revision files."""
        return self.path / "versions"


class StrandedRevision(MigrateError):
    """A database is at a revision that ``flask db squash`` replaced."""

    def __init__(self, database: str, revision: str, record: SquashRecord) -> None:
        self.database = database
        self.revision = revision
        self.record = record
        super().__init__(
            f"{database} is at {revision}, which 'flask db squash' replaced on "
            f"{record.created_at:%Y-%m-%d %H:%M} UTC by {record.revision} (archive: "
            f"{record.path}). Run 'flask db upgrade --from-archive' to bring it to "
            f"{record.revision} with the archived revisions, then upgrade as usual."
        )


def squash_records(script: ScriptDirectory) -> list[SquashRecord]:
    """The squashes done in this migrations folder, oldest first.

    Only the ``squash.json`` files are read; a broken one is skipped.
    """
    records = []
    for path in sorted((Path(script.dir) / SQUASHED_FOLDER).glob("*/squash.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            records.append(SquashRecord(
                revision=str(data["revision"]),
                replaced=tuple(str(r) for r in data["replaced"]),
                created_at=dt.datetime.fromisoformat(str(data["created_at"]).replace("Z", "+00:00")),
                path=path.parent,
                new_file=str(data["new_file"]),
                new_checksum=str(data["new_file_sha256"]),
                old_checksum=str(data["replaced_files"][data["revision"]]["sha256"]),
            ))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sorted(records, key=lambda r: r.created_at)


def squashed_by(script: ScriptDirectory, rev: str) -> SquashRecord | None:
    """The squash that replaced ``rev``, if one did (the latest, when several did)."""
    found = [r for r in squash_records(script) if rev in r.replaced and rev != r.revision]
    return found[-1] if found else None


def without_squashes(script: ScriptDirectory, changed: list[ChangedFile]) -> list[ChangedFile]:
    """``changed`` without the revision files that ``flask db squash`` rewrote.

    A database at the squash's revision (or later) applied the file the squash
    replaced; the new file is a different one on purpose, not an edit.
    """
    if not changed:
        return changed
    records = squash_records(script)
    return [
        c for c in changed
        if not any(
            c.revision == r.revision and c.applied_checksum == r.old_checksum
            and c.current_checksum == r.new_checksum
            for r in records
        )
    ]


def with_versions(script: ScriptDirectory, folder: str | Path) -> ScriptDirectory:
    """``script`` (same ``env.py``, template and options) reading its revisions from ``folder`` only.

    NOTE: a new ScriptDirectory, not a new Config: ``env.py`` runs the
    revisions of the ScriptDirectory it is given, and a version_locations
    option would have to be written in the ini's own path syntax.
    """
    clone = ScriptDirectory(
        script.dir,
        file_template=script.file_template,
        truncate_slug_length=script.truncate_slug_length,
        version_locations=[str(folder)],
        sourceless=script.sourceless,
        output_encoding=script.output_encoding,
        timezone=script.timezone,
        hooks=script.hooks,
        recursive_version_locations=script.recursive_version_locations,
        messaging_opts=script.messaging_opts,
    )
    clone.revision_map = RevisionMap(_unique_revisions(clone))
    clone.revision_map.heads  # noqa: B018 - builds and checks the map
    return clone
