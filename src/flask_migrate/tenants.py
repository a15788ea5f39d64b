"""Running a command for many tenants: which ones, in what order, in how many workers.

The databases coordinate the work; there is no scheduler of our own. Each
tenant's run takes the tenant's migration lock, as any run does (see
:mod:`.locking`). On the first pass a tenant whose lock another process holds
is not waited for: it is put aside (see :data:`BUSY`) and taken up again once
every other tenant is done, then waiting for the lock as usual. So several
deploy instances running ``upgrade --all-tenants`` at once share the tenants
between them, and each instance still ends with every tenant checked: the
ones another instance migrated are found at head, and left alone.

Workers are processes, forked once the application and the migrations folder
are loaded (so neither is loaded again per tenant), each taking the next
tenant as it becomes free. Alembic keeps the migration context of a run in
module globals, so runs cannot share a process at the same time. With one
worker, or where ``fork()`` does not exist, the tenants run one after the
other in this process.

Ctrl-C (or SIGTERM) stops cleanly: the runs in progress roll back where the
database allows it and release their locks, no new tenant starts, and the
results so far are returned (in :class:`Interrupted`).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import pickle
import random
import selectors
import signal
import struct
import sys
import time
import typing as t
from dataclasses import dataclass, replace

from .errors import MigrateError
from .results import TenantResult
from .tenancy import Tenant

if t.TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Iterable, Sequence

log = logging.getLogger("flask_migrate")

__all__ = ["BUSY", "Interrupted", "Progress", "default_jobs", "resolve", "run"]

#: The outcome of a first-pass run that found the tenant's lock held elsewhere.
BUSY = "busy"

#: ``tenants=ALL``: every tenant the application declares.
ALL = "all"

#: What a worker does for one tenant: ``work(tenant, wait)``; ``wait`` is
#: false on the first pass (a busy lock gives :data:`BUSY` at once).
Work = t.Callable[[Tenant, bool], TenantResult]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a command for tenants; ``results`` are all of them."""

    def __init__(self, results: list[TenantResult], signal_name: str = "SIGINT") -> None:
        super().__init__(signal_name)
        self.results = results


class TenantInterrupted(KeyboardInterrupt):
    """Raised by a tenant's work when interrupted; carries the tenant's result."""

    def __init__(self, result: TenantResult, signal_name: str) -> None:
        super().__init__(signal_name)
        self.result = result


@dataclass(frozen=True)
class Progress:
    """Where a command for tenants stands, after each finished tenant."""

    done: int
    total: int
    failed: int
    elapsed: float
    #: The tenant that just finished.
    last: TenantResult

    @property
    def eta(self) -> float | None:
        """Seconds left, at the pace so far (``None`` before the first tenant)."""
        if not self.done:
            return None
        return self.elapsed / self.done * (self.total - self.done)


# -- which tenants ----------------------------------------------------------------


def declared(function: t.Callable[[], Iterable[Tenant]] | None) -> list[Tenant]:
    """The tenants ``Migrate(tenants=...)`` returns, checked."""
    if function is None:
        raise MigrateError(
            "This application declares no tenants. Pass tenants=<function returning "
            "flask_migrate.Tenant objects> to Migrate() or init_app() (see the docs, Tenants)."
        )
    try:
        found = list(function())
    except MigrateError:
        raise
    except Exception as exc:
        raise MigrateError(
            f"The application's tenants function failed: {type(exc).__name__}: {exc}"
        ) from exc
    return _unique(found, "The application's tenants function")


def _unique(found: Sequence[t.Any], source: str) -> list[Tenant]:
    seen: set[str] = set()
    for tenant in found:
        if not isinstance(tenant, Tenant):
            raise MigrateError(
                f"{source} returned {tenant!r}, not a flask_migrate.Tenant."
            )
        if tenant.name in seen:
            raise MigrateError(f"{source} returned two tenants named {tenant.name!r}.")
        seen.add(tenant.name)
    return list(found)


