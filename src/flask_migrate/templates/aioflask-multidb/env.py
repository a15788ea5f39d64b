"""Alembic environment: how 'flask db' commands reach the databases.

This file is yours to change. It runs inside the Flask application context
and migrates the application's default database ("") and every bind of its
Flask-SQLAlchemy instance, each with its own alembic_version table. It reads
only the 'db' and 'configure_args' of current_app.extensions["migrate"], so
it also runs with Flask-Migrate 4.1. The database URLs name asyncio drivers:
migrations run on async connections, in a fresh event loop.
"""
import asyncio
import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app
from sqlalchemy import MetaData
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

# Set USE_TWOPHASE to True to commit all databases with two-phase commit.
USE_TWOPHASE = False


def get_bind_names():
    binds = current_app.config.get("SQLALCHEMY_BINDS")
    if binds is not None:
        return [name for name in binds if name]
    return db.bind_names() if hasattr(db, "bind_names") else []  # Alchemical


# "" is the default database; the others are the bind keys.
databases = [""] + get_bind_names()


def get_engine(name):
    if hasattr(db, "engines"):  # Flask-SQLAlchemy 3
        return db.engines[name or None]
    return db.get_engine(bind=name or None)  # Flask-SQLAlchemy 2, Alchemical


def get_metadata(name):
    """The models to compare with the database 'name' for 'flask db migrate'."""
    if hasattr(db, "metadatas"):  # Flask-SQLAlchemy 3
        # a bind without models has no MetaData: nothing to compare
        return db.metadatas.get(name or None, MetaData())
    metadata = MetaData()
    for table in db.metadata.tables.values():
        if table.info.get("bind_key") == (name or None):
            table.to_metadata(metadata)
    return metadata


def process_revision_directives(context, revision, directives):
    """Write no revision file when autogenerate finds no change in any database."""
    if not getattr(config.cmd_opts, "autogenerate", False):
        return
    script = directives[0]
    # this runs once per database: decide after the last one
    if len(script.upgrade_ops_list) >= len(databases) and all(
        ops.is_empty() for ops in script.upgrade_ops_list
    ):
        directives[:] = []
        logger.info("No changes in schema detected.")


def run_migrations_offline():
    """Write each database's SQL to <name>.sql instead of running it (--sql)."""
    # The URLs are passed as objects: the passwords never reach the Alembic
    # configuration.
    options = {"literal_binds": True, **migrate.configure_args}
    for name in databases:
        logger.info("Migrating database %s", name or "<default>")
        file_name = "%s.sql" % name
        logger.info("Writing output to %s", file_name)
        with open(file_name, "w") as buffer:
            context.configure(
                url=get_engine(name).url,
                output_buffer=buffer,
                target_metadata=get_metadata(name),
                **options,
            )
            with context.begin_transaction():
                context.run_migrations(engine_name=name)


def run_migrations(connections):
    """Migrate every database, then commit all of them, or none on error."""
    options = dict(migrate.configure_args)
    if options.get("process_revision_directives") is None:
        options["process_revision_directives"] = process_revision_directives
    transactions = {
        name: conn.begin_twophase() if USE_TWOPHASE else conn.begin()
        for name, conn in connections.items()
    }
    try:
        for name, conn in connections.items():
            logger.info("Migrating database %s", name or "<default>")
            context.configure(
                connection=conn,
                upgrade_token="%s_upgrades" % name,
                downgrade_token="%s_downgrades" % name,
                target_metadata=get_metadata(name),
                **options,
            )
            context.run_migrations(engine_name=name)
        if USE_TWOPHASE:
            for transaction in transactions.values():
                transaction.prepare()
        for transaction in transactions.values():
            transaction.commit()
    except BaseException:
        for transaction in transactions.values():
            transaction.rollback()
        raise


def get_async_engine(name):
    engine = get_engine(name)
    # Flask-SQLAlchemy builds a synchronous Engine even for an async driver;
    # wrap it, sharing its connection pool.
    return engine if isinstance(engine, AsyncEngine) else AsyncEngine(engine)


async def run_migrations_online():
    connections = {}
    try:
        for name in databases:
            connections[name] = await get_async_engine(name).connect()
        # Alembic is synchronous: run it in one greenlet that drives every
        # database's connection.
        sync_connections = {
            name: conn.sync_connection for name, conn in connections.items()
        }
        await connections[""].run_sync(
            lambda _: run_migrations(sync_connections)
        )
    finally:
        for conn in connections.values():
            await conn.close()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
