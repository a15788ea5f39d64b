"""Sphinx configuration for the Flask-Migrate documentation."""

import flask_migrate

project = "Flask-Migrate"
copyright = "Flask-Migrate contributors"
author = "Flask-Migrate contributors"
version = release = flask_migrate.__version__

extensions = ["sphinx.ext.autodoc"]

# No intersphinx: the docs must build without network access. References to
# Alembic, Flask and SQLAlchemy objects therefore render as plain text.
nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

exclude_patterns = ["_build"]
root_doc = "index"

html_theme = "alabaster"
html_theme_options = {
    "description": "Database migrations for Flask, with Alembic",
    "fixed_sidebar": True,
}
html_static_path = []



def setup(app):
    """``.. verify-checks::``: the checks of ``flask db verify``, from their docstrings."""
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    from flask_migrate.verify import CHECKS

    class VerifyChecks(SphinxDirective):
        def run(self):
            lines = []
            for check in CHECKS:
                lines.append(f"``{check.name}`` ({check.title})")
                lines += ["   " + line if line else "" for line in check.doc.splitlines()]
                lines.append("")
            body = nodes.container()
            self.state.nested_parse(StringList(lines), self.content_offset, body)
            return body.children

    app.add_directive("verify-checks", VerifyChecks)
    return {"parallel_read_safe": True}
