"""``flask db verify``: prove that the history upgrades, downgrades and matches the models.

The history runs on scratch databases (see :mod:`.scratch`), never on the
application's own: one per bind, made for the check and dropped afterwards.
It is walked from base to the heads one revision at a time; each revision is
upgraded, downgraded and upgraded again (the "stairway"), and the schema of
every database ``env.py`` configures is reflected around each step and
compared. The checks, in order, are :data:`CHECKS`; each explains itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import typing as t
from dataclasses import dataclass

import sqlalchemy as sa
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from flask import current_app

from . import _alembic, journal, runner, scratch, scripts
from .errors import MigrateError, describe_diff, scrub
from .locking import LockOptions
from .results import CheckResult, Finding, VerifyReport
from .runner import get_config, load_scripts, secrets, translate_errors

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic.runtime.migration import MigrationContext
    from alembic.script import Script, ScriptDirectory
    from sqlalchemy.engine import Connection

    from .config import Config

#: A reflected schema: (kind, schema, table, name) -> what it is.
Schema = dict[tuple[str, str, str, str], str]


@dataclass(frozen=True)
class Check:
    """One check of ``verify``: its name, what it proves, why, and how to fix what it finds."""

    name: str
    title: str
    doc: str


CHECKS = (
    Check("heads", "A single head", """\
The history has one head, or exactly the heads named with ``--head``. Two
heads usually mean two developers each added a revision on the same parent:
``flask db upgrade`` then refuses to run until someone merges them. Fix: run
``flask db merge heads`` and commit the merge revision; if the branches are
meant to stay apart, name each expected head with ``--head``."""),
    Check("upgrade", "Upgrade from base, one revision at a time", """\
Every revision upgrades, one at a time, from an empty database to the heads.
A revision that fails here fails on every fresh database: CI, a new
developer's laptop, a new deploy. The failing revision and the database
error are shown. Fix the revision's ``upgrade()``; if it has reached
production databases already, add a new revision instead of editing it."""),
    Check("stairway", "Each revision downgrades and upgrades again", """\
For each revision: its ``downgrade()`` runs right after its ``upgrade()``,
and must leave the schema exactly as it was before the upgrade (tables,
columns and their types, nullability and defaults, primary keys, indexes,
unique, foreign key and check constraints, enum types and sequences); then
its ``upgrade()`` runs again and must give the same schema as the first time.
A downgrade that fails, or leaves a table or an index behind, is found the
day a release must be rolled back. Fix the ``downgrade()`` so that it undoes
what ``upgrade()`` does, in reverse order; name constraints so that they can
be dropped by name.

A revision that cannot be undone on purpose (it drops data, say) should
raise ``NotImplementedError`` in its ``downgrade()``: ``verify`` then warns
instead of failing, because ``flask db downgrade`` stops there and cannot go
below that revision."""),
    Check("models", "The models match the migrated database", """\
