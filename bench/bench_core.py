"""How fast is Core's authentication, next to a named baseline measured in the same run?

1. JWT verification, in process: Inwire's ``TokenVerifier.verify`` (EdDSA, key from a
   ``JWKSKeySource`` with a warm cache) against the floor, a bare PyJWT ``jwt.decode`` of
   the same token with the same key and checks, and against an RS256 (RSA-2048) token
   decoded by PyJWT, the default of most other identity providers (e.g. Keycloak).
2. Login latency: Core started for real (uvicorn subprocess on 127.0.0.1, bootstrap admin,
   production argon2id cost), ``--logins`` sequential ``POST /api/v1/auth/login`` against
   the argon2id verify alone with the same parameters, so the ratio is the HTTP + database
   + token overhead on top of the deliberately slow hash.
3. Authenticated GET throughput: ``GET /api/v1/auth/me`` with a bearer token from the login
   against ``GET /health`` (no auth, no database) on the same server, with 1 and 32
   concurrent aiohttp clients (keep-alive), at most ``--requests`` requests and
   ``--seconds`` seconds per measurement.

Steps 2 and 3 run on SQLite (Core's default) and, when ``INWIRE_BENCH_POSTGRES_URL`` is set
(e.g. ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``), again on PostgreSQL in a
fresh database (or, without CREATE DATABASE rights, a fresh schema) dropped afterwards.
Prints a table and writes JSON to ``bench/results/core.json``.

    uv run python bench/bench_core.py [--logins 50] [--requests 3000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from inwire.kit.auth.tokens import (
    LEEWAY_SECONDS,
    JWKSKeySource,
    TokenVerifier,
    public_jwk,
    sign_token,
)
from inwire.services.core.settings import CoreSettings

RESULTS = Path(__file__).parent / "results" / "core.json"
ISSUER = AUDIENCE = "inwire"
REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti"]
HEALTH, ME, LOGIN = "/health", "/api/v1/auth/me", "/api/v1/auth/login"
STARTUP_TIMEOUT_S = 90.0
REQUEST_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------- helpers


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[int(q * (len(sorted_values) - 1))]


def _latency_stats(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "n": len(ms),
        "p50_ms": statistics.median(ms),
        "p95_ms": _percentile(ms, 0.95),
        "p99_ms": _percentile(ms, 0.99),
        "mean_ms": statistics.fmean(ms),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the benchmark dies without cleaning up (Linux only)."""
    if sys.platform == "linux":
        import ctypes

        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _git_revision() -> str:
    """The commit the code was run at, ``+dirty`` when the work tree has changes."""
    try:
        rev = subprocess.run(
            ["git", "describe", "--always", "--dirty=+dirty"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev.stdout.strip()


def _on_sigterm(signum: int, _frame: Any) -> None:
    # Turn SIGTERM (e.g. a CI timeout) into SystemExit so every ``finally`` stops the server.
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------- 1. JWT


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "usr_01BENCH",
        "org": "org_01BENCH",
        "roles": ["owner"],
        "kind": "user",
        "name": "admin@inwire.local",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
    }


async def bench_jwt(n: int, rounds: int) -> dict[str, Any]:
    """Verifications per second of Inwire's verifier, bare PyJWT EdDSA and PyJWT RS256."""
    ed_private = ed25519.Ed25519PrivateKey.generate()
    ed_public = ed_private.public_key()
    kid = "key_bench"
    jwks = {"keys": [public_jwk(ed_public, kid)]}
    fetches = 0

    async def fetch() -> dict[str, Any]:
        nonlocal fetches
        fetches += 1
        return jwks

    ed_token = sign_token(ed_private, kid, _claims())
    rsa_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_public = rsa_private.public_key()
    rsa_token = jwt.encode(_claims(), rsa_private, algorithm="RS256", headers={"kid": "rsa"})

    verifier = TokenVerifier(
        JWKSKeySource("bench:jwks", fetch=fetch, ttl=3600, min_refresh_interval=60),
        issuer=ISSUER,
        audience=AUDIENCE,
    )
    await verifier.verify(ed_token)  # warm the JWKS cache

    def decode(token: str, key: Any, alg: str) -> dict[str, Any]:
        # The same checks TokenVerifier asks PyJWT for.
        return jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED},
        )

    async def ours() -> None:
        for _ in range(n):
            await verifier.verify(ed_token)

    async def eddsa() -> None:
        for _ in range(n):
            decode(ed_token, ed_public, "EdDSA")

    async def rs256() -> None:
        for _ in range(n):
            decode(rsa_token, rsa_public, "RS256")

    def signed_parts(token: str) -> tuple[bytes, bytes]:
        signing_input, _, sig = token.rpartition(".")
        return signing_input.encode(), base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))

    ed_input, ed_sig = signed_parts(ed_token)
    rsa_input, rsa_sig = signed_parts(rsa_token)
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

    async def ed_signature_only() -> None:
        for _ in range(n):
            ed_public.verify(ed_sig, ed_input)

    async def rsa_signature_only() -> None:
        for _ in range(n):
            rsa_public.verify(rsa_sig, rsa_input, pkcs1, sha256)

    variants: dict[str, Callable[[], Awaitable[None]]] = {
        "inwire_eddsa": ours,
        "pyjwt_eddsa": eddsa,
        "pyjwt_rs256": rs256,
        "crypto_ed25519": ed_signature_only,
        "crypto_rsa2048": rsa_signature_only,
    }
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for round_no in range(rounds):
        order = list(variants.items())
        if round_no % 2:
            order.reverse()
        for name, run in order:
            t0 = time.perf_counter()
            await run()
            runs[name].append(n / (time.perf_counter() - t0))
    assert fetches == 1, f"JWKS fetched {fetches} times; the cache was not warm"
    best = {name: max(rates) for name, rates in runs.items()}
    return {
        "verifications_per_round": n,
        "rounds": runs,
        "best_per_s": best,
        "ratio_ours_over": {
            name: best["inwire_eddsa"] / rate
            for name, rate in best.items()
            if name != "inwire_eddsa"
        },
        "token_bytes": {"eddsa": len(ed_token), "rs256": len(rsa_token)},
    }


