"""The differentially private methods (PrivBayes, MST) and their accounting.

What is pinned: the budget spent never exceeds ε (and δ), and is reported; less ε means
more noise; the rows are read only inside charged queries and nothing row-level is kept
after the fit; seeds reproduce; types, declared bounds, missing values and datetimes hold;
rare categories are never revealed.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from inwire.kit.errors import Invalid
from inwire.services.synthex.generators.methods.dp import (
    FitCancelled,
    PrivacyAccountant,
    PrivacyBudgetExceeded,
    PrivateData,
    PrivateSynthesizer,
    zcdp_delta,
    zcdp_epsilon,
    zcdp_rho,
)
from inwire.services.synthex.generators.methods.mst import MST
from inwire.services.synthex.generators.methods.privbayes import PrivBayes
from inwire.services.synthex.schema import ColumnSpec, ColumnType

METHODS: list[type[PrivateSynthesizer]] = [PrivBayes, MST]


def table(n: int = 3000, seed: int = 0) -> tuple[pl.DataFrame, list[ColumnSpec]]:
    """Mixed columns with a strong dependency (segment follows age), nulls and datetimes."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    segment = np.where(
        age > 50, rng.choice(["gold", "silver"], n), rng.choice(["basic", "plus"], n)
    )
    income = np.round(np.exp(rng.normal(10, 0.6, n)) + age * 200, 2)
    joined = [datetime(2021, 1, 1) + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 700, n)]
    frame = pl.DataFrame(
        {
            "id": [f"c{i:05d}" for i in range(n)],
            "age": pl.Series(age, dtype=pl.Int32),
            "segment": segment,
            "income": income,
            "joined": joined,
            "birthday": [
                date(1950, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 15000, n)
            ],
            "active": rng.random(n) < 0.7,
        }
    ).with_columns(
        # About 15 % of incomes missing, and a category held by one row only.
        pl.when(pl.col("age") % 7 == 0).then(None).otherwise(pl.col("income")).alias("income"),
        pl.when(pl.int_range(pl.len()) == 17)
        .then(pl.lit("unique-vip"))
        .otherwise(pl.col("segment"))
        .alias("segment"),
    )
    schema = [
        ColumnSpec(name="id", type=ColumnType.identifier, nullable=False),
        ColumnSpec(name="age", type=ColumnType.integer, nullable=False),
        ColumnSpec(name="segment", type=ColumnType.categorical, nullable=False),
        ColumnSpec(name="income", type=ColumnType.float),
        ColumnSpec(name="joined", type=ColumnType.datetime, nullable=False),
        ColumnSpec(name="birthday", type=ColumnType.datetime, nullable=False),
        ColumnSpec(name="active", type=ColumnType.boolean, nullable=False),
    ]
    return frame, schema


DECLARED: dict[str, Any] = {
    "bounds": {
        "age": [18, 89],
        "income": [0, 200_000],
        "joined": ["2021-01-01", "2023-01-01"],
        "birthday": ["1950-01-01", "1991-01-01"],
    },
    "categories": {"segment": ["basic", "plus", "silver", "gold"]},
}


# -- accounting ------------------------------------------------------------------------


def test_zcdp_conversions_are_consistent_and_tighter_than_the_simple_bound() -> None:
    for epsilon, delta in [(0.1, 1e-9), (1.0, 1e-9), (3.0, 1e-6), (10.0, 1e-5)]:
        rho = zcdp_rho(epsilon, delta)
        assert zcdp_delta(rho, epsilon) <= delta * (1 + 1e-9)
        assert zcdp_epsilon(rho, delta) == pytest.approx(epsilon, rel=1e-6)
        # Bun & Steinke 2016, Prop. 1.3: rho-zCDP gives (rho + 2 sqrt(rho ln 1/δ), δ).
        assert epsilon <= rho + 2 * math.sqrt(rho * math.log(1 / delta))


def test_accountant_refuses_a_charge_that_overspends() -> None:
    acc = PrivacyAccountant(1.0, 0.0, "pure")
    acc.laplace("marginals", "a", 0.6)
    acc.exponential("structure", "a,b", 0.4)
    with pytest.raises(PrivacyBudgetExceeded):
        acc.laplace("marginals", "b", 0.01)
    with pytest.raises(PrivacyBudgetExceeded):
        acc.gaussian("marginals", "b", 0.001)  # Gaussian noise needs zCDP accounting
    report = acc.report()
    assert report["epsilon_spent"] == pytest.approx(1.0)
    assert report["by_mechanism"]["laplace"]["epsilon"] == pytest.approx(0.6)
    assert report["charges"] == 2