At the heads, autogenerate compares the models with the database, as
``flask db check`` does, and must find nothing. A difference means a model
change has no revision yet (run ``flask db migrate``), or a revision was
edited by hand and no longer does what the models say."""),
)


@translate_errors
def verify(
    directory: str | os.PathLike[str] | None = None,
    *,
    urls: t.Mapping[str | None, str] | None = None,
    heads: t.Sequence[str] = (),
    x_arg: str | t.Sequence[str] | None = None,
    on_progress: t.Callable[[int, int, Script], None] | None = None,
) -> VerifyReport:
    """Verify the history on scratch databases (see :data:`CHECKS`).

    :param urls: scratch databases to use instead of making new ones, by bind
        key (``None``: the default database). Each must be empty; it is emptied
        again afterwards.
    :param heads: the heads the history should have; by default, one.
    :param on_progress: called before each revision is walked, with its
        position, the number of revisions and the revision.
    :returns: the outcome of each check; failures do not raise.
    """
    started = time.perf_counter()
    config = get_config(directory, x_arg=x_arg)
    script = load_scripts(config)
    state = runner.state()
    engines = dict(getattr(state.db, "engines", None) or {})
    if not engines:
        raise MigrateError("The application declares no database to verify.")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _quiet_alembic(), scratch.databases_for(engines, urls) as databases, scratch.pointed_at(
        app, state.db, databases
    ):
        walk = _Walk(config, script, list(databases.values()), on_progress)
        checks = [_check_heads(script, heads)]
        checks += walk.run()
        used = [
            f"{d.bind_label} ({d.backend})"
            for d in sorted(databases.values(), key=lambda d: (d.bind is not None, d.bind or ""))
            if scratch.identity(d.url) in walk.used
        ]
    return VerifyReport(
        databases=tuple(used),
        revisions=walk.total,
        checks=tuple(checks),
        duration=time.perf_counter() - started,
    )


@contextlib.contextmanager
def _quiet_alembic() -> t.Iterator[None]:
    """Keep Alembic's per-step INFO lines out of the report (three runs per revision).

    NOTE: a filter on the loggers themselves: ``env.py`` calls ``fileConfig()``
    on each run, which resets levels and handlers but leaves filters alone.
    """
    import alembic.autogenerate  # noqa: F401 - these create the loggers filtered below
    import alembic.ddl  # noqa: F401

    # NOTE: a logger's filters apply to its own records only, not its
    # children's: filter each of Alembic's loggers, and env.py's
    names = ["alembic", "alembic.env", "alembic.runtime.migration"] + [
        name for name in list(logging.root.manager.loggerDict) if name.startswith("alembic.")
    ]

    def keep(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING

    for name in names:
        logging.getLogger(name).addFilter(keep)
    try:
        yield
    finally:
        for name in names:
            logging.getLogger(name).removeFilter(keep)


# -- the checks -----------------------------------------------------------------------


def _check_heads(script: ScriptDirectory, expected: t.Sequence[str]) -> CheckResult:
    found = tuple(script.get_heads())
    shown = ", ".join(_describe(script, rev) for rev in found) or "none (no revisions)"
    if expected:
        wanted: set[str] = set()
        for name in expected:
            try:
                revisions = script.get_revisions(name)
            except (CommandError, RevisionError) as exc:
                # NOTE: Alembic raises for a name it cannot resolve (it never returns nothing)
                raise MigrateError(f"Cannot resolve the head {name!r} (given with --head): {exc}.") from exc
            if not revisions:
                raise MigrateError(f"No revision named {name!r} (given with --head).")
            wanted.update(sc.revision for sc in revisions if sc is not None)
        if wanted == set(found):
            return CheckResult("heads", "passed", f"the heads named: {shown}")
        missing = ", ".join(sorted(wanted - set(found))) or "none"
        extra = ", ".join(sorted(set(found) - wanted)) or "none"
        return CheckResult("heads", "failed", f"heads: {shown}", failures=(Finding(
            None, f"The heads are {shown}; expected but not heads: {missing}; "
            f"heads not expected: {extra}.",
        ),))
    if len(found) <= 1:
        return CheckResult("heads", "passed", f"one head: {shown}")
    return CheckResult("heads", "failed", f"{len(found)} heads", failures=(Finding(
        None, f"{len(found)} heads: {shown}. Merge them with 'flask db merge heads', "
        "or name the heads you expect with --head.",
    ),))


def _describe(script: ScriptDirectory, rev: str) -> str:
    sc = script.get_revision(rev)
    message = scripts.first_line(getattr(sc, "doc", None))
    return f"{rev} ({message})" if message else rev


class _Stop(Exception):
    """The walk cannot go on: the database is no longer in a known state."""


class _Walk:
    """Walks the history on the scratch databases and keeps the findings."""

    def __init__(
        self,
        config: Config,
        script: ScriptDirectory,
        databases: list[scratch.ScratchDatabase],
        on_progress: t.Callable[[int, int, Script], None] | None,
    ) -> None:
        self.config = config
        self.script = script
        self.guard = scratch.guard(databases)
        self.names = {scratch.identity(d.url): d.bind_label for d in databases}
        self.on_progress = on_progress
        self.revisions: list[Script] = list(reversed(list(script.walk_revisions("base", "heads"))))
        self.total = len(self.revisions)
        #: the databases env.py configured (their scratch identities)
        self.used: set[tuple[t.Any, ...]] = set()
        self.upgrade_failures: list[Finding] = []
        self.stairway_failures: list[Finding] = []
        self.stairway_warnings: list[Finding] = []
        #: reflected tables by definition fingerprint (see :func:`reflect`)
        self.cache: dict[tuple[t.Any, ...], Schema] = {}

    def run(self) -> list[CheckResult]:
        stopped: str | None = None
        try:
            self._walk()
        except _Stop as exc:
            stopped = str(exc)
        n = self.total
        upgrade = CheckResult(
            "upgrade",
            "failed" if self.upgrade_failures else "passed",
            (f"stopped: {stopped}" if self.upgrade_failures
             else f"base to the heads, {n} revision{'s' if n != 1 else ''} one at a time"),
            failures=tuple(self.upgrade_failures),
        )
        if self.upgrade_failures and not self.stairway_failures:
            stairway = CheckResult(
                "stairway", "skipped", "not finished: the upgrade failed",
                warnings=tuple(self.stairway_warnings),
            )
        else:
            summary = f"each of the {n} revisions downgrades and upgrades again"
            if stopped and not self.upgrade_failures:
                summary = f"stopped: {stopped}"
            stairway = CheckResult(
                "stairway",
                "failed" if self.stairway_failures else "passed",
                summary,
                failures=tuple(self.stairway_failures),
                warnings=tuple(self.stairway_warnings),
            )
        if stopped:
            models = CheckResult("models", "skipped", "not run: the walk did not reach the heads")
        else:
            models = self._check_models()
        return [upgrade, stairway, models]

    # -- the walk ----------------------------------------------------------------

    def _walk(self) -> None:
        before: dict[str, Schema] | None = None
        for index, sc in enumerate(self.revisions, 1):
            if self.on_progress is not None:
                self.on_progress(index, self.total, sc)
            rev = sc.revision
            try:
                up = self._run(sc, True, snapshot_before=before is None)
            except Exception as exc:  # noqa: BLE001 - a failing revision is a finding
                _reraise_guard(exc)
                self.upgrade_failures.append(self._finding(rev, "upgrade failed", exc))
                raise _Stop(f"upgrade of {rev} failed") from None
            if before is None:
                before = up.before
            after = up.after
            before = self._stairway(sc, before, after)

    def _stairway(self, sc: Script, before: dict[str, Schema], after: dict[str, Schema]) -> dict[str, Schema]:
        """Downgrade ``sc`` and upgrade it again; returns the schema after that."""
        rev = sc.revision
        try:
            down = self._run(sc, False)
        except NotImplementedError as exc:
            detail = f": {exc}" if str(exc) else ""
            self.stairway_warnings.append(Finding(
                rev, f"downgrade raises NotImplementedError{detail}: irreversible on purpose, "
                "so 'flask db downgrade' stops at this revision",
            ))
            self._expect(sc, after, "the downgrade that raised NotImplementedError")
            return after
        except Exception as exc:  # noqa: BLE001 - a failing downgrade is a finding
            _reraise_guard(exc)
            self.stairway_failures.append(self._finding(rev, "downgrade failed", exc))
            self._expect(sc, after, "the failed downgrade")
            return after
        for database, schema in down.after.items():
            text = _differences(before.get(database, {}), schema, _UNDO)
            if text:
                self.stairway_failures.append(Finding(
                    rev, f"downgrade does not undo the upgrade: {text}", self._name(database)
                ))
        try:
            again = self._run(sc, True)
        except Exception as exc:  # noqa: BLE001
            _reraise_guard(exc)
            self.stairway_failures.append(self._finding(rev, "upgrade after the downgrade failed", exc))
            raise _Stop(f"upgrade of {rev} after its downgrade failed") from None
        for database, schema in again.after.items():
            text = _differences(after.get(database, {}), schema, _AGAIN)
            if text:
                self.stairway_failures.append(Finding(
                    rev, f"upgrading again after the downgrade gives another schema: {text}",
                    self._name(database),
                ))
        return again.after

    def _expect(self, sc: Script, schemas: dict[str, Schema], what: str) -> None:
        """After a failed step: go on only if the databases are as before it."""
        try:
            probe = self._run(None, None)
        except Exception as exc:  # noqa: BLE001
            _reraise_guard(exc)
            raise _Stop(f"the databases could not be read after {what} of {sc.revision}: {exc}") from None
        for database, schema in probe.after.items():
            if sc.revision not in probe.heads.get(database, ()) or _differences(
                schemas.get(database, {}), schema, _AGAIN
            ):
                raise _Stop(
                    f"{what} of {sc.revision} left {self._name(database)} changed (the "
                    "database could not roll it back), so the revisions after it were not walked"
                )

    def _check_models(self) -> CheckResult:
        try:
            diffs = runner.autogenerate_diffs(self.config, self.script, guard=self.guard)
        except Exception as exc:  # noqa: BLE001
            _reraise_guard(exc)
            return CheckResult("models", "failed", "autogenerate failed", failures=(
                self._finding(None, "autogenerate failed", exc),
            ))
        if not diffs:
            return CheckResult("models", "passed", "the models match the database at the heads")
        shown = "; ".join(describe_diff(d) for d in diffs[:10])
        more = f" and {len(diffs) - 10} more" if len(diffs) > 10 else ""
        return CheckResult("models", "failed", "the models differ from the migrated database", failures=(
            Finding(None, f"Autogenerate finds changes no revision makes: {shown}{more}. "
                    "Run 'flask db migrate' to create a revision for them."),
        ))

    # -- one run of env.py ---------------------------------------------------------

    def _run(self, sc: Script | None, upgrade: bool | None, snapshot_before: bool = False) -> _SnapshotRun:
        """Run ``sc`` up or down on its own (``sc=None``: no step, only look)."""
        plan = None
        if sc is None:
            def steps(heads: t.Any, context: MigrationContext) -> list[t.Any]:
                return []
        else:
            def steps(heads: t.Any, context: MigrationContext) -> list[t.Any]:
                # NOTE: a new step for each database: the run wraps each step's function
                return [_alembic.revision_step(self.script, sc, bool(upgrade))]

            plan = runner.Plan(
                "upgrade" if upgrade else "downgrade", sc.revision, lambda heads: [],
            )
        run = _SnapshotRun(
            self.config, self.script, steps, plan=plan, lock=LockOptions(enabled=False),
            journal=False, guard=self.guard, snapshot_before=snapshot_before, cache=self.cache,
            as_sql=False, destination_rev=sc.revision if sc is not None else None,
        )
        try:
            run.execute()
        except BaseException as exc:
            if run.current is not None and not hasattr(exc, "_flask_migrate_database"):
                with contextlib.suppress(Exception):
                    exc._flask_migrate_database = run.current  # type: ignore[attr-defined]
            raise
        finally:
            self.used.update(run.used)
        return run

    def _name(self, database: str) -> str:
        return self.names.get(scratch.identity(database), database)

    def _finding(self, rev: str | None, what: str, exc: BaseException) -> Finding:
        database = getattr(exc, "_flask_migrate_database", None)
        return Finding(rev, f"{what}: {_error_text(exc)}", self._name(database) if database else None)


class _SnapshotRun(runner.Run):
    """A run that reflects each configured database after its steps (and before, if asked)."""

    def __init__(
        self,
        *args: t.Any,
        snapshot_before: bool = False,
        cache: dict[tuple[t.Any, ...], Schema] | None = None,
        **kwargs: t.Any,
    ) -> None:
        guard = kwargs.pop("guard")

        def marked_guard(connection: t.Any) -> None:
            try:
                guard(connection)
            except MigrateError as exc:
                exc._flask_migrate_guard = True  # type: ignore[attr-defined]
                raise

        super().__init__(*args, guard=marked_guard, **kwargs)
        self.snapshot_before = snapshot_before
        self.cache = cache
        self.before: dict[str, Schema] = {}
        self.after: dict[str, Schema] = {}
        self.heads: dict[str, tuple[str, ...]] = {}
        self.used: set[tuple[t.Any, ...]] = set()
        #: the database whose migrations run now
        self.current: str | None = None

    def attach(self, context: MigrationContext, kwargs: dict[str, t.Any], was_in_transaction: bool) -> None:
        super().attach(context, kwargs, was_in_transaction)
        target = self.target_for(context)
        if target is None or target.connection is None:
            return
        self.current = target.database
        self.used.add(scratch.identity(target.connection.engine.url))
        if self.snapshot_before:
            self.before[target.database] = reflect(target.connection, _own_tables(target), self.cache)

    def finished(self, context: MigrationContext, error: BaseException | None) -> None:
        super().finished(context, error)
        target = self.target_for(context)
        if error is not None or target is None or target.connection is None:
            return
        self.current = None
        self.after[target.database] = reflect(target.connection, _own_tables(target), self.cache)
        self.heads[target.database] = tuple(context.get_current_heads())


def _reraise_guard(exc: BaseException) -> None:
    """A connection the guard refused ends the whole verification, at once."""
    if getattr(exc, "_flask_migrate_guard", False):
        raise exc


def _own_tables(target: runner.Target) -> set[tuple[str | None, str]]:
    schema = target.version_table_schema
    return {(schema, target.version_table), (schema, journal.journal_name(target.version_table))}


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, MigrateError):
        text = str(exc)
    elif isinstance(exc, sa.exc.SQLAlchemyError):
        text = runner._describe_db_error(exc)
    else:
        text = f"{type(exc).__name__}: {exc}".rstrip(": ")
    return scrub(text.strip().splitlines()[0] if text.strip() else type(exc).__name__, secrets())


# -- reflecting and comparing schemas ----------------------------------------------------


def reflect(
    conn: Connection,
    exclude: t.Collection[tuple[str | None, str]] = (),
    cache: dict[tuple[t.Any, ...], Schema] | None = None,
) -> Schema:
    """Everything :data:`CHECKS` compares, of every schema the connection's user sees.

    With a ``cache`` (kept from one call to the next), a table is reflected
    in detail only when its definition is new: one query (a few on MariaDB)
    fingerprints every table's columns, constraints and indexes, and tables
    whose fingerprint was seen before are taken from the cache. Walking a
    history changes a table or two per step, so the cost per step stays flat
    instead of growing with the number of tables.
    """
    inspector = sa.inspect(conn)
    dialect = conn.dialect
    schemas: list[str | None] = [None]
    if dialect.name == "postgresql":
        schemas += scratch.user_schemas(conn)
    found: Schema = {}
    prints = _fingerprints(conn) if cache is not None else None
    for schema in schemas:
        where = schema or ""
        if schema is not None:
            found[("schema", where, "", schema)] = ""
        names = [
            name for name in inspector.get_table_names(schema=schema)
            if (schema, name) not in exclude and not journal.is_journal(name)
        ]
        for name in names:
            found[("table", where, name, "")] = ""
        if names:
            _reflect_cached(inspector, dialect, schema, names, found, prints, cache)
        if dialect.name == "postgresql":
            # NOTE: also in a schema with no table (left): a downgrade may leave
            # an enum type or a sequence in a database it emptied of tables
            enum_schema = schema if schema is not None else inspector.default_schema_name
            for enum in inspector.get_enums(schema=enum_schema):  # type: ignore[attr-defined]
                found[("enum", where, "", enum["name"])] = ", ".join(enum["labels"])
            for sequence in inspector.get_sequence_names(schema=schema):
                found[("sequence", where, "", sequence)] = ""
    return found


def _reflect_cached(
    inspector: t.Any,
    dialect: t.Any,
    schema: str | None,
    names: list[str],
    found: Schema,
    prints: dict[tuple[str | None, str], str] | None,
    cache: dict[tuple[t.Any, ...], Schema] | None,
) -> None:
    """:func:`_reflect_tables`, for the tables whose fingerprint the cache lacks."""
    if prints is None or cache is None:
        _reflect_tables(inspector, dialect, schema, names, found)
        return
    keys = {name: (dialect.name, schema, name, prints.get((schema, name))) for name in names}
    stale = [name for name, key in keys.items() if key[3] is None or key not in cache]
    if stale:
        fresh: Schema = {}
        _reflect_tables(inspector, dialect, schema, stale, fresh)
        by_table: dict[str, Schema] = {name: {} for name in stale}
        for key, value in fresh.items():
            by_table.setdefault(key[2], {})[key] = value
        for name in stale:
            if keys[name][3] is None:
                found.update(by_table[name])
            else:
                cache[keys[name]] = by_table[name]
    for cached in keys.values():
        if cached[3] is not None:
            found.update(cache[cached])


_PG_FINGERPRINTS = """
SELECT n.nspname = current_schema() AS is_default, n.nspname, c.relname, md5(concat_ws('|',
    (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
                       || a.attcollation::text || ' ' || a.attnotnull::text || ' '
                       || coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
                       ',' ORDER BY a.attnum)
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
    (SELECT string_agg(o.conname || ' ' || pg_get_constraintdef(o.oid), ',' ORDER BY o.conname)
       FROM pg_constraint o WHERE o.conrelid = c.oid),
    (SELECT string_agg(pg_get_indexdef(i.indexrelid), ',' ORDER BY pg_get_indexdef(i.indexrelid))
       FROM pg_index i WHERE i.indrelid = c.oid)))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema'
   AND left(n.nspname, 3) <> 'pg_'
