"""Print the pip requirements of the extra test venvs, one line, space separated.

``python scripts/pins.py floors``
    The lowest versions of the runtime dependencies that pyproject.toml allows,
    pinned exactly (``Flask>=2.3`` becomes ``Flask==2.3``; exclusions such as
    ``,!=1.16.0`` are dropped, since they are above the floor).
``python scripts/pins.py same``
    The versions installed beside this interpreter of the packages that
    Flask-Migrate 4.1.0 shares with us, pinned exactly, so that a venv holding
    the original differs from ours in Flask-Migrate only.

Standard library only (``tomllib`` is not in Python 3.10).
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
SHARED = [
    "Flask", "Werkzeug", "Flask-SQLAlchemy", "SQLAlchemy", "alembic", "Mako",
    "click", "psycopg", "psycopg-binary", "PyMySQL", "aiosqlite", "greenlet",
]


def _requirements(text: str, key: str) -> list[str]:
    """The strings of the TOML array ``key = [...]`` (the first one found)."""
    match = re.search(rf"^{re.escape(key)} = \[(.*?)\]$", text, re.M | re.S)
    if match is None:
        sys.exit(f"{PYPROJECT}: no '{key} = [...]'")
    return re.findall(r'"([^"]+)"', match.group(1))


def floors() -> list[str]:
    pins = []
    for requirement in _requirements(PYPROJECT.read_text(), "dependencies"):
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([0-9.]+)(,!=[0-9.]+)*", requirement)
        if match is None:
            sys.exit(f"{PYPROJECT}: {requirement!r} has no plain '>=' floor")
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


def same() -> list[str]:
    pins = []
    for name in SHARED:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return pins


if __name__ == "__main__":
    commands = {"floors": floors, "same": same}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(commands)}}}")
    print(" ".join(commands[sys.argv[1]]()))
