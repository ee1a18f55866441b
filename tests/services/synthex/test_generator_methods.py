"""The Gaussian copula, the independent-marginals baseline and the shared column encoding.

Pinned on a small mixed table: column types and dtypes kept, integers whole, values within
the observed range, categories only from the data, the missing share roughly kept,
correlations kept by the copula (and not by the baseline), the same rows for the same seed,
exact conditions (categories, numbers, missing), impossible conditions as a 400, cancel,
and the registry resolving every method without importing PyTorch for the others.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from inwire.kit.errors import Invalid
from inwire.services.synthex.generators.base import FitCancelled, Synthesizer, TableEncoding
from inwire.services.synthex.generators.methods import METHODS, create, method_class
from inwire.services.synthex.generators.methods.copula import GaussianCopula
from inwire.services.synthex.generators.methods.marginals import IndependentMarginals
from inwire.services.synthex.schema import ColumnSpec, ColumnType

OURS = [GaussianCopula, IndependentMarginals]


def mixed_table(n: int = 2000, seed: int = 0) -> tuple[pl.DataFrame, list[ColumnSpec]]:
    """Ages, incomes tied to age (with 10% missing), a city tied to income, flags, dates."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    income = age * 1000 + rng.normal(0, 6000, n)
    city = np.where(income > np.median(income), "Oslo", rng.choice(["Bergen", "Tromsø"], n))
    frame = pl.DataFrame(
        {
            "age": pl.Series(age, dtype=pl.Int32),
            "income": income,
            "city": city,
            "member": rng.random(n) < 0.3,
            "joined": [
                datetime(2021, 1, 1) + timedelta(minutes=int(m))
                for m in rng.integers(0, 500_000, n)
            ],
            "day": [date(2020, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 365, n)],
        }
    ).with_columns(
        pl.when(pl.Series(rng.random(n) < 0.1))
        .then(None)
        .otherwise(pl.col("income"))
        .alias("income")
    )
    schema = [
        ColumnSpec(name="age", type=ColumnType.integer),
        ColumnSpec(name="income", type=ColumnType.float),
        ColumnSpec(name="city", type=ColumnType.categorical),
        ColumnSpec(name="member", type=ColumnType.boolean),
        ColumnSpec(name="joined", type=ColumnType.datetime),
        ColumnSpec(name="day", type=ColumnType.datetime),
    ]
    return frame, schema


@pytest.fixture(scope="module")
def table() -> tuple[pl.DataFrame, list[ColumnSpec]]:
    return mixed_table()


def fitted(method: type, table: tuple[pl.DataFrame, list[ColumnSpec]]) -> Synthesizer:
    model: Synthesizer = method()
    model.fit(table[0], table[1], seed=7)
    return model


def test_encoding_round_trips_every_type_and_missing_value() -> None:
    frame, schema = mixed_table(200)
    encoding = TableEncoding.fit(frame, schema)
    numbers, codes = encoding.encode(frame)
    assert encoding.continuous_names == ["age", "income", "joined", "day"]
    assert encoding.discrete_names == ["city", "member"]
    assert codes.min() >= 0  # city and member have no missing values
    assert np.isnan(numbers[:, 1]).sum() == frame["income"].null_count()
    assert encoding.decode(numbers, codes).equals(frame)


@pytest.mark.parametrize("method", OURS)
def test_methods_keep_types_ranges_categories_and_missing_share(
    method: type, table: tuple[pl.DataFrame, list[ColumnSpec]]
) -> None:
    real = table[0]
    out = fitted(method, table).sample(3000, seed=1)
    assert out.height == 3000
    assert out.schema == real.schema
    for name in ("age", "income", "joined", "day"):
        assert out[name].min() >= real[name].min()
        assert out[name].max() <= real[name].max()
    assert set(out["city"].unique()) <= set(real["city"].unique())
    assert set(out["member"].unique()) == {True, False}
    assert abs(out["income"].null_count() / out.height - 0.1) < 0.03
    assert out["city"].null_count() == 0
    shares = out["city"].value_counts(normalize=True).sort("city")["proportion"].to_numpy()
    real_shares = real["city"].value_counts(normalize=True).sort("city")["proportion"].to_numpy()
    np.testing.assert_allclose(shares, real_shares, atol=0.04)


def _corr(frame: pl.DataFrame) -> float:
    both = frame.select("age", "income").drop_nulls()
    return float(np.corrcoef(both["age"].to_numpy(), both["income"].to_numpy())[0, 1])


def test_copula_keeps_correlations_and_the_baseline_does_not(
    table: tuple[pl.DataFrame, list[ColumnSpec]],
) -> None:
    real = _corr(table[0])
    assert real > 0.9
    assert abs(_corr(fitted(GaussianCopula, table).sample(4000, seed=2)) - real) < 0.08
    assert abs(_corr(fitted(IndependentMarginals, table).sample(4000, seed=2))) < 0.08
    # Category and number: Oslo rows are the richer half in the data and in the copula's.
    out = fitted(GaussianCopula, table).sample(4000, seed=3)
    oslo = out.filter(pl.col("city") == "Oslo")["income"].mean()
    other = out.filter(pl.col("city") != "Oslo")["income"].mean()
    assert oslo > other + 15_000  # type: ignore[operator]


