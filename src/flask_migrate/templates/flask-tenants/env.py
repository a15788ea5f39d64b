"""Alembic environment of the tenants' history: how 'flask db' commands reach a tenant.

This file is yours to change. It runs inside the Flask application context
and connects to the application's database, as the 'flask' template does;
Flask-Migrate runs it once per tenant and points that connection at the
tenant: its own database (Tenant(name, url=...)) or its PostgreSQL schema
(Tenant(name, schema=...)), which then stands in for the default schema.

The models it compares with a tenant's database are the ones marked
per-tenant, __table_args__ = {"info": {"tenant": True}}. The other models
are the shared tables of the application's own database, which the main
migrations folder looks after. It reads only the 'db' and 'configure_args'
of current_app.extensions["migrate"], as the other templates do.
"""
import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app
from sqlalchemy import MetaData

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

# The key of a table's info that marks its model per-tenant
# (flask_migrate.tenancy.TENANT_INFO_KEY; written out so that this file needs
# nothing but Flask-SQLAlchemy to run).
TENANT_INFO_KEY = "tenant"


def get_engine():
    if hasattr(db, "engines"):  # Flask-SQLAlchemy 3
        return db.engines[None]
    return db.get_engine()  # Flask-SQLAlchemy 2, Alchemical


def get_tenant_metadata():
    """The models every tenant has: the application's models marked per-tenant.

    They are copied into a MetaData of their own, with the application's
    naming convention: 'flask db migrate --tenants' must neither create the
    shared tables in a tenant nor drop them from one.
    """
    if hasattr(db, "metadatas"):  # Flask-SQLAlchemy 3
        models = db.metadatas[None]
    else:
        models = db.metadata
    tables = [table for table in models.tables.values() if table.info.get(TENANT_INFO_KEY)]
    # The shared tables they have foreign keys to come along (and those that
    # these refer to), for SQLAlchemy to resolve the keys; include_object()
    # below leaves them out of the comparison.
    for table in tables:
        for foreign_key in table.foreign_keys:
            if foreign_key.column.table not in tables:
                tables.append(foreign_key.column.table)
    tenant_models = MetaData(naming_convention=models.naming_convention)
    for table in tables:
        table.to_metadata(tenant_models)
    return tenant_models


# The models to compare with a tenant's database for 'flask db migrate
# --tenants'. To use another MetaData, import it and assign it here.
target_metadata = get_tenant_metadata()


def include_object(obj, name, type_, reflected, compare_to):
    """Compare the per-tenant tables only, then ask Migrate(include_object=...) if given."""
    if type_ == "table" and not reflected and not obj.info.get(TENANT_INFO_KEY):
        return False
    given = migrate.configure_args.get("include_object")
    return given is None or given(obj, name, type_, reflected, compare_to)


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


def run_migrations_online():
    """Run the migrations on a connection, which Flask-Migrate points at the tenant."""
    options = dict(migrate.configure_args)
    if options.get("process_revision_directives") is None:
        options["process_revision_directives"] = process_revision_directives
    options["include_object"] = include_object
    with get_engine().connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, **options
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
