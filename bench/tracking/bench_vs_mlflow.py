"""The same ``mlflow`` client workload against ``mlflow server`` and against Inwire.

    uv run --frozen python bench/tracking/bench_vs_mlflow.py [--backend sqlite postgresql]
        [--values 100000] [--batch 1000] [--calls 1000] [--runs 1000]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

For each backend (SQLite, then PostgreSQL in a fresh database created and dropped here),
starts MLflow 3.17 (``mlflow server --workers 2`` from ``bench/.venvs/mlflow``, see
``servers.py``) and then Inwire's Model Training (uvicorn, one worker, an admin JWT as
``MLFLOW_TRACKING_TOKEN``), and runs through the stock ``MlflowClient``:

* ``log_batch``: ``--values`` metric values in batches of ``--batch`` (``log_batch``);
* ``log_metric``: ``--calls`` single ``log_metric`` calls, mean latency;
* ``history``: ``get_metric_history`` of the ``--values``-point series;
* ``search``: ``--runs`` runs, each with a param and a metric (not timed), then
  ``search_runs`` of them all, ordered by the metric;
* ``history_http`` / ``search_http``: the same REST requests over plain HTTP (the server's
  share of the time, without the client's protobuf parsing);
* ``memory``: resident memory of the server's whole process tree at the end.

Prints a table with Inwire / MLflow ratios (higher is better for Inwire), the issue's goals,
and Inwire against the issue's own MLflow figures; writes
``bench/results/tracking_vs_mlflow_<backend>.json`` (``--report-only`` prints them again).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
from servers import ROOT, Server, inwire_server, mlflow_server, postgres_database, tree_rss_mib

RESULTS = ROOT / "bench" / "results"


def workload(server: Server, args: argparse.Namespace) -> dict[str, float]:
    """The measures of one server, through the stock mlflow client."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    if server.token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = server.token
    else:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    client = MlflowClient(tracking_uri=server.url)
    exp = client.create_experiment(f"bench-{time.time_ns()}")
    run_id = client.create_run(exp).info.run_id
    out: dict[str, float] = {}

    now = int(time.time() * 1000)
    started = time.perf_counter()
    for start in range(0, args.values, args.batch):
        metrics = [
            Metric("loss", 1.0 / (i + 1), now + i, i)
            for i in range(start, min(start + args.batch, args.values))
        ]
        client.log_batch(run_id, metrics=metrics)
    out["log_batch_values_per_s"] = args.values / (time.perf_counter() - started)

    started = time.perf_counter()
    for i in range(args.calls):
        client.log_metric(run_id, "acc", i / args.calls, step=i)
    out["log_metric_ms"] = (time.perf_counter() - started) / args.calls * 1000

    started = time.perf_counter()
    history = client.get_metric_history(run_id, "loss")
    out["history_s"] = time.perf_counter() - started
    if len(history) != args.values:
        raise SystemExit(f"{server.name}: history has {len(history)} points, not {args.values}")

    for i in range(args.runs):
        rid = client.create_run(exp, run_name=f"r{i}").info.run_id
        client.log_batch(
            rid, metrics=[Metric("rmse", i / args.runs, now, 0)], params=[Param("i", str(i))]
        )
    started = time.perf_counter()
    found = client.search_runs(
        [exp], "metrics.rmse >= 0", max_results=args.runs, order_by=["metrics.rmse DESC"]
    )
    out["search_s"] = time.perf_counter() - started
    if len(found) != args.runs:
        raise SystemExit(f"{server.name}: search found {len(found)} runs, not {args.runs}")

    # The same two REST calls over plain HTTP: the server's time without the client's
    # protobuf parsing (~1.5 s of Python for 100k points, whatever the server).
    headers = {"Authorization": f"Bearer {server.token}"} if server.token else {}
    with httpx.Client(base_url=server.url, headers=headers, timeout=600) as http:
        started = time.perf_counter()
        points, token = 0, ""
        while True:  # MLflow answers in one page, Inwire in pages of 25,000 (as the client)
            params = {"run_id": run_id, "metric_key": "loss"}
            if token:
                params["page_token"] = token
            page = http.get("/api/2.0/mlflow/metrics/get-history", params=params)
            answer = page.raise_for_status().json()
            points += len(answer.get("metrics", []))
            token = answer.get("next_page_token", "")
            if not token:
                break
        out["history_http_s"] = time.perf_counter() - started
        body = {
            "experiment_ids": [exp],
            "filter": "metrics.rmse >= 0",
            "max_results": args.runs,
            "order_by": ["metrics.rmse DESC"],
        }
        started = time.perf_counter()
        r = http.post("/api/2.0/mlflow/runs/search", json=body)
        runs = len(r.raise_for_status().json()["runs"])
        out["search_http_s"] = time.perf_counter() - started
    if (points, runs) != (args.values, args.runs):
        raise SystemExit(f"{server.name}: raw HTTP answered {points} points, {runs} runs")

    out["memory_mib"] = tree_rss_mib(server.pid)
    return out


