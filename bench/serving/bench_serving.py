"""Model serving: Inwire's model server against ``mlflow models serve``, same model, one run.

    uv run --frozen python bench/serving/bench_serving.py [--seconds 10] [--concurrency 1,16]
        [--rounds 2] [--rows 1] [--warmup 200] [--skip-mlflow]
    uv run --frozen python bench/serving/bench_serving.py --direct URL --routed URL \\
        [--header 'Authorization: Bearer …'] [--body-file F]
    uv run --frozen python bench/serving/bench_serving.py --canary [--seconds 10]

The model is a scikit-learn pipeline (StandardScaler + LogisticRegression) fitted on the
bundled Wisconsin breast cancer table (569 x 30, a DataFrame, so the model knows its column
names) and saved once by ``mlflow.sklearn.save_model`` with its inferred signature (MLflow
3's default skops format). Both servers load that same folder:

* Inwire: ``python -m inwire.services.modelops.serving.server --model-dir D --port P``
  (one process, defaults: ``--max-batch 64 --batch-wait-ms 2``);
* MLflow 3.17.2: ``mlflow models serve -m D -p P --env-manager local`` (uvicorn + FastAPI,
  its default single worker, as ``pip install mlflow`` brings them), from its own
  virtualenv ``bench/.venvs/mlflow`` (made on first use with ``uv venv`` + ``uv pip install
  mlflow==3.17.2 scikit-learn==<ours>``), so MLflow never enters the product's environment.
  The model is saved there too.

Both get ``POST /invocations`` with MLflow's ``dataframe_split`` body (``--rows`` rows per
request, rotating through the table); the answers of both are checked to be equal first.
For each ``--concurrency`` an aiohttp client (keep-alive, one connection per worker) sends
requests for ``--seconds`` after ``--warmup`` requests; Inwire and MLflow rounds alternate,
``--rounds`` times, and each one's best round counts. Reported: req/s, p50/p99 latency and
server CPU per request (from ``/proc``, the whole process tree, so it holds when the
machine is busy), and Inwire/MLflow ratios. Goal (issue 6): >= 2x MLflow's throughput.

``--direct URL --routed URL``: the same load against two URLs taking the same body, e.g. a
model-server replica and ``POST /api/v1/deployments/{id}/predict`` routing to it, to read
the routing overhead at p50 (``--header`` adds headers to the routed calls, such as a
token). ``--canary`` sets that up: ModelOps started for real (``python -m
inwire.allinone.serve``, SQLite, a test signing key for the bearer token), the model
registered twice and deployed as a canary (version 2 at 20 %, by hand), then
``POST /api/v1/deployments/{id}/predict`` against ``/predict`` of a stable replica, both with
``{"inputs": [one row]}``. Output: a table and ``bench/results/serving.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from bench_gateway import cpu_seconds, free_port, started, wait_ready  # noqa: E402

MLFLOW_VENV = ROOT / "bench" / ".venvs" / "mlflow"
MLFLOW_PYTHON = MLFLOW_VENV / "bin" / "python"
MLFLOW_VERSION = "3.17.2"
RESULTS = ROOT / "bench" / "results" / "serving.json"

#: Run in MLflow's virtualenv: fit the model and save it as an MLflow model folder.
SAVE_MODEL = """
import sys
import mlflow.sklearn
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

