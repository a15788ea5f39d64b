"""Column types as a revision writes them, and whether a change of type narrows.

``sa.String(length=50)``, ``sa.VARCHAR(50)``, ``postgresql.ENUM('a', 'b',
name='kind')``, ``mysql.INTEGER(display_width=11)``... are read from the AST
by their class name alone, whatever module they come from: the linter never
imports SQLAlchemy.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from .core import literal

_CHARS = {"STRING", "VARCHAR", "NVARCHAR", "UNICODE", "VARCHAR2", "NVARCHAR2"}
_FIXED_CHARS = {"CHAR", "NCHAR", "CHARACTER"}
#: Large text types by how much they hold (MySQL's sizes; TEXT elsewhere is
#: unbounded, which compares the same against a VARCHAR).
_TEXTS = {
    "TINYTEXT": 255, "TEXT": 65535, "UNICODETEXT": 65535, "CLOB": 65535, "NCLOB": 65535,
    "NTEXT": 65535, "CITEXT": 65535, "MEDIUMTEXT": 16777215, "LONGTEXT": 4294967295,
}
_BYTES = {"LARGEBINARY", "VARBINARY", "BINARY"}
_BLOBS = {
    "TINYBLOB": 255, "BLOB": 65535, "BYTEA": 4294967295, "MEDIUMBLOB": 16777215,
    "LONGBLOB": 4294967295, "IMAGE": 4294967295,
}
#: Integer types by size in bytes.
_INTEGERS = {
    "TINYINT": 1, "SMALLINTEGER": 2, "SMALLINT": 2, "MEDIUMINT": 3, "INTEGER": 4, "INT": 4,
    "BIGINTEGER": 8, "BIGINT": 8,
}
#: How many decimal digits every value of an integer type can have.
_INTEGER_DIGITS = {1: 2, 2: 4, 3: 6, 4: 9, 8: 18}
_NUMERICS = {"NUMERIC", "DECIMAL", "NUMBER"}
_FLOATS = {"FLOAT": None, "REAL": 4, "FLOAT4": 4, "DOUBLE": 8, "DOUBLE_PRECISION": 8, "FLOAT8": 8}
_DATETIMES = {"DATETIME", "TIMESTAMP", "DATETIME2", "SMALLDATETIME", "DATETIMEOFFSET"}
_KINDS = {
    **{n: "datetime" for n in _DATETIMES},
    "DATE": "date", "TIME": "time", "BOOLEAN": "boolean", "ENUM": "enum",
}


@dataclass(frozen=True)
class SqlType:
    """A column type, reduced to what decides whether a change loses data."""

    #: ``chars``, ``bytes``, ``integer``, ``numeric``, ``float``, ``datetime``,
    #: ``date``, ``time``, ``boolean``, ``enum`` or ``other``.
    kind: str
    #: The class name as written (``VARCHAR``, ``String``...).
    name: str
    #: chars/bytes: the length (``None``: unbounded); integer and float: bytes.
    size: int | None = None
    #: chars/bytes: a large-object type (TEXT, BLOB...), whose size is its capacity.
    lob: bool = False
    #: chars: CHAR rather than VARCHAR.
    fixed: bool = False
    precision: int | None = None
    scale: int | None = None
    #: datetime: with time zone.
    timezone: bool = False
    #: enum: its values, when written as literals.
    values: tuple[str, ...] | None = None
    #: other: the expression as written, which is all there is to compare.
    source: str = ""

    def key(self) -> tuple[object, ...]:
        """What two spellings of the same type share (``sa.String(50)``, ``sa.VARCHAR(50)``)."""
        if self.kind == "other":
            return (self.kind, self.source)
        return (
            self.kind, self.size, self.lob, self.fixed, self.precision, self.scale,
            self.timezone, self.values,
        )

    def describe(self) -> str:
        return self.source or self.name


def _class_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _int(node: ast.expr | None) -> int | None:
    value = literal(node) if node is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _param(call: ast.Call | None, position: int, keyword: str) -> ast.expr | None:
    if call is None:
        return None
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    if len(call.args) > position and not isinstance(call.args[position], ast.Starred):
        return call.args[position]
    return None


def parse_type(node: ast.expr) -> SqlType:
    """The type an expression such as ``sa.Numeric(10, 2)`` or ``sa.Text`` stands for."""
    call = node if isinstance(node, ast.Call) else None
    # sa.String(50).with_variant(...): the base type decides
    while (
        call is not None and isinstance(call.func, ast.Attribute)
        and call.func.attr in ("with_variant", "evaluates_none")
    ):
        node = call.func.value
        call = node if isinstance(node, ast.Call) else None
    written = _class_name(call.func if call is not None else node)
    source = ast.unparse(node)
    if written is None:
        return SqlType("other", source, source=source)
    name = written.upper()
    if name in _CHARS or name in _FIXED_CHARS:
        return SqlType(
            "chars", written, size=_int(_param(call, 0, "length")), fixed=name in _FIXED_CHARS
        )
    if name in _TEXTS:
        return SqlType("chars", written, size=_TEXTS[name], lob=True)
    if name in _BYTES:
        return SqlType("bytes", written, size=_int(_param(call, 0, "length")))
    if name in _BLOBS:
        return SqlType("bytes", written, size=_BLOBS[name], lob=True)
    if name in _INTEGERS:
        return SqlType("integer", written, size=_INTEGERS[name])
    if name in _NUMERICS:
        return SqlType(
            "numeric", written,
            precision=_int(_param(call, 0, "precision")), scale=_int(_param(call, 1, "scale")),
        )
    if name in _FLOATS:
        size = _FLOATS[name]
        precision = _int(_param(call, 0, "precision"))
        if size is None and precision is not None:
            size = 4 if precision <= 24 else 8
        return SqlType("float", written, size=size)
    kind = _KINDS.get(name)
    if kind == "datetime":
        timezone = _param(call, 0, "timezone")
        return SqlType(kind, written, timezone=timezone is not None and literal(timezone) is True)
    if kind == "enum":
        return SqlType(kind, written, values=_enum_values(call))
    if kind is not None:
        return SqlType(kind, written)
    return SqlType("other", written, source=source)


def _enum_values(call: ast.Call | None) -> tuple[str, ...] | None:
    if call is None:
        return None
    values = [literal(a) for a in call.args]
    if not values or not all(isinstance(v, str) for v in values):
        return None  # a Python enum class, or *values: cannot tell
    return tuple(str(v) for v in values)


def narrowing(old: SqlType, new: SqlType) -> str | None:
    """Why changing a column from ``old`` to ``new`` can lose or reject data, or ``None``."""
    if old.key() == new.key():
        return None
    if old.kind in ("chars", "bytes"):
        return _narrower_text(old, new)
    if old.kind == "integer":
        return _narrower_integer(old, new)
    if old.kind in ("numeric", "float"):
        return _narrower_number(old, new)
    if old.kind == "datetime" and new.kind in ("date", "time"):
        dropped = "time of day" if new.kind == "date" else "date"
        return f"{new.name} drops the {dropped} of every {old.name} value"
    if old.kind == "enum":
        return _narrower_enum(old, new)
    return None


def _narrower_text(old: SqlType, new: SqlType) -> str | None:
    if new.kind != old.kind:
        what = "text" if old.kind == "chars" else "binary"
        return f"{what} values that do not convert to {new.name} fail the change or are lost"
    if new.lob:
        if old.lob:
            smaller = (new.size or 0) < (old.size or 0)
            return f"{new.name} holds less than {old.name}" if smaller else None
        if new.size is not None and new.size < 65535 and (old.size is None or old.size > new.size):
            return f"{new.name} holds at most {new.size} characters"
        return None
    if new.size is None:
        return None
    if old.size is None or old.size > new.size:
        was = f"{old.size}" if old.size is not None and not old.lob else "unbounded"
        return f"values longer than {new.size} are truncated or rejected (length was {was})"
    return None


def _narrower_integer(old: SqlType, new: SqlType) -> str | None:
    assert old.size is not None
    if new.kind == "integer" and new.size is not None and new.size < old.size:
        return f"{new.name} holds smaller numbers than {old.name}"
    if new.kind == "numeric" and new.precision is not None:
        digits = new.precision - (new.scale or 0)
        if digits < _INTEGER_DIGITS[old.size]:
            return (
                f"{new.name}({new.precision}, {new.scale or 0}) holds fewer digits than {old.name}"
            )
    if new.kind == "boolean":
        return f"{old.name} values other than 0 and 1 do not fit a {new.name}"
    if new.kind == "chars" and new.size is not None and not new.lob:
        if new.size < _INTEGER_DIGITS[old.size] + 2:
            return f"{old.name} values may be longer than {new.size} characters"
    return None


def _narrower_number(old: SqlType, new: SqlType) -> str | None:
    if new.kind == "integer":
        if old.kind == "numeric" and old.scale == 0 and old.precision is not None:
            assert new.size is not None
            if old.precision <= _INTEGER_DIGITS[new.size]:
                return None
            return f"{new.name} holds fewer digits than {old.name}({old.precision})"
        return f"{new.name} drops the fractional part of every {old.name} value"
    if new.kind == "boolean":
        return f"{old.name} values other than 0 and 1 do not fit a {new.name}"
    if old.kind == "float" and new.kind == "float":
        if old.size is not None and new.size is not None and new.size < old.size:
            return f"{new.name} keeps fewer significant digits than {old.name}"
        return None
    if old.kind == "numeric" and new.kind == "numeric":
        if new.scale is not None and (old.scale is None or new.scale < old.scale):
            return f"scale {new.scale} rounds values with more decimal places"
        if new.precision is not None:
            digits = new.precision - (new.scale or 0)
            if old.precision is None or digits < old.precision - (old.scale or 0):
                return (
                    f"{new.name}({new.precision}, {new.scale or 0}) holds fewer digits before "
                    "the decimal point"
                )
    return None


def _narrower_enum(old: SqlType, new: SqlType) -> str | None:
    if old.values is None:
        return None
    if new.kind == "enum" and new.values is not None:
        gone = [v for v in old.values if v not in new.values]
        if gone:
            return f"rows holding {', '.join(repr(v) for v in gone)} no longer fit"
        return None
    if new.kind == "chars" and new.size is not None and not new.lob:
        longest = max(old.values, key=len)
        if len(longest) > new.size:
            return f"the value {longest!r} is longer than {new.size} characters"
    return None


def rewrite_free_on_postgresql(old: SqlType, new: SqlType) -> bool:
    """A change PostgreSQL makes by updating the catalog only, without a table rewrite:
    a longer VARCHAR, VARCHAR to TEXT, more NUMERIC precision at the same scale."""
    if old.kind == new.kind == "chars" and not old.fixed and not new.fixed:
        if new.lob or new.size is None:
            return True
        return not old.lob and old.size is not None and new.size >= old.size
    if old.kind == new.kind == "numeric":
        return (
            old.scale == new.scale and old.precision is not None
            and (new.precision is None or new.precision >= old.precision)
        )
    return False
