"""Tracking from Python: ``with inwire.start_run(...) as run: run.log_metric("loss", x)``.

A run is created at Model Training when it starts; params, tags and metric values logged
to it go into a bounded in-memory queue and return at once. One daemon thread per run
drains the queue and sends the values as all-or-nothing batches (``POST
/api/v1/runs/{id}/batch``) of at most ``batch_size`` values, or whatever is waiting every
``flush_interval`` seconds, so a training loop that logs every step does not wait for HTTP.
Values are sent in the order they were logged. Transient failures (429, 503, no answer,
timeouts) are retried with backoff; resending is harmless because every value carries the
time it was logged and the server stores a (key, step, time) once. A batch that still fails
is never dropped silently: it is logged as an error at once and :class:`TrackingError` is
raised by the next :meth:`ActiveRun.flush` (also the one at the end of the run).

The run ends when the ``with`` block ends: values are flushed, then the run is marked
``finished``, or ``failed`` when the block raised (``killed`` on Ctrl-C). A run that is
never ended (a script that exits without closing it) is flushed and ended by an
``atexit`` hook: ``failed`` when the interpreter exits on an unhandled exception.

Like MLflow, runs started in a process form a stack: ``inwire.log_metric(...)`` and the
other module-level functions act on the innermost active run, and ``nested=True`` starts a
child of it.
"""

from __future__ import annotations

import atexit
import concurrent.futures.thread  # noqa: F401  (its exit hook must precede ours)
import getpass
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from inwire.contracts.training import (
    Experiment,
    MetricValue,
    Run,
    RunSource,
    RunStatus,
    StoredArtifact,
)
from inwire.sdk.client import Client
from inwire.sdk.errors import (
    Conflict,
    TooManyRequests,
    Unavailable,
    UpstreamTimeout,
)

__all__ = [
    "ActiveRun",
    "TrackingError",
    "active_run",
    "end_run",
    "flush",
    "log_artifact",
    "log_artifacts",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "set_tag",
    "set_tags",
    "start_run",
]

log = logging.getLogger("inwire.sdk.tracking")

#: The experiment of runs started without ``experiment=`` (``$INWIRE_EXPERIMENT`` first).
DEFAULT_EXPERIMENT = "Default"

#: Errors after which a batch is sent again: the server did not store it, or may not have.
TRANSIENT = (TooManyRequests, Unavailable, UpstreamTimeout)


class TrackingError(RuntimeError):
    """Logged values that Model Training did not store, after every retry.

    ``failures`` lists ``(values, error)`` for each batch that failed: how many values it
    held and the last error its sending raised.
    """

    def __init__(self, run_id: str, failures: list[tuple[int, BaseException]]) -> None:
        lost = sum(n for n, _ in failures)
        last = failures[-1][1]
        super().__init__(
            f"{lost} logged value(s) of run {run_id} were not stored "
            f"({len(failures)} failed batch(es)); last error: {type(last).__name__}: {last}"
        )
        self.run_id = run_id
        self.failures = failures


@dataclass
class _Batch:
    """Values waiting to be sent together."""

    metrics: list[tuple[str, float, int, float]] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.tags)


@dataclass
class _Flush:
    """A marker in the queue: send everything before it, then set ``done``."""

    stop: bool = False
    done: threading.Event = field(default_factory=threading.Event)


_Item = tuple[Literal["m"], str, float, int, float] | tuple[Literal["p", "t"], str, str]


