"""Exceptions raised by the operations layer, and message scrubbing.

Every exception here is a subclass of Alembic's :class:`~alembic.util.CommandError`,
so code written against the original Flask-Migrate (or Alembic) that catches
``CommandError`` keeps working. The exceptions carry data as attributes; their
``str()`` is the one-line message a person reads.
"""

from __future__ import annotations

import re
import typing as t
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote

from alembic.util import CommandError


class MigrateError(CommandError):
    """Base class of every error the operations layer raises on purpose."""

    #: The exception this error was translated from (a SQLAlchemy error, say),
    #: when it was; the Flask-Migrate 4.1 functions raise that one instead.
    original: BaseException | None = None


class NoMigrationsFolder(MigrateError):
    """The migrations folder (or a file Alembic needs in it) does not exist."""

    def __init__(self, directory: str, missing: str | None = None, command: str = "db") -> None:
        self.directory = directory
        self.missing = missing
        if missing is None:
            message = (
                f"No migrations folder at {directory!r}. "
                f"Run 'flask {command} init' to create one."
            )
        else:
            message = (
                f"The migrations folder {directory!r} has no {missing}. "
                f"Restore it from version control, or run 'flask {command} init' "
                "in an empty folder to start over."
            )
        super().__init__(message)


class TemplateNotFound(MigrateError):
    """``init`` was given a template name or path that does not exist."""

    def __init__(self, template: str, available: Iterable[str]) -> None:
        self.template = template
        self.available = tuple(available)
        super().__init__(
            f"No template named {template!r}. Available templates: "
            f"{', '.join(self.available)} (or give the path of a template folder)."
        )


class DirectoryNotEmpty(MigrateError):
    """``init`` was pointed at a folder that already has files in it."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        super().__init__(
            f"The folder {directory!r} already exists and is not empty. "
            "Choose another folder with -d, or remove this one."
        )


class PendingChanges(MigrateError):
    """``check`` found model changes that no revision covers yet."""

    def __init__(self, diffs: list[t.Any]) -> None:
        self.diffs = diffs
        shown = [describe_diff(d) for d in diffs[:8]]
        more = f" and {len(diffs) - 8} more" if len(diffs) > 8 else ""
        super().__init__(
            f"New upgrade operations detected: {'; '.join(shown)}{more}. "
            "Run 'flask db migrate' to create a revision for them."
        )


def describe_diff(diff: t.Any) -> str:
    """'add_table user', 'add_column user.email', ... for one autogenerate diff."""
    if isinstance(diff, list):  # modify_* diffs come as a list of tuples
        return ", ".join(describe_diff(d) for d in diff)
    kind, *rest = diff
    obj = next((x for x in rest if hasattr(x, "name") and not isinstance(x, str)), None)
    if obj is not None:
        table = getattr(getattr(obj, "table", None), "name", None)
        name = f"{table}.{obj.name}" if table else str(obj.name)
    else:  # (schema, table, column, ...): the schema may be None
        name = ".".join(x for x in rest[:3] if isinstance(x, str))
    return f"{kind} {name}".strip()


class DatabaseError(MigrateError):
    """The database could not be reached or refused a statement."""

    def __init__(self, message: str, url: str | None = None) -> None:
        self.url = url
        super().__init__(message)


def secret_forms(password: str) -> set[str]:
    """Every spelling of ``password`` that could end up in a message.

    A password travels raw, URL-quoted (two flavours) and, in ``alembic.ini``
    values, with ``%`` doubled; each of those may be quoted again.
    """
    forms = {password, quote(password, safe=""), quote_plus(password, safe="")}
    forms |= {f.replace("%", "%%") for f in list(forms)}
    return {f for f in forms if f}


_URL_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s]+)@")


def passwords_in(text: str) -> set[str]:
    """The passwords of the URLs written in ``text`` (raw, as written)."""
    found = set()
    for match in _URL_PASSWORD.finditer(text):
        found.add(match.group(1))
        found.add(unquote(match.group(1)))
    return {p for p in found if p}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every form of every secret in ``text`` with ``***``."""
    forms: set[str] = set()
    for secret in secrets:
        forms |= secret_forms(secret)
    # longest first, so that a quoted form is not half-replaced by a raw one
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


# -- explaining failures that are not ours --------------------------------------

# what the driver says (a regular expression, matched lower-cased) -> what
# happened and what to do. The first match wins.
_DATABASE_PROBLEMS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"database .* does not exist|unknown database"),
        "the database does not exist on the server. Create it, or fix the "
        "database name in the URL.",
    ),
    (
        re.compile(r"connection refused|can't connect to mysql server|could not connect to server"),
        "the connection was refused. Check that the database server is running "
        "and that the host and port in the database URL are right.",
    ),
    (
        re.compile(
            r"could not translate host name|name or service not known|nodename nor servname"
            r"|unknown mysql server host|temporary failure in name resolution|getaddrinfo failed"
        ),
        "the host name could not be resolved. Check the host in the database URL.",
    ),
    (
        re.compile(r"password authentication failed|access denied for user .*using password"),
        "the server refused the user name or password. Check the credentials "
        "in the database URL.",
    ),
    (
        re.compile(r"role .* does not exist"),
        "the server has no such user. Check the user name in the database URL.",
    ),
    (
        re.compile(r"timeout expired|timed out|lost connection to mysql server"),
        "the server did not answer in time. Check that the host and port point "
        "to a database server, and that it is not overloaded.",
    ),
    (
        re.compile(r"unable to open database file"),
        "SQLite could not open the database file. Check that its folder exists "
        "and is writable.",
    ),
    (
        re.compile(r"readonly database"),
        "the SQLite database file (or its folder) is read-only. Make it writable "
        "for this user.",
    ),
    (
        re.compile(r"database is locked"),
        "another connection holds a write lock on the SQLite database and did "
        "not release it in time. Stop the other writer (or wait for it) and run "
        "the command again.",
    ),
    (
        re.compile(r"permission denied|command denied|access denied"),
        "the database user lacks a privilege this needs. Grant it, or run "
        "migrations as a user that has it.",
    ),
]


def explain_database_error(detail: str, database: str | None = None) -> str:
    """A one-line explanation of a driver's error message, saying what to do."""
    lowered = detail.lower()
    where = f" {database}" if database else ""
    for pattern, advice in _DATABASE_PROBLEMS:
        if pattern.search(lowered):
            return f"Cannot use the database{where}: {advice} ({detail})"
    return f"Database error{(' on' + where) if where else ''}: {detail}"
