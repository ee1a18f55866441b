"""What does the gateway cost? An authenticated GET through it against the same GET direct.

Core and the gateway are started for real, each in its own process the way ``inwire up``
runs them (``python -m inwire.allinone.serve``, uvicorn, on free ports of 127.0.0.1, a
temporary ``INWIRE_HOME``, SQLite). The subject is ``GET /core/api/v1/auth/me`` through the
gateway with a bearer JWT from a real login (the gateway verifies it, spends the caller's
rate-limit budget, streams the call to Core and the answer back); the baseline is
``GET /api/v1/auth/me`` on Core's own port with the same token, in the same run. A third
row sends an API key to the gateway instead (exchanged once, then cached); a fourth goes
through Traefik in front (`inwire gateway traefik-config`: Traefik routes to Core and asks
the gateway by ForwardAuth).

For each ``--concurrency`` an aiohttp client (keep-alive, one connection per worker) sends at
most ``--requests`` requests and for at most ``--seconds`` seconds after ``--warmup``
requests; direct and gateway rounds alternate, ``--rounds`` times, and the best round of
each counts. Reported: req/s, p50/p99 latency, gateway/direct throughput, the latency the
gateway adds at p50, and the CPU time Core and the gateway spent per request (from
``/proc``, so it holds even when the machine is busy with other work). Goal (issue 3):
>= 50 % of direct throughput and <= 2 ms added at p50. The gateway runs with its
defaults (access log and in-memory rate limiting on) except budgets raised out of the
way. Prints a table and writes ``bench/results/gateway.json``.

    uv run python bench/bench_gateway.py [--requests 3000] [--seconds 10] [--concurrency 1,32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import httpx

from inwire.gateway.routes import Upstream
from inwire.gateway.traefik import dynamic_config

RESULTS = Path(__file__).parent / "results" / "gateway.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(name: str, factory: str, settings: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "inwire.allinone.serve",
        "--name",
        name,
        "--factory",
        factory,
        "--settings",
        settings,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready within {timeout} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def started(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process, stopped (SIGTERM, then SIGKILL) whatever happens."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@dataclass
class Round:
    target: str
    concurrency: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    core_cpu_us: float = 0.0
    gateway_cpu_us: float = 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    target: str,
    url: str,
    headers: dict[str, str],
    *,
    concurrency: int,
    requests: int,
    seconds: float,
    warmup: int,
) -> Round:
    """``requests`` GETs (at most ``seconds``) from ``concurrency`` keep-alive workers."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            nonlocal errors
            begin = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - begin)

        for _ in range(warmup):
            await one()
        latencies.clear()
        errors = 0
        left = requests
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal left
            while left > 0 and time.perf_counter() < deadline:
                left -= 1
                await one()

        begin = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - begin
    latencies.sort()
    done = len(latencies)
    return Round(
        target=target,
        concurrency=concurrency,
        requests=done,
        seconds=round(elapsed, 3),
        rps=round(done / elapsed, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 3),
        p99_ms=round(latencies[min(done - 1, int(done * 0.99))] * 1000, 3),
        errors=errors,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    with tempfile.TemporaryDirectory(prefix="inwire-bench-gw-") as tmp:
        home = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("INWIRE_")}
        env.update(
            INWIRE_HOME=str(home),
            INWIRE_CORE_BOOTSTRAP="true",
            INWIRE_CORE_LOG_LEVEL="WARNING",
            INWIRE_CORE_LOGIN_ATTEMPTS_PER_IP="100000",
            INWIRE_GATEWAY_LOG_LEVEL="INFO",
            INWIRE_GATEWAY_RATE_LIMIT='{"rate": 1000000, "burst": 1000000}',
            INWIRE_GATEWAY_ANONYMOUS_RATE_LIMIT='{"rate": 1000000, "burst": 1000000}',
            PYTHONUNBUFFERED="1",
        )
        core_port, gateway_port = free_port(), free_port()
        core_url = f"http://127.0.0.1:{core_port}"
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        env["INWIRE_GATEWAY_UPSTREAMS"] = json.dumps({"core": core_url})
        core_argv = serve_command(
            "core",
            "inwire.services.core.app:create_app",
            "inwire.services.core.settings:CoreSettings",
            core_port,
        )
        gateway_argv = serve_command(
            "gateway",
            "inwire.gateway.app:create_app",
            "inwire.gateway.settings:GatewaySettings",
            gateway_port,
        )
        traefik_port = free_port()
        traefik_url = f"http://127.0.0.1:{traefik_port}"
        dynamic = home / "traefik.yaml"
        dynamic.write_text(
            json.dumps(  # JSON is YAML, which Traefik's file provider reads
                dynamic_config(
                    [Upstream("core", "/core", core_url)],
                    gateway_url=gateway_url,
                    rate_average=1_000_000,
                    rate_burst=1_000_000,
                )
            )
        )
        traefik_argv = [
            shutil.which("traefik") or str(Path(sys.executable).with_name("traefik")),
            f"--entryPoints.web.address=127.0.0.1:{traefik_port}",
            f"--providers.file.filename={dynamic}",
            "--log.level=ERROR",
        ]
        with (
            started(core_argv, env, home / "core.log") as core,
            started(gateway_argv, env, home / "gateway.log") as gateway,
            started(traefik_argv, env, home / "traefik.log") as traefik,
        ):
            wait_ready(f"{core_url}/health/ready", core, home / "core.log")
            wait_ready(f"{gateway_url}/health/ready", gateway, home / "gateway.log")
            wait_ready(f"{traefik_url}/core/health", traefik, home / "traefik.log")
            credentials = json.loads((home / "credentials").read_text())
            login = httpx.post(
                f"{core_url}/api/v1/auth/login",
                json={"email": credentials["email"], "password": credentials["password"]},
                trust_env=False,
            )
            login.raise_for_status()
            bearer = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
            created = httpx.post(
                f"{core_url}/api/v1/api-keys",
                json={"name": "bench", "role": "member"},
                headers=bearer,
                trust_env=False,
            )
            created.raise_for_status()
            api_key = {"X-API-Key": created.json()["data"]["key"]}

            targets = [
                ("direct", f"{core_url}/api/v1/auth/me", bearer),
                ("gateway", f"{gateway_url}/core/api/v1/auth/me", bearer),
                ("gateway+key", f"{gateway_url}/core/api/v1/auth/me", api_key),
                # Traefik in front: routes to Core itself, asks the gateway (ForwardAuth).
                ("traefik", f"{traefik_url}/core/api/v1/auth/me", bearer),
            ]
            best: dict[tuple[str, int], Round] = {}
            for level in levels:
                for _ in range(args.rounds):
                    for name, url, headers in targets:
                        before = cpu_seconds(core.pid), cpu_seconds(gateway.pid)
                        result = asyncio.run(
                            measure(
                                name,
                                url,
                                headers,
                                concurrency=level,
                                requests=args.requests,
                                seconds=args.seconds,
                                warmup=args.warmup,
                            )
                        )
                        # Warm-up requests are counted too: CPU per request over all of them.
                        sent = result.requests + args.warmup
                        result.core_cpu_us = round(
                            (cpu_seconds(core.pid) - before[0]) / sent * 1e6, 1
                        )
                        result.gateway_cpu_us = round(
                            (cpu_seconds(gateway.pid) - before[1]) / sent * 1e6, 1
                        )
                        if result.errors:
                            raise SystemExit(f"{name}: {result.errors} non-200 answers")
                        key = (name, level)
                        if key not in best or result.rps > best[key].rps:
                            best[key] = result

    rows = []
    print(
        f"\n{'target':<13}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'vs direct':>11}{'+p50 ms':>9}"
    )
    for level in levels:
        direct = best[("direct", level)]
        for name, _, _ in targets:
            r = best[(name, level)]
            ratio = r.rps / direct.rps
            added = r.p50_ms - direct.p50_ms
            rows.append(
                {**asdict(r), "throughput_ratio": round(ratio, 3), "added_p50_ms": round(added, 3)}
            )
            print(
                f"{name:<13}{level:>6}{r.rps:>10.0f}{r.p50_ms:>9.3f}{r.p99_ms:>9.3f}"
                f"{ratio:>10.0%}{added:>9.3f}"
            )
    goal = {
        "throughput_ratio_min": 0.5,
        "added_p50_ms_max": 2.0,
        "met": all(
            row["throughput_ratio"] >= 0.5 and row["added_p50_ms"] <= 2.0
            for row in rows
            if row["target"] == "gateway"
        ),
    }
    print(
        f"\nGoal (gateway >= 50% of direct req/s, <= 2 ms added at p50): "
        f"{'met' if goal['met'] else 'NOT met'}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "gateway",
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                },
                "parameters": vars(args),
                "results": rows,
                "goal": goal,
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
