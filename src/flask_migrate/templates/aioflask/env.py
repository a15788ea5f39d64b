"""Alembic environment: how 'flask db' commands reach the database.

This file is yours to change. It runs inside the Flask application context,
so the database and the models come from the application's Flask-SQLAlchemy
instance. It reads only the 'db' and 'configure_args' of
current_app.extensions["migrate"], so it also runs with Flask-Migrate 4.1.
The database URL names an asyncio driver: migrations run on an async
connection, in a fresh event loop.
"""
import asyncio
import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app
from sqlalchemy.ext.asyncio import AsyncEngine

config = context.config
logger = logging.getLogger("alembic.env")
migrate = current_app.extensions["migrate"]
db = migrate.db

# Set up logging from alembic.ini, unless the application has set up logging
# already: a migration run from the application's own code must not replace
# its handlers or silence its loggers.
if (
    config.config_file_name is not None
    and config.attributes.get("configure_logger", True)
    and not logging.getLogger().handlers
):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def get_engine():
    if hasattr(db, "engines"):  # Flask-SQLAlchemy 3
        return db.engines[None]
    return db.get_engine()  # Flask-SQLAlchemy 2, Alchemical


# The models to compare with the database for 'flask db migrate'. To use
# another MetaData, import it and assign it here.
if hasattr(db, "metadatas"):  # Flask-SQLAlchemy 3
    target_metadata = db.metadatas[None]
else:
    target_metadata = db.metadata


def process_revision_directives(context, revision, directives):
    """Write no revision file when autogenerate finds no change."""
    if getattr(config.cmd_opts, "autogenerate", False):
        if directives[0].upgrade_ops.is_empty():
            directives[:] = []
            logger.info("No changes in schema detected.")


def run_migrations_offline():
    """Write the SQL to standard output instead of running it (--sql)."""
    # The URL is passed as an object: the password never reaches the
    # Alembic configuration.
    options = {"literal_binds": True, **migrate.configure_args}
    context.configure(
        url=get_engine().url, target_metadata=target_metadata, **options
    )
    with context.begin_transaction():
        context.run_migrations()


def get_async_engine():
    engine = get_engine()
    # Flask-SQLAlchemy builds a synchronous Engine even for an async driver;
    # wrap it, sharing its connection pool.
    return engine if isinstance(engine, AsyncEngine) else AsyncEngine(engine)


def do_run_migrations(connection):
    options = dict(migrate.configure_args)
    if options.get("process_revision_directives") is None:
        options["process_revision_directives"] = process_revision_directives
    context.configure(
        connection=connection, target_metadata=target_metadata, **options
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online():
    """Run the migrations on an async connection of the application's engine."""
    async with get_async_engine().connect() as connection:
        await connection.run_sync(do_run_migrations)


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