# --------------------------------------------------------------------------- server


class CoreServer:
    """Core under uvicorn in a subprocess, stopped (group included) on exit."""

    def __init__(self, home: Path, extra_env: dict[str, str]) -> None:
        self.home = home
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("INWIRE_")}
        env.update(
            {
                "INWIRE_HOME": str(home),
                "INWIRE_CORE_BOOTSTRAP": "true",
                "INWIRE_CORE_LOGIN_ATTEMPTS_PER_ACCOUNT": "1000000",
                "INWIRE_CORE_LOGIN_ATTEMPTS_PER_IP": "1000000",
                "INWIRE_CORE_LOG_LEVEL": "WARNING",
                **extra_env,
            }
        )
        self.env = env
        self.log_path = home / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "inwire.services.core.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        log = self.log_path.open("wb")
        try:
            self.proc = subprocess.Popen(
                argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()

    async def wait_ready(self) -> None:
        """Until /health/ready answers 200 and the bootstrap credentials exist."""
        assert self.proc is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        timeout = aiohttp.ClientTimeout(total=2.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"Core exited with {self.proc.returncode}\n{self.log_tail()}"
                    )
                try:
                    async with session.get(self.base + "/health/ready") as r:
                        if r.status == 200 and (self.home / "credentials").exists():
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"Core not ready after {STARTUP_TIMEOUT_S:.0f}s\n{self.log_tail()}")

    def credentials(self) -> dict[str, str]:
        values: dict[str, str] = json.loads((self.home / "credentials").read_text())
        return values

    def cpu_seconds(self) -> float | None:
        return _cpu_seconds(self.proc.pid) if self.proc else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass


@asynccontextmanager
async def running_core(extra_env: dict[str, str]) -> AsyncIterator[CoreServer]:
    with tempfile.TemporaryDirectory(prefix="inwire-bench-core-") as tmp:
        server = CoreServer(Path(tmp), extra_env)
        try:
            server.start()
            await server.wait_ready()
            yield server
        finally:
            server.stop()


