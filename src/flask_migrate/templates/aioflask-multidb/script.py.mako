<%!
from flask import current_app


def database_names():
    """The default database ("") and the bind keys, as env.py lists them."""
    binds = current_app.config.get("SQLALCHEMY_BINDS")
    if binds is not None:
        return [""] + [name for name in binds if name]
    db = current_app.extensions["migrate"].db
    return [""] + (db.bind_names() if hasattr(db, "bind_names") else [])
%>"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

"""
from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

# revision identifiers, used by Alembic.
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade(engine_name):
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name):
    globals()["downgrade_%s" % engine_name]()

## One upgrade_<name>() and downgrade_<name>() per database; "" is the default one.
% for db_name in database_names():


def upgrade_${db_name}():
    ${context.get("%s_upgrades" % db_name, "pass")}


def downgrade_${db_name}():
    ${context.get("%s_downgrades" % db_name, "pass")}
% endfor