"""

_MYSQL_FINGERPRINTS = (
    "SELECT table_name, column_name, column_type, character_set_name, collation_name, "
    "is_nullable, column_default, extra, ordinal_position FROM information_schema.columns "
    "WHERE table_schema = DATABASE()",
    "SELECT table_name, index_name, non_unique, seq_in_index, column_name "
    "FROM information_schema.statistics WHERE table_schema = DATABASE()",
    "SELECT table_name, constraint_name, column_name, referenced_table_name, "
    "referenced_column_name, ordinal_position FROM information_schema.key_column_usage "
    "WHERE table_schema = DATABASE()",
    "SELECT table_name, constraint_name, update_rule, delete_rule "
    "FROM information_schema.referential_constraints WHERE constraint_schema = DATABASE()",
    "SELECT tc.table_name, cc.constraint_name, cc.check_clause "
    "FROM information_schema.table_constraints tc JOIN information_schema.check_constraints cc "
    "ON cc.constraint_schema = tc.constraint_schema AND cc.constraint_name = tc.constraint_name "
    "WHERE tc.table_schema = DATABASE() AND tc.constraint_type = 'CHECK'",
)


def _fingerprints(conn: Connection) -> dict[tuple[str | None, str], str] | None:
    """A digest of each table's definition, in one pass over the catalog; None if unknown."""
    name = conn.dialect.name
    parts: dict[tuple[str | None, str], list[str]] = {}
    if name == "sqlite":
        for table, *row in conn.exec_driver_sql(
            "SELECT tbl_name, type, name, sql FROM sqlite_master "
            "WHERE type IN ('table', 'index') ORDER BY tbl_name, type, name"
        ):
            parts.setdefault((None, table), []).append(repr(row))
    elif name == "postgresql":
        for is_default, schema, table, digest in conn.exec_driver_sql(_PG_FINGERPRINTS):
            parts[(None if is_default else schema, table)] = [digest or ""]
    elif name in ("mysql", "mariadb"):
        for index, query in enumerate(_MYSQL_FINGERPRINTS):
            try:
                rows = list(conn.exec_driver_sql(query))
            except sa.exc.DBAPIError:
                if index < 4:
                    return None
                continue  # a server without information_schema.check_constraints
            for table, *row in sorted(rows, key=repr):
                parts.setdefault((None, table), []).append(f"{index}:{row!r}")
    else:
        return None
    return {
        key: hashlib.sha1("\n".join(values).encode()).hexdigest() for key, values in parts.items()
    }


