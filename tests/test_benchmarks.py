"""The benchmark suite (``benchmarks/run.py``, issue 11) runs end to end in its
``--quick`` mode, so that it never rots. No timing is asserted: only that every
scenario ran and the report, the plot and the raw numbers were written.

It needs the original Flask-Migrate 4.1.0 in a venv of its own
(``FLASK_MIGRATE_TEST_ORIGINAL_VENV``, set by ``scripts/test.sh``): without it
the test is skipped, except under ``CI=true``, where that is a failure (as for
the unreachable PostgreSQL and MariaDB servers, which the suite otherwise skips
with the reason). Deselect it with ``-m "not benchmarks"``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IN_CI, SERVER_URLS, require_server, server_problem

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"


@pytest.mark.benchmarks
def test_quick_benchmark_run_writes_every_scenario(tmp_path: Path) -> None:
    """`benchmarks/run.py --quick` exits 0 and reports every target of issue 11."""
    venv = os.environ.get("FLASK_MIGRATE_TEST_ORIGINAL_VENV")
    if not venv:
        message = (
            "FLASK_MIGRATE_TEST_ORIGINAL_VENV is not set: it names the venv with "
            "Flask-Migrate 4.1.0 the benchmarks compare against (scripts/test.sh builds it)"
        )
        if IN_CI:
            pytest.fail(message + " (CI=true: the benchmark suite is required)")
        pytest.skip(message)
    servers = {"postgresql": "--pg-url", "mariadb": "--mysql-url"}
    for backend in servers:
        if IN_CI:
            require_server(backend)  # fails when the server does not answer
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_BENCH_")}
    env["FM_BENCH_ORIGINAL_VENV"] = venv
    argv = [sys.executable, str(RUN), "--quick", "--out", str(tmp_path)]
    for backend, option in servers.items():
        argv += [option, SERVER_URLS[backend]]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-5000:]

    report = (tmp_path / "report.md").read_text()
    for number in "1234567":
        assert f"\n## {number}. " in report, f"no section for target {number}"
    assert "![time against history size](plot.svg)" in report
    assert (tmp_path / "plot.svg").read_text().startswith("<svg")

    data = json.loads((tmp_path / "results.json").read_text())
    assert data["errors"] == {}
    expected = {"1", "5a", "5b", "6-flat", "6-rss", "7", "4-sqlite-check", "4-sqlite-migrate"}
    expected |= {f"3-{c}-{p}" for c in ("upgrade", "current", "heads", "status")
                 for p in ("pyc", "nopyc")}
    reachable = {b for b in servers if server_problem(b) is None}
    expected |= {f"2-{b}" for b in reachable}
    if "postgresql" in reachable:
        expected |= {"4-postgresql-check", "4-postgresql-migrate"}
    assert expected <= set(data["targets"]), expected - set(data["targets"])
    for key, target in data["targets"].items():
        assert target["value"] is not None, key
    assert {"ours", "original"} <= set(data["versions"])


TENANTS = RUN.parent / "bench_tenants.py"


@pytest.mark.benchmarks
@pytest.mark.xdist_group("heavy")
def test_quick_tenant_benchmark_checks_every_tenant_once(tmp_path: Path) -> None:
    """`benchmarks/bench_tenants.py --quick` exits 0 with every section of issue 12's report.

    It exits 1 when an instance of its concurrent-instances run failed, or a
    tenant was not migrated exactly once; no timing is asserted.
    """
    argv = [sys.executable, str(TENANTS), "--quick", "--report", str(tmp_path / "tenants.md")]
    if IN_CI or server_problem("postgresql") is None:
        require_server("postgresql")
        argv += ["--pg-url", SERVER_URLS["postgresql"]]
    else:
        argv += ["--no-pg"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_BENCH_")}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = (tmp_path / "tenants.md").read_text()
    assert "per tenant" in report
    if "--pg-url" in argv:
        assert "Tenants migrated exactly once" in report
        assert "**PASS**" in report
