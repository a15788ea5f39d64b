"""Every use of a private Alembic name, in one place, with the reason.

Alembic's public API covers running ``env.py`` and its commands, but a few
things this package needs have no public form. Keeping them here means an
Alembic upgrade that renames one breaks one module, and the list below is the
whole exposure:

* ``ScriptDirectory._load_revisions()``: the revision files, one by one, so
  that two files with one id are refused (the public ``revision_map`` keeps
  one of them silently);
* ``Script._list_py_dir()`` and ``Script._from_path()``: the files Alembic
  considers revisions, in its order, and the loading of one of them; the
  revision cache (:mod:`.revision_cache`) imports only the files it does not
  know, and must find exactly the files Alembic finds;
* ``ScriptDirectory._version_locations``: the folders revisions live in, to
  say which one is missing (``version_locations`` in the ini is only what the
  user wrote);
* ``ScriptDirectory._upgrade_revs()``, ``_downgrade_revs()``,
  ``_stamp_revs()``: the steps a command will run from given heads. Alembic's
  own commands compute them this way; computing them before the first step
  lets a refusal (bad target, nothing to downgrade) fail before anything is
  written;
* ``alembic.runtime.migration.RevisionStep``: a step that runs exactly one
  revision, whatever else the database holds; ``verify`` downgrades and
  upgrades each revision on its own (Alembic's targets name states, not steps);
* ``Revision._all_down_revisions``, ``_normalized_down_revisions`` and
  ``nextrev``: the edges of the revision graph, for walks that Alembic's
  ``iterate_revisions()`` and ``get_all_current()`` do in quadratic time
  (half a million steps for ``current`` at 1,000 revisions);
* ``MigrationContext._version`` and ``DefaultImpl._exec()``: the version
  table Alembic writes, and where it sends the UPDATE that records each
  step (see :mod:`._speedups`);
* ``Script._db_current_indicator``: what Alembic's own ``cmd_format`` reads to
  print "(current)" in ``history``;
* ``alembic.operations.batch.BatchOperationsImpl`` and its ``reflect_kwargs``:
  the keywords batch mode reflects a table with, given ``resolve_fks=False``
  while our runs execute (see :mod:`._speedups`); and that Alembic reads
  ``impl.autogen_column_reflect`` from the impl instance
  (``DefaultImpl._compat_autogen_column_reflect()``, ``BatchOperationsImpl``),
  which lets :mod:`._speedups` replace it for one run;
* SQLAlchemy's ``SQLiteDialect._get_table_pragma(connection, pragma, name,
  schema)`` and ``_get_table_sql(connection, name, schema, **kw)``: every
  query of SQLite reflection goes through them, and :mod:`._speedups`
  answers them from bulk queries in autogenerate runs (only when the
  dialect's class has SQLAlchemy's own; a renamed one is simply not
  replaced: reflection then runs as before).
"""

from __future__ import annotations

import typing as t
from pathlib import Path

if t.TYPE_CHECKING:  # pragma: no cover
    from alembic.script import Script, ScriptDirectory


def load_revisions(script: ScriptDirectory) -> t.Iterator[Script]:
    return script._load_revisions()


def list_revision_files(script: ScriptDirectory, versions: Path) -> list[Path]:
    from alembic.script import Script

    # NOTE: Alembic before 1.10 lists file names (in os.listdir() order), later
    # versions paths under ``versions`` (sorted, recursive when configured)
    return [
        found if isinstance(found, Path) else versions / found
        for found in Script._list_py_dir(script, versions)
    ]


def script_from_path(script: ScriptDirectory, path: Path) -> Script | None:
    from alembic.script import Script

    return Script._from_path(script, path)


def version_locations(script: ScriptDirectory) -> t.Sequence[str]:
    return t.cast("t.Sequence[str]", script._version_locations)


def upgrade_steps(script: ScriptDirectory, target: str, heads: t.Any) -> list[t.Any]:
    return list(script._upgrade_revs(target, heads))


def downgrade_steps(script: ScriptDirectory, target: str, heads: t.Any) -> list[t.Any]:
    return list(script._downgrade_revs(target, heads))


def stamp_steps(script: ScriptDirectory, targets: tuple[str, ...], heads: t.Any) -> list[t.Any]:
    return list(script._stamp_revs(targets, heads))


def set_current_indicator(sc: Script, value: bool | None) -> None:
    sc._db_current_indicator = value


def revision_step(script: ScriptDirectory, sc: Script, is_upgrade: bool) -> t.Any:
    """The step that runs exactly ``sc`` (``verify`` walks the history one revision at a time)."""
    from alembic.runtime.migration import RevisionStep

    return RevisionStep(script.revision_map, sc, is_upgrade)


def batch_operations_impl() -> type[t.Any]:
    """The class behind ``op.batch_alter_table()`` (see :mod:`._speedups`)."""
    from alembic.operations.batch import BatchOperationsImpl

    return BatchOperationsImpl


def _below(
    script: ScriptDirectory, revisions: t.Iterable[str], edges: t.Callable[[t.Any], t.Iterable[str]]
) -> dict[str, t.Any]:
    """``revisions`` and every revision reached from them along ``edges``, by id."""
    revision_map = script.revision_map
    found: dict[str, t.Any] = {}
    todo = list(revisions)
    while todo:
        rev = todo.pop()
        if rev in found:
            continue
        sc = revision_map.get_revision(rev)
        if sc is None:
            continue
        found[sc.revision] = sc
        todo.extend(down for down in edges(sc) if down not in found)
    return found


def ancestors(script: ScriptDirectory, revisions: t.Iterable[str]) -> set[str]:
    """``revisions`` and every revision below them, dependencies included.

    What a database at ``revisions`` has applied: Alembic's
    ``iterate_revisions(revisions, "base")`` as a set, by a plain walk of the graph.
    """
    return set(_below(script, revisions, lambda sc: sc._all_down_revisions))


def all_current(script: ScriptDirectory, heads: t.Iterable[str]) -> set[Script]:
    """Alembic's ``ScriptDirectory.get_all_current(heads)``, in time linear in the history.

    Alembic takes ``heads`` and all their ancestors (dependencies included)
    and keeps those that have no descendant among them, testing each against
    all (quadratic). A revision has a descendant in that set exactly when one
    of its direct children (``nextrev``) is in it, since every revision on the
    way down from a member is itself an ancestor of a head.
    """
    members = _below(script, heads, lambda sc: sc._normalized_down_revisions)
    return {sc for sc in members.values() if not (members.keys() & sc.nextrev)}


def version_table_of(context: t.Any) -> t.Any:
    """The version table (an ``sa.Table``) that Alembic writes for ``context``."""
    return getattr(context, "_version", None)
