# Alembic settings for the tenants of a Flask application. No database URL is
# stored here: env.py connects as the application does, and Flask-Migrate
# points that connection at each tenant.

[alembic]
# How revision file names are built, e.g. %%(rev)s_%%(slug)s
# file_template = %%(rev)s_%%(slug)s

# Set to 'true' to run env.py for 'flask db revision' without --autogenerate
# revision_environment = false


# Logging, used by 'flask db' commands when the application has not set up
# logging itself.
[loggers]
keys = root,sqlalchemy,alembic,alembic_plugins,flask_migrate

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARN
handlers = console
qualname =

[logger_sqlalchemy]
level = WARN
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[logger_alembic_plugins]
level = WARN
handlers =
qualname = alembic.runtime.plugins

[logger_flask_migrate]
level = INFO
handlers =
qualname = flask_migrate

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
