"""A cache of the revision graph, so that a command need not import every revision file.

Alembic learns the history by importing each revision file and reading five
names from it (``revision``, ``down_revision``, ``branch_labels``,
``depends_on`` and the docstring). With a thousand revisions that is most of
the cost of ``flask db upgrade`` when there is nothing to do, and of
``current``, ``heads``, ``history`` and ``status``. This module keeps those
names, and each file's checksum (the journal's, see
:func:`.journal.file_checksum`), in one JSON file per versions folder, in the
migrations folder's ``.flask-migrate-cache/`` (which holds a ``.gitignore``
that ignores it, as ``.pytest_cache`` does; not in ``__pycache__``, which
deploy scripts and ``PYTHONDONTWRITEBYTECODE`` set-ups delete or never
write, and where the cache matters most). Revisions known from the cache are :class:`CachedScript` objects:
Alembic's ``Script`` with the module imported on first use, so a command
imports exactly the revision files it runs.

Never stale: an entry is used only when its file has the size, modification
and change times (nanoseconds) and inode it had when the entry was made, and
every other file is imported as Alembic would. File times can be coarse (a
clock tick, or two seconds on some file systems), so an entry whose file was
modified shortly before the cache was written could hide a second edit made
within the same tick; such entries ("racy", as Git calls them) are checked by
content too, until a later write of the cache makes them safe. The cache is
written atomically (a temporary file renamed over it), so that concurrent
commands only ever read a whole one; when it cannot be written (a read-only
folder) commands import every file, as Alembic does.
``MIGRATE_REVISION_CACHE = False`` turns it off.

What a cache does not do: run a revision file's module-level code for
commands that do not run that revision (Alembic imports every file for every
command). Revision files that do work at import time, beyond defining the
revision, see it done only when they run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
import typing as t
from pathlib import Path

from alembic.script import Script
from alembic.script.revision import Revision
from alembic.util import load_python_file

from . import _alembic

if t.TYPE_CHECKING:  # pragma: no cover
    from types import ModuleType

    from alembic.script import ScriptDirectory

log = logging.getLogger("flask_migrate")

#: Bumped whenever an entry's layout or meaning changes.
FORMAT = 1
#: Files modified this close to the cache's own write are checked by content.
RACY_WINDOW_NS = 3_000_000_000

_Stat = tuple[int, int, int, int]


def _alembic_version() -> str:
    from alembic import __version__

    return str(__version__)


class CachedScript(Script):
    """A revision known from the cache; its module is imported when first used."""

    def __init__(self, path: str, entry: dict[str, t.Any], checksum: str) -> None:
        # NOTE: Script.__init__ reads the module; Revision.__init__ takes the
        # same values from the cache (and makes the same checks).
        self.path = path
        self.checksum = checksum
        self._longdoc = str(entry["doc"])
        self._module: ModuleType | None = None
        Revision.__init__(
            self,
            entry["revision"],
            _as_revisions(entry["down_revision"]),
            dependencies=_as_revisions(entry["depends_on"]),
            branch_labels=tuple(entry["branch_labels"]) or None,
        )

    @property
    def module(self) -> ModuleType:  # type: ignore[override]
        if self._module is None:
            path = Path(self.path)
            self._module = load_python_file(path.parent, path.name)
        return self._module

    @property
    def longdoc(self) -> str:
        if self._module is not None:
            return super().longdoc
        return self._longdoc


def _as_revisions(value: t.Any) -> str | tuple[str, ...] | None:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return None if value is None else str(value)


def _as_json(value: t.Any) -> t.Any:
    if isinstance(value, (tuple, list)):
        return list(value)
    return value


def enabled() -> bool:
    """Whether the application lets commands use the cache (``MIGRATE_REVISION_CACHE``)."""
    from flask import current_app, has_app_context

    return not has_app_context() or bool(current_app.config.get("MIGRATE_REVISION_CACHE", True))


# -- the cache file -----------------------------------------------------------------


#: The folder, in the migrations folder, that holds the caches (it ignores itself in git).
CACHE_FOLDER = ".flask-migrate-cache"


def cache_path(versions: Path, migrations: Path) -> Path:
    """Where the cache of the versions folder ``versions`` of ``migrations`` lives."""
    try:
        name = versions.relative_to(migrations).as_posix().replace("/", "-")
    except ValueError:  # a version location outside the migrations folder
        name = hashlib.sha1(str(versions.resolve()).encode()).hexdigest()[:16]
    return migrations / CACHE_FOLDER / f"revisions-{name}.json"


def _make_folder(folder: Path) -> None:
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".gitignore").write_text(
        "# Flask-Migrate's caches (see 'Performance' in its documentation): never commit them\n*\n",
        encoding="utf-8",
    )


class _Cache:
    def __init__(self, versions: Path, migrations: Path) -> None:
        self.path = cache_path(versions, migrations)
        self.entries: dict[str, dict[str, t.Any]] = {}
        self.written_ns = 0
        self.dirty = False
        #: Whether a racy entry checked by content would be safe in a cache written now.
        self.settled = False
        try:
            with open(self.path, "rb") as f:
                self.written_ns = os.fstat(f.fileno()).st_mtime_ns
                data = json.loads(f.read())
            if (
                data.get("format") == FORMAT
                and data.get("alembic") == _alembic_version()
                and isinstance(data.get("files"), dict)
            ):
                self.entries = data["files"]
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as exc:
            log.debug("Ignoring the revision cache %s: %s", self.path, exc)

    def lookup(self, name: str, st: os.stat_result, path: str) -> dict[str, t.Any] | None:
        """The entry of ``name`` if its file is as it was when the entry was made."""
        entry = self.entries.get(name)
        if entry is None or entry.get("stat") != list(_key(st)):
            return None
        if max(st.st_mtime_ns, st.st_ctime_ns) + RACY_WINDOW_NS >= self.written_ns:
            # modified within a clock tick of the cache's write: trust content only
            from .journal import file_checksum

            if file_checksum(path) != entry.get("checksum"):
                return None
            if max(st.st_mtime_ns, st.st_ctime_ns) + RACY_WINDOW_NS < time.time_ns():
                # no longer recent: a cache written now makes the entry safe
                self.settled = True
        return entry

    def put(self, name: str, entry: dict[str, t.Any]) -> None:
        self.entries[name] = entry
        self.dirty = True

    def save(self, seen: set[str]) -> None:
        gone = set(self.entries) - seen
        for name in gone:
            del self.entries[name]
        if not (self.dirty or gone or self.settled):
            return
        data = {"format": FORMAT, "alembic": _alembic_version(), "files": self.entries}
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            _make_folder(self.path.parent)
            tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.debug("Could not write the revision cache %s: %s", self.path, exc)
            try:
                tmp.unlink()
            except OSError:
                pass


def _key(st: os.stat_result) -> _Stat:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _entry(sc: Script | None, st: os.stat_result, checksum: str) -> dict[str, t.Any]:
    entry: dict[str, t.Any] = {"stat": list(_key(st)), "checksum": checksum}
    if sc is None:
        entry["revision"] = None  # not a revision file (Alembic skips it)
        return entry
    entry.update(
        revision=sc.revision,
        down_revision=_as_json(sc.down_revision),
        depends_on=_as_json(sc.dependencies),
        branch_labels=list(sc._orig_branch_labels),
        doc=sc.longdoc,
    )
    return entry


# -- loading ------------------------------------------------------------------------


def load_revisions(script: ScriptDirectory) -> t.Iterator[Script]:
    """The revisions of ``script``'s folders, as Alembic's ``_load_revisions()`` gives them.

    The same files in the same order, the same checks; revisions whose file
    is unchanged since it was cached are not imported.
    """
    if script.sourceless or not enabled():
        # compiled-only revisions: Alembic's own loading, no cache
        yield from _alembic.load_revisions(script)
        return
    from .journal import file_checksum

    dupes: set[str] = set()
    for location in _alembic.version_locations(script):
        versions = Path(location)
        if not versions.exists():
            continue
        cache = _Cache(versions, Path(script.dir))
        real_versions = str(versions.resolve())
        prefix = len(str(versions)) + 1
        seen: set[str] = set()
        for file_path in _alembic.list_revision_files(script, versions):
            # NOTE: plain strings, not pathlib, in this loop: it runs once per
            # revision file on every command
            name = str(file_path)[prefix:]
            st = os.lstat(file_path)
            if stat.S_ISLNK(st.st_mode):
                real_path = str(file_path.resolve())
                st = os.stat(real_path)
            else:
                real_path = os.path.join(real_versions, name)
            if real_path in dupes:
                # as Alembic: warn and skip a file listed twice
                from alembic.util import warn

                warn(
                    f"File {real_path} loaded twice! ignoring. "
                    "Please ensure version_locations is unique."
                )
                continue
            dupes.add(real_path)
            if os.sep != "/":
                name = name.replace(os.sep, "/")
            seen.add(name)
            entry = cache.lookup(name, st, real_path)
            if entry is not None:
                if entry["revision"] is not None:
                    yield CachedScript(real_path, entry, entry["checksum"])
                continue
            sc = _alembic.script_from_path(script, Path(real_path))
            checksum = file_checksum(real_path)
            cache.put(name, _entry(sc, st, checksum))
            if sc is not None:
                sc.checksum = checksum  # type: ignore[attr-defined]
                yield sc
        cache.save(seen)