data = load_breast_cancer(as_frame=True)
X = data.data.set_axis([c.replace(" ", "_") for c in data.data.columns], axis=1)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, data.target)
mlflow.sklearn.save_model(model, sys.argv[1], signature=infer_signature(X, model.predict(X)))
X.to_json(sys.argv[2], orient="split", index=False)
"""


def ensure_mlflow_venv() -> None:
    """``bench/.venvs/mlflow`` with MLflow and our scikit-learn version."""
    import sklearn

    if MLFLOW_PYTHON.exists():
        return
    uv = os.environ.get("UV", "uv")
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(MLFLOW_VENV)], check=True)
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(MLFLOW_PYTHON),
            f"mlflow=={MLFLOW_VERSION}",
            f"scikit-learn=={sklearn.__version__}",
        ],
        check=True,
    )


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and every process below it (MLflow's CLI starts uvicorn)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += cpu_seconds(current)
        except OSError:
            continue
        todo.extend(children.get(current, []))
    return total


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
    server_cpu_us: float = 0.0


async def load(
    target: str,
    url: str,
    bodies: list[bytes],
    *,
    concurrency: int,
    seconds: float,
    warmup: int,
    headers: dict[str, str] | None = None,
    pid: int | None = None,
) -> Round:
    """POST ``bodies`` (in turn) to ``url`` from ``concurrency`` keep-alive connections for
    ``seconds`` after ``warmup`` requests."""
    sent = {"content-type": "application/json", **(headers or {})}
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            nonlocal errors
            begin = time.perf_counter()
            async with session.post(url, data=bodies[i % len(bodies)], headers=sent) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - begin)

        await asyncio.gather(*(one(i) for i in range(min(concurrency, warmup))))
        for i in range(warmup):
            await one(i)
        latencies.clear()
        errors = 0
        deadline = time.perf_counter() + seconds

        async def worker(start: int) -> None:
            i = start
            while time.perf_counter() < deadline:
                await one(i)
                i += concurrency

        cpu_before = tree_cpu_seconds(pid) if pid else 0.0
        begin = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - begin
        cpu = tree_cpu_seconds(pid) - cpu_before if pid else 0.0
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
        server_cpu_us=round(cpu / max(done, 1) * 1e6, 1),
    )


def request_bodies(table: dict[str, Any], rows: int) -> list[bytes]:
    """``dataframe_split`` bodies of ``rows`` rows each, through the whole table."""
    data = table["data"]
    return [
        json.dumps(
            {"dataframe_split": {"columns": table["columns"], "data": data[i : i + rows]}}
        ).encode()
        for i in range(0, len(data) - rows + 1, rows)
    ]


def check_same_answers(urls: dict[str, str], bodies: list[bytes]) -> None:
    """Both servers predict the same classes for the first bodies."""
    answers = {
        name: [
            httpx.post(
                url, content=b, headers={"content-type": "application/json"}, timeout=30
            ).json()["predictions"]
            for b in bodies[:20]
        ]
        for name, url in urls.items()
    }
    first, *others = answers.values()
    for name, other in zip(list(answers)[1:], others, strict=True):
        if other != first:
            raise SystemExit(f"{name} answers differ: {other[:3]} vs {first[:3]}")


def table_rows(rounds: list[Round]) -> list[str]:
    lines = [
        f"{'server':<10} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu us/req':>10} {'errors':>6}"
    ]
    for r in rounds:
        lines.append(
            f"{r.target:<10} {r.concurrency:>4} {r.rps:>9.1f} {r.p50_ms:>8.3f} "
            f"{r.p99_ms:>8.3f} {r.server_cpu_us:>10.1f} {r.errors:>6}"
        )
    return lines


def save_model(work: Path) -> None:
    """The model saved by MLflow in ``work/model`` and the table in ``work/table.json``
    (saved by MLflow even when only Inwire's server is measured)."""
    ensure_mlflow_venv()
    subprocess.run(
        [str(MLFLOW_PYTHON), "-c", SAVE_MODEL, str(work / "model"), str(work / "table.json")],
        check=True,
        capture_output=True,
    )


Target = tuple[str, str, dict[str, str], int | None]


async def alternate(
    args: argparse.Namespace,
    bodies: list[bytes],
    targets: list[Target],
    *,
    better: Callable[[Round], float],
) -> tuple[list[Round], dict[tuple[str, int], Round]]:
    """Rounds of each ``(name, url, headers, server pid)`` target in turn, ``--rounds``
    times per ``--concurrency``; every round, and the best one (highest ``better``) of each
    target and concurrency."""
    rounds: list[Round] = []
    best: dict[tuple[str, int], Round] = {}
    for concurrency in args.concurrency:
        for _ in range(args.rounds):
            for name, url, headers, pid in targets:
                r = await load(
                    name,
                    url,
                    bodies,
                    concurrency=concurrency,
                    seconds=args.seconds,
                    warmup=args.warmup,
                    headers=headers,
                    pid=pid,
                )
                rounds.append(r)
                key = (name, concurrency)
                if key not in best or better(r) > better(best[key]):
                    best[key] = r
    return rounds, best


async def compare(args: argparse.Namespace, work: Path, stack: ExitStack) -> dict[str, Any]:
    """Inwire's server against MLflow's, best round of each, per concurrency."""
    model_dir = work / "model"
    bodies = request_bodies(json.loads((work / "table.json").read_text()), args.rows)
    servers: dict[str, tuple[str, int]] = {}
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ours = stack.enter_context(
        started(
            [
                sys.executable,
                "-m",
                "inwire.services.modelops.serving.server",
                "--model-dir",
                str(model_dir),
                "--port",
                str(port),
            ],
            env,
            work / "inwire.log",
        )
    )
    wait_ready(f"http://127.0.0.1:{port}/ready", ours, work / "inwire.log")
    servers["inwire"] = (f"http://127.0.0.1:{port}/invocations", ours.pid)
    if not args.skip_mlflow:
        port = free_port()
        mlflow_cmd = [str(MLFLOW_VENV / "bin" / "mlflow"), "models", "serve", "-m"]
        theirs = stack.enter_context(
            started(
                [
                    *mlflow_cmd,
                    str(model_dir),
                    "-p",
                    str(port),
                    "-h",
                    "127.0.0.1",
                    "--env-manager",
                    "local",
                ],
                {
                    **env,
                    # MLflow execs ``uvicorn`` from PATH: its own virtualenv's, not ours.
                    "PATH": f"{MLFLOW_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
                    "VIRTUAL_ENV": str(MLFLOW_VENV),
                    "MLFLOW_TRACKING_URI": f"file://{work}/mlruns",
                },
                work / "mlflow.log",
            )
        )
        wait_ready(f"http://127.0.0.1:{port}/ping", theirs, work / "mlflow.log", timeout=180)
        servers["mlflow"] = (f"http://127.0.0.1:{port}/invocations", theirs.pid)
    check_same_answers({name: url for name, (url, _) in servers.items()}, bodies)
    targets: list[Target] = [(name, url, {}, pid) for name, (url, pid) in servers.items()]
    rounds, best = await alternate(args, bodies, targets, better=lambda r: r.rps)
    result: dict[str, Any] = {"best": [asdict(r) for r in best.values()]}
    print("\n".join(table_rows(list(best.values()))))
    if not args.skip_mlflow:
        ratios = []
        for concurrency in args.concurrency:
            a, b = best[("inwire", concurrency)], best[("mlflow", concurrency)]
            ratio = {
                "concurrency": concurrency,
                "throughput_x": round(a.rps / b.rps, 2),
                "p50_x": round(b.p50_ms / a.p50_ms, 2),
                "p99_x": round(b.p99_ms / a.p99_ms, 2),
                "cpu_per_request_x": round(b.server_cpu_us / max(a.server_cpu_us, 1e-9), 2),
            }
            ratios.append(ratio)
            print(
                f"concurrency {concurrency}: Inwire/MLflow throughput {ratio['throughput_x']}x, "
                f"p50 {ratio['p50_x']}x faster, p99 {ratio['p99_x']}x faster, "
                f"server CPU per request {ratio['cpu_per_request_x']}x less"
            )
        result["ratios"] = ratios
    result["rounds"] = [asdict(r) for r in rounds]
    return result


async def routing(args: argparse.Namespace, bodies: list[bytes]) -> dict[str, Any]:
    """The same load on a direct URL and a routed one: the p50 the routing adds."""
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    targets: list[Target] = [
        ("direct", args.direct, {}, None),
        ("routed", args.routed, headers, None),
    ]
    _, best = await alternate(args, bodies, targets, better=lambda r: -r.p50_ms)
    print("\n".join(table_rows(list(best.values()))))
    overhead = {
        str(c): round(best[("routed", c)].p50_ms - best[("direct", c)].p50_ms, 3)
        for c in args.concurrency
    }
    for c, ms in overhead.items():
        print(f"concurrency {c}: routing adds {ms} ms at p50")
    return {"routing": [asdict(r) for r in best.values()], "routing_overhead_p50_ms": overhead}


def _wait(check: Callable[[], bool], what: str, within: float = 300.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {within:g} s")
        time.sleep(0.2)


def canary_deployment(work: Path, stack: ExitStack) -> tuple[str, str, dict[str, str], bytes]:
    """ModelOps started for real (a subprocess, SQLite, a test signing key), the bench
    model registered twice and deployed as a canary (version 2 at 20 %, no automatic
    steps); the routed predict URL, a replica's direct URL, the routed call's headers and
    a body."""
    from inwire.kit.testing.plugin import TestKeys

    keys = TestKeys(work)
    home = work / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INWIRE_")}
    env.update(
        INWIRE_HOME=str(home),
        INWIRE_JWKS_URL=keys.jwks_url,
        INWIRE_MODELOPS_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        sys.executable,
        "-m",
        "inwire.allinone.serve",
        "--name",
        "modelops",
        "--factory",
        "inwire.services.modelops.app:create_app",
        "--settings",
        "inwire.services.modelops.settings:ModelOpsSettings",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    home.mkdir()
    process = stack.enter_context(started(argv, env, work / "modelops.log"))
    wait_ready(f"{url}/health/ready", process, work / "modelops.log")
    auth = {"Authorization": f"Bearer {keys.token('member', 'a', ttl=7200)}"}
    api = httpx.Client(base_url=f"{url}/api/v1", headers=auth, timeout=60)
    stack.callback(api.close)
    api.post("/models", json={"name": "bench"}).raise_for_status()
    files = [("file", (f.name, f.read_bytes())) for f in (work / "model").iterdir() if f.is_file()]
    for _ in range(2):
        api.post("/models/bench/versions/upload", files=files).raise_for_status()
    dep_id = api.post("/deployments", json={"model": "bench", "version": 1}).json()["data"]["id"]

    def deployment() -> dict[str, Any]:
        data: dict[str, Any] = api.get(f"/deployments/{dep_id}").json()["data"]
        return data

    _wait(lambda: deployment()["status"] == "ready", "deployment ready")
    api.patch(
        f"/deployments/{dep_id}",
        json={
            "version": 2,
            "strategy": "canary",
            "strategy_params": {"weight": 20, "min_requests": 1_000_000},
        },
    ).raise_for_status()
    _wait(lambda: deployment()["traffic"] == {"1": 80, "2": 20}, "canary at 20 %")
    dep = deployment()
    stable = next(r for r in dep["revisions"] if r["version"] == 1 and r["status"] == "ready")
    direct = f"{stable['instances'][0]['url']}/predict"
    table = json.loads((work / "table.json").read_text())
    body = json.dumps(
        {"inputs": [dict(zip(table["columns"], table["data"][0], strict=True))]}
    ).encode()
    return f"{url}/api/v1/deployments/{dep_id}/predict", direct, auth, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16]
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--direct", help="URL of a replica's /predict (with --routed)")
    parser.add_argument("--routed", help="URL routing to that replica (with --direct)")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--body-file", help="the JSON body sent by --direct/--routed")
    parser.add_argument(
        "--canary",
        action="store_true",
        help="start ModelOps, deploy the model as a canary, and measure its predict "
        "endpoint against a replica (routing overhead)",
    )
    args = parser.parse_args()
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {k: v for k, v in vars(args).items() if k != "header"},
    }
    if args.canary:
        with tempfile.TemporaryDirectory(prefix="bench-canary-") as tmp, ExitStack() as stack:
            work = Path(tmp)
            save_model(work)
            args.routed, args.direct, headers, body = canary_deployment(work, stack)
            args.header = [f"{k}: {v}" for k, v in headers.items()]
            result.update(asyncio.run(routing(args, [body])))
    elif args.direct or args.routed:
        if not (args.direct and args.routed):
            parser.error("--direct and --routed go together")
        bodies = [Path(args.body_file).read_bytes()] if args.body_file else [b'{"inputs":[{}]}']
        result.update(asyncio.run(routing(args, bodies)))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp, ExitStack() as stack:
            save_model(Path(tmp))
            result.update(asyncio.run(compare(args, Path(tmp), stack)))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
