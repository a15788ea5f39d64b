"""pytest fixtures for applications that use Flask-Migrate.

Installed with the package as a ``pytest11`` plugin, so pytest loads it in
every run of every project that has Flask-Migrate installed. Loading it
therefore imports nothing but pytest: no Flask application, no Alembic, no
SQLAlchemy. Nothing happens until a test asks for one of its fixtures.

Fixtures (see the "Testing" page of the documentation):

``migrated_app``
    The project's own ``app`` fixture, with each of its databases (each
    Flask-SQLAlchemy bind) replaced, for the test, by a scratch database
    migrated to the heads. SQLite databases are migrated once per session
    and copied for each test; PostgreSQL databases are cloned from a
    template migrated once per session (``CREATE DATABASE ... TEMPLATE``);
    MariaDB/MySQL databases are migrated for each test (the server cannot
    clone a database).

``flask_migrate_cache``
    The session's store of migrated templates, behind ``migrated_app``.

And the checks of ``flask db verify`` as tests, in one line::

    from flask_migrate.pytest_plugin import test_migrations

which adds one test per check (``test_migrations[heads]``, ``[upgrade]``,
``[stairway]``, ``[models]``), run once per session against the project's
``app`` fixture. :func:`verification_tests` makes a variant (other heads,
another fixture).
"""

from __future__ import annotations

import typing as t
import warnings

import pytest

if t.TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    from flask import Flask

    from ._testing import TemplateCache

#: The checks of ``flask db verify``, in order (flask_migrate.verify.CHECKS).
CHECK_NAMES = ("heads", "upgrade", "stairway", "models")


@pytest.fixture(scope="session")
def flask_migrate_cache() -> Iterator[TemplateCache]:
    """Migrated template databases, built once per session and removed at its end."""
    from ._testing import TemplateCache

    cache = TemplateCache()
    try:
        yield cache
    finally:
        cache.close()


@pytest.fixture
def migrated_app(app: Flask, flask_migrate_cache: TemplateCache) -> Iterator[Flask]:
    """The ``app`` fixture, each of its databases a fresh scratch database at the heads.

    The databases are made for the test and dropped after it; the
    application's configured databases are never touched.
    """
    with flask_migrate_cache.migrated(app):
        yield app


def verification_tests(
    *, heads: t.Sequence[str] = (), fixture: str = "app"
) -> t.Callable[..., None]:
    """A test function that runs ``flask db verify``'s checks, one test per check.

    Assign the result to a name starting with ``test_`` in a test module::

        test_history = verification_tests(heads=["a1b2", "c3d4"])

    :param heads: the heads the history should have (by default: one).
    :param fixture: the fixture that gives the application.
    """
    wanted = tuple(heads)

    @pytest.mark.parametrize("flask_migrate_check", CHECK_NAMES)
    def test_migrations(flask_migrate_check: str, request: pytest.FixtureRequest) -> None:
        """One check of ``flask db verify`` on scratch databases."""
        from ._testing import verify_once

        app = request.getfixturevalue(fixture)
        check = verify_once(request.config, app, wanted).check(flask_migrate_check)
        for finding in check.warnings:
            warnings.warn(_line(finding), stacklevel=1)
        if check.status == "failed":
            pytest.fail(
                f"{check.summary}\n" + "\n".join(_line(f) for f in check.failures),
                pytrace=False,
            )
        if check.status == "skipped":
            pytest.skip(check.summary)

    return test_migrations


def _line(finding: t.Any) -> str:
    about = f"{finding.revision}: " if finding.revision else ""
    where = f" [{finding.database}]" if finding.database else ""
    return f"{about}{finding.message}{where}"


#: ``from flask_migrate.pytest_plugin import test_migrations`` in a test module
#: runs the checks of ``flask db verify`` against the ``app`` fixture.
test_migrations = verification_tests()
# NOTE: pytest collects test functions from test modules only; in this module,
# loaded as a plugin, it is only a value to import.
