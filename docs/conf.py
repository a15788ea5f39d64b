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

    # ``.. lint-rules::``: a section per lint rule of the registry, from its docstring.
    from sphinx.util.nodes import nested_parse_with_titles

    from flask_migrate.lint import rules as lint_rules

    databases = {"postgresql": "PostgreSQL", "mysql": "MySQL and MariaDB", "sqlite": "SQLite"}

    class LintRules(SphinxDirective):
        def run(self):
            lines = []
            for rule in lint_rules():
                title = f"{rule.id} {rule.name}"
                where = (
                    "every database" if rule.dialects is None
                    else " and ".join(databases.get(d, d) for d in sorted(rule.dialects)) + " only"
                )
                lines += [f".. _lint-{rule.id.lower()}:", "", title, "~" * len(title), ""]
                lines += [f"*Severity:* {rule.severity}. *Applies to:* {where}.", ""]
                lines += rule.doc.splitlines() + [""]
            body = nodes.section()
            body.document = self.state.document
            nested_parse_with_titles(self.state, StringList(lines, "<lint-rules>"), body)
            return body.children

    app.add_directive("lint-rules", LintRules)
    return {"parallel_read_safe": True}
