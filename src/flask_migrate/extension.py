"""The :class:`Migrate` extension and the per-application state it installs.

Nothing here imports Alembic: an application that creates ``Migrate(app, db)``
pays for Alembic only when a migration command actually runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import typing as t
from contextvars import ContextVar

from flask import Flask, current_app, g

if t.TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    from sqlalchemy import Engine, MetaData

    from .config import Config
    from .tenancy import Tenant

ConfigureCallback = t.Callable[["Config"], "Config"]
#: ``Migrate(tenants=...)``: returns the application's tenants.
TenantsFunction = t.Callable[[], t.Iterable["Tenant"]]
F = t.TypeVar("F", bound=ConfigureCallback)


class _MigrateConfig:
    """What ``app.extensions['migrate']`` holds.

    ``env.py`` files read ``.db``, ``.migrate``, ``.directory``,
    ``.configure_args`` and ``.metadata``; the attribute names are those of the
    original Flask-Migrate, so environments written for it keep working.
    """

    def __init__(self, migrate: Migrate, db: t.Any, **kwargs: t.Any) -> None:
        self.migrate = migrate
        self.db = db
        self.directory = migrate.directory
        self._configure_args: dict[str, t.Any] = kwargs
        self._run_args: ContextVar[dict[str, t.Any] | None] = ContextVar(
            "flask_migrate_run_args", default=None
        )

    @property
    def configure_args(self) -> dict[str, t.Any]:
        """Keyword arguments for ``EnvironmentContext.configure()``.

        While a command of this package runs, this is a fresh copy of the
        arguments given to :class:`Migrate`, plus the hooks the command adds.
        ``env.py`` may change the dict it gets (the stock one adds a
        ``process_revision_directives``); those changes last for that one run
        instead of leaking into the next command of the same process.
        """
        run_args = self._run_args.get()
        return self._configure_args if run_args is None else run_args

    @configure_args.setter
    def configure_args(self, value: dict[str, t.Any]) -> None:
        self._configure_args = value

    @contextlib.contextmanager
    def run_configure_args(self, **extra: t.Any) -> Iterator[dict[str, t.Any]]:
        """Give ``env.py`` a per-run copy of the configure arguments."""
        args = dict(self._configure_args)
        args.update(extra)
        token = self._run_args.set(args)
        try:
            yield args
        finally:
            self._run_args.reset(token)

    @property
    def tenant(self) -> Tenant | None:
        """The tenant a command is running for right now (``--tenant``), if any.

        For ``env.py`` files that need to know; the connection ``env.py``
        configures is redirected to the tenant whether it reads this or not.
        """
        from .tenancy import active

        scope = active()
        return scope.tenant if scope is not None else None

    @property
    def metadata(self) -> MetaData:
        """The default bind's metadata (what very old ``env.py`` files read)."""
        return t.cast("MetaData", self.db.metadata)

    # Helpers for env.py. The templates of this package call these so that
    # they stay short; they work with Flask-SQLAlchemy 3 and with extensions
    # that follow the older ``get_engine(bind=...)`` protocol.

    def bind_names(self) -> list[str]:
        """The bind keys of the application's extra databases, in order."""
        engines = getattr(self.db, "engines", None)
        if engines is not None:
            return [key for key in engines if key is not None]
        binds = current_app.config.get("SQLALCHEMY_BINDS") or {}
        return list(binds)

    def get_engine(self, bind_key: str | None = None) -> Engine:
        """The engine of the default database, or of the bind ``bind_key``."""
        if bind_key == "":
            bind_key = None
        engines = getattr(self.db, "engines", None)
        if engines is not None:
            if bind_key not in engines:
                raise RuntimeError(
                    f"No database bind named {bind_key!r}; "
                    f"configured binds: {self.bind_names()}"
                )
            return t.cast("Engine", engines[bind_key])
        return t.cast("Engine", self.db.get_engine(bind=bind_key))

    def get_metadata(self, bind_key: str | None = None) -> MetaData:
        """The metadata whose tables live in the default database or ``bind_key``."""
        if bind_key == "":
            bind_key = None
        metadatas = getattr(self.db, "metadatas", None)
        if metadatas is not None:
            if bind_key in metadatas:
                return t.cast("MetaData", metadatas[bind_key])
            from sqlalchemy import MetaData

            return MetaData()  # a bind without models: nothing to compare
        if bind_key is None:
            return self.metadata
        from sqlalchemy import MetaData

        subset = MetaData()
        for table in self.db.metadata.tables.values():
            if table.info.get("bind_key") == bind_key:
                table.to_metadata(subset)
        return subset