def _reflect_tables(
    inspector: t.Any, dialect: t.Any, schema: str | None, names: list[str], found: Schema
) -> None:
    where = schema or ""

    def multi(method: str) -> dict[tuple[str | None, str], t.Any]:
        try:
            return dict(getattr(inspector, method)(schema=schema, filter_names=names))
        except NotImplementedError:
            return {}

    for (_, table), columns in multi("get_multi_columns").items():
        for column in columns:
            default = column.get("default")
            found[("column", where, table, column["name"])] = " ".join(filter(None, (
                _type(column["type"], dialect),
                "NULL" if column.get("nullable", True) else "NOT NULL",
                f"DEFAULT {_normal(str(default))}" if default is not None else None,
            )))
    for (_, table), pk in multi("get_multi_pk_constraint").items():
        if pk and pk.get("constrained_columns"):
            found[("primary key", where, table, "")] = _cols(pk["constrained_columns"])
    fk_names: set[tuple[str, str]] = set()
    for (_, table), fks in multi("get_multi_foreign_keys").items():
        for fk in fks:
            referred = fk.get("referred_table", "")
            if fk.get("referred_schema"):
                referred = f"{fk['referred_schema']}.{referred}"
            options = " ".join(
                f"{k.upper()} {v}" for k, v in sorted((fk.get("options") or {}).items()) if v
            )
            name = fk.get("name") or _cols(fk["constrained_columns"])
            fk_names.add((table, name))
            found[("foreign key", where, table, name)] = (
                f"{_cols(fk['constrained_columns'])} -> {referred}{_cols(fk['referred_columns'])}"
                + (f" {options}" if options else "")
            )
    for (_, table), indexes in multi("get_multi_indexes").items():
        for index in indexes:
            columns = [c if c is not None else "<expression>" for c in index.get("column_names") or []]
            expressions = index.get("expressions")
            shown = _cols(expressions if expressions else columns)
            found[("index", where, table, index.get("name") or shown)] = shown + (
                " UNIQUE" if index.get("unique") else ""
            )
    for (_, table), uniques in multi("get_multi_unique_constraints").items():
        for unique in uniques:
            shown = _cols(unique["column_names"])
            found[("unique constraint", where, table, unique.get("name") or shown)] = shown
    for (_, table), checks in multi("get_multi_check_constraints").items():
        for check in checks:
            text = _normal(check.get("sqltext", ""))
            found[("check constraint", where, table, check.get("name") or text)] = text