@asynccontextmanager
async def postgres_database(url: str) -> AsyncIterator[tuple[dict[str, str], str]]:
    """A fresh database (or schema) for Core on the server of ``url``, dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import create_async_engine

    base = make_url(url)
    name = f"inwire_bench_{secrets.token_hex(4)}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    kind = "database"
    try:
        async with admin.connect() as conn:
            try:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
            except DBAPIError:  # no CREATE DATABASE right: a schema in the given database
                kind = "schema"
                await conn.execute(text(f'CREATE SCHEMA "{name}"'))
        if kind == "database":
            env = {"INWIRE_CORE_DATABASE_URL": base.set(database=name).render_as_string(False)}
        else:
            env = {
                "INWIRE_CORE_DATABASE_URL": base.render_as_string(False),
                "INWIRE_CORE_DATABASE_SCHEMA": name,
            }
        try:
            yield env, f"postgresql, fresh {kind} {name}"
        finally:
            async with admin.connect() as conn:
                if kind == "database":
                    await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                else:
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        await admin.dispose()


# --------------------------------------------------------------------------- 2. login


def argon2_hasher() -> tuple[PasswordHasher, dict[str, int]]:
    """argon2id with CoreSettings' default (production) cost, whatever the environment says."""
    fields = CoreSettings.model_fields
    params = {
        "time_cost": fields["argon2_time_cost"].default,
        "memory_cost": fields["argon2_memory_kib"].default,
        "parallelism": fields["argon2_parallelism"].default,
    }
    return PasswordHasher(**params), params


async def bench_login(
    session: aiohttp.ClientSession, base: str, creds: dict[str, str], n: int
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """``n`` sequential logins, each followed by one argon2id verify in this process.

    Interleaving the two puts both under the same machine noise. Returns the login stats,
    the argon2id stats and an access token.
    """
    body = {"email": creds["email"], "password": creds["password"]}
    hasher, params = argon2_hasher()
    stored = hasher.hash(creds["password"])

    async def login() -> str:
        async with session.post(base + LOGIN, json=body) as r:
            payload = await r.read()
            if r.status != 200:
                raise RuntimeError(f"login answered {r.status}: {payload[:300]!r}")
            token: str = json.loads(payload)["data"]["access_token"]
            return token

    for _ in range(2):  # warm-up: connection, first-use paths, key cache
        await login()
        hasher.verify(stored, creds["password"])
    logins, hashes = [], []
    token = ""
    for _ in range(n):
        t0 = time.perf_counter()
        token = await login()
        t1 = time.perf_counter()
        hasher.verify(stored, creds["password"])
        t2 = time.perf_counter()
        logins.append(t1 - t0)
        hashes.append(t2 - t1)
    return _latency_stats(logins), {"params": params, **_latency_stats(hashes)}, token


# --------------------------------------------------------------------------- 3. GET


async def bench_get(
    server: CoreServer,
    path: str,
    headers: dict[str, str],
    *,
    concurrency: int,
    requests: int,
    seconds: float,
    warmup: int,
) -> dict[str, Any]:
    """At most ``requests`` GETs in at most ``seconds``, ``concurrency`` in flight."""
    url = server.base + path
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers
    ) as session:

        async def get() -> None:
            async with session.get(url) as r:
                payload = await r.read()
                if r.status != 200:
                    raise RuntimeError(f"GET {path} answered {r.status}: {payload[:300]!r}")
                json.loads(payload)

        async def run(n: int, cap: float) -> tuple[list[float], float, float]:
            issued = 0
            latencies: list[float] = []
            t0 = time.perf_counter()
            deadline = t0 + cap

            async def worker() -> None:
                nonlocal issued
                while issued < n and time.perf_counter() < deadline:
                    issued += 1
                    s = time.perf_counter()
                    await get()
                    latencies.append(time.perf_counter() - s)

            cpu0 = time.process_time()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return latencies, time.perf_counter() - t0, time.process_time() - cpu0

        await run(warmup, seconds)
        server_cpu0 = server.cpu_seconds()
        latencies, wall, client_cpu = await run(requests, seconds)
        server_cpu1 = server.cpu_seconds()
    done = len(latencies)
    stats = _latency_stats(latencies)
    server_cpu = None if server_cpu0 is None or server_cpu1 is None else (server_cpu1 - server_cpu0)
    return {
        "path": path,
        "concurrency": concurrency,
        "requests": done,
        "seconds": wall,
        "req_per_s": done / wall,
        "p50_ms": stats["p50_ms"],
        "p99_ms": stats["p99_ms"],
        "mean_ms": stats["mean_ms"],
        "server_cpu_us_per_req": None if server_cpu is None else server_cpu / done * 1e6,
        "client_cpu_us_per_req": client_cpu / done * 1e6,
    }


