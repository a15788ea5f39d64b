"""Alembic environment: how 'flask db' commands reach the database.

This file is yours to change. It runs inside the Flask application context,
so the database and the models come from the application's Flask-SQLAlchemy
instance.
"""
import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

config = context.config
migrate = current_app.extensions["migrate"]

# Set up logging from alembic.ini, unless the application has set up logging
# already: a migration run from the application's own code must not replace
# its handlers or silence its loggers.
if (
    config.config_file_name is not None
    and config.attributes.get("configure_logger", True)
    and not logging.getLogger().handlers
):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# The models to compare with the database for 'flask db migrate'. To use
# another MetaData, import it and assign it here.
target_metadata = migrate.get_metadata()


def run_migrations_offline():
    """Write the SQL to standard output instead of running it (--sql)."""
    options = {"literal_binds": True, **migrate.configure_args}
    context.configure(
        url=migrate.get_engine().url, target_metadata=target_metadata, **options
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run the migrations on a connection of the application's engine."""
    with migrate.get_engine().connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            **migrate.configure_args,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