class _Batcher:
    """A bounded queue of logged values and the daemon thread that sends them in batches."""

    def __init__(
        self,
        client: Client,
        run_id: str,
        *,
        batch_size: int,
        flush_interval: float,
        max_queue: int,
        retries: int,
        backoff: float,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retries = retries
        self.backoff = backoff
        self.failures: list[tuple[int, BaseException]] = []
        self._failures_lock = threading.Lock()
        # Bounded: a logger faster than the server waits here instead of growing memory.
        self._queue: queue.Queue[_Item | _Flush] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(
            target=self._serve, name=f"inwire-tracking-{run_id}", daemon=True
        )
        self._thread.start()

    def put(self, item: _Item) -> None:
        if not self._thread.is_alive():
            raise RuntimeError(f"run {self.run_id} has ended; start another run to log")
        self._queue.put(item)

    def flush(self, *, stop: bool = False) -> None:
        """Wait until everything queued so far was sent; raise :class:`TrackingError` for
        values that could not be."""
        if self._thread.is_alive():
            marker = _Flush(stop=stop)
            self._queue.put(marker)
            while not marker.done.wait(0.1):
                if not self._thread.is_alive():
                    break
        with self._failures_lock:
            failures, self.failures = self.failures, []
        if failures:
            raise TrackingError(self.run_id, failures)

    def _serve(self) -> None:
        pending = _Batch()
        deadline = 0.0
        while True:
            timeout = None if pending.size == 0 else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                pending = self._send(pending)
                continue
            if isinstance(item, _Flush):
                pending = self._send(pending)
                item.done.set()
                if item.stop:
                    return
                continue
            if pending.size == 0:
                deadline = time.monotonic() + self.flush_interval
            kind, key = item[0], item[1]
            # A param logged twice with another value goes in a later batch, so that the
            # server answers the conflict instead of the batch hiding it.
            if pending.size >= self.batch_size or (
                kind == "p" and pending.params.get(key, item[2]) != item[2]
            ):
                pending = self._send(pending)
                deadline = time.monotonic() + self.flush_interval
            if item[0] == "m":
                pending.metrics.append((item[1], item[2], item[3], item[4]))
            elif item[0] == "p":
                pending.params[key] = item[2]
            else:
                pending.tags[key] = item[2]

    def _send(self, batch: _Batch) -> _Batch:
        """Send ``batch`` (retrying transient errors); record it when it fails for good."""
        if batch.size == 0:
            return batch
        metrics = [
            MetricValue(key=k, value=v, step=s, timestamp=datetime.fromtimestamp(t, UTC))
            for k, v, s, t in batch.metrics
        ]
        error: BaseException | None = None
        for attempt in range(self.retries + 1):
            try:
                self.client.run(
                    self.client.training_api.log_batch(
                        self.run_id, metrics=metrics, params=batch.params, tags=batch.tags
                    )
                )
                return _Batch()
            except TRANSIENT as exc:
                error = exc
                if attempt < self.retries:
                    time.sleep(min(self.backoff * 2**attempt, 30.0))
            except Exception as exc:
                error = exc
                break
        assert error is not None
        log.error(
            "run %s: %d logged value(s) were not stored: %s: %s",
            self.run_id,
            batch.size,
            type(error).__name__,
            error,
        )
        with self._failures_lock:
            self.failures.append((batch.size, error))
        return _Batch()


_stack: list[ActiveRun] = []
_stack_lock = threading.RLock()
_atexit_registered = False


def _end_at_exit() -> None:
    """End runs still open when the interpreter exits (innermost first)."""
    crashed = getattr(sys, "last_value", None) is not None
    status: RunStatus = "failed" if crashed else "finished"
    while True:
        with _stack_lock:
            if not _stack:
                return
            run = _stack[-1]
        try:
            run.end(status)
        except Exception as exc:
            log.error("run %s could not be ended at exit: %s", run.id, exc)
            with _stack_lock:
                if run in _stack:
                    _stack.remove(run)


def _register_exit_hook() -> None:
    """Run :func:`_end_at_exit` at interpreter exit while HTTP can still be sent.

    Plain ``atexit`` hooks run after ``concurrent.futures`` has refused new work, and the
    client resolves host names in the event loop's thread pool: a run on
    ``http://localhost:8080`` could then not be ended. ``threading``'s exit hooks run
    earlier, newest first, so this one (registered after the thread pool module's) runs
    before the pool closes. The price: it runs before non-daemon threads are joined.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_end_at_exit)
            return
        except RuntimeError:  # the interpreter is already shutting down
            pass
    atexit.register(_end_at_exit)


class ActiveRun:
    """A run being tracked; use it as a context manager (``with inwire.start_run() as run``).

    ``info`` is the run as the server created it; ``id``, ``experiment_id`` and
    ``parent_run_id`` are shortcuts.
    """

    def __init__(
        self,
        client: Client,
        info: Run,
        *,
        owns_client: bool,
        batch_size: int,
        flush_interval: float,
        max_queue: int,
        retries: int,
        backoff: float,
    ) -> None:
        self.client = client
        self.info = info
        self.id = info.id
        self.experiment_id = info.experiment_id
        self.parent_run_id = info.parent_run_id
        self.status: RunStatus = info.status
        self._owns_client = owns_client
        self._steps: dict[str, int] = {}
        self._steps_lock = threading.Lock()
        self._end_lock = threading.Lock()
        self._batcher = _Batcher(
            client,
            info.id,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue=max_queue,
            retries=retries,
            backoff=backoff,
        )

    @property
    def ended(self) -> bool:
        """Whether :meth:`end` has run."""
        return self.status in ("finished", "failed", "killed")

    # -- logging ---------------------------------------------------------------------------

    def log_metric(
        self, key: str, value: float, step: int | None = None, *, timestamp: float | None = None
    ) -> None:
        """Queue one metric value; returns at once. ``step`` defaults to the key's next step
        (0, 1, 2, ...); ``timestamp`` (seconds since the epoch) to now."""
        if not isinstance(key, str) or not key:
            raise ValueError("a metric key is a non-empty string")
        number = float(value)
        with self._steps_lock:
            if step is None:
                step = self._steps.get(key, -1) + 1
            self._steps[key] = max(step, self._steps.get(key, step))
        self._batcher.put(
            ("m", key, number, int(step), time.time() if timestamp is None else timestamp)
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Queue several metric values at the same step (each key's next step by default)."""
        stamp = time.time()
        for key, value in metrics.items():
            self.log_metric(key, value, step, timestamp=stamp)

    def log_param(self, key: str, value: Any) -> None:
        """Queue one param (``str(value)``); another value for a logged key fails the batch."""
        if not isinstance(key, str) or not key:
            raise ValueError("a param key is a non-empty string")
        self._batcher.put(("p", key, str(value)))

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Queue several params."""
        for key, value in params.items():
            self.log_param(key, value)

    def set_tag(self, key: str, value: Any) -> None:
        """Queue one tag (``str(value)``), overwriting an earlier value."""
        if not isinstance(key, str) or not key:
            raise ValueError("a tag key is a non-empty string")
        self._batcher.put(("t", key, str(value)))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Queue several tags."""
        for key, value in tags.items():
            self.set_tag(key, value)

    def log_artifact(
        self, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> StoredArtifact:
        """Upload one file now (streamed) to ``<artifact_path>/<file name>``."""
        source = Path(local_path)
        if not source.is_file():
            raise FileNotFoundError(f"no file at {source}")
        target = f"{artifact_path.strip('/')}/{source.name}" if artifact_path else source.name
        return self.client.run(self.client.training_api.upload_artifact(self.id, target, source))

    def log_artifacts(
        self, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[StoredArtifact]:
        """Upload every file under ``local_dir`` now, keeping its folders."""
        root = Path(local_dir)
        if not root.is_dir():
            raise NotADirectoryError(f"no folder at {root}")
        stored = []
        for source in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = source.relative_to(root).as_posix()
            target = f"{artifact_path.strip('/')}/{relative}" if artifact_path else relative
            stored.append(
                self.client.run(self.client.training_api.upload_artifact(self.id, target, source))
            )
        return stored

    def flush(self) -> None:
        """Wait until every value logged so far is stored; raises :class:`TrackingError` for
        values that could not be."""
        self._batcher.flush()

    # -- lifecycle -------------------------------------------------------------------------

    def end(self, status: RunStatus = "finished") -> None:
        """Flush, then mark the run ``status``; idempotent. Raises :class:`TrackingError`
        after ending the run when values were not stored."""
        with self._end_lock:
            if self.ended:
                return
            lost: TrackingError | None = None
            try:
                self._batcher.flush(stop=True)
            except TrackingError as exc:
                lost = exc
            try:
                self.client.run(self.client.training_api.update_run(self.id, status=status))
                self.status = status
            finally:
                self.status = status
                with _stack_lock:
                    if self in _stack:
                        _stack.remove(self)
                if self._owns_client:
                    self.client.close()
            if lost is not None:
                raise lost

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end("finished")
            return
        status: RunStatus = "killed" if issubclass(exc_type, KeyboardInterrupt) else "failed"
        try:
            self.end(status)
        except Exception as end_error:
            # The block's own exception propagates; this one is reported, not swallowed.
            log.error(
                "run %s: ending it after %s failed: %s", self.id, exc_type.__name__, end_error
            )

    def __repr__(self) -> str:
        return f"<ActiveRun {self.id} {self.status}>"


def _experiment_id(client: Client, name: str) -> str:
    api = client.training_api
    found: Experiment | None = client.run(api.get_experiment_by_name(name))
    if found is not None:
        return found.id
    try:
        return client.run(api.create_experiment(name)).id
    except Conflict:
        # Another process created it between our look-up and our create.
        again = client.run(api.get_experiment_by_name(name))
        if again is None:
            raise
        return again.id


def _source() -> RunSource:
    try:
        user: str | None = getpass.getuser()
    except Exception:
        user = None
    entry = sys.argv[0] if sys.argv and sys.argv[0] else None
    return RunSource(entry_point=entry[:500] if entry else None, user=user)


def start_run(
    experiment: str | None = None,
    *,
    experiment_id: str | None = None,
    run_name: str = "",
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    notes: str = "",
    nested: bool = False,
    client: Client | None = None,
    url: str | None = None,
    api_key: str | None = None,
    batch_size: int = 1000,
    flush_interval: float = 0.5,
    max_queue: int = 100_000,
    retries: int = 5,
    backoff: float = 0.5,
) -> ActiveRun:
    """Start a run at Model Training and make it the active run.

    Args:
        experiment: the experiment's name, created when missing (default
            ``$INWIRE_EXPERIMENT``, then ``"Default"``).
        experiment_id: an existing experiment's id instead of a name.
        run_name: the run's name.
        params: params logged with the run's creation.
        tags: tags set with the run's creation.
        notes: free text about the run.
        nested: start a child of the active run (its ``parent_run_id``); without it,
            starting a run while another is active is an error.
        client: the :class:`~inwire.sdk.Client` to use (a nested run defaults to its
            parent's); otherwise one is built from ``url``/``api_key``, which default to
            ``$INWIRE_URL``/``$INWIRE_API_KEY``, and closed when the run ends.
        batch_size: most values sent in one request (the server's limit is higher).
        flush_interval: seconds a logged value waits at most before it is sent.
        max_queue: values held in memory before logging calls wait for the sender.
        retries: attempts after the first for a batch that fails transiently.
        backoff: seconds before the first retry; doubles each time (at most 30 s).
    """
    global _atexit_registered
    if not 1 <= batch_size <= 100_000:
        raise ValueError("batch_size must be between 1 and 100000")
    if flush_interval <= 0 or max_queue < 1 or retries < 0 or backoff < 0:
        raise ValueError("flush_interval and max_queue must be positive, retries/backoff >= 0")
    with _stack_lock:
        parent = _stack[-1] if _stack else None
    if parent is not None and not nested:
        raise RuntimeError(
            f"run {parent.id} is already active: end it first, or pass nested=True "
            "to start a child run"
        )
    if nested and parent is None:
        raise RuntimeError("nested=True needs an active run to be the parent")
    owns = False
    if client is None and parent is not None:
        client = parent.client
    if client is None:
        client = Client(url, api_key=api_key)
        owns = True
    try:
        api = client.training_api
        if experiment_id is None:
            name = experiment or os.environ.get("INWIRE_EXPERIMENT") or DEFAULT_EXPERIMENT
            experiment_id = _experiment_id(client, name)
        info = client.run(
            api.create_run(
                experiment_id,
                name=run_name,
                parent_run_id=parent.id if parent is not None else None,
                params={k: str(v) for k, v in (params or {}).items()},
                tags={k: str(v) for k, v in (tags or {}).items()},
                notes=notes,
                source=_source(),
            )
        )
    except BaseException:
        if owns:
            client.close()
        raise
    run = ActiveRun(
        client,
        info,
        owns_client=owns,
        batch_size=batch_size,
        flush_interval=flush_interval,
        max_queue=max_queue,
        retries=retries,
        backoff=backoff,
    )
    with _stack_lock:
        _stack.append(run)
        if not _atexit_registered:
            _register_exit_hook()
            _atexit_registered = True
    return run


def active_run() -> ActiveRun | None:
    """The innermost active run, or ``None``."""
    with _stack_lock:
        return _stack[-1] if _stack else None


def _current() -> ActiveRun:
    run = active_run()
    if run is None:
        raise RuntimeError("no active run: start one with inwire.start_run()")
    return run


def end_run(status: RunStatus = "finished") -> None:
    """End the innermost active run (see :meth:`ActiveRun.end`); nothing when none is."""
    run = active_run()
    if run is not None:
        run.end(status)


def log_metric(
    key: str, value: float, step: int | None = None, *, timestamp: float | None = None
) -> None:
    """:meth:`ActiveRun.log_metric` on the active run."""
    _current().log_metric(key, value, step, timestamp=timestamp)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """:meth:`ActiveRun.log_metrics` on the active run."""
    _current().log_metrics(metrics, step)


def log_param(key: str, value: Any) -> None:
    """:meth:`ActiveRun.log_param` on the active run."""
    _current().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    """:meth:`ActiveRun.log_params` on the active run."""
    _current().log_params(params)


def set_tag(key: str, value: Any) -> None:
    """:meth:`ActiveRun.set_tag` on the active run."""
    _current().set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    """:meth:`ActiveRun.set_tags` on the active run."""
    _current().set_tags(tags)


def log_artifact(
    local_path: str | os.PathLike[str], artifact_path: str | None = None
) -> StoredArtifact:
    """:meth:`ActiveRun.log_artifact` on the active run."""
    return _current().log_artifact(local_path, artifact_path)


def log_artifacts(
    local_dir: str | os.PathLike[str], artifact_path: str | None = None
) -> list[StoredArtifact]:
    """:meth:`ActiveRun.log_artifacts` on the active run."""
    return _current().log_artifacts(local_dir, artifact_path)


def flush() -> None:
    """:meth:`ActiveRun.flush` on the active run."""
    _current().flush()
