#!/usr/bin/env python3
"""Start-up cost of Flask-Migrate: ours vs the original 4.1.0 vs no Flask-Migrate.

Every measurement is a fresh interpreter, so nothing is cached in memory.
Three variants run interleaved (their order rotates each round, to cancel
drift of the machine's speed):

* ``baseline``  - a Flask + Flask-SQLAlchemy app with one model, no Flask-Migrate
  (run with our venv; both venvs have the same Flask/SQLAlchemy versions);
* ``ours``      - the same app plus ``Migrate(app, db)``, with this repository's package;
* ``original``  - the same app plus ``Migrate(app, db)``, with Flask-Migrate 4.1.0.

Measured:

(a) importing the app module (``import flask``, ``flask_sqlalchemy``,
    ``flask_migrate``, creating the app, ``Migrate(app, db)``): the time inside
    the process, the whole process's wall time and its peak RSS;
(b) an unrelated CLI command, ``flask --app APP hello`` (a no-op command of
    the app), as a whole process: wall time, CPU time, peak RSS;
(c) the modules the app start-up imports: how many, and whether Alembic and
    Mako are among them.

Usage: ``python benchmarks/bench_startup.py [-n ROUNDS] [--quick]``
(any Python 3 works to launch it; the children run in the two venvs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    Sample,
    clean_env,
    fmt_ms,
    machine_line,
    med,
    original_python,
    ours_python,
    package_versions,
    ratio,
    run,
    table,
)

APP_TEMPLATE = '''\
import click
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
{migrate_import}
db = SQLAlchemy()


class User(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(64), nullable=False)


app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///bench.db"
db.init_app(app)
{migrate_create}

@app.cli.command()
def hello():
    """A command that has nothing to do with migrations."""
    click.echo("hello")
'''

PROBE = '''\
import json, sys, time
t0 = time.perf_counter()
import {module}
t1 = time.perf_counter()
names = set(sys.modules)
print(json.dumps({{
    "seconds": t1 - t0,
    "modules": len(names),
    "alembic": any(n == "alembic" or n.startswith("alembic.") for n in names),
    "mako": any(n == "mako" or n.startswith("mako.") for n in names),
}}))
'''

VARIANTS = ("baseline", "ours", "original")


def write_apps(folder: Path) -> None:
    (folder / "app_baseline.py").write_text(
        APP_TEMPLATE.format(migrate_import="", migrate_create="")
    )
    (folder / "app_migrate.py").write_text(
        APP_TEMPLATE.format(
            migrate_import="from flask_migrate import Migrate\n",
            migrate_create="migrate = Migrate(app, db)\n",
        )
    )
    for module in ("app_baseline", "app_migrate"):
        (folder / f"probe_{module}.py").write_text(PROBE.format(module=module))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--rounds", type=int, default=25, help="rounds (default 25)")
    parser.add_argument("--quick", action="store_true", help="8 rounds")
    args = parser.parse_args()
    rounds = 8 if args.quick else args.rounds

    pythons = {
        "baseline": ours_python(),
        "ours": ours_python(),
        "original": original_python(),
    }
    module = {"baseline": "app_baseline", "ours": "app_migrate", "original": "app_migrate"}

    with tempfile.TemporaryDirectory(prefix="fm-bench-startup-") as tmp:
        folder = Path(tmp)
        write_apps(folder)
        env = clean_env()

        def probe(variant: str) -> tuple[Sample, dict[str, object]]:
            s = run(
                [str(pythons[variant]), f"probe_{module[variant]}.py"], cwd=folder, env=env
            )
            return s, json.loads(s.stdout)

        def hello(variant: str) -> Sample:
            flask = pythons[variant].parent / "flask"
            s = run([str(flask), "--app", module[variant], "hello"], cwd=folder, env=env)
            assert s.stdout.strip() == "hello", s.stdout
            return s

        # warm-up: byte-compile everything once per variant
        for variant in VARIANTS:
            for _ in range(2):
                probe(variant)
                hello(variant)

        inproc: dict[str, list[float]] = {v: [] for v in VARIANTS}
        proc_wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
        proc_rss: dict[str, list[float]] = {v: [] for v in VARIANTS}
        info: dict[str, dict[str, object]] = {}
        cli_wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cli_cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cli_rss: dict[str, list[float]] = {v: [] for v in VARIANTS}

        for r in range(rounds):
            order = VARIANTS[r % 3:] + VARIANTS[: r % 3]
            for variant in order:
                s, data = probe(variant)
                inproc[variant].append(float(data["seconds"]))  # type: ignore[arg-type]
                proc_wall[variant].append(s.wall)
                proc_rss[variant].append(s.maxrss_kb / 1024)
                info[variant] = data
            for variant in order:
                s = hello(variant)
                cli_wall[variant].append(s.wall)
                cli_cpu[variant].append(s.cpu)
                cli_rss[variant].append(s.maxrss_kb / 1024)
            print(f"\rround {r + 1}/{rounds}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)

    print(f"# bench_startup  ({machine_line()}, {rounds} rounds, interleaved)")
    ov = package_versions(pythons["original"])
    print(
        "shared versions: "
        + ", ".join(f"{k} {v}" for k, v in ov.items() if k != "Flask-Migrate")
    )
    print()

    def rows_for(series: list[tuple[str, dict[str, list[float]], bool]]) -> list[list[str]]:
        rows = []
        for variant in VARIANTS:
            row = [variant]
            for _, data, is_time in series:
                vals = data[variant]
                if is_time:
                    row += [fmt_ms(min(vals)), fmt_ms(med(vals))]
                else:
                    row += [f"{med(vals):.1f}"]
            rows.append(row)
        for label, fn in (
            ("ours / original", lambda o, g, b: ratio(o, g)),
            ("(ours-base) / (original-base)", lambda o, g, b: ratio(o - b, g - b)),
        ):
            row = [label]
            for _, data, is_time in series:
                o, g, b = (med(data[v]) for v in ("ours", "original", "baseline"))
                if is_time:
                    mo, mg, mb = (min(data[v]) for v in ("ours", "original", "baseline"))
                    row += [fn(mo, mg, mb), fn(o, g, b)]
                else:
                    row += [fn(o, g, b)]
            rows.append(row)
        return rows

    print("## (a) import the app module + create app + Migrate(app, db)")
    print()
    print(
        table(
            [
                "variant",
                "in-process min ms",
                "in-process median ms",
                "process wall min ms",
                "process wall median ms",
                "peak RSS median MB",
            ],
            rows_for(
                [
                    ("in", inproc, True),
                    ("wall", proc_wall, True),
                    ("rss", proc_rss, False),
                ]
            ),
        )
    )
    print()
    print("## (b) unrelated CLI command: flask --app APP hello")
    print()
    print(
        table(
            [
                "variant",
                "wall min ms",
                "wall median ms",
                "CPU min ms",
                "CPU median ms",
                "peak RSS median MB",
            ],
            rows_for(
                [
                    ("wall", cli_wall, True),
                    ("cpu", cli_cpu, True),
                    ("rss", cli_rss, False),
                ]
            ),
        )
    )
    print()
    print("## (c) modules imported by the app start-up")
    print()
    print(
        table(
            ["variant", "modules in sys.modules", "alembic imported", "mako imported"],
            [
                [
                    v,
                    str(info[v]["modules"]),
                    "yes" if info[v]["alembic"] else "no",
                    "yes" if info[v]["mako"] else "no",
                ]
                for v in VARIANTS
            ],
        )
    )


if __name__ == "__main__":
    main()