def resolve(
    wanted: str | Iterable[str | Tenant],
    function: t.Callable[[], Iterable[Tenant]] | None,
) -> list[Tenant]:
    """The tenants a command runs for.

    ``wanted`` is :data:`ALL`, or names and :class:`Tenant` objects. Names
    are looked up among the declared tenants; ``Tenant`` objects are taken as
    they are, so that a tenant being created (not yet returned by the
    application's function) can be migrated without asking for the others.
    """
    if isinstance(wanted, str):
        if wanted != ALL:
            raise MigrateError(
                f"tenants={wanted!r}: give {ALL!r} or a list of tenant names or Tenant objects."
            )
        return declared(function)
    wanted = list(wanted)
    if not wanted:
        raise MigrateError("No tenant given.")
    names = [w for w in wanted if isinstance(w, str)]
    by_name: dict[str, Tenant] = {}
    if names:
        by_name = {tenant.name: tenant for tenant in declared(function)}
        unknown = [name for name in names if name not in by_name]
        if unknown:
            known = ", ".join(sorted(by_name)[:10]) or "none"
            raise MigrateError(
                f"No tenant named {', '.join(repr(n) for n in unknown)}. "
                f"The application's tenants: {known}"
                + (", ..." if len(by_name) > 10 else "") + "."
            )
    chosen = [by_name[w] if isinstance(w, str) else w for w in wanted]
    return _unique(list(dict.fromkeys(chosen)), "tenants=")


def default_jobs(count: int) -> int:
    """How many workers by default: a few, never more than the CPUs or the tenants.

    A migration's time goes to Python (building and compiling statements) as
    much as to the server, so more workers than CPUs only adds contention.
    """
    return max(1, min(4, os.cpu_count() or 1, count))


# -- running ---------------------------------------------------------------------


def run(
    tenants: Sequence[Tenant],
    work: Work,
    *,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_result: Callable[[Progress], None] | None = None,
    before_fork: Callable[[], None] | None = None,
    after_fork: Callable[[], None] | None = None,
) -> list[TenantResult]:
    """Run ``work`` for each tenant; returns one result per tenant, in their order.

    :param jobs: how many workers (default: :func:`default_jobs`).
    :param fail_fast: after a failure, start no new tenant (they are
        reported ``"not started"``).
    :param on_result: called in this process after each tenant.
    :param before_fork: called once before the workers are forked (to load
        what they all need).
    :param after_fork: called in each worker as it starts (to drop pooled
        connections inherited from this process).
    :raises Interrupted: on Ctrl-C or SIGTERM, with all the results.
    """
    if jobs is None:
        jobs = default_jobs(len(tenants))
    jobs = max(1, min(jobs, len(tenants)))
    schedule = _Schedule(tenants, fail_fast, on_result)
    if jobs > 1 and not _can_fork():
        log.warning(
            "Running the %d tenants one at a time: worker processes are forked, and "
            "this process has other threads (forking them is unsafe) or no fork().",
            len(tenants),
        )
        jobs = 1
    if jobs > 1:
        if before_fork is not None:
            before_fork()
        _Forked(schedule, work, jobs, after_fork).run()
    else:
        _inline(schedule, work)
    return schedule.results()


def _can_fork() -> bool:
    """Whether forking workers is safe here: ``fork()`` exists and this is the only thread."""
    import threading

    return hasattr(os, "fork") and threading.active_count() == 1


class _Schedule:
    """The queue of tenants, the ones put aside, and the results so far."""

    def __init__(
        self, tenants: Sequence[Tenant], fail_fast: bool, on_result: Callable[[Progress], None] | None
    ) -> None:
        self.tenants = list(tenants)
        self.queue: collections.deque[int] = collections.deque(range(len(tenants)))
        self.aside: list[int] = []
        self.second_pass = False
        self.spread = False
        self.fail_fast = fail_fast
        self.stopped = False
        self.on_result = on_result
        self.done: dict[int, TenantResult] = {}
        self.failed = 0
        self.began = time.perf_counter()

    def next(self, idle_others: bool) -> tuple[int, bool] | None:
        """The next tenant and whether to wait for its lock; ``None``: nothing now.

        The tenants put aside wait until the first pass is over: until the
        queue is empty and no other worker runs a first-pass tenant (which
        might still be put aside too).
        """
        if self.stopped:
            return None
        if not self.queue and self.aside and idle_others:
            self.queue.extend(self.aside)
            self.aside.clear()
            self.second_pass = True
        if not self.queue:
            return None
        return self.queue.popleft(), self.second_pass

    def finish(self, index: int, result: TenantResult) -> None:
        if result.outcome == BUSY:
            self.aside.append(index)
            if not self.spread and self.queue:
                # NOTE: another process is going through the same tenants,
                # most likely in the same order: meeting it at every tenant
                # would cost a try per tenant, and a check at the end. Going
                # on from elsewhere shares the work. (Alone, an instance keeps
                # the declared order: a canary tenant first stays first.)
                self.spread = True
                self.queue.rotate(-random.randrange(len(self.queue)))
            return
        self.done[index] = result
        if not result.ok:
            self.failed += 1
            if self.fail_fast:
                self.stopped = True
        if self.on_result is not None:
            self.on_result(Progress(
                len(self.done), len(self.tenants), self.failed,
                time.perf_counter() - self.began, result,
            ))

    @property
    def finished(self) -> bool:
        return not self.queue and not self.aside

    def results(self) -> list[TenantResult]:
        return [
            self.done.get(i) or TenantResult(tenant.name, "not started")
            for i, tenant in enumerate(self.tenants)
        ]