def test_zcdp_accountant_composes_rho_and_adds_approximate_charges() -> None:
    acc = PrivacyAccountant(1.0, 1e-6, "zcdp")
    acc.stability_histogram("domain", "c", 0.1, 5e-7)
    rho = zcdp_rho(0.9, 5e-7)
    acc.gaussian("marginals", "a", rho / 2)
    acc.laplace("marginals", "b", math.sqrt(rho))  # eps²/2 = rho/2
    assert acc.epsilon_spent == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(PrivacyBudgetExceeded):
        acc.gaussian("marginals", "c", rho / 100)


def test_rows_are_unreadable_outside_a_charged_query() -> None:
    frame, _ = table(50)
    private = PrivateData(frame, PrivacyAccountant(1.0, 0.0, "pure"))
    with pytest.raises(PrivacyBudgetExceeded):
        private._read("age")


# -- budget per method ------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("epsilon", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("declared", [False, True])
def test_spent_budget_never_exceeds_epsilon_and_is_reported(
    method: type[PrivateSynthesizer], epsilon: float, declared: bool
) -> None:
    frame, schema = table(800)
    synth = method({"epsilon": epsilon, **(DECLARED if declared else {})})
    synth.fit(frame, schema, seed=3)
    privacy = synth.privacy
    assert privacy is not None
    assert privacy["epsilon"] == epsilon
    assert privacy["epsilon_spent"] <= epsilon * (1 + 1e-9)
    # The plan spends the whole budget, not a fraction of it.
    assert privacy["epsilon_spent"] >= epsilon * 0.99
    assert privacy["delta_spent"] <= synth.params.delta
    assert privacy["charges"] >= 7
    assert set(privacy["by_purpose"]) >= {"marginals" if method is MST else "conditionals"}
    if declared:
        # Declared bounds and categories are free: no budget goes to the domain.
        assert "domain" not in privacy["by_purpose"]
    else:
        assert privacy["by_purpose"]["domain"]["count"] >= 5


def test_privbayes_is_pure_epsilon_dp_when_the_domain_is_declared() -> None:
    frame, schema = table(500)
    synth = PrivBayes({"epsilon": 1.0, "delta": 0.0, **DECLARED})
    synth.fit(frame, schema, seed=0)
    assert synth.privacy is not None
    assert synth.privacy["delta_spent"] == 0.0
    assert synth.privacy["epsilon_spent"] == pytest.approx(1.0)


@pytest.mark.parametrize("method", METHODS)
def test_methods_read_rows_only_inside_charged_queries_and_keep_none(
    method: type[PrivateSynthesizer], monkeypatch: pytest.MonkeyPatch
) -> None:
    frame, schema = table(700)
    reads: list[tuple[str, int]] = []
    original = PrivateData._read

    def counting_read(self: PrivateData, column: str) -> pl.Series:
        reads.append((column, len(self.accountant.charges)))
        return original(self, column)

    monkeypatch.setattr(PrivateData, "_read", counting_read)
    synth = method({"epsilon": 1.0})
    synth.fit(frame, schema, seed=1)
    assert reads, "the fit must read the data through PrivateData"
    # Every read happened after at least one charge, and the identifier was never read.
    assert all(charges > 0 for _, charges in reads)
    assert "id" not in {column for column, _ in reads}
    assert synth.privacy is not None
    assert synth.privacy["charges"] >= len({column for column, _ in reads})

    # Nothing row-level is kept: no array or frame as long as the table in the model.
    def walk(value: Any, depth: int = 0) -> None:
        assert not isinstance(value, (pl.DataFrame, pl.Series, PrivateData))
        if isinstance(value, np.ndarray):
            assert len(frame) not in value.shape
        if depth > 6:
            return
        children: Any = ()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, (list, tuple)):
            children = value
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            children = vars(value).values()
        for child in children:
            walk(child, depth + 1)

    walk({k: v for k, v in vars(synth).items() if k != "_dtypes"})


# -- noise ---------------------------------------------------------------------------


