"""Which folder and which schemas commands for tenants use, beside the main history.

* The ``flask db`` group's ``-d`` (or ``FLASK_DB_DIRECTORY``) names the
  application's history: it must not send the tenants that history when they
  have one of their own (``Migrate(tenant_directory=...)``).
* With ``include_schemas=True``, autogenerate of the main database must not
  see the tenants' schemas (it would propose to drop their tables).
"""

from __future__ import annotations

import shutil
import typing as t
from pathlib import Path

import sqlalchemy as sa
from flask.testing import FlaskCliRunner

from flask_migrate import Tenant

from conftest import create_app, require_server, write_revision

CREATE_USER = """
op.create_table(
    'user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id'),
)
"""
CREATE_ORDERS = "op.create_table('orders', sa.Column('id', sa.Integer(), primary_key=True))"


def _init(app: t.Any, path: Path) -> None:
    """An empty migrations folder made by ``flask db init``."""
    result = app.test_cli_runner().invoke(args=["db", "init", "-d", str(path)])
    assert result.exit_code == 0, result.output
    shutil.rmtree(path / ".flask-migrate-cache", ignore_errors=True)


def test_group_directory_does_not_override_the_tenants_own_history(tmp_path: Path) -> None:
    """``flask db -d migrations upgrade --all-tenants`` applies the tenants' history, not the main one."""
    main, tenants_dir = tmp_path / "migrations", tmp_path / "tenant_migrations"
    urls = {name: f"sqlite:///{tmp_path / (name + '.db')}" for name in ("a", "b")}
    app, _, _ = create_app(
        f"sqlite:///{tmp_path / 'main.db'}", main,
        tenants=lambda: [Tenant(name, url=url) for name, url in urls.items()],
        tenant_directory=tenants_dir,
    )
    _init(app, main)
    _init(app, tenants_dir)
    write_revision(main / "versions", "m1", None, CREATE_USER, "op.drop_table('user')")
    write_revision(tenants_dir / "versions", "t1", None, CREATE_ORDERS, "op.drop_table('orders')")

    runner: FlaskCliRunner = app.test_cli_runner()
    result = runner.invoke(args=["db", "-d", str(main), "upgrade", "--all-tenants", "-j", "1"])
    assert result.exit_code == 0, result.output
    for url in urls.values():
        engine = sa.create_engine(url)
        try:
            assert set(sa.inspect(engine).get_table_names()) >= {"orders"}
            assert "user" not in sa.inspect(engine).get_table_names()
        finally:
            engine.dispose()

    # the command's own -d still wins: it is how a user names another folder
    # (here the wrong one, which the version-table check refuses)
    result = runner.invoke(args=["db", "upgrade", "-d", str(main), "--tenant", "a"])
    assert result.exit_code == 1
    assert f"which is not in the migrations folder {main}" in result.output


def test_include_schemas_autogenerate_of_the_main_database_ignores_tenant_schemas(
    tmp_path: Path, databases_on: t.Any
) -> None:
    """``check`` of the main database with include_schemas=True passes beside migrated schema tenants."""
    require_server("postgresql")
    database = databases_on("postgresql")
    migrations = tmp_path / "migrations"
    app, _, _ = create_app(
        database.url, migrations, include_schemas=True,
        tenants=lambda: [Tenant("acme", schema="tenant_acme"), Tenant("globex", schema="tenant_globex")],
    )
    _init(app, migrations)
    write_revision(migrations / "versions", "m1", None, CREATE_USER, "op.drop_table('user')")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    result = runner.invoke(args=["db", "upgrade", "--all-tenants", "-j", "1"])
    assert result.exit_code == 0, result.output
    engine = database.engine()
    try:
        assert "user" in sa.inspect(engine).get_table_names(schema="tenant_acme")
    finally:
        engine.dispose()

    result = runner.invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output
    assert "No new upgrade operations detected." in result.output


def test_runs_for_many_tenants_leave_no_migration_context_alive(tmp_path: Path) -> None:
    """Memory stays flat with the tenant count: nothing of a finished run stays reachable."""
    import gc

    from alembic.runtime.migration import MigrationContext

    from flask_migrate import operations

    migrations = tmp_path / "migrations"
    app, _, _ = create_app(
        f"sqlite:///{tmp_path / 'main.db'}", migrations,
        tenants=lambda: [Tenant(f"t{i}", url=f"sqlite:///{tmp_path / f't{i}.db'}") for i in range(12)],
    )
    _init(app, migrations)
    write_revision(migrations / "versions", "m1", None, CREATE_USER, "op.drop_table('user')")
    with app.app_context():
        results = operations.upgrade(tenants="all", jobs=1)
    assert [r.outcome for r in results] == ["migrated"] * 12
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, MigrationContext)]
    assert alive == []


def test_what_tenant_runs_leave_is_collected_as_they_go(tmp_path: Path) -> None:
    """The cycle collector reclaims each tenant's run during the next ones, without gc.collect().

    (With the heap frozen per run instead of once for all the tenants, each
    run's garbage was frozen again during the next run, and never collected.)
    """
    import gc

    from alembic.runtime.migration import MigrationContext

    from flask_migrate import operations

    migrations = tmp_path / "migrations"
    app, _, _ = create_app(f"sqlite:///{tmp_path / 'main.db'}", migrations)
    _init(app, migrations)
    write_revision(migrations / "versions", "m1", None, CREATE_USER, "op.drop_table('user')")
    tenants = [Tenant(f"t{i}", url=f"sqlite:///{tmp_path / f't{i}.db'}") for i in range(60)]
    gc.collect()
    with app.app_context():
        results = operations.upgrade(tenants=tenants, jobs=1)
    assert [r.outcome for r in results] == ["migrated"] * 60
    assert gc.get_freeze_count() == 0
    alive = sum(isinstance(o, MigrationContext) for o in gc.get_objects())
    assert alive < 20, f"{alive} migration contexts of 60 runs still in memory"
