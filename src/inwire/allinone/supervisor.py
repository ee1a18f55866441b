"""``inwire up``: every registered service in its own process, kept running.

Each service runs as a child process (uvicorn, see ``inwire.allinone.serve``) on its port,
with its output appended to ``$INWIRE_HOME/logs/<service>.log``. The supervisor waits for
each ``/health/ready``, prints where everything listens, restarts a child that exits with
exponential backoff, and on SIGINT/SIGTERM stops every child (SIGTERM, then SIGKILL after a
grace period). Children run in their own session, so a terminal's Ctrl-C reaches only the
supervisor, which then stops them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from inwire.allinone.serve import child_command
from inwire.services.registry import ServiceSpec, with_gateway

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def inwire_home(environ: Mapping[str, str] | None = None) -> Path:
    """``$INWIRE_HOME``, or ``~/.inwire``: the same rule the services' settings apply."""
    env = os.environ if environ is None else environ
    return Path(env.get("INWIRE_HOME") or "~/.inwire").expanduser()


def credentials_path(home: Path) -> Path:
    """Where Core writes the first admin's credentials on its first start."""
    return home / "credentials"


class PortInUse(RuntimeError):
    """A service's port is taken before the supervisor started it."""


def port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (with SO_REUSEADDR, as uvicorn binds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Backoff:
    """Delay before restarting a child: ``initial * factor**(n-1)`` after the n-th crash in
    a row, capped at ``maximum``; a child that ran ``reset_after`` seconds starts over."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    reset_after: float = 60.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive crashes (``failures`` ≥ 1)."""
        exponent = max(failures, 1) - 1
        return float(min(self.initial * self.factor**exponent, self.maximum))


class ServiceState(enum.StrEnum):
    """Where a supervised service is in its life."""

    STARTING = "starting"
    READY = "ready"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass
class SupervisedService:
    """A registered service, its child process and its restart history."""

    spec: ServiceSpec
    host: str
    port: int
    log_path: Path
    state: ServiceState = ServiceState.STOPPED
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures: int = 0
    last_exit: int | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        """Base URL the service answers on."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = "[::1]" if host == "::" else (f"[{host}]" if ":" in host else host)
        return f"http://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The running child's process id."""
        if self.process is None or self.process.returncode is not None:
            return None
        return self.process.pid

    @property
    def status(self) -> str:
        """Human-readable state for the status table."""
        if self.state is ServiceState.RESTARTING and self.last_exit is not None:
            return f"restarting (exit {self.last_exit})"
        return str(self.state)


def _pdeathsig_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to SIGTERM the child when the supervisor dies.

    libc is loaded here, in the parent: between fork and exec the child must not import.
    """
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigterm = int(signal.SIGTERM)

    def hook() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return hook


def _signal_group(process: asyncio.subprocess.Process, sig: int) -> None:
    # The child leads its own process group (start_new_session), so this reaches anything it
    # started too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


_START_MARKER = "--- inwire up: starting "


def _tail(path: Path, lines: int = 8) -> list[str]:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(fh.tell() - 8192, 0))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    # Only this run's lines: each start writes a marker line first.
    run = text.rpartition(_START_MARKER)[2].splitlines()[1:]
    return run[-lines:]


class Supervisor:
    """Starts, watches, restarts and stops one child process per service.

    Use ``async with Supervisor(services) as sup:`` (start and wait for readiness, stop on
    exit) or ``await sup.run()`` (the same, until SIGINT/SIGTERM).
    """

    def __init__(
        self,
        services: Sequence[ServiceSpec],
        *,
        host: str = "127.0.0.1",
        home: Path | None = None,
        backoff: Backoff | None = None,
        ready_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        env: Mapping[str, str] | None = None,
        python: str | None = None,
        console: Console | None = None,
    ) -> None:
        self.home = home or inwire_home()
        self.host = host
        self.backoff = backoff or Backoff()
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.python = python or sys.executable
        self.console = console
        self._env = {
            **os.environ,
            **(env or {}),
            "INWIRE_HOME": str(self.home),
            "PYTHONUNBUFFERED": "1",
        }
        self.services: dict[str, SupervisedService] = {
            spec.name: SupervisedService(
                spec=spec,
                host=host,
                port=spec.configured_port(self._env),
                log_path=self.home / "logs" / f"{spec.name}.log",
            )
            for spec in with_gateway(services)
        }
        core = self.services.get("core")
        if core is not None and "INWIRE_JWKS_URL" not in self._env:
            # Every other service verifies tokens with Core's keys: tell them where Core
            # listens when its port is not the default one their settings assume.
            self._env["INWIRE_JWKS_URL"] = f"{core.url}/.well-known/jwks.json"
        # The same for the peers services call (``core_url``, ``synthex_url``,
        # ``modelops_url``…): platform-wide ``INWIRE_<SERVICE>_URL`` variables, which every
        # service's settings read, unless the environment already names them.
        for name, service in self.services.items():
            if name != "gateway":
                self._env.setdefault(f"INWIRE_{name.upper()}_URL", service.url)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._stop_requested: asyncio.Event | None = None
        self._preexec = _pdeathsig_hook()

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> bool:
        """Start every service and wait up to ``ready_timeout`` for each to be ready.

        Returns whether all are ready; the ones that are not keep being supervised.
        Raises ``PortInUse`` (starting nothing) when a port is already taken.
        """
        taken = [s for s in self.services.values() if not port_is_free(s.host, s.port)]
        if taken:
            raise PortInUse(
                "port(s) already in use: "
                + ", ".join(f"{s.spec.name} {s.host}:{s.port}" for s in taken)
                + " (is Inwire already running?)"
            )
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._supervise(svc), name=f"supervise-{name}")
            for name, svc in self.services.items()
        ]
        try:
            async with asyncio.timeout(self.ready_timeout):
                await self.wait_ready()
        except TimeoutError:
            return False
        return True

    async def wait_ready(self) -> None:
        """Wait until every service is ready (bound it with ``asyncio.timeout``)."""
        await asyncio.gather(*(svc.ready.wait() for svc in self.services.values()))

    async def stop(self) -> None:
        """Stop every child: SIGTERM, then SIGKILL after ``stop_timeout`` seconds."""
        self._stopping = True
        if self._stop_requested is not None:
            self._stop_requested.set()
        for svc in self.services.values():
            if svc.process is not None and svc.process.returncode is None:
                svc.state = ServiceState.STOPPING
                _signal_group(svc.process, signal.SIGTERM)
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.stop_timeout)
            if pending:
                for svc in self.services.values():
                    if svc.process is not None and svc.process.returncode is None:
                        self._say(f"[red]{svc.spec.name} did not stop in time; killing it")
                        _signal_group(svc.process, signal.SIGKILL)
                await asyncio.wait(pending, timeout=self.stop_timeout)
            for task in self._tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for svc in self.services.values():
            svc.state = ServiceState.STOPPED
            svc.ready.clear()

    def kill_now(self) -> None:
        """SIGKILL every child at once (a second Ctrl-C)."""
        self._stopping = True
        for svc in self.services.values():
            if svc.process is not None and svc.process.returncode is None:
                _signal_group(svc.process, signal.SIGKILL)

    async def __aenter__(self) -> Supervisor:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def run(self) -> int:
        """Start, print the status table, supervise until SIGINT/SIGTERM, stop; exit code."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals > 1:
                self.kill_now()
            stop.set()

        handled = (signal.SIGINT, signal.SIGTERM)
        for sig in handled:
            loop.add_signal_handler(sig, on_signal)
        try:
            try:
                await self.start()
            except PortInUse as exc:
                self._say(f"[red]{exc}")
                return 1
            if self.console is not None:
                self.console.print(self.status_table())
                self.console.print(self.footer())
            await stop.wait()
            self._say("Stopping…")
            await self.stop()
            self._say("Stopped.")
            return 0
        finally:
            if self._tasks:
                await self.stop()
            for sig in handled:
                loop.remove_signal_handler(sig)

    # -- one child ------------------------------------------------------------------------

    async def _spawn(self, svc: SupervisedService) -> asyncio.subprocess.Process:
        argv = child_command(svc.spec, python=self.python, host=svc.host, port=svc.port)
        with svc.log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            log.write(f"{_START_MARKER}{svc.spec.name} at {stamp}\n".encode())
            log.flush()
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=self._env,
                cwd=str(self.home),
                start_new_session=True,
                preexec_fn=self._preexec,
            )
        svc.process = process
        svc.state = ServiceState.STARTING
        return process

    async def _await_ready(
        self, svc: SupervisedService, process: asyncio.subprocess.Process
    ) -> bool:
        """Poll ``/health/ready`` until it answers 200 (True) or the child exits (False)."""
        import httpx

        url = f"{svc.url}/health/ready"
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            while process.returncode is None and not self._stopping:
                try:
                    response = await client.get(url)
                    if response.status_code == 200:
                        return process.returncode is None
                except httpx.HTTPError:
                    pass
                # The event loop's child watcher sets returncode when the child exits.
                await asyncio.sleep(0.2)
        return False

    async def _supervise(self, svc: SupervisedService) -> None:
        name = svc.spec.name
        while not self._stopping:
            code = await self._run_once(svc)
            svc.ready.clear()
            svc.last_exit = code
            if self._stopping:
                break
            lived = time.monotonic() - svc.started_at
            svc.failures = 1 if lived >= self.backoff.reset_after else svc.failures + 1
            delay = self.backoff.delay(svc.failures)
            svc.state = ServiceState.RESTARTING
            self._say(
                f"[yellow]{name} exited with code {code} after {lived:.1f}s; "
                f"restarting in {delay:.1f}s (log: {svc.log_path})"
            )
            # A child that exited by itself (not killed by a signal) usually says why last.
            for line in _tail(svc.log_path) if code is not None and code > 0 else ():
                self._say(f"  [dim]{name}[/dim] | {line}", markup_line=True)
            assert self._stop_requested is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), delay)
            svc.restarts += 1

    async def _run_once(self, svc: SupervisedService) -> int | None:
        """Start the child, mark it ready when it is, and return its exit code."""
        svc.started_at = time.monotonic()
        try:
            process = await self._spawn(svc)
        except OSError as exc:
            self._say(f"[red]{svc.spec.name} could not start: {exc}")
            return None
        if self._stopping:
            _signal_group(process, signal.SIGTERM)
        elif await self._await_ready(svc, process):
            svc.state = ServiceState.READY
            svc.ready.set()
            if svc.restarts:
                self._say(f"[green]{svc.spec.name} is ready again at {svc.url}")
        return await process.wait()

    # -- output ---------------------------------------------------------------------------

    def _say(self, message: str, *, markup_line: bool = False) -> None:
        if self.console is None:
            return
        if markup_line:
            from rich.markup import escape

            head, sep, rest = message.partition(" | ")
            self.console.print(head + sep + escape(rest), highlight=False)
        else:
            self.console.print(message, highlight=False)

    def status_table(self) -> Table:
        """Service, URL, status, process id and log file of every service."""
        return status_table(
            [
                (svc.spec.name, svc.url, svc.status, str(svc.pid or "-"), str(svc.log_path))
                for svc in self.services.values()
            ],
            columns=("Service", "URL", "Status", "PID", "Log"),
        )

    def footer(self) -> str:
        """Where the admin credentials are, and how to stop."""
        return footer_text(self.home, [s.spec for s in self.services.values()])


def status_table(rows: Sequence[Sequence[str]], *, columns: Sequence[str]) -> Table:
    """A Rich table of services; the status cell is green when ``ready``."""
    from rich.table import Table

    table = Table(title="Inwire", title_justify="left")
    for column in columns:
        table.add_column(column, no_wrap=column in ("URL", "Service"))
    for row in rows:
        cells = list(row)
        status_at = list(columns).index("Status") if "Status" in columns else -1
        if status_at >= 0:
            colour = "green" if cells[status_at] == "ready" else "yellow"
            cells[status_at] = f"[{colour}]{cells[status_at]}[/{colour}]"
        table.add_row(*cells)
    return table


def footer_text(home: Path, services: Sequence[ServiceSpec]) -> str:
    """The lines printed under the table."""
    lines = [f"Data: {home}"]
    if any(spec.name == "core" for spec in services):
        credentials = credentials_path(home)
        note = "" if credentials.exists() else " (written by Core on its first start)"
        lines.append(f"Admin credentials: {credentials}{note}")
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)