def _measure(
    name: str, start: Callable[[Path], AbstractContextManager[Server]], args: argparse.Namespace
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp, start(Path(tmp)) as server:
        print(f"  {name}: {server.url} (pid {server.pid})", flush=True)
        return workload(server, args)


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """MLflow then Inwire on one backend."""
    print(f"{backend}:", flush=True)
    if backend == "sqlite":
        mlflow = _measure("mlflow", lambda tmp: mlflow_server(tmp, workers=args.workers), args)
        inwire = _measure("inwire", lambda tmp: inwire_server(tmp), args)
    else:
        with postgres_database(args.postgres, "bench_mlflow") as url:
            url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
            mlflow = _measure(
                "mlflow", lambda tmp: mlflow_server(tmp, url, workers=args.workers), args
            )
        with postgres_database(args.postgres, "bench_inwire") as url:
            pg = url.replace("postgresql://", "postgresql+asyncpg://", 1)
            inwire = _measure("inwire", lambda tmp: inwire_server(tmp, pg), args)
    return {"backend": backend, "mlflow": mlflow, "inwire": inwire, "args": vars(args)}


#: (label, key, unit, True when higher is better)
MEASURES = [
    ("log-batch throughput", "log_batch_values_per_s", "values/s", True),
    ("log-metric latency", "log_metric_ms", "ms", False),
    ("metric history", "history_s", "s", False),
    ("  same, raw HTTP", "history_http_s", "s", False),
    ("search runs", "search_s", "s", False),
    ("  same, raw HTTP", "search_http_s", "s", False),
    ("server memory (tree)", "memory_mib", "MiB", False),
]
#: The issue's goals: Inwire's advantage on each measure.
GOALS = {"log_batch_values_per_s": 10, "history_s": 10, "search_s": 5, "memory_mib": 4}
#: The issue's figures for mlflow server 3.17 (SQLite, 2 workers) on a quiet machine: a
#: second yardstick when this machine is busy and slows one server more than the other.
ISSUE = {"log_batch_values_per_s": 2100, "history_s": 10.6, "search_s": 2.4, "memory_mib": 900}


def report(result: dict[str, Any]) -> None:
    """The table of one backend, and its JSON file."""
    print(
        f"\n{result['backend']}: {'measure':<22}{'MLflow 3.17':>16}{'Inwire':>16}{'ratio':>9}  goal"
    )
    for label, key, unit, higher in MEASURES:
        m, i = result["mlflow"][key], result["inwire"][key]
        ratio = i / m if higher else m / i
        goal = GOALS.get(key)
        mark = "" if goal is None else f"≥{goal}x {'ok' if ratio >= goal else 'MISSED'}"
        if key in ISSUE:
            versus = i / ISSUE[key] if higher else ISSUE[key] / i
            mark = f"{mark:<10} {versus:.1f}x"
        fmt = "{:,.0f}" if unit in ("values/s", "MiB") else "{:.3f}"
        pad = " " * len(result["backend"])
        print(
            f"{pad}  {label:<22}{fmt.format(m) + ' ' + unit:>16}{fmt.format(i) + ' ' + unit:>16}"
            f"{ratio:>8.1f}x  {mark}"
        )
    target = RESULTS / f"tracking_vs_mlflow_{result['backend']}.json"
    if not target.exists() or json.loads(target.read_text()) != result:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {target.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", nargs="+", choices=["sqlite", "postgresql"],
                        default=["sqlite", "postgresql"])  # fmt: skip
    parser.add_argument("--values", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="mlflow server --workers")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--report-only", action="store_true", help="print the tables of the last results"
    )
    args = parser.parse_args()
    if args.report_only:
        files = [RESULTS / f"tracking_vs_mlflow_{b}.json" for b in args.backend]
        results = [json.loads(f.read_text()) for f in files if f.exists()]
    else:
        results = [run_backend(b, args) for b in args.backend]
    for result in results:
        report(result)


if __name__ == "__main__":
    sys.exit(main())