def marginal_error(real: pl.DataFrame, synth: pl.DataFrame) -> float:
    """Mean total-variation distance of 1-way and a 2-way marginal on fixed public bins."""

    def discretise(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(
            (pl.col("age") // 10).alias("age"),
            pl.col("segment"),
            pl.col("income").is_null().alias("income_missing"),
            (pl.col("income") // 20_000).clip(0, 10).alias("income"),
            pl.col("active"),
            pl.col("joined").dt.quarter().alias("joined"),
        )

    a, b = discretise(real), discretise(synth)
    distances = []
    for cols in (
        ["age"],
        ["segment"],
        ["income_missing"],
        ["income"],
        ["active"],
        ["joined"],
        ["age", "segment"],
    ):
        pa = a.group_by(cols).len().with_columns(pl.col("len") / len(a))
        pb = b.group_by(cols).len().with_columns(pl.col("len") / len(b))
        joined = pa.join(pb, on=cols, how="full", coalesce=True, nulls_equal=True).fill_null(0)
        distances.append(0.5 * float((joined["len"] - joined["len_right"]).abs().sum()))
    return float(np.mean(distances))


@pytest.mark.parametrize("method", METHODS)
def test_less_epsilon_means_more_noise_averaged_over_seeds(
    method: type[PrivateSynthesizer],
) -> None:
    frame, schema = table(3000)
    errors = {}
    for epsilon in (0.05, 1.0, 10.0):
        runs = []
        for seed in range(4):
            synth = method({"epsilon": epsilon, **DECLARED})
            synth.fit(frame, schema, seed=seed)
            runs.append(marginal_error(frame, synth.sample(3000, seed=100 + seed)))
        errors[epsilon] = float(np.mean(runs))
    assert errors[0.05] > errors[1.0] > errors[10.0], errors
    # At ε = 10 on 3000 rows the marginals are close to the real ones.
    assert errors[10.0] < 0.08, errors


@pytest.mark.parametrize("method", METHODS)
def test_a_large_budget_keeps_the_dependency_between_columns(
    method: type[PrivateSynthesizer],
) -> None:
    frame, schema = table(3000)
    synth = method({"epsilon": 10.0, **DECLARED})
    synth.fit(frame, schema, seed=0)
    out = synth.sample(3000, seed=1)
    old = out.filter(pl.col("age") > 55)["segment"].is_in(["gold", "silver"]).mean()
    young = out.filter(pl.col("age") < 45)["segment"].is_in(["gold", "silver"]).mean()
    assert old is not None
    assert young is not None
    assert old > 0.75
    assert young < 0.25


# -- reproducibility and the shape of the output ----------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_seeded_fit_and_sample_reproduce(method: type[PrivateSynthesizer]) -> None:
    frame, schema = table(600)
    outs = []
    for _ in range(2):
        synth = method({"epsilon": 1.0})
        synth.fit(frame, schema, seed=42)
        outs.append(synth.sample(400, seed=7))
    assert outs[0].equals(outs[1])
    other = method({"epsilon": 1.0})
    other.fit(frame, schema, seed=43)
    assert not other.sample(400, seed=7).equals(outs[0])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("declared", [False, True])
def test_types_bounds_missing_values_and_datetimes_hold(
    method: type[PrivateSynthesizer], declared: bool
) -> None:
    frame, schema = table(2000)
    synth = method({"epsilon": 2.0, **(DECLARED if declared else {})})
    synth.fit(frame, schema, seed=5)
    out = synth.sample(1500, seed=6)
    assert out.columns == frame.columns
    assert out.schema == frame.schema
    assert out.height == 1500
    # Identifiers are fresh and unique; non-nullable columns have no nulls.
    assert out["id"].n_unique() == 1500
    assert not set(out["id"].to_list()) & set(frame["id"].to_list())
    for column in ("age", "segment", "joined", "birthday", "active"):
        assert out[column].null_count() == 0, column
    # Missing incomes are modelled as their own category (about 15 % of rows).
    assert 0.03 < out["income"].null_count() / 1500 < 0.35
    assert set(out["segment"].unique()) <= {"basic", "plus", "silver", "gold"}
    assert out["active"].mean() == pytest.approx(0.7, abs=0.15)
    if declared:
        assert out["age"].min() >= 18
        assert out["age"].max() <= 89
        assert out["income"].min() >= 0
        assert out["income"].max() <= 200_000
        assert out["joined"].min() >= datetime(2021, 1, 1)
        assert out["joined"].max() <= datetime(2023, 1, 1)
    else:
        # Privately learnt ranges land near the real ones (never read for free): at this
        # budget, within the octave [16, 128) that holds the ages and the decades that
        # hold the dates.
        assert out["age"].min() >= 16
        assert out["age"].max() < 128
        assert out["joined"].min() >= datetime(2020, 1, 1)
        assert out["joined"].max() < datetime(2030, 1, 1)
        assert out["birthday"].min() >= date(1950, 1, 1)
        assert out["birthday"].max() < date(2000, 1, 1)


@pytest.mark.parametrize("method", METHODS)
def test_a_category_held_by_one_row_is_never_revealed(method: type[PrivateSynthesizer]) -> None:
    frame, schema = table(1000)
    for seed in range(5):
        synth = method({"epsilon": 10.0})
        synth.fit(frame, schema, seed=seed)
        assert "unique-vip" not in synth.sample(2000, seed=seed)["segment"].to_list()


def test_integer_columns_with_few_values_get_a_bin_each() -> None:
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"children": rng.choice([0, 1, 2, 3], 2000, p=[0.4, 0.3, 0.2, 0.1])})
    schema = [ColumnSpec(name="children", type=ColumnType.integer, nullable=False)]
    synth = MST({"epsilon": 5.0, "bounds": {"children": [0, 3]}})
    synth.fit(frame, schema, seed=0)
    counts = synth.sample(4000, seed=0)["children"].value_counts().sort("children")
    assert counts["children"].to_list() == [0, 1, 2, 3]
    shares = (counts["count"] / 4000).to_list()
    assert shares == pytest.approx([0.4, 0.3, 0.2, 0.1], abs=0.04)


# -- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("epsilon", [0, -1, 10.5, math.inf])
def test_epsilon_outside_the_allowed_range_is_refused(
    method: type[PrivateSynthesizer], epsilon: float
) -> None:
    with pytest.raises(ValidationError):
        method({"epsilon": epsilon})


def test_epsilon_is_required_and_its_ceiling_is_configurable() -> None:
    with pytest.raises(ValidationError):
        PrivBayes({})
    with pytest.raises(ValidationError):
        PrivBayes.Params.model_validate({"epsilon": 3.0}, context={"max_epsilon": 2.0})
    assert PrivBayes.Params.model_validate({"epsilon": 15.0}, context={"max_epsilon": 20.0})


def test_mst_needs_a_positive_delta() -> None:
    with pytest.raises(ValidationError):
        MST({"epsilon": 1.0, "delta": 0})


def test_declarations_naming_unknown_columns_or_empty_ranges_are_400s() -> None:
    frame, schema = table(100)
    for params in (
        {"bounds": {"nope": [0, 1]}},
        {"bounds": {"age": [10, 5]}},
        {"bounds": {"segment": [0, 1]}},
        {"categories": {"ghost": ["a"]}},
    ):
        with pytest.raises(Invalid) as err:
            PrivBayes({"epsilon": 1.0, **params}).fit(frame, schema, seed=0)
        assert err.value.details
        assert err.value.details[0]["field"].startswith("params.")


def test_undeclared_categories_without_delta_are_a_400_naming_the_columns() -> None:
    frame, schema = table(100)
    with pytest.raises(Invalid, match="segment"):
        PrivBayes({"epsilon": 1.0, "delta": 0}).fit(frame, schema, seed=0)


@pytest.mark.parametrize("method", METHODS)
def test_cancel_stops_the_fit(method: type[PrivateSynthesizer]) -> None:
    frame, schema = table(300)
    seen: list[float] = []
    with pytest.raises(FitCancelled):
        method({"epsilon": 1.0}).fit(
            frame,
            schema,
            seed=0,
            progress=lambda f, _m: seen.append(f),
            cancelled=lambda: len(seen) >= 2,
        )
    assert len(seen) == 2


@pytest.mark.parametrize("method", METHODS)
def test_sampling_before_fit_is_an_error(method: type[PrivateSynthesizer]) -> None:
    with pytest.raises(RuntimeError):
        method({"epsilon": 1.0}).sample(10, seed=0)
