"""The machinery behind :mod:`flask_migrate.pytest_plugin` (imported when a fixture runs).

A migrated database is built once per session for each configuration (the
migrations folder and its files, the application's binds and drivers) and
kept as a template: an SQLite file, copied for each test, or a PostgreSQL
database, cloned for each test with ``CREATE DATABASE ... TEMPLATE``.
MariaDB/MySQL cannot clone a database, so its binds are migrated for each
test (the other binds of the same application still come from templates,
and are already at the heads when the history runs).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
import typing as t
from pathlib import Path

from . import _alembic, revision_cache, runner, scratch
from .locking import LockOptions

if t.TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    from flask import Flask
    from sqlalchemy.engine import Engine

    from .results import VerifyReport

Bind = t.Optional[str]


class TemplateCache:
    """Migrated templates per configuration, for the session."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="flask-migrate-templates-"))
        #: configuration key -> bind -> template (SQLite file or PostgreSQL database)
        self.templates: dict[str, dict[Bind, str | Path]] = {}
        self._postgresql: list[scratch.ScratchDatabase] = []
        #: how many times the history ran, and how many databases were copied
        self.builds = 0
        self.copies = 0

    def close(self) -> None:
        """Drop the PostgreSQL templates and remove the SQLite ones."""
        for database in self._postgresql:
            with contextlib.suppress(Exception):
                scratch.drop(database)
        self._postgresql.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    @contextlib.contextmanager
    def migrated(self, app: Flask) -> Iterator[dict[Bind, scratch.ScratchDatabase]]:
        """Point ``app`` at fresh scratch databases at the heads, for the block."""
        with app.app_context():
            state = runner.state()
            db = state.db
            engines: dict[Bind, Engine] = dict(getattr(db, "engines", None) or {})
            key = _key(state, engines)
            templates = self.templates.get(key)
            if templates is None:
                templates = self._build(app, db, engines, key)
        databases: dict[Bind, scratch.ScratchDatabase] = {}
        try:
            for bind, engine in engines.items():
                databases[bind] = scratch.create(engine.url, bind, template=templates.get(bind))
                if bind in templates:
                    self.copies += 1
            with scratch.pointed_at(app, db, databases):
                if any(bind not in templates for bind in engines):
                    with app.app_context():
                        upgrade_heads(databases.values())
                try:
                    yield databases
                finally:
                    _close_session(db)
        finally:
            for database in databases.values():
                with contextlib.suppress(Exception):
                    scratch.drop(database)

    def _build(self, app: Flask, db: t.Any, engines: dict[Bind, Engine], key: str) -> dict[Bind, str | Path]:
        """Migrate scratch databases once; keep those that can serve as templates."""
        with scratch.databases_for(engines) as databases:
            with scratch.pointed_at(app, db, databases), app.app_context():
                upgrade_heads(databases.values())
            self.builds += 1
            templates: dict[Bind, str | Path] = {}
            for bind, database in databases.items():
                if database.backend == "sqlite":
                    path = self.directory / f"{key}-{bind or 'main'}.db"
                    shutil.copyfile(t.cast(str, database.url.database), path)
                    templates[bind] = path
                elif database.backend == "postgresql":
                    # kept as the template; databases_for() must not drop it
                    kept = scratch.ScratchDatabase(bind, database.url)
                    database.dropped = True
                    self._postgresql.append(kept)
                    templates[bind] = t.cast(str, database.url.database)
        self.templates[key] = templates
        return templates


def _close_session(db: t.Any) -> None:
    """Close the session of an app context the test's own fixtures still have pushed.

    Its connections belong to the scratch engines, which go away now.
    """
    from flask import has_app_context

    if has_app_context():
        with contextlib.suppress(Exception):
            db.session.remove()


def upgrade_heads(databases: t.Iterable[scratch.ScratchDatabase]) -> None:
    """Upgrade what ``env.py`` configures to the heads; only scratch databases allowed."""

    @runner.translate_errors
    def run() -> None:
        config = runner.get_config(None)
        script = runner.load_scripts(config)

        def compute(heads: t.Any) -> list[t.Any]:
            return _alembic.upgrade_steps(script, "heads", heads)

        runner.Run(
            config, script, lambda heads, context: compute(heads),
            plan=runner.Plan("upgrade", "heads", compute), lock=LockOptions(enabled=False),
            guard=scratch.guard(databases), as_sql=False, destination_rev="heads",
        ).execute()

    run()


def _key(state: t.Any, engines: dict[Bind, Engine]) -> str:
    """What the migrated schema depends on: the migrations folder's files and the binds."""
    directory = Path(state.directory).resolve()
    digest = hashlib.sha1(str(directory).encode())
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not {"__pycache__", revision_cache.CACHE_FOLDER} & set(path.parts):
            stat = path.stat()
            digest.update(f"{path.relative_to(directory)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for bind, engine in sorted(engines.items(), key=lambda item: str(item[0])):
        digest.update(f"{bind}={engine.url.drivername}@{scratch.identity(engine.url)}".encode())
    return digest.hexdigest()[:16]


# -- verify as tests ---------------------------------------------------------------------

_reports: dict[tuple[int, str, tuple[str, ...]], VerifyReport] = {}


def verify_once(config: t.Any, app: Flask, heads: tuple[str, ...]) -> VerifyReport:
    """Run ``verify`` once per session and configuration; later calls reuse the report."""
    from .verify import verify

    with app.app_context():
        state = runner.state()
        key = (id(config), _key(state, dict(state.db.engines)), heads)
        if key not in _reports:
            _reports[key] = verify(heads=heads)
        return _reports[key]


__all__ = ["TemplateCache", "upgrade_heads", "verify_once"]
