"""The Ray executor: each attempt of a job runs as a Ray task on a Ray cluster.

Chosen by ``jobs_url``:

- ``ray://host:10001`` — a remote cluster through Ray Client (needs Ray's client extra,
  ``pip install 'ray[client]'``);
- ``ray:auto`` — the cluster this machine is a node of (``ray start`` here, or the one
  ``RAY_ADDRESS`` names);
- ``ray:host:6379`` — the cluster whose head (GCS) listens there, this machine being one
  of its nodes.

``?num_cpus=2&num_gpus=1`` after the address sets what each attempt reserves (default one
CPU, no GPU). Everything else is ``QueueExecutor``'s: the job row is the truth, the claim
is the fenced ``UPDATE``, stale heartbeats are reaped. The Ray task runs the worker's own
``run_attempt``, which opens the service's database itself, heartbeats, stores logs and
progress and writes the outcome, so the database URL must be reachable from the Ray
workers (SQLite only with a Ray on this machine; PostgreSQL for a real cluster). Ray
never retries a task (``max_retries=0``): a Ray worker that dies ends the attempt as lost
and the job's own retry policy applies. A cancel request reaches the task with its next
heartbeat; one that does not stop within ``cancel_grace`` is ended with
``ray.cancel(force=True)``. Each task gets a fresh Ray worker process (``max_calls=1``),
so a job function that ignored its cancel cannot linger into the next attempt.

Ray is imported when the executor starts, never by merely importing this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Unpack
from urllib.parse import parse_qsl, urlsplit

from inwire.kit.db.engine import Database
from inwire.kit.jobs.executor import (
    ExecutorOptions,
    QueueExecutor,
    RunningAttempt,
    UnsupportedExecutor,
)
from inwire.kit.jobs.models import Job
from inwire.kit.jobs.service import JobService
from inwire.kit.jobs.worker import WorkerSpec

log = logging.getLogger("inwire.jobs")

_INSTALL = "pip install 'inwire[ray]'"
#: What each attempt may reserve, from the ``jobs_url`` query.
_RESOURCES = ("num_cpus", "num_gpus")


@dataclass(frozen=True)
class RayTarget:
    """Where attempts run: the address ``ray.init`` gets, and what each task reserves."""

    #: ``ray://host:port``, ``auto`` or ``host:port``.
    address: str
    resources: dict[str, float] = field(default_factory=dict)

    @property
    def client(self) -> bool:
        """Whether this goes through Ray Client (``ray://``)."""
        return self.address.startswith("ray://")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def ray_target(url: str) -> RayTarget:
    """Parse a Ray ``jobs_url``; ``UnsupportedExecutor`` if it is malformed or Ray is missing."""
    parts = urlsplit(url.strip())
    if parts.netloc:
        if parts.path not in ("", "/"):
            raise UnsupportedExecutor(f"jobs_url {url!r}: expected ray://host:port")
        address = f"ray://{parts.netloc}"
    else:
        address = parts.path
        if not address or address.startswith("/"):
            raise UnsupportedExecutor(
                f"jobs_url {url!r}: expected 'ray://host:port', 'ray:auto' or 'ray:host:port'"
            )
    resources: dict[str, float] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _RESOURCES:
            raise UnsupportedExecutor(
                f"jobs_url {url!r}: unknown option {key!r} (accepted: {', '.join(_RESOURCES)})"
            )
        try:
            amount = float(value)
        except ValueError:
            amount = -1.0
        if not amount >= 0:
            raise UnsupportedExecutor(f"jobs_url {url!r}: {key} must be a number >= 0")
        resources[key] = amount
    if not _installed("ray"):
        raise UnsupportedExecutor(f"jobs_url {url!r} needs Ray, which is not installed: {_INSTALL}")
    target = RayTarget(address, resources)
    if target.client and not _installed("grpc"):
        raise UnsupportedExecutor(
            f"jobs_url {url!r}: Ray Client (ray://) needs Ray's client extra, which is not "
            "installed: pip install 'ray[client]' (or use ray:auto on a node of the cluster)"
        )
    return target


# -- the Ray task -------------------------------------------------------------------------------


def run_on_ray(spec_json: str) -> int:
    """The body of each Ray task: run the claimed attempt like a worker process would."""
    spec = WorkerSpec.from_json(spec_json)
    for entry in reversed(spec.sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from inwire.kit.jobs.worker import run_attempt
    from inwire.kit.observability import configure_logging

    configure_logging(spec.service, spec.log_level, spec.log_json)
    # The cancel flag is set by the worker's heartbeat, which reads the job row.
    return asyncio.run(run_attempt(spec, threading.Event()))


_UV_RUN_HOOK = "RAY_ENABLE_UV_RUN_RUNTIME_ENV"


def _without_uv_run_hook() -> None:
    """Keep Ray from turning a driver started under ``uv run`` into a uv project upload.

    Since Ray 2.43 a driver whose ancestor is ``uv run`` packages its working directory and
    starts every worker through ``uv run`` in a fresh virtual environment: slow, and the
    service's working directory is not the job's code. Workers use the cluster's own Python
    unless ``RAY_ENABLE_UV_RUN_RUNTIME_ENV=1`` asks for that behaviour.
    """
    if os.environ.get(_UV_RUN_HOOK, "").strip().lower() in ("1", "true"):
        return
    os.environ[_UV_RUN_HOOK] = "0"
    try:  # Ray read the variable when it was imported; the flag is looked up at ray.init
        from ray._private import ray_constants
    except ImportError:
        return
    if hasattr(ray_constants, _UV_RUN_HOOK):
        setattr(ray_constants, _UV_RUN_HOOK, False)


# -- one connection per process ---------------------------------------------------------------


class _Connection:
    """``ray.init`` is per process: executors of the same cluster share one connection."""

    lock = threading.Lock()
    address: str | None = None
    users = 0
    #: Whether this module called ``ray.init`` (else someone else did, and keeps it).
    owned = False

    @classmethod
    def acquire(cls, address: str) -> Any:
        try:
            import ray
        except ImportError as exc:  # installed but broken
            raise UnsupportedExecutor(f"Ray cannot be imported ({exc}): {_INSTALL}") from exc
        _without_uv_run_hook()
        with cls.lock:
            if cls.users == 0:
                if ray.is_initialized():
                    cls.owned = False
                else:
                    ray.init(address=address, configure_logging=False, log_to_driver=True)
                    cls.owned = True
                cls.address = address
            elif cls.address != address:
                raise UnsupportedExecutor(
                    f"this process is connected to the Ray cluster at {cls.address}; "
                    f"it cannot also use {address}"
                )
            cls.users += 1
        return ray

    @classmethod
    def release(cls) -> None:
        import ray

        with cls.lock:
            cls.users = max(0, cls.users - 1)
            if cls.users == 0:
                if cls.owned:
                    ray.shutdown()
                cls.address = None
                cls.owned = False


#: Seconds ``start`` waits for ``ray.init`` (which keeps retrying an unreachable cluster).
CONNECT_TIMEOUT = 120.0
#: Tries of a Ray Client connection whose session the cluster failed to set up.
CONNECT_TRIES = 3


async def _connect(address: str, wait: float) -> Any:
    """``_Connection.acquire`` in a daemon thread, given up after ``wait`` seconds.

    A daemon thread, not the loop's executor: a ``ray.init`` that never returns must not
    keep the process from exiting. One that succeeds after we gave up is released.
    """
    loop = asyncio.get_running_loop()
    woke = asyncio.Event()
    lock = threading.Lock()
    box: dict[str, Any] = {}  # "ray" or "error" once known; "abandoned" once given up

    def connect() -> None:
        outcome: tuple[str, Any]
        for attempt in range(1, CONNECT_TRIES + 1):
            try:
                outcome = ("ray", _Connection.acquire(address))
                break
            except ConnectionAbortedError as exc:
                # Ray Client: the cluster could not set up this session's server (Ray
                # disconnects cleanly first); another try usually gets one.
                outcome = ("error", exc)
                log.warning("Ray Client session at %s failed (try %d)", address, attempt)
                time.sleep(2.0 * attempt)
            except BaseException as exc:
                outcome = ("error", exc)
                break
        with lock:
            late = bool(box.get("abandoned"))
            if not late:
                box[outcome[0]] = outcome[1]
        if late:
            if outcome[0] == "ray":
                _Connection.release()
            return
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(woke.set)

    threading.Thread(target=connect, name="inwire-ray-connect", daemon=True).start()
    error: BaseException | None = None
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woke.wait(), wait)
    finally:
        with lock:
            ray = box.get("ray")
            error = box.get("error")
            if ray is None and error is None:
                box["abandoned"] = True
    if ray is not None:
        return ray
    if isinstance(error, UnsupportedExecutor):
        raise error
    if error is not None:
        raise RuntimeError(f"cannot connect to the Ray cluster at {address}: {error}") from error
    raise RuntimeError(f"cannot connect to the Ray cluster at {address} within {wait:g} s")


# -- the executor ---------------------------------------------------------------------------------


class _RayTask(RunningAttempt):
    """A Ray task running one attempt."""

    def __init__(self, job_id: str, worker_id: str, ref: Any) -> None:
        super().__init__(job_id, worker_id)
        self.ref = ref
        #: Why the task ended, once it has.
        self.ended: str | None = None

    @property
    def alive(self) -> bool:
        return self.ended is None

    def exit_reason(self) -> str:
        return self.ended or "Ray task ended"


def _task_outcome(ray: Any, ref: Any) -> str:
    """Why a finished task ended, for an attempt that did not store its outcome."""
    try:
        code = ray.get(ref, timeout=0)
    except ray.exceptions.TaskCancelledError:
        return "Ray task was cancelled"
    except ray.exceptions.RayError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        return f"Ray task failed: {type(exc).__name__}: {first}".rstrip(": ")
    return f"Ray task ended with code {code}"


class RayExecutor(QueueExecutor[_RayTask]):
    """Runs each attempt as a Ray task (one fresh Ray worker process per attempt).

    ``concurrency`` caps this executor's attempts in flight; the cluster's resources cap
    what runs at once, and an attempt Ray cannot place within ``policy.start_timeout``
    counts as lost ("worker did not start").
    """

    runner = "a Ray task"

    def __init__(
        self,
        db: Database,
        jobs: JobService,
        target: RayTarget,
        **options: Unpack[ExecutorOptions],
    ) -> None:
        super().__init__(db, jobs, **options)
        self.target = target
        self._ray: Any = None
        self._remote: Any = None

    # -- QueueExecutor ----------------------------------------------------------------------

    async def _open(self) -> None:
        address = self.target.address
        ray = await _connect(address, CONNECT_TIMEOUT)
        self._ray = ray
        options = {"num_cpus": 1.0, **self.target.resources}
        self._remote = ray.remote(max_retries=0, retry_exceptions=False, max_calls=1, **options)(
            run_on_ray
        )
        log.info("jobs run on the Ray cluster at %s", address)

    async def _close(self) -> None:
        if self._ray is not None:
            self._ray = self._remote = None
            await asyncio.to_thread(_Connection.release)

    async def _launch(self, job: Job, spec: WorkerSpec) -> _RayTask:
        remote = self._remote.options(name=f"inwire-job:{job.type}")
        ref = await asyncio.to_thread(remote.remote, spec.to_json())
        log.info(
            "job %s attempt %d submitted to Ray",
            job.id,
            job.attempts,
            extra={"job_id": job.id, "job_type": job.type, "worker_id": spec.worker_id},
        )
        return _RayTask(job.id, spec.worker_id, ref)

    async def _poll(self) -> None:
        live = [w for w in self.workers.values() if w.alive]
        if not live:
            return
        try:
            await asyncio.to_thread(self._check, live)
        except Exception:
            # The cluster is unreachable for now: the rest of the pass (cancels, the
            # reaper, claims) still runs, and attempts that stay silent are reaped.
            log.warning("could not ask Ray about running tasks", exc_info=True)

    def _check(self, tasks: list[_RayTask]) -> None:
        ray = self._ray
        refs = [t.ref for t in tasks]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for t in tasks:
            if t.ref in ready:
                t.ended = _task_outcome(ray, t.ref)

    async def _kill(self, w: _RayTask) -> None:
        await asyncio.to_thread(self._cancel, [w])

    async def _interrupt(self, workers: list[_RayTask]) -> None:
        live = [w for w in workers if w.alive]
        if live:
            await asyncio.to_thread(self._cancel, live, self.policy.stop_grace)

    def _cancel(self, tasks: list[_RayTask], wait: float = 0.0) -> None:
        ray = self._ray
        for t in tasks:
            try:
                ray.cancel(t.ref, force=True)
            except Exception:
                log.warning("could not cancel the Ray task of job %s", t.job_id, exc_info=True)
        if wait > 0:
            refs = [t.ref for t in tasks]
            ray.wait(refs, num_returns=len(refs), timeout=wait)
