"""Tenants: the databases (or PostgreSQL schemas) of an application's customers.

An application declares them with ``Migrate(app, db, tenants=fn)``; ``fn()``
runs at command time, in the application context, and returns
:class:`Tenant` objects. This module holds the declaration and the *scope* of
one tenant's run: while a command runs for a tenant, :func:`scope` tells the
machinery of the run (:mod:`.runner`) which tenant it is, and the run redirects
the connection ``env.py`` configures to it:

* ``Tenant(name, url=...)``: a database of its own. ``env.py`` still opens its
  connection on the application's engine; the run replaces it, in
  ``context.configure()``, with a connection to the tenant's database, so that
  any ``env.py`` works unchanged.
* ``Tenant(name, schema=...)``: a PostgreSQL schema of the application's
  database. The run keeps ``env.py``'s connection and makes the schema its
  default: ``schema_translate_map={None: schema}`` for everything SQLAlchemy
  and Alembic emit, ``search_path`` for raw SQL, and the version table and the
  journal in the schema (``version_table_schema``).

Nothing here imports Alembic or SQLAlchemy's engine machinery at import time.
"""

from __future__ import annotations

import contextlib
import os
import re
import typing as t
from contextvars import ContextVar
from dataclasses import dataclass, field

if t.TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    from flask import Flask
    from sqlalchemy.engine import URL, Engine

__all__ = ["Tenant", "TenantScope", "active", "scope"]

#: The key of ``Table.info`` (``__table_args__ = {"info": {"tenant": True}}``)
#: that marks a model as per-tenant, for applications whose tenants have a
#: history of their own (``Migrate(..., tenant_directory=...)``).
TENANT_INFO_KEY = "tenant"

_NAME = re.compile(r"^[^\s/\\]+$")


@dataclass(frozen=True)
class Tenant:
    """One tenant: a database of its own (``url``) or a PostgreSQL schema (``schema``).

    :param name: how commands and results name the tenant (``--tenant NAME``);
        unique among the tenants, without spaces or slashes.
    :param url: the tenant's database URL (any backend; a relative SQLite
        path is relative to the application's instance folder, as for
        ``SQLALCHEMY_DATABASE_URI``).
    :param schema: the tenant's schema in the application's PostgreSQL database.
    """

    name: str
    url: str | URL | None = field(default=None, repr=False)
    schema: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"A tenant's name must be a non-empty string without spaces or slashes, not {self.name!r}."
            )
        if (self.url is None) == (self.schema is None):
            raise ValueError(
                f"Tenant {self.name!r}: give either url=... (a database of its own) "
                "or schema=... (a PostgreSQL schema), not both, not neither."
            )
        if self.schema is not None and (not isinstance(self.schema, str) or not self.schema):
            raise ValueError(f"Tenant {self.name!r}: schema must be a non-empty string.")

    def __repr__(self) -> str:
        where = f"schema={self.schema!r}" if self.schema is not None else f"url={self.safe_url!r}"
        return f"Tenant({self.name!r}, {where})"

    @property
    def safe_url(self) -> str | None:
        """The URL with its password hidden (``None`` for a schema tenant)."""
        if self.url is None:
            return None
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - an unparseable URL is reported when used
            from .errors import scrub, passwords_in

            text = str(self.url)
            return scrub(text, passwords_in(text))


@dataclass
class TenantScope:
    """A tenant's run in progress: what the run learnt, for the tenant's result."""

    tenant: Tenant
    #: The application (for the instance folder of relative SQLite paths).
    app: Flask | None = None
    #: The revisions in the tenant's version table when its run began.
    heads_before: tuple[str, ...] | None = None
    #: Whether a schema tenant's schema was created by this run.
    created_schema: bool = False
    #: Whether the run is one transaction (``None``: it did not get that far).
    atomic: bool | None = None
    _engine: Engine | None = None

    def engine(self) -> Engine:
        """The engine of a ``url`` tenant (made on first use, disposed with the scope)."""
        if self._engine is None:
            import sqlalchemy as sa
            from sqlalchemy.pool import NullPool

            assert self.tenant.url is not None
            url = sqlite_path(sa.engine.make_url(self.tenant.url), self.app)
            # NOTE: one connection per run: no pool to keep, nothing to share
            # with a forked worker
            self._engine = sa.create_engine(url, poolclass=NullPool)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


_active: ContextVar[TenantScope | None] = ContextVar("flask_migrate_tenant", default=None)


def active() -> TenantScope | None:
    """The tenant whose run is in progress in this context, if any."""
    return _active.get()


@contextlib.contextmanager
def scope(tenant: Tenant, app: Flask | None = None) -> Iterator[TenantScope]:
    """Run what is inside for ``tenant`` (see the module's documentation)."""
    current = TenantScope(tenant, app)
    token = _active.set(current)
    try:
        yield current
    finally:
        _active.reset(token)
        current.close()


def sqlite_path(url: URL, app: Flask | None) -> URL:
    """A relative SQLite path made relative to the instance folder, as Flask-SQLAlchemy does."""
    if url.get_backend_name() != "sqlite" or app is None:
        return url
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:") or os.path.isabs(database):
        return url
    if url.query.get("uri") in ("true", "1"):
        return url
    os.makedirs(app.instance_path, exist_ok=True)
    return url.set(database=os.path.join(app.instance_path, database))
