"""The revision-graph cache (``flask_migrate.revision_cache``): fast, and never stale.

Commands learn the history from a JSON file in ``migrations/.flask-migrate-cache``
instead of importing every revision file. These tests check that what they
learn is always what importing the files would give: after edits of every
kind (same size, same modification time, within a clock tick of the cache's
own write), new and deleted files, a corrupt or unwritable cache, and that
the cache is written, used, and can be turned off. A marker file counts the
imports of each revision module.
"""

from __future__ import annotations

import json
import os
import random
import time
import types
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from flask_migrate import operations, revision_cache, runner
from flask_migrate.errors import MigrateError
from flask_migrate.journal import file_checksum

from conftest import create_app, write_revision

#: each revision module appends its id to this file when it is imported
IMPORTED = "imported.log"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _revision(versions: Path, rev: str, down: str | None, message: str = "step") -> Path:
    log = versions.parent.parent / IMPORTED
    return write_revision(
        versions, rev, down, message=message,
        upgrade="op.execute('select 1')",
        preamble=f"with open({str(log)!r}, 'a') as _f:\n    _f.write(revision + '\\n')",
    )


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Flask, Path]]:
    """An app on SQLite with three revisions a -> b -> c."""
    migrations = tmp_path / "migrations"
    app, db, _ = create_app(f"sqlite:///{tmp_path / 'app.db'}", migrations)
    with app.app_context():
        operations.init()
    versions = migrations / "versions"
    for rev, down in (("a1", None), ("b2", "a1"), ("c3", "b2")):
        _revision(versions, rev, down)
    yield app, versions
    with app.app_context():
        db.engine.dispose()


def _imports(versions: Path) -> list[str]:
    log = versions.parent.parent / IMPORTED
    revs = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return revs


def _heads(app: Flask) -> list[str]:
    with app.app_context():
        return [sc.revision for sc in operations.heads()]


def _load(app: Flask) -> dict[str, object]:
    with app.app_context():
        script = runner.load_scripts(runner.get_config(None))
        return {sc.revision: sc for sc in script.walk_revisions()}


def _age_cache(versions: Path) -> None:
    """Make the cache look written an hour from now, so no entry is "racy" (see the module)."""
    path = revision_cache.cache_path(versions, versions.parent)
    later = time.time() + 3600
    os.utime(path, (later, later))


def test_written_once_then_used_without_imports(project: tuple[Flask, Path]) -> None:
    app, versions = project
    assert _heads(app) == ["c3"]
    assert sorted(_imports(versions)) == ["a1", "b2", "c3"]
    path = revision_cache.cache_path(versions, versions.parent)
    assert path.parent == versions.parent / ".flask-migrate-cache" and path.exists()
    # the folder ignores itself in git, and survives deleting Python's caches
    assert (path.parent / ".gitignore").read_text().splitlines()[-1] == "*"
    data = json.loads(path.read_text())
    assert {e["revision"] for e in data["files"].values()} == {"a1", "b2", "c3"}
    # the next commands import nothing, and see the same history
    assert _heads(app) == ["c3"]
    scripts = _load(app)
    assert _imports(versions) == []
    assert all(isinstance(sc, revision_cache.CachedScript) for sc in scripts.values())
    assert scripts["b2"].down_revision == "a1" and scripts["a1"].down_revision is None  # type: ignore[attr-defined]
    assert scripts["c3"].doc == "step"  # type: ignore[attr-defined]
    # the cache knows the journal's checksums
    for sc in scripts.values():
        assert sc.checksum == file_checksum(sc.path)  # type: ignore[attr-defined]


def test_no_bytecode_caches_needed(project: tuple[Flask, Path]) -> None:
    """Deploys that delete ``__pycache__`` (or never write it) keep the revision cache."""
    import shutil

    app, versions = project
    _heads(app)
    _imports(versions)
    shutil.rmtree(versions / "__pycache__", ignore_errors=True)
    assert _heads(app) == ["c3"] and _imports(versions) == []


