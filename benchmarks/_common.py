"""Helpers shared by the benchmark scripts (standard library only).

* :func:`ours_python` / :func:`original_python` locate the two interpreters:
  this repository's ``.venv`` (our package, installed editable) and
  ``benchmarks/.venv-original`` holding Flask-Migrate 4.1.0, which is created on
  first use with the *same* versions of Flask, Flask-SQLAlchemy, SQLAlchemy,
  Alembic, Mako and click as our venv, so that only Flask-Migrate differs.
* :func:`run` runs one command as a fresh process and returns its wall time,
  CPU time and peak RSS (from ``wait4``, the kernel's own accounting), taken by
  a small launcher process so that the RSS is the command's own.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ORIGINAL_VENV = Path(os.environ.get("FM_BENCH_ORIGINAL_VENV", HERE / ".venv-original"))
OURS_VENV = Path(os.environ.get("FM_BENCH_OURS_VENV", REPO / ".venv"))
ORIGINAL_VERSION = "4.1.0"

# Packages pinned in the original's venv to the versions found in ours.
SHARED_PACKAGES = [
    "Flask",
    "Flask-SQLAlchemy",
    "SQLAlchemy",
    "alembic",
    "Mako",
    "click",
    "Werkzeug",
    "Jinja2",
    "blinker",
]
# Optional imports of those packages (Mako imports Pygments when it is installed):
# the original's venv gets them too when ours has them, so module sets match.
OPTIONAL_PACKAGES = ["psycopg", "psycopg-binary", "PyMySQL", "Pygments", "typing_extensions"]


def _bin(venv: Path, name: str) -> Path:
    return venv / "bin" / name


def ours_python() -> Path:
    python = _bin(OURS_VENV, "python")
    if not python.exists():
        sys.exit(f"our venv not found at {OURS_VENV} (set FM_BENCH_OURS_VENV)")
    return python


def run_under_ours(*modules: str) -> None:
    """Re-run this script under our venv's interpreter when ``modules`` do not import here."""
    import importlib

    try:
        for name in modules:
            importlib.import_module(name)
    except ImportError:
        if os.environ.get("FM_BENCH_REEXEC"):
            raise
        os.environ["FM_BENCH_REEXEC"] = "1"
        python = ours_python()
        os.execv(str(python), [str(python), *sys.argv])


def _versions(python: Path, names: list[str]) -> dict[str, str]:
    code = (
        "import json, sys\n"
        "from importlib import metadata\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try:\n"
        "        out[n] = metadata.version(n)\n"
        "    except metadata.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=True
    )
    return _str_dict(json.loads(res.stdout))


def _str_dict(value: object) -> dict[str, str]:
    assert isinstance(value, dict)
    return {str(k): str(v) for k, v in value.items()}


def original_python(*, sync: bool = True) -> Path:
    """The interpreter of the venv with the original Flask-Migrate (created if needed).

    With ``sync=False`` an existing venv that holds Flask-Migrate 4.1.0 is used
    as it is, even when its other versions differ from ours (for a venv that
    something else owns, such as the test command's ``.venv-original``).
    """
    python = _bin(ORIGINAL_VENV, "python")
    wanted = _versions(ours_python(), SHARED_PACKAGES + OPTIONAL_PACKAGES)
    if python.exists():
        have = _versions(python, ["Flask-Migrate", *wanted])
        if not sync and have.get("Flask-Migrate") == ORIGINAL_VERSION:
            return python
        if have.get("Flask-Migrate") == ORIGINAL_VERSION and all(
            have.get(k) == v for k, v in wanted.items()
        ):
            return python
    else:
        print(f"creating {ORIGINAL_VENV} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(ORIGINAL_VENV)], check=True)
    pins = [f"Flask-Migrate=={ORIGINAL_VERSION}"] + [f"{k}=={v}" for k, v in wanted.items()]
    print("installing into the original's venv: " + " ".join(pins), file=sys.stderr)
    subprocess.run(
        [str(_bin(ORIGINAL_VENV, "pip")), "install", "-q", "--disable-pip-version-check", *pins],
        check=True,
    )
    return python


def package_versions(python: Path, extra: t.Sequence[str] = ()) -> dict[str, str]:
    return _versions(python, ["Flask-Migrate", *SHARED_PACKAGES, *extra])


@dataclass
class Sample:
    wall: float  # seconds
    cpu: float  # user + sys seconds
    maxrss_kb: int
    returncode: int
    stdout: str
    stderr: str


# A small process that starts the measured command and reports its wait4()
# figures. NOTE: on Linux a child's ru_maxrss is at least its parent's RSS at
# the fork (the exec records the high-water mark of the memory it replaces),
# so a command started straight from a benchmark script holding ~100 MB would
# show that instead of its own peak; started from this launcher (``-S``, a few
# MB) it shows its own.
LAUNCHER = """\
import json, os, sys, time
t0 = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(sys.argv[1], "w") as f:
    json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
               "maxrss_kb": usage.ru_maxrss,
               "returncode": os.waitstatus_to_exitcode(status)}, f)
"""


def run(
    argv: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> Sample:
    """Run ``argv`` as a fresh process; measure it from outside (wall time, CPU
    time and peak RSS from ``wait4``, taken by a small launcher process)."""
    import tempfile
    import threading

    fd, figures = tempfile.mkstemp(prefix="fm-bench-", suffix=".json")
    os.close(fd)
    proc = subprocess.Popen(
        [sys.executable, "-S", "-c", LAUNCHER, figures, *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # NOTE: read both pipes at once: a child that fills one pipe while we wait
    # on the other would block for ever (1000 revisions log ~100 KB on stderr).
    chunks: dict[str, str] = {}

    def drain(name: str, pipe: t.Any) -> None:
        chunks[name] = pipe.read() if pipe else ""

    reader = threading.Thread(target=drain, args=("err", proc.stderr))
    reader.start()
    drain("out", proc.stdout)
    reader.join()
    out, err = chunks["out"], chunks["err"]
    launcher_status = proc.wait()
    try:
        measured = json.loads(Path(figures).read_text() or "{}")
    finally:
        os.unlink(figures)
    if launcher_status != 0 or not measured:
        raise RuntimeError(f"could not run {' '.join(argv)}:\n{err[-3000:]}")
    sample = Sample(
        wall=float(measured["wall"]),
        cpu=float(measured["cpu"]),
        maxrss_kb=int(measured["maxrss_kb"]),
        returncode=int(measured["returncode"]),
        stdout=out,
        stderr=err,
    )
    if check and sample.returncode != 0:
        raise RuntimeError(
            f"command failed ({sample.returncode}): {' '.join(argv)}\n{err[-3000:]}"
        )
    return sample


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def ratio(a: float, b: float) -> str:
    if b == 0 or b != b or a != a:
        return "n/a"
    return f"{a / b:.2f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table (also readable as plain text)."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).rjust(w) if i else str(c).ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    sep = "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2))
                         for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: no stray FLASK_* or PYTHON* settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(extra)
    return env


def machine_line() -> str:
    import platform

    return (
        f"{time.strftime('%Y-%m-%d %H:%M')} | Python {platform.python_version()} | "
        f"{platform.machine()} | {os.cpu_count()} CPUs | {platform.platform(terse=True)}"
    )
