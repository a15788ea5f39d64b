"""The database password never appears in any output, log or file.

The user's password holds ``% @ : / ? # '`` and a unique token. Every command
runs through the real ``flask`` entry point, successes and failures, with
DEBUG logging of ``alembic``, ``sqlalchemy.engine`` and ``flask_migrate``;
then stdout, stderr and every file of the project are searched for the
password in each spelling it could take.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa

from conftest import Database, Result, run_flask, write_app, write_revision
from test_templates import ORIGINAL_STYLE_ENV

SERVERS = ["postgresql", "mariadb"]


def spellings(password: str) -> set[str]:
    """Every way a password could be written out."""
    forms = {password, quote(password, safe=""), quote_plus(password), quote(password)}
    forms |= {f.replace("%", "%%") for f in forms}
    return forms


class Leaks:
    """Searches outputs and files for the secret."""

    def __init__(self, password: str, token: str) -> None:
        self.needles = spellings(password) | {token}
        self.seen = 0

    def check(self, where: str, text: str) -> None:
        self.seen += 1
        for needle in self.needles:
            assert needle not in text, f"secret ({needle!r}) leaked in {where}"

    def check_result(self, args: tuple[str, ...], result: Result) -> None:
        self.check(f"stdout of {' '.join(args)}", result.stdout)
        self.check(f"stderr of {' '.join(args)}", result.stderr)

    def check_files(self, root: Path) -> None:
        for path in root.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                self.check(str(path), path.read_text(errors="replace"))


DEBUG_LOGGING = {
    "level = WARN\nhandlers = console": "level = DEBUG\nhandlers = console",
    "level = WARN\nhandlers =\nqualname = sqlalchemy.engine": "level = DEBUG\nhandlers =\nqualname = sqlalchemy.engine",
    "level = INFO\nhandlers =\nqualname = alembic\n": "level = DEBUG\nhandlers =\nqualname = alembic\n",
    "level = INFO\nhandlers =\nqualname = flask_migrate": "level = DEBUG\nhandlers =\nqualname = flask_migrate",
}

APP_EXTRAS = """
import logging, os
app.config["SQLALCHEMY_ECHO"] = "debug"
logging.basicConfig(filename=os.environ["TEST_LOG_FILE"], level=logging.DEBUG) if os.environ.get("TEST_LOG_FILE") else None
"""


@pytest.fixture
def secret() -> tuple[str, str]:
    token = uuid.uuid4().hex
    return f"p%w@d:/?#'{token}", token


@pytest.mark.parametrize("backend", SERVERS, indirect=True)
def test_password_never_appears(
    backend: str,
    database: Database,
    make_user: Callable[..., str],
    secret: tuple[str, str],
    tmp_path: Path,
) -> None:
    """No command, log or generated file shows the password, in any spelling."""
    password, token = secret
    url = make_user(password)
    leaks = Leaks(password, token)
    root = tmp_path / "project"
    root.mkdir()
    write_app(root, extra=APP_EXTRAS)
    log_file = tmp_path / "app.log"

    def flask(*args: str, ok: bool = True, target: str = url, **env: str) -> Result:
        result = run_flask(root, *args, url=target, env={"EDITOR": "true", **env})
        leaks.check_result(args, result)
        if ok:
            assert result.returncode == 0, (args, result.stderr)
        else:
            assert result.returncode == 1, (args, result.stderr)
            if "--traceback" not in args:
                assert result.stderr.rstrip().splitlines()[-1].startswith("Error: ")
        return result

    flask("db", "init")
    ini = root / "migrations" / "alembic.ini"
    text = ini.read_text()
    for old, new in DEBUG_LOGGING.items():
        assert old in text
        text = text.replace(old, new)
    ini.write_text(text)

    # successes: the password is real, and with "%" it simply works
    flask("db", "migrate", "-m", "users")
    flask("db", "upgrade", "-x", "seen=1")
    flask("db", "current", "-v")
    flask("db", "history", "-v", "-i")
    flask("db", "heads", "-v")
    flask("db", "branches", "-v")
    flask("db", "show", "head")
    flask("db", "check")
    flask("db", "upgrade", "--sql", "base:head")
    flask("db", "downgrade", "--sql", "head:base")
    flask("db", "stamp", "--sql", "base:head")
    flask("db", "revision", "-m", "second")
    flask("db", "upgrade", "--lock-timeout", "0")
    flask("db", "edit", "head")
    flask("db", "downgrade", "base", "-x", "seen=2")
    flask("db", "stamp", "head")
    flask("db", "stamp", "--purge", "base")
    flask("db", "list-templates")
    flask("db", "upgrade", TEST_LOG_FILE=str(log_file))
    assert "user" in database.table_names()

    # failures
    bad = sa.make_url(url)
    flask("db", "upgrade", "nosuchrev", ok=False)
    flask("db", "--traceback", "upgrade", "nosuchrev", ok=False)
    flask("db", "upgrade", ok=False, target=bad.set(port=1).render_as_string(hide_password=False))
    flask("db", "upgrade", ok=False, target=bad.set(host="no-such-host.invalid").render_as_string(hide_password=False))
    flask("db", "--traceback", "upgrade", ok=False, target=bad.set(port=1).render_as_string(hide_password=False))
    flask("db", "upgrade", ok=False, target=bad.set(database="no_such_db_fm").render_as_string(hide_password=False))
    # a malformed URL fails while Flask imports the app (Flask-SQLAlchemy builds
    # the engines in init_app): Flask reports that, with a traceback, as with 4.1
    args = ("db", "upgrade")
    result = run_flask(
        root, *args, url=bad.render_as_string(hide_password=False).replace(f":{bad.port}/", ":notaport/"),
    )
    leaks.check_result(args, result)
    assert result.returncode != 0 and "notaport" in result.stderr
    if backend == "mariadb":
        wrong = bad.set(password=password + "x").render_as_string(hide_password=False)
        flask("db", "upgrade", ok=False, target=wrong)
    # a revision whose error message would quote the URL
    write_revision(
        root / "migrations" / "versions", "leaky", _head(root),
        "raise RuntimeError(str(op.get_bind().engine.url.render_as_string(hide_password=False)))",
        message="leaky",
    )
    flask("db", "upgrade", ok=False)
    flask("db", "--traceback", "upgrade", ok=False)

    # a migrations folder in the original Flask-Migrate's style puts the URL,
    # password included, into Alembic's config; it must not come out either
    (root / "migrations" / "env.py").write_text(ORIGINAL_STYLE_ENV)
    next((root / "migrations" / "versions").glob("leaky_*.py")).unlink()
    flask("db", "upgrade", "--sql", "base:head")
    flask("db", "current", "-v")
    flask("db", "upgrade", "nosuchrev", ok=False)
    flask("db", "upgrade", ok=False, target=bad.set(port=1).render_as_string(hide_password=False))

    leaks.check_files(tmp_path)
    assert log_file.exists() and log_file.stat().st_size > 0
    assert leaks.seen > 60


def _head(root: Path) -> str:
    import re

    revisions = {}
    for path in (root / "migrations" / "versions").glob("*.py"):
        text = path.read_text()
        rev = re.search(r"^revision = '(\w+)'", text, re.M)
        down = re.search(r"^down_revision = '?(\w+)'?", text, re.M)
        if rev:
            revisions[rev.group(1)] = down.group(1) if down else None
    parents = set(revisions.values())
    [head] = [r for r in revisions if r not in parents]
    return head