@pytest.mark.parametrize("method", OURS)
def test_same_seed_same_rows_and_other_seed_other_rows(
    method: type, table: tuple[pl.DataFrame, list[ColumnSpec]]
) -> None:
    a = fitted(method, table).sample(500, seed=11)
    b = fitted(method, table).sample(500, seed=11)
    assert a.equals(b)
    assert not a.equals(fitted(method, table).sample(500, seed=12))


def test_copula_conditions_exactly(table: tuple[pl.DataFrame, list[ColumnSpec]]) -> None:
    model = fitted(GaussianCopula, table)
    oslo = model.sample(500, seed=1, conditions={"city": "Oslo"})
    assert oslo["city"].unique().to_list() == ["Oslo"]
    others = model.sample(500, seed=1, conditions={"city": "Bergen"})
    assert oslo["income"].mean() > others["income"].mean()  # type: ignore[operator]
    old = model.sample(500, seed=1, conditions={"age": 80})
    young = model.sample(500, seed=1, conditions={"age": 20})
    assert old["age"].unique().to_list() == [80]
    assert old["income"].mean() > young["income"].mean() + 40_000  # type: ignore[operator]
    missing = model.sample(200, seed=1, conditions={"income": None, "member": True})
    assert missing["income"].null_count() == 200
    assert missing["member"].all()


@pytest.mark.parametrize(
    ("conditions", "field"),
    [
        ({"city": "Paris"}, "conditions.city"),
        ({"age": 200}, "conditions.age"),
        ({"city": None}, "conditions.city"),
        ({"age": None}, "conditions.age"),
        ({"nope": 1}, "conditions.nope"),
    ],
)
def test_copula_refuses_impossible_conditions(
    table: tuple[pl.DataFrame, list[ColumnSpec]], conditions: dict[str, object], field: str
) -> None:
    with pytest.raises(Invalid) as caught:
        fitted(GaussianCopula, table).sample(10, seed=1, conditions=conditions)
    assert caught.value.code == "CONDITION_IMPOSSIBLE"
    assert caught.value.details[0]["field"] == field


def test_copula_handles_wide_tables_with_degenerate_columns() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=300)
    frame = pl.DataFrame(
        {f"x{i}": base + rng.normal(scale=0.01, size=300) for i in range(30)}
        | {"constant": [5.0] * 300, "empty": pl.Series([None] * 300, dtype=pl.Float64)}
    )
    model = GaussianCopula({"shrinkage": 0.1})
    model.fit(frame, [], seed=0)
    out = model.sample(100, seed=0)
    assert out["constant"].unique().to_list() == [5.0]
    assert out["empty"].null_count() == 100
    assert np.linalg.eigvalsh(model.correlation).min() > 0


def test_copula_reads_at_most_max_rows(table: tuple[pl.DataFrame, list[ColumnSpec]]) -> None:
    model = GaussianCopula({"max_rows": 100})
    model.fit(table[0], table[1], seed=0)
    assert model.sample(50, seed=0).height == 50


def test_fit_reports_progress_and_stops_when_cancelled(
    table: tuple[pl.DataFrame, list[ColumnSpec]],
) -> None:
    seen: list[float] = []
    GaussianCopula().fit(
        table[0], table[1], seed=0, progress=lambda f, _m: seen.append(f), cancelled=lambda: False
    )
    assert seen[0] == 0.0
    assert seen[-1] == 1.0
    with pytest.raises(FitCancelled):
        GaussianCopula().fit(table[0], table[1], seed=0, cancelled=lambda: True)


def test_params_are_validated_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        GaussianCopula({"shrinkage": 2})
    assert caught.value.errors()[0]["loc"] == ("shrinkage",)
    with pytest.raises(ValidationError):
        IndependentMarginals({"unknown": 1})


def test_registry_resolves_every_method_to_a_synthesizer() -> None:
    for name in METHODS:
        cls = method_class(name)
        assert cls.name == name
    assert isinstance(create("gaussian_copula"), Synthesizer)
    with pytest.raises(Invalid) as caught:
        method_class("gan9000")
    assert caught.value.details[0]["field"] == "method"


def test_registry_loads_torch_only_for_the_neural_methods() -> None:
    code = (
        "import sys\n"
        "from inwire.services.synthex.generators.methods import create, params_model\n"
        "for name in ('gaussian_copula', 'marginals', 'privbayes', 'mst'):\n"
        "    params_model(name)\n"
        "create('gaussian_copula')\n"
        "params_model('ctgan')\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
