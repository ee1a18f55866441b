"""The local runtime: model-server processes on this machine, each on its own port, kept alive.

``LocalRuntime.start_replica`` spawns ``python -m inwire.services.modelops.serving.server``
on a free port, its output appended to ``<workdir>/replicas/<replica id>.log``, and returns
once ``/ready`` answers. After ``start()``, a replica whose process dies (crash, OOM kill,
SIGKILL) is replaced: a new process for the same deployment and version, on a new port,
reported to ``on_event("replaced", new_replica)``; a replacement that fails is retried with
a growing delay. A replica that stops answering ``/health`` (three probes in a row, 5 s
apart) counts as hung: it is killed, then replaced the same way. Replica processes run in
their own session and get SIGTERM if the process holding the runtime dies (Linux).

Events given to ``on_event``: ``started``, ``failed`` (the process died or never became
ready), ``replaced``, ``stopped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from inwire.kit.ids import new_id

log = logging.getLogger(__name__)

#: Lines of a replica's log quoted when it fails.
LOG_TAIL_LINES = 20
#: Longest wait between two attempts at replacing a dead replica.
MAX_REPLACE_DELAY = 30.0
#: Seconds between two health probes of every replica (also a probe's timeout).
PROBE_INTERVAL = 5.0
#: Failed probes in a row after which a replica counts as hung and is killed.
UNRESPONSIVE_PROBES = 3


class ReplicaFailed(Exception):
    """A replica's process exited or did not become ready in time; carries its last log
    lines."""

    def __init__(self, message: str, log_tail: list[str] | None = None) -> None:
        self.log_tail = log_tail or []
        tail = "\n".join(self.log_tail)
        super().__init__(f"{message}\n{tail}" if tail else message)


@dataclass
class Replica:
    """One model-server process."""

    id: str
    deployment_id: str
    version_id: str
    port: int
    pid: int
    url: str
    state: str  # "starting" | "ready" | "failed" | "stopped"
    model_dir: Path = field(default_factory=Path)
    signature: dict[str, Any] | None = None
    log_path: Path | None = None
    #: The id of the replica this one replaced after its process died.
    replaces: str | None = None


@dataclass
class _Process:
    replica: Replica
    process: asyncio.subprocess.Process
    watcher: asyncio.Task[None] | None = None
    stopping: bool = False


def free_port(host: str) -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> list[str]:
    if path is None or not path.is_file():
        return []
    with path.open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
        return f.read().decode("utf-8", "replace").splitlines()[-lines:]


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` giving the child SIGTERM when this process dies (Linux prctl)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    set_pdeathsig = 1  # PR_SET_PDEATHSIG, <linux/prctl.h>

    def preexec() -> None:
        libc.prctl(set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return preexec


class LocalRuntime:
    """Model-server processes on this machine, by deployment."""

    def __init__(
        self,
        workdir: Path,
        *,
        host: str = "127.0.0.1",
        max_batch: int = 64,
        batch_wait_ms: float = 2.0,
        on_event: Callable[[str, Replica], None] | None = None,
        probe_interval: float = PROBE_INTERVAL,
    ) -> None:
        self.workdir = Path(workdir)
        #: Seconds between health probes (each waits as long, at least 2 s, for its answer).
        self.probe_interval = probe_interval
        self.host = host
        self.max_batch = max_batch
        self.batch_wait_ms = batch_wait_ms
        self.on_event = on_event
        self._procs: dict[str, _Process] = {}
        self._supervising = False
        self._closed = False
        #: Replacements under way, by the id of the dead replica they replace.
        self._replacing: dict[str, tuple[str, asyncio.Task[None]]] = {}
        self._prober: asyncio.Task[None] | None = None
        self._preexec = _die_with_parent()

    # -- public ---------------------------------------------------------------------------

    def replicas(self, deployment_id: str | None = None) -> list[Replica]:
        """The live replicas (starting or ready), of one deployment or of all."""
        return [
            p.replica
            for p in self._procs.values()
            if deployment_id is None or p.replica.deployment_id == deployment_id
        ]

    async def start(self) -> None:
        """Supervise: from now on a replica whose process dies is replaced, and one that
        stops answering ``/health`` (``UNRESPONSIVE_PROBES`` probes in a row) is killed and
        replaced."""
        self._supervising = True
        if self._prober is None:
            self._prober = asyncio.get_running_loop().create_task(self._probe_loop())

    async def close(self) -> None:
        """Stop every replica (and any replacement under way)."""
        self._closed = True
        self._supervising = False
        tasks = [task for _, task in self._replacing.values()]
        if self._prober is not None:
            tasks.append(self._prober)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(
            *(self.stop_replica(rid) for rid in list(self._procs)), return_exceptions=True
        )

    async def stop_deployment(self, deployment_id: str, *, grace: float = 5.0) -> None:
        """Stop every replica of a deployment and cancel its replacements under way."""
        for dead_id, (dep, task) in list(self._replacing.items()):
            if dep == deployment_id:
                task.cancel()
                self._replacing.pop(dead_id, None)
        await asyncio.gather(
            *(self.stop_replica(r.id, grace=grace) for r in self.replicas(deployment_id))
        )

    async def start_replica(
        self,
        deployment_id: str,
        version_id: str,
        model_dir: Path,
        signature: dict[str, Any] | None,
        *,
        timeout: float = 60,  # noqa: ASYNC109 - the runtime's interface (ModelOps brief)
        replaces: str | None = None,
    ) -> Replica:
        """Spawn a model server for ``model_dir`` and return it once ``/ready`` answers.

        Raises ``ReplicaFailed`` with the process' last log lines if it exits or is not
        ready within ``timeout`` seconds (the process is then killed).
        """
        if self._closed:
            raise ReplicaFailed("the runtime is closed")
        rid = new_id("rep")
        folder = self.workdir / "replicas"
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / f"{rid}.log"
        command = [
            sys.executable,
            "-m",
            "inwire.services.modelops.serving.server",
            "--model-dir",
            str(model_dir),
            "--host",
            self.host,
            "--max-batch",
            str(self.max_batch),
            "--batch-wait-ms",
            str(self.batch_wait_ms),
        ]
        if signature is not None:
            sig_path = folder / f"{rid}.signature.json"
            sig_path.write_text(json.dumps(signature))
            command += ["--signature-file", str(sig_path)]
        last_error: ReplicaFailed | None = None
        for _attempt in range(3):  # another process may take the free port before we bind it
            port = free_port(self.host)
            replica = Replica(
                id=rid,
                deployment_id=deployment_id,
                version_id=version_id,
                port=port,
                pid=0,
                url=f"http://{self.host}:{port}",
                state="starting",
                model_dir=Path(model_dir),
                signature=signature,
                log_path=log_path,
                replaces=replaces,
            )
            try:
                await self._spawn(replica, [*command, "--port", str(port)], timeout)
            except ReplicaFailed as exc:
                last_error = exc
                if not any("address already in use" in line.lower() for line in exc.log_tail):
                    break
                continue
            self._emit("started", replica)
            return replica
        assert last_error is not None
        raise last_error

    async def stop_replica(self, replica_id: str, *, grace: float = 5.0) -> None:
        """SIGTERM the replica's process, SIGKILL it after ``grace`` seconds; forget it."""
        replacing = self._replacing.pop(replica_id, None)
        if replacing is not None:  # it died and is being replaced: the replacement stops too
            replacing[1].cancel()
        proc = self._procs.pop(replica_id, None)
        if proc is None:
            return
        proc.stopping = True
        await _terminate(proc.process, grace)
        if proc.watcher is not None:
            proc.watcher.cancel()
        proc.replica.state = "stopped"
        self._emit("stopped", proc.replica)

    # -- internals ------------------------------------------------------------------------

    async def _spawn(self, replica: Replica, command: list[str], ready_within: float) -> None:
        assert replica.log_path is not None
        with replica.log_path.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                preexec_fn=self._preexec,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        replica.pid = process.pid
        proc = _Process(replica, process)
        try:
            await self._wait_ready(replica, process, ready_within)
        except BaseException:
            await _terminate(process, 0.5)
            replica.state = "failed"
            raise
        replica.state = "ready"
        self._procs[replica.id] = proc
        proc.watcher = asyncio.get_running_loop().create_task(self._watch(proc))

    async def _wait_ready(
        self, replica: Replica, process: asyncio.subprocess.Process, ready_within: float
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ready_within
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if process.returncode is not None:
                    raise ReplicaFailed(
                        f"model server exited with code {process.returncode} before ready",
                        _tail(replica.log_path),
                    )
                with contextlib.suppress(httpx.HTTPError):
                    r = await client.get(f"{replica.url}/ready")
                    if r.status_code == 200:
                        return
                if loop.time() > deadline:
                    raise ReplicaFailed(
                        f"model server not ready after {ready_within:g} s", _tail(replica.log_path)
                    )
                await asyncio.sleep(0.05)

    async def _watch(self, proc: _Process) -> None:
        code = await proc.process.wait()
        if proc.stopping or self._procs.get(proc.replica.id) is not proc:
            return
        del self._procs[proc.replica.id]
        proc.replica.state = "failed"
        log.warning(
            "model server %s (deployment %s) exited with code %s",
            proc.replica.id,
            proc.replica.deployment_id,
            code,
        )
        self._emit("failed", proc.replica)
        if self._supervising and not self._closed:
            dead = proc.replica
            task = asyncio.get_running_loop().create_task(self._replace(dead))
            self._replacing[dead.id] = (dead.deployment_id, task)
            task.add_done_callback(lambda _: self._replacing.pop(dead.id, None))

    async def _replace(self, dead: Replica) -> None:
        delay = 0.5
        while self._supervising and not self._closed:
            try:
                new = await self.start_replica(
                    dead.deployment_id,
                    dead.version_id,
                    dead.model_dir,
                    dead.signature,
                    replaces=dead.id,
                )
            except ReplicaFailed as exc:
                log.warning("replacing model server %s failed: %s", dead.id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_REPLACE_DELAY)
                continue
            self._emit("replaced", new)
            return

    async def _probe_loop(self) -> None:
        """Kill replicas whose ``/health`` no longer answers (a hung process); their
        watcher then replaces them."""
        misses: dict[str, int] = {}
        async with httpx.AsyncClient(timeout=max(2.0, self.probe_interval)) as client:
            while True:
                await asyncio.sleep(self.probe_interval)
                live = list(self._procs.values())
                answers = await asyncio.gather(
                    *(client.get(f"{p.replica.url}/health") for p in live),
                    return_exceptions=True,
                )
                for proc, answer in zip(live, answers, strict=True):
                    rid = proc.replica.id
                    if isinstance(answer, httpx.Response) and answer.status_code == 200:
                        misses.pop(rid, None)
                        continue
                    misses[rid] = misses.get(rid, 0) + 1
                    if misses[rid] >= UNRESPONSIVE_PROBES and not proc.stopping:
                        log.warning("model server %s stopped answering: killing it", rid)
                        misses.pop(rid, None)
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(proc.process.pid, signal.SIGKILL)
                for rid in set(misses) - set(self._procs):
                    misses.pop(rid, None)

    def _emit(self, event: str, replica: Replica) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event, replica)
        except Exception:
            log.exception("on_event(%r) failed for replica %s", event, replica.id)


async def _terminate(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM ``process`` (its whole session), SIGKILL after ``grace`` seconds."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