def test_upgrade_imports_only_what_it_runs(project: tuple[Flask, Path]) -> None:
    app, versions = project
    with app.app_context():
        operations.upgrade(revision="b2")
        assert sorted(_imports(versions)) == ["a1", "b2", "c3"]  # the first load fills the cache
        operations.upgrade()
        assert _imports(versions) == ["c3"]
        operations.upgrade()  # nothing to do
        operations.current()
        operations.status()
        assert _imports(versions) == []


def test_same_size_edit_right_after_the_cache_is_written(project: tuple[Flask, Path]) -> None:
    app, versions = project
    _heads(app)
    path = versions / "c3_step.py"
    before = path.stat()
    # same size, same modification time: only the content says it changed
    path.write_text(path.read_text().replace("down_revision = 'b2'", "down_revision = 'a1'"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    scripts = _load(app)
    assert scripts["c3"].down_revision == "a1"  # type: ignore[attr-defined]
    assert sorted(_heads(app)) == ["b2", "c3"]


def test_edits_of_files_cached_long_ago(project: tuple[Flask, Path]) -> None:
    app, versions = project
    _heads(app)
    _age_cache(versions)
    _imports(versions)
    assert _heads(app) == ["c3"] and _imports(versions) == []
    # an edit that changes the size
    path = versions / "b2_step.py"
    path.write_text(path.read_text().replace('"""step', '"""a longer message'))
    assert _load(app)["b2"].doc == "a longer message"  # type: ignore[attr-defined]
    assert _imports(versions) == ["b2"]
    # an edit of the same size whose modification time is set back: its
    # change time (which no tool can set) still gives it away
    _age_cache(versions)
    before = path.stat()
    path.write_text(path.read_text().replace("a longer message", "a better message"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert _load(app)["b2"].doc == "a better message"  # type: ignore[attr-defined]


def test_new_deleted_and_renamed_files(project: tuple[Flask, Path]) -> None:
    app, versions = project
    _heads(app)
    _revision(versions, "d4", "c3")
    assert _heads(app) == ["d4"]
    (versions / "d4_step.py").unlink()
    assert _heads(app) == ["c3"]
    data = json.loads(revision_cache.cache_path(versions, versions.parent).read_text())
    assert not any("d4" in name for name in data["files"])
    (versions / "c3_step.py").rename(versions / "c3_renamed.py")
    scripts = _load(app)
    assert scripts["c3"].path.endswith("c3_renamed.py")  # type: ignore[attr-defined]


def test_two_files_with_one_id_are_refused_every_time(project: tuple[Flask, Path]) -> None:
    app, versions = project
    _heads(app)
    (versions / "copy_of_c3.py").write_text((versions / "c3_step.py").read_text())
    for _ in range(2):
        with app.app_context(), pytest.raises(MigrateError, match="used by two files"):
            operations.heads()


def test_corrupt_cache_is_ignored_and_rewritten(project: tuple[Flask, Path]) -> None:
    app, versions = project
    _heads(app)
    path = revision_cache.cache_path(versions, versions.parent)
    path.write_text("{not json")
    assert _heads(app) == ["c3"]
    assert json.loads(path.read_text())["format"] == revision_cache.FORMAT
    # a cache of another format or Alembic version is not trusted either
    data = json.loads(path.read_text())
    data["alembic"] = "0.0.1"
    data["files"]["c3_step.py"]["down_revision"] = None
    path.write_text(json.dumps(data))
    _age_cache(versions)
    assert _heads(app) == ["c3"]


def test_unwritable_cache_folder(project: tuple[Flask, Path]) -> None:
    app, versions = project
    (versions.parent / ".flask-migrate-cache").write_text("a file where the folder would go")
    assert _heads(app) == ["c3"]
    assert _heads(app) == ["c3"]
    assert sorted(_imports(versions)) == ["a1", "a1", "b2", "b2", "c3", "c3"]


def test_turned_off_by_config(project: tuple[Flask, Path]) -> None:
    app, versions = project
    app.config["MIGRATE_REVISION_CACHE"] = False
    assert _heads(app) == ["c3"] and _heads(app) == ["c3"]
    assert len(_imports(versions)) == 6
    assert not revision_cache.cache_path(versions, versions.parent).exists()


def test_commands_print_the_same_with_and_without_the_cache(tmp_path: Path) -> None:
    """A branchy history (labels, a merge, depends_on): every read command agrees."""
    migrations = tmp_path / "migrations"
    app, db, _ = create_app(f"sqlite:///{tmp_path / 'app.db'}", migrations)
    with app.app_context():
        operations.init()
    versions = migrations / "versions"
    write_revision(versions, "r1", None, message="root")
    path = write_revision(versions, "r2", "r1", message="left side")
    path.write_text(path.read_text().replace('"""left side', '"""left side\n\nwith a long description'))
    write_revision(versions, "r3", "r1", message="right side")
    path = write_revision(versions, "r5", None, message="other root")
    path.write_text(path.read_text().replace("branch_labels = None", "branch_labels = ('other',)"))
    path = write_revision(versions, "r4", ("r2", "r3"), message="merge")  # type: ignore[arg-type]
    path.write_text(path.read_text().replace("depends_on = None", "depends_on = 'r5'"))
    runner_ = app.test_cli_runner()

    def outputs() -> list[str]:
        return [
            runner_.invoke(args=["db", *args]).output
            for args in (["history"], ["history", "-v"], ["heads", "-v"], ["branches", "-v"],
                         ["show", "r4"], ["heads", "--resolve-dependencies"])
        ]

    app.config["MIGRATE_REVISION_CACHE"] = False
    expected = outputs()
    app.config["MIGRATE_REVISION_CACHE"] = True
    outputs()  # writes the cache
    assert outputs() == expected
    assert "r4" in expected[0] and "with a long description" in expected[1]
    with app.app_context():
        db.engine.dispose()


# -- walks of the revision graph ---------------------------------------------------------


def _random_map(seed: int, size: int = 40) -> t.Any:
    from alembic.script.revision import Revision, RevisionMap

    rnd = random.Random(seed)
    revisions = []
    for i in range(size):
        downs = sorted({f"n{rnd.randrange(i)}" for _ in range(rnd.choice((1, 1, 1, 2)))}) if i else []
        if i and rnd.random() < 0.15:
            downs = []  # another root
        deps = [f"n{rnd.randrange(i)}"] if i > 3 and rnd.random() < 0.2 else None
        revisions.append(Revision(f"n{i}", tuple(downs) or None, dependencies=deps and tuple(deps)))
    return types.SimpleNamespace(revision_map=RevisionMap(lambda: revisions))


@pytest.mark.parametrize("seed", range(12))
def test_graph_walks_agree_with_alembic(seed: int) -> None:
    """``current``'s linear-time walk gives what Alembic's quadratic one gives."""
    from flask_migrate import _alembic

    script = _random_map(seed)
    revision_map = script.revision_map
    rnd = random.Random(seed)
    names = [f"n{i}" for i in range(40)]
    for _ in range(20):
        heads = tuple(rnd.sample(names, rnd.choice((1, 1, 2, 3))))
        expected = {r.revision for r in revision_map._get_all_current(heads)}
        assert {r.revision for r in _alembic.all_current(script, heads)} == expected
        expected_below = {r.revision for r in revision_map.iterate_revisions(heads[0], "base")}
        assert _alembic.ancestors(script, heads[:1]) == expected_below


def test_recent_files_are_checked_by_content_until_the_cache_settles(
    project: tuple[Flask, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files written just before the cache are read until a later write makes them safe."""
    from flask_migrate import journal

    app, versions = project
    monkeypatch.setattr(revision_cache, "RACY_WINDOW_NS", 400_000_000)
    read: list[str] = []
    checksum = journal.file_checksum

    def counting(path: str | os.PathLike[str]) -> str:
        read.append(os.path.basename(path))
        return checksum(path)

    monkeypatch.setattr(journal, "file_checksum", counting)
    _heads(app)  # the files are new: imported, cache written
    read.clear()
    _heads(app)  # within the window of their modification: read again
    assert sorted(read) == ["a1_step.py", "b2_step.py", "c3_step.py"]
    time.sleep(0.5)  # the files are now older than the window
    read.clear()
    _heads(app)  # read a last time, and the cache is rewritten
    assert len(read) == 3
    read.clear()
    _heads(app)
    assert read == [] and _imports(versions) == ["a1", "b2", "c3"]