async def bench_backend(
    label: str, database: str, extra_env: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    """Steps 2 and 3 against one Core server."""
    print(f"[{label}] starting Core ...", flush=True)
    async with running_core(extra_env) as server:
        creds = server.credentials()
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        print(f"[{label}] {args.logins} logins + argon2id baseline ...", flush=True)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            login, argon2, token = await bench_login(session, server.base, creds, args.logins)
        auth = {"Authorization": f"Bearer {token}"}
        get_runs: dict[str, list[dict[str, Any]]] = {}
        for concurrency in args.concurrency:
            print(f"[{label}] GET {ME} vs {HEALTH}, concurrency {concurrency} ...", flush=True)
            endpoints: list[tuple[str, dict[str, str]]] = [(HEALTH, {}), (ME, auth)]
            for round_no in range(args.rounds):
                for path, headers in endpoints if round_no % 2 == 0 else endpoints[::-1]:
                    result = await bench_get(
                        server,
                        path,
                        headers,
                        concurrency=concurrency,
                        requests=args.requests,
                        seconds=args.seconds,
                        warmup=args.warmup,
                    )
                    get_runs.setdefault(f"{path} c{concurrency}", []).append(result)
        if server.proc is None or server.proc.poll() is not None:
            raise RuntimeError(f"Core died during the run\n{server.log_tail()}")
    best = {key: max(runs, key=lambda r: r["req_per_s"]) for key, runs in get_runs.items()}
    ratios = {}
    for concurrency in args.concurrency:
        me, health = best[f"{ME} c{concurrency}"], best[f"{HEALTH} c{concurrency}"]
        ratios[f"c{concurrency}"] = {
            "req_per_s": me["req_per_s"] / health["req_per_s"],
            "p50": me["p50_ms"] / health["p50_ms"],
            "p99": me["p99_ms"] / health["p99_ms"],
            "server_cpu_per_req": (
                me["server_cpu_us_per_req"] / health["server_cpu_us_per_req"]
                if me["server_cpu_us_per_req"] and health["server_cpu_us_per_req"]
                else None
            ),
        }
    return {
        "database": database,
        "login": login,
        "argon2_verify": argon2,
        "login_ratio_over_argon2": {
            k: login[k] / argon2[k] for k in ("p50_ms", "p95_ms", "mean_ms")
        },
        "login_overhead_p50_ms": login["p50_ms"] - argon2["p50_ms"],
        "get_best": best,
        "get_rounds": get_runs,
        "get_ratio_me_over_health": ratios,
    }


# --------------------------------------------------------------------------- report


def _print_report(results: dict[str, Any], args: argparse.Namespace) -> None:
    j = results["jwt"]
    print(
        f"\n1. JWT verification, in process, best of {args.jwt_rounds} rounds x "
        f"{j['verifications_per_round']} (PyJWT {jwt.__version__})"
    )
    header = f"{'verifier':<50} {'verif/s':>9} {'us/verif':>9} {'ours/this':>10}"
    print(header)
    print("-" * len(header))
    labels = {
        "inwire_eddsa": "Inwire TokenVerifier.verify, EdDSA, JWKS warm",
        "pyjwt_eddsa": "floor: bare jwt.decode, EdDSA, same key",
        "pyjwt_rs256": "RS256-2048 jwt.decode (Keycloak-style default)",
        "crypto_ed25519": "context: Ed25519 signature check only",
        "crypto_rsa2048": "context: RSA-2048 PKCS1v15 signature check only",
    }
    for name, rate in j["best_per_s"].items():
        ratio = j["ratio_ours_over"].get(name)
        shown = f"{ratio:.2f}" if ratio is not None else "-"
        print(f"{labels[name]:<50} {rate:>9.0f} {1e6 / rate:>9.1f} {shown:>10}")

    for label, b in results["backends"].items():
        lg, a2 = b["login"], b["argon2_verify"]
        print(f"\n2. Login latency [{label}], {lg['n']} sequential logins")
        header = f"{'':<42} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}"
        print(header)
        print("-" * len(header))
        print(
            f"{'POST ' + LOGIN:<42} {lg['p50_ms']:>8.1f} {lg['p95_ms']:>8.1f} {lg['mean_ms']:>8.1f}"
        )
        p = a2["params"]
        name = f"argon2id verify (t={p['time_cost']} m={p['memory_cost']} p={p['parallelism']})"
        print(f"{name:<42} {a2['p50_ms']:>8.1f} {a2['p95_ms']:>8.1f} {a2['mean_ms']:>8.1f}")
        r = b["login_ratio_over_argon2"]
        print(
            f"{'ratio login / argon2id':<42} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} "
            f"{r['mean_ms']:>8.2f}   (overhead p50 {b['login_overhead_p50_ms']:.1f} ms)"
        )

        print(
            f"\n3. GET throughput [{label}], best of {args.rounds}, <= {args.requests} requests "
            f"/ {args.seconds:g} s each"
        )
        header = (
            f"{'endpoint':<17} {'conc':>4} {'reqs':>6} {'req/s':>8} {'p50 ms':>8} "
            f"{'p99 ms':>8} {'srv CPU us/req':>14} {'cli CPU us/req':>14}"
        )
        print(header)
        print("-" * len(header))
        for concurrency in args.concurrency:
            for path in (HEALTH, ME):
                g = b["get_best"][f"{path} c{concurrency}"]
                srv = g["server_cpu_us_per_req"]
                print(
                    f"{path.removeprefix('/api/v1'):<17} {concurrency:>4} {g['requests']:>6} "
                    f"{g['req_per_s']:>8.0f} {g['p50_ms']:>8.2f} {g['p99_ms']:>8.2f} "
                    f"{(f'{srv:.0f}' if srv else '-'):>14} {g['client_cpu_us_per_req']:>14.0f}"
                )
            q = b["get_ratio_me_over_health"][f"c{concurrency}"]
            cpu = f"{q['server_cpu_per_req']:.2f}" if q["server_cpu_per_req"] else "-"
            print(
                f"{'  me / health':<17} {concurrency:>4} {'':>6} {q['req_per_s']:>8.2f} "
                f"{q['p50']:>8.2f} {q['p99']:>8.2f} {cpu:>14}"
            )


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    print("[jwt] verifying ...", flush=True)
    results: dict[str, Any] = {"jwt": await bench_jwt(args.verifications, args.jwt_rounds)}
    backends: dict[str, Any] = {}
    if not args.skip_sqlite:
        backends["sqlite"] = await bench_backend(
            "sqlite", "sqlite (default: a file in INWIRE_HOME)", {}, args
        )
    pg_url = os.environ.get("INWIRE_BENCH_POSTGRES_URL", "")
    if pg_url:
        async with postgres_database(pg_url) as (env, database):
            backends["postgresql"] = await bench_backend("postgresql", database, env, args)
    results["backends"] = backends
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--verifications", type=int, default=5000, help="JWTs per round")
    parser.add_argument("--jwt-rounds", type=int, default=3, help="rounds of JWT checks")
    parser.add_argument("--logins", type=int, default=50, help="sequential logins")
    parser.add_argument("--requests", type=int, default=3000, help="max GETs per measurement")
    parser.add_argument("--seconds", type=float, default=5.0, help="time cap per measurement")
    parser.add_argument("--warmup", type=int, default=200, help="GETs before each measurement")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 32],
        help="comma-separated client concurrencies",
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of GET measurements")
    parser.add_argument("--skip-sqlite", action="store_true", help="only PostgreSQL")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)

    load_before = os.getloadavg()
    results = asyncio.run(_run(args))
    load_after = os.getloadavg()
    _print_report(results, args)
    print(
        f"\nload average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after, "
        f"{os.cpu_count()} CPUs; code {_git_revision()}"
    )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "core",
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_avg_1min": {"before": load_before[0], "after": load_after[0]},
                "code": _git_revision(),
                "versions": {"pyjwt": jwt.__version__, "aiohttp": aiohttp.__version__},
                "params": {
                    k: getattr(args, k)
                    for k in (
                        "verifications",
                        "jwt_rounds",
                        "logins",
                        "requests",
                        "seconds",
                        "warmup",
                        "concurrency",
                        "rounds",
                    )
                },
                **results,
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
