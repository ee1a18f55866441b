"""Model Training's tracking API under the issue's workload, over real HTTP.

    uv run --frozen python bench/tracking/bench_api.py [--values 100000] [--batch 1000]
        [--runs 1000] [--database-url postgresql+asyncpg://…]

Starts the service with uvicorn in a subprocess (one worker, SQLite in a temporary folder
unless ``--database-url``), then times with one keep-alive HTTP client:

* ``log_batch``: ``--values`` metric values in batches of ``--batch`` (POST /runs/{id}/metrics);
* ``log_metric``: 1,000 single-value calls, mean latency;
* ``history``: the whole ``--values``-point history in one GET (``per_page``), and the same
  series downsampled to 1,000 points (``max_points``);
* ``search``: ``--runs`` runs, each with a param and a metric, then one search page of 1,000
  sorted by the metric (POST /runs/search);
* ``server_rss``: the server process's resident memory at the end.

The ratios printed are against the issue's figures for ``mlflow server`` 3.17 (SQLite,
2 workers, stock client): ~2.1k values/s for log-batch, 10.6 s for a 100k-point history,
2.4 s to list 1,000 runs, ~900 MiB; the head-to-head run through the mlflow client belongs
to the MLflow-compatible API. Output: a table and ``bench/results/tracking_api_<backend>.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from servers import ROOT, inwire_server, tree_rss_mib

RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--values", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        schema = f"bench_{time.time_ns()}" if args.database_url else ""
        try:
            with inwire_server(Path(tmp), args.database_url, schema) as server:
                assert server.token is not None
                results = _run(server.url, server.token, server.pid, args)
        finally:
            if args.database_url:
                _drop_schema(args.database_url, schema)
    results["backend"] = "postgresql" if args.database_url else "sqlite"
    _report(results)


def _drop_schema(url: str, schema: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


def _run(base: str, token: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
        exp = c.post("/api/v1/experiments", json={"name": "bench"}).json()["data"]["id"]
        run_id = c.post("/api/v1/runs", json={"experiment_id": exp}).json()["data"]["id"]
        out: dict[str, Any] = {"values": args.values, "batch": args.batch, "runs": args.runs}

        started = time.perf_counter()
        now = int(time.time() * 1000)
        for start in range(0, args.values, args.batch):
            batch = [
                {"key": "loss", "value": 1.0 / (i + 1), "step": i, "timestamp": now + i}
                for i in range(start, min(start + args.batch, args.values))
            ]
            r = c.post(f"/api/v1/runs/{run_id}/metrics", json={"metrics": batch})
            r.raise_for_status()
        elapsed = time.perf_counter() - started
        out["log_batch_values_per_s"] = args.values / elapsed

        started = time.perf_counter()
        for i in range(1000):
            c.post(f"/api/v1/runs/{run_id}/metrics", json={"key": "acc", "value": i, "step": i})
        out["log_metric_ms"] = (time.perf_counter() - started) / 1000 * 1000

        started = time.perf_counter()
        r = c.get(
            f"/api/v1/runs/{run_id}/metrics/history",
            params={"key": "loss", "per_page": args.values},
        )
        r.raise_for_status()
        assert len(r.json()["data"]["points"]) == args.values
        out["history_s"] = time.perf_counter() - started

        started = time.perf_counter()
        r = c.get(
            f"/api/v1/runs/{run_id}/metrics/history", params={"key": "loss", "max_points": 1000}
        )
        r.raise_for_status()
        out["history_downsampled_s"] = time.perf_counter() - started

        for i in range(args.runs):
            r = c.post(
                "/api/v1/runs",
                json={"experiment_id": exp, "name": f"r{i}", "params": {"i": str(i)}},
            )
            rid = r.json()["data"]["id"]
            c.post(f"/api/v1/runs/{rid}/metrics", json={"key": "rmse", "value": i / args.runs})
        started = time.perf_counter()
        r = c.post(
            "/api/v1/runs/search",
            json={
                "experiment_ids": [exp],
                "filter": "metrics.rmse >= 0",
                "order_by": ["metrics.rmse DESC"],
                "per_page": 1000,
            },
        )
        r.raise_for_status()
        assert len(r.json()["data"]) == min(1000, args.runs)
        out["search_s"] = time.perf_counter() - started
        out["server_rss_mib"] = tree_rss_mib(pid)
    return out


def _report(results: dict[str, Any]) -> None:
    rows = [
        ("log-batch throughput", f"{results['log_batch_values_per_s']:,.0f} values/s", 2100, "x"),
        ("log-metric latency", f"{results['log_metric_ms']:.2f} ms", None, ""),
        ("history (all points)", f"{results['history_s']:.3f} s", 10.6, "/"),
        ("history (1,000 pts)", f"{results['history_downsampled_s']:.3f} s", None, ""),
        ("search 1,000 runs", f"{results['search_s']:.3f} s", 2.4, "/"),
        ("server memory", f"{results['server_rss_mib']:.0f} MiB", 900, "/"),
    ]
    print(f"{'measure':<24}{'Inwire':>20}{'vs MLflow 3.17 (issue)':>26}")
    keys = {
        "log-batch throughput": "log_batch_values_per_s",
        "history (all points)": "history_s",
        "search 1,000 runs": "search_s",
        "server memory": "server_rss_mib",
    }
    for name, value, mlflow, kind in rows:
        ratio = ""
        if mlflow is not None:
            ours = results[keys[name]]
            ratio = f"{ours / mlflow:.1f}x" if kind == "x" else f"{mlflow / ours:.1f}x better"
        print(f"{name:<24}{value:>20}{ratio:>26}")
    target = RESULTS / f"tracking_api_{results['backend']}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
