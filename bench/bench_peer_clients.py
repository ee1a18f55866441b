"""Which HTTP client should ``inwire.kit.peers.ServiceClient`` use: httpx or aiohttp?

Starts a minimal uvicorn server (raw ASGI app answering a small ``{"data", "meta"}``
envelope, like a peer service would) on 127.0.0.1 in a subprocess, then measures GET
throughput from this process with ``httpx.AsyncClient`` and ``aiohttp.ClientSession``, both
reusing connections:

- sequential: one request at a time (latency-bound, what most peer calls look like);
- concurrent: ``--concurrency`` requests in flight (fan-out, gateway-like load).

Each client runs a fixed number of requests per round (after a warm-up), rounds alternate
between the clients, and the best round is reported next to the client's own CPU time
per request (the part of the cost the client library is responsible for). Prints a table
and writes JSON to ``bench/results/peer_clients.json``.

    uv run python bench/bench_peer_clients.py [--sequential 2000] [--concurrent 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx

RESULTS = Path(__file__).parent / "results" / "peer_clients.json"
PATH = "/api/v1/items/it_01"
BODY = json.dumps(
    {"data": {"id": "it_01", "name": "example", "tags": ["a", "b"]}, "meta": {}}
).encode()


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The peer: answers every HTTP request with the same small JSON envelope."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def serve(port: int) -> None:
    """Run the peer server in this (child) process until killed."""
    import uvicorn

    uvicorn.run(_asgi_app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_listening(port: int, deadline_s: float = 15.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"peer server did not listen on port {port}")


Get = Callable[[], Awaitable[None]]


async def _sequential(get: Get, n: int) -> dict[str, float]:
    latencies: list[float] = []
    cpu0, t0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        s = time.perf_counter()
        await get()
        latencies.append(time.perf_counter() - s)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    latencies.sort()
    return {
        "requests": n,
        "seconds": wall,
        "req_per_s": n / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(0.99 * (n - 1))] * 1000,
        "client_cpu_us_per_req": cpu / n * 1e6,
    }


async def _concurrent(get: Get, n: int, concurrency: int) -> dict[str, float]:
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await get()

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "requests": n,
        "concurrency": concurrency,
        "seconds": wall,
        "req_per_s": n / wall,
        "client_cpu_us_per_req": cpu / n * 1e6,
    }


async def _run(args: argparse.Namespace, url: str) -> dict[str, dict[str, list[dict[str, float]]]]:
    limit = max(args.concurrency, 10)
    hx = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
        timeout=10.0,
    )
    ah = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit),
        timeout=aiohttp.ClientTimeout(total=10.0),
    )

    async def httpx_get() -> None:
        r = await hx.get(url)
        r.raise_for_status()
        r.json()

    async def aiohttp_get() -> None:
        async with ah.get(url) as r:
            r.raise_for_status()
            json.loads(await r.read())

    clients: dict[str, Get] = {"httpx": httpx_get, "aiohttp": aiohttp_get}
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        name: {"sequential": [], "concurrent": []} for name in clients
    }
    try:
        for get in clients.values():  # warm-up: open the pools, fill caches
            await _concurrent(get, args.warmup, args.concurrency)
        for round_no in range(args.rounds):
            order = list(clients.items())
            if round_no % 2:  # alternate who goes first, so drift hurts both alike
                order.reverse()
            for name, get in order:
                results[name]["sequential"].append(await _sequential(get, args.sequential))
                results[name]["concurrent"].append(
                    await _concurrent(get, args.concurrent, args.concurrency)
                )
    finally:
        await hx.aclose()
        await ah.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequential", type=int, default=2000, help="requests per round")
    parser.add_argument("--concurrent", type=int, default=10000, help="requests per round")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--uvloop", action="store_true", help="run the clients on uvloop")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        _wait_until_listening(port)
        url = f"http://127.0.0.1:{port}{PATH}"
        if args.uvloop:
            import uvloop

            results = uvloop.run(_run(args, url))
        else:
            results = asyncio.run(_run(args, url))
    finally:
        server.terminate()
        server.wait(timeout=10)

    best = {
        name: {mode: max(rounds, key=lambda r: r["req_per_s"]) for mode, rounds in modes.items()}
        for name, modes in results.items()
    }
    loop_name = "uvloop" if args.uvloop else "asyncio"
    print(
        f"\nGET {PATH} on 127.0.0.1, uvicorn+httptools server, client loop {loop_name}, "
        f"best of {args.rounds} rounds"
    )
    header = (
        f"{'client':<8} {'mode':<22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'client CPU us/req':>18}"
    )
    print(header)
    print("-" * len(header))
    for name, modes in best.items():
        for mode, r in modes.items():
            label = mode if mode == "sequential" else f"concurrent ({args.concurrency})"
            p50 = f"{r['p50_ms']:.3f}" if "p50_ms" in r else "-"
            p99 = f"{r['p99_ms']:.3f}" if "p99_ms" in r else "-"
            print(
                f"{name:<8} {label:<22} {r['req_per_s']:>9.0f} {p50:>8} {p99:>8} "
                f"{r['client_cpu_us_per_req']:>18.1f}"
            )
    for mode in ("sequential", "concurrent"):
        ratio = best["aiohttp"][mode]["req_per_s"] / best["httpx"][mode]["req_per_s"]
        print(f"aiohttp / httpx, {mode}: {ratio:.2f}x")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "peer_clients",
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "client_loop": loop_name,
                "versions": {"httpx": httpx.__version__, "aiohttp": aiohttp.__version__},
                "params": {
                    k: getattr(args, k)
                    for k in ("sequential", "concurrent", "concurrency", "rounds", "warmup")
                },
                "best": best,
                "rounds": results,
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