class Migrate:
    """The Flask-Migrate extension.

    :param app: the Flask application, or ``None`` to call :meth:`init_app` later.
    :param db: the Flask-SQLAlchemy instance.
    :param directory: the migrations folder (a string or a :class:`os.PathLike`).
    :param command: the name of the CLI group, ``flask <command> ...``.
    :param compare_type: let autogenerate detect column type changes.
    :param render_as_batch: render autogenerated operations in batch mode, which
        SQLite needs for anything beyond adding a column.
    :param tenants: a function that returns the application's tenants, an
        iterable of :class:`~flask_migrate.Tenant`; it is called, inside the
        application context, by the commands given ``--all-tenants`` or
        ``--tenant NAME`` (see :doc:`tenants`).
    :param tenant_directory: the migrations folder of the tenants, when they
        have a history of their own (``flask db init --tenants`` makes it);
        by default tenants get ``directory``, the application's history.
    :param kwargs: any other keyword arguments are given to Alembic's
        ``EnvironmentContext.configure()`` by ``env.py``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        db: t.Any = None,
        directory: str | os.PathLike[str] = "migrations",
        command: str = "db",
        compare_type: bool = True,
        render_as_batch: bool = True,
        *,
        tenants: TenantsFunction | None = None,
        tenant_directory: str | os.PathLike[str] | None = None,
        **kwargs: t.Any,
    ) -> None:
        self.configure_callbacks: list[ConfigureCallback] = []
        self.db = db
        self.command = command
        self.directory = str(directory)
        self.tenants = tenants
        self.tenant_directory = None if tenant_directory is None else str(tenant_directory)
        self.alembic_ctx_kwargs: dict[str, t.Any] = kwargs
        self.alembic_ctx_kwargs["compare_type"] = compare_type
        self.alembic_ctx_kwargs["render_as_batch"] = render_as_batch
        if app is not None and db is not None:
            self.init_app(app, db, directory)

    def init_app(
        self,
        app: Flask,
        db: t.Any = None,
        directory: str | os.PathLike[str] | None = None,
        command: str | None = None,
        compare_type: bool | None = None,
        render_as_batch: bool | None = None,
        *,
        tenants: TenantsFunction | None = None,
        tenant_directory: str | os.PathLike[str] | None = None,
        **kwargs: t.Any,
    ) -> None:
        """Register the extension on ``app`` and add the ``flask db`` commands."""
        self.db = db or self.db
        self.command = command or self.command
        self.directory = str(directory or self.directory)
        if tenants is not None:
            self.tenants = tenants
        if tenant_directory is not None:
            self.tenant_directory = str(tenant_directory)
        self.alembic_ctx_kwargs.update(kwargs)
        if compare_type is not None:
            self.alembic_ctx_kwargs["compare_type"] = compare_type
        if render_as_batch is not None:
            self.alembic_ctx_kwargs["render_as_batch"] = render_as_batch
        if not hasattr(app, "extensions"):  # pragma: no cover - Flask always has it
            app.extensions = {}
        app.extensions["migrate"] = _MigrateConfig(
            self, self.db, **self.alembic_ctx_kwargs
        )

        from .cli import db as db_cli_group

        app.cli.add_command(db_cli_group, name=self.command)

    def configure(self, f: F) -> F:
        """Register ``f`` to adjust the Alembic :class:`~flask_migrate.Config`.

        Callbacks take the config and return it; they run in the order they
        were registered, every time a command builds its config.
        """
        self.configure_callbacks.append(f)
        return f

    def call_configure_callbacks(self, config: Config) -> Config:
        """Run the registered configure callbacks over ``config``."""
        for f in self.configure_callbacks:
            config = f(config)
        return config

    def get_config(
        self,
        directory: str | os.PathLike[str] | None = None,
        x_arg: str | t.Sequence[str] | None = None,
        opts: t.Iterable[str] | None = None,
    ) -> Config:
        """Build the Alembic config for the migrations folder ``directory``.

        :param x_arg: ``-x`` arguments for ``env.py`` (one string or several),
            added after those given to the ``flask db`` group.
        :param opts: names of command options to set to ``True`` on
            ``config.cmd_opts`` (for example ``['autogenerate']``).
        """
        from .config import Config

        directory = str(self.directory if directory is None else directory)
        config = Config(os.path.join(directory, "alembic.ini"))
        # configparser interpolates "%": a folder name may contain one
        config.set_main_option("script_location", directory.replace("%", "%%"))
        if config.cmd_opts is None:
            config.cmd_opts = argparse.Namespace()
        for opt in opts or []:
            setattr(config.cmd_opts, opt, True)
        if not hasattr(config.cmd_opts, "x"):
            config.cmd_opts.x = x_arguments(x_arg)
        return self.call_configure_callbacks(config)


def x_arguments(x_arg: str | t.Sequence[str] | None) -> list[str]:
    """The ``-x`` arguments for ``env.py``: the ``flask db`` group's, then ``x_arg``."""
    x: list[str] = list(getattr(g, "x_arg", None) or ()) if g else []
    if isinstance(x_arg, str):
        x.append(x_arg)
    elif x_arg is not None:
        x.extend(x_arg)
    return x