def _inline(schedule: _Schedule, work: Work) -> None:
    while True:
        chosen = schedule.next(idle_others=True)
        if chosen is None:
            return
        index, wait = chosen
        try:
            result = work(schedule.tenants[index], wait)
        except TenantInterrupted as exc:
            schedule.finish(index, exc.result)
            schedule.stopped = True
            raise Interrupted(schedule.results(), str(exc)) from None
        schedule.finish(index, result)


# -- forked workers ------------------------------------------------------------------

_HEADER = struct.Struct("!I")


def _send(fd: int, message: t.Any) -> None:
    data = pickle.dumps(message)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _receive(fd: int) -> t.Any:
    """One message from ``fd``; raises EOFError when the other end closed."""
    header = _read_exactly(fd, _HEADER.size)
    (size,) = _HEADER.unpack(header)
    return pickle.loads(_read_exactly(fd, size))


def _read_exactly(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


@dataclass
class _Worker:
    pid: int
    tasks: int  # write end: tenant indexes for the worker
    results: int  # read end: results from the worker
    busy: int | None = None  # the tenant it runs
    first_pass: bool = False
    alive: bool = True


class _Forked:
    """Workers forked from this process, fed one tenant at a time."""

    def __init__(self, schedule: _Schedule, work: Work, jobs: int, after_fork: Callable[[], None] | None) -> None:
        self.schedule = schedule
        self.work = work
        self.jobs = jobs
        self.after_fork = after_fork
        self.workers: list[_Worker] = []

    def run(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            for _ in range(self.jobs):
                self.workers.append(self._fork())
            self._feed()
        except KeyboardInterrupt as exc:
            self._stop(str(exc) or "SIGINT")
            raise Interrupted(self.schedule.results(), str(exc) or "SIGINT") from None
        finally:
            self._reap()

    def _fork(self) -> _Worker:
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the worker (coverage cannot follow)
            code = 0
            try:
                os.close(task_w)
                os.close(result_r)
                for other in self.workers:
                    os.close(other.tasks)
                    os.close(other.results)
                code = self._serve(task_r, result_w)
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        os.close(task_r)
        os.close(result_w)
        return _Worker(pid, task_w, result_r)

    def _serve(self, tasks: int, results: int) -> int:  # pragma: no cover - in the worker
        """A worker's loop: tenant index in, result out, until told to stop."""
        interrupted: str | None = None
        running = False

        def first_only(signum: int, frame: t.Any) -> None:
            # NOTE: Ctrl-C reaches the whole process group, and the parent
            # passes it on as well: only the first may interrupt a run, the
            # rest must not break its rollback and the release of its lock.
            # Between two tenants it only stops the worker, so that no
            # finished tenant's result is lost.
            nonlocal interrupted
            if interrupted is not None:
                return
            interrupted = "SIGTERM" if signum == signal.SIGTERM else "SIGINT"
            if running:
                raise KeyboardInterrupt(interrupted)

        signal.signal(signal.SIGINT, first_only)
        signal.signal(signal.SIGTERM, first_only)
        if self.after_fork is not None:
            self.after_fork()
        try:
            while interrupted is None:
                try:
                    index, wait = _receive(tasks)
                except EOFError:
                    return 0
                tenant = self.schedule.tenants[index]
                if interrupted is not None:
                    _send(results, (index, TenantResult(tenant.name, "not started")))
                    break
                running = True
                try:
                    result = self.work(tenant, wait)
                except TenantInterrupted as exc:
                    result = exc.result
                finally:
                    running = False
                _send(results, (index, result))
        except KeyboardInterrupt:  # in the instant between a run and its result
            pass
        return 1

    def _feed(self) -> None:
        selector = selectors.DefaultSelector()
        for worker in self.workers:
            selector.register(worker.results, selectors.EVENT_READ, worker)
        try:
            while True:
                self._assign()
                running = [w for w in self.workers if w.busy is not None]
                if not running:
                    if self.schedule.next(idle_others=True) is None:
                        return
                    raise AssertionError("unreachable: a tenant left without a worker")  # pragma: no cover
                for key, _ in selector.select():
                    worker = t.cast(_Worker, key.data)
                    self._collect(worker, selector)
        finally:
            selector.close()

    def _assign(self) -> None:
        for worker in self.workers:
            if worker.busy is not None or not worker.alive:
                continue
            first_pass_running = any(
                w.busy is not None and w.first_pass for w in self.workers
            )
            chosen = self.schedule.next(idle_others=not first_pass_running)
            if chosen is None:
                return
            index, wait = chosen
            try:
                _send(worker.tasks, (index, wait))
            except OSError:
                # the worker is gone (killed); its tenant goes to another one
                worker.alive = False
                self.schedule.queue.appendleft(index)
                if not any(w.alive for w in self.workers):
                    self.schedule.stopped = True
                continue
            worker.busy, worker.first_pass = index, not wait

    def _collect(self, worker: _Worker, selector: selectors.BaseSelector) -> None:
        index = worker.busy
        try:
            got, result = _receive(worker.results)
        except EOFError:
            # the worker died (killed, or a crash outside any tenant's run)
            selector.unregister(worker.results)
            worker.alive = False
            worker.busy = None
            if index is not None:
                tenant = self.schedule.tenants[index]
                self.schedule.finish(index, TenantResult(
                    tenant.name, "failed",
                    error=f"Tenant {tenant.name}: the worker process running it exited unexpectedly.",
                ))
            if not any(w.alive for w in self.workers) and not self.schedule.finished:
                self.schedule.stopped = True
            return
        worker.busy = None
        self.schedule.finish(got, result)
        if result.outcome in ("interrupted", "not started"):
            # the worker was interrupted on its own (a signal to it alone): stop all
            raise KeyboardInterrupt("SIGTERM" if "SIGTERM" in (result.error or "") else "SIGINT")

    def _stop(self, signal_name: str) -> None:
        """After Ctrl-C: let the running tenants roll back, and collect their results."""
        self.schedule.stopped = True
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for worker in self.workers:
                with contextlib.suppress(OSError):
                    os.close(worker.tasks)  # an idle worker ends at once
                if worker.busy is not None and worker.alive:
                    # NOTE: the terminal sent it Ctrl-C too, if it shares our
                    # process group; a worker heeds only the first
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker.pid, signal.SIGINT)
            for worker in self.workers:
                if worker.busy is None or not worker.alive:
                    continue
                index = worker.busy
                try:
                    got, result = _receive(worker.results)
                except (EOFError, OSError):
                    tenant = self.schedule.tenants[index]
                    got, result = index, TenantResult(
                        tenant.name, "interrupted", error=f"Tenant {tenant.name}: interrupted by {signal_name}."
                    )
                worker.busy = None
                if got not in self.schedule.done:
                    self.schedule.finish(got, result)  # its line, as for the others
        finally:
            signal.signal(signal.SIGINT, previous)

    def _reap(self) -> None:
        for worker in self.workers:
            for fd in (worker.tasks, worker.results):
                with contextlib.suppress(OSError):
                    os.close(fd)
        for worker in self.workers:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(worker.pid, 0)


def busy_free(lock: t.Any, wait: bool) -> t.Any:
    """The lock options of a tenant's run: on the first pass, do not wait for a busy lock."""
    if wait or not lock.enabled:
        return lock
    return replace(lock, timeout=0, on_wait=_silent)


def _silent(database: str, holder: t.Any) -> None:
    """A busy lock on the first pass is not news: the tenant is taken up again later."""