def _type(type_: t.Any, dialect: t.Any) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # noqa: BLE001 - a type the dialect cannot render: its repr will do
        return repr(type_)


def _cols(names: t.Iterable[t.Any]) -> str:
    return "(" + ", ".join(str(n) for n in names) + ")"


def _normal(text: str) -> str:
    """SQL text with its whitespace and redundant outer parentheses normalised."""
    text = " ".join(text.split())
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


# phrases for the two comparisons: (added, removed, changed)
_UNDO = ("left {} behind", "dropped {}, which existed before the upgrade", "{} is {}, was {} before the upgrade")
_AGAIN = ("{} is new", "{} is missing", "{} is {}, was {} after the first upgrade")


def _differences(before: Schema, after: Schema, phrases: tuple[str, str, str]) -> str:
    """What changed from ``before`` to ``after``, in words; '' when nothing did."""
    added_tables = {k[1:3] for k in after.keys() - before.keys() if k[0] == "table"}
    removed_tables = {k[1:3] for k in before.keys() - after.keys() if k[0] == "table"}
    lines = []
    for key in sorted(after.keys() - before.keys()):
        if key[0] != "table" and key[1:3] in added_tables:
            continue  # the table's columns and indexes go with it
        lines.append(phrases[0].format(_what(key)))
    for key in sorted(before.keys() - after.keys()):
        if key[0] != "table" and key[1:3] in removed_tables:
            continue
        lines.append(phrases[1].format(_what(key)))
    for key in sorted(before.keys() & after.keys()):
        if before[key] != after[key]:
            lines.append(phrases[2].format(_what(key), after[key], before[key]))
    return "; ".join(lines)


def _what(key: tuple[str, str, str, str]) -> str:
    kind, schema, table, name = key
    qualified = f"{schema}.{table}" if schema else table
    if kind == "table":
        return f"table '{qualified}'"
    if kind == "column":
        return f"column '{qualified}.{name}'"
    if kind == "primary key":
        return f"the primary key of '{qualified}'"
    if kind in ("schema", "enum", "sequence"):
        where = f"{schema}." if schema and kind != "schema" else ""
        return f"{kind} '{where}{name}'" if kind != "enum" else f"enum type '{where}{name}'"
    return f"{kind} '{name}' on '{qualified}'"

