"""Constraints and conditions around any method (``generators.constraints``).

Pinned for every method we can run without PyTorch (the copula, the marginals baseline,
PrivBayes and MST): dtypes and column order kept, identifiers fresh, unique and in their
format, bounds, fixed combinations and inequalities holding in every row, conditions met,
the same seed giving the same rows. Then the checks: configurations that do not fit the
schema, data that breaks a declared inequality, impossible conditions (a 400 with a clear
message, after a bounded number of draws) and identifier formats.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from pydantic import TypeAdapter

from inwire.kit.errors import Invalid
from inwire.services.synthex.generators.constraints import (
    ConstrainedSynthesizer,
    Constraint,
    IdentifierFormat,
    condition_problems,
    constraint_problems,
    fresh_identifiers,
)
from inwire.services.synthex.generators.methods import create
from inwire.services.synthex.schema import ColumnSpec, ColumnType

RULES = TypeAdapter(list[Constraint])

METHODS: dict[str, dict[str, Any]] = {
    "gaussian_copula": {},
    "marginals": {},
    "privbayes": {"epsilon": 5.0},
    "mst": {"epsilon": 5.0},
}


def orders(n: int = 1500, seed: int = 0) -> tuple[pl.DataFrame, list[ColumnSpec]]:
    """Orders: ids in two formats, a city/country pair, ordered and shipped dates, amounts."""
    rng = np.random.default_rng(seed)
    ordered = [date(2024, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 300, n)]
    city = rng.choice(["Oslo", "Bergen", "Paris", "Lyon"], n)
    frame = pl.DataFrame(
        {
            "order_id": [f"ORD-{i:06d}" for i in range(n)],
            "token": [str(uuid.UUID(int=int(v), version=4)) for v in rng.integers(0, 2**62, n)],
            "city": city,
            "country": np.where(np.isin(city, ["Oslo", "Bergen"]), "NO", "FR"),
            "ordered": ordered,
            "shipped": [
                d + timedelta(days=int(k))
                for d, k in zip(ordered, rng.integers(1, 9, n), strict=True)
            ],
            "amount": rng.gamma(2.0, 50.0, n),
            "items": pl.Series(rng.integers(1, 12, n), dtype=pl.Int16),
        }
    )
    schema = [
        ColumnSpec(name="order_id", type=ColumnType.identifier),
        ColumnSpec(name="token", type=ColumnType.categorical),
        ColumnSpec(name="city", type=ColumnType.categorical),
        ColumnSpec(name="country", type=ColumnType.categorical),
        ColumnSpec(name="ordered", type=ColumnType.datetime),
        ColumnSpec(name="shipped", type=ColumnType.datetime),
        ColumnSpec(name="amount", type=ColumnType.float),
        ColumnSpec(name="items", type=ColumnType.integer),
    ]
    return frame, schema


ORDER_RULES = [
    {"type": "unique", "column": "token"},
    {"type": "fixed_combinations", "columns": ["city", "country"]},
    {"type": "inequality", "low": "ordered", "high": "shipped"},
    {"type": "bounds", "column": "amount", "min": 20, "max": 300},
    {"type": "bounds", "column": "items", "max": 8},
]


def constrained(method: str, rules: list[dict[str, Any]] = ORDER_RULES) -> ConstrainedSynthesizer:
    frame, schema = orders()
    model = ConstrainedSynthesizer(create(method, METHODS[method]), RULES.validate_python(rules))
    model.fit(frame, schema, seed=3)
    return model


@pytest.mark.parametrize("method", METHODS)
def test_every_method_keeps_every_rule(method: str) -> None:
    real, _ = orders()
    out = constrained(method).sample(1200, seed=1)
    assert out.height == 1200
    assert out.schema == real.schema  # dtypes and column order
    assert out["order_id"].n_unique() == 1200
    assert all(re.fullmatch(r"ORD-\d{6}", v) for v in out["order_id"])
    assert not out["order_id"].is_in(real["order_id"].implode()).any()
    assert out["token"].n_unique() == 1200
    assert all(uuid.UUID(v).version == 4 for v in out["token"])
    assert not out["token"].is_in(real["token"].implode()).any()
    pairs = set(out.select("city", "country").unique().rows())
    assert pairs <= set(real.select("city", "country").unique().rows())
    assert (out["ordered"] < out["shipped"]).all()
    assert out["amount"].min() >= 20  # type: ignore[operator]
    assert out["amount"].max() <= 300  # type: ignore[operator]
    assert out["items"].max() <= 8  # type: ignore[operator]


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_rows(method: str) -> None:
    a = constrained(method).sample(300, seed=9)
    assert a.equals(constrained(method).sample(300, seed=9))
    assert not a.equals(constrained(method).sample(300, seed=10))


@pytest.mark.parametrize("method", METHODS)
def test_conditions_hold_in_every_row(method: str) -> None:
    model = constrained(method)
    out = model.sample(200, seed=2, conditions={"city": "Paris"})
    assert out["city"].unique().to_list() == ["Paris"]
    assert out["country"].unique().to_list() == ["FR"]  # fixed combination still holds
    assert (out["ordered"] < out["shipped"]).all()


def test_copula_conditions_exactly_on_numbers_and_dates() -> None:
    model = constrained("gaussian_copula", [])
    out = model.sample(100, seed=2, conditions={"items": 3, "ordered": "2024-03-01"})
    assert out["items"].unique().to_list() == [3]
    assert out["ordered"].unique().to_list() == [date(2024, 3, 1)]


def test_impossible_conditions_are_a_400_after_a_bounded_number_of_draws() -> None:
    model = constrained("marginals")
    with pytest.raises(Invalid) as caught:
        model.sample(20, seed=1, conditions={"city": "Rome"})
    assert caught.value.code == "CONDITION_IMPOSSIBLE"
    assert "Rome" in caught.value.message
    for conditions, field in (
        ({"nope": 1}, "conditions.nope"),
        ({"order_id": "ORD-000001"}, "conditions.order_id"),
        ({"amount": 1000.0}, "conditions.amount"),  # outside the declared bounds
        ({"items": "many"}, "conditions.items"),
    ):
        with pytest.raises(Invalid) as caught:
            model.sample(5, seed=1, conditions=conditions)
        assert caught.value.details[0]["field"] == field


def test_data_breaking_a_declared_inequality_is_refused() -> None:
    frame, schema = orders()
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) < 3)
        .then(pl.col("ordered") - timedelta(days=1))
        .otherwise(pl.col("shipped"))
        .alias("shipped")
    )
    model = ConstrainedSynthesizer(create("marginals"), RULES.validate_python(ORDER_RULES[2:3]))
    with pytest.raises(Invalid) as caught:
        model.fit(frame, schema, seed=0)
    assert "3 rows" in caught.value.message


def test_constraint_problems_name_the_field() -> None:
    _, schema = orders()
    rules = RULES.validate_python(
        [
            {"type": "bounds", "column": "city", "min": 1},
            {"type": "bounds", "column": "amount"},
            {"type": "fixed_combinations", "columns": ["city", "nope"]},
            {"type": "inequality", "low": "ordered", "high": "amount"},
            {"type": "unique", "column": "city"},
            {"type": "fixed_combinations", "columns": ["order_id", "items"]},
        ]
    )
    fields = {p["field"] for p in constraint_problems(rules, schema)}
    assert fields == {
        "constraints[0].column",
        "constraints[1]",
        "constraints[2].columns[1]",
        "constraints[3].high",
        "constraints[4].column",
        "constraints[5]",
    }
    assert constraint_problems(RULES.validate_python(ORDER_RULES), schema) == []


def test_condition_problems_check_columns_and_types() -> None:
    _, schema = orders()
    problems = condition_problems(
        {"items": 2.5, "amount": "x", "ordered": "2024-13-45", "order_id": "a", "city": None},
        schema,
    )
    assert {p["field"] for p in problems} == {
        "conditions.items",
        "conditions.amount",
        "conditions.ordered",
        "conditions.order_id",
    }
    assert condition_problems({"items": 2, "ordered": "2024-01-05", "city": "Oslo"}, schema) == []


def test_identifier_formats_are_learnt_and_widened_when_too_small() -> None:
    rng = np.random.default_rng(0)
    prefixed = pl.Series("id", [f"CUST-{i}" for i in range(1000, 1300)])
    fmt = IdentifierFormat.learn(prefixed)
    assert fmt.capacity() == 10_000  # "CUST-" kept, every digit free
    few = fresh_identifiers(fmt, 10, prefixed, pl.String, rng)
    assert all(re.fullmatch(r"CUST-\d{4}", v) for v in few)
    many = fresh_identifiers(fmt, 20_000, prefixed, pl.String, rng)
    assert many.n_unique() == 20_000
    assert all(re.fullmatch(r"CUST-\d{5,}", v) for v in many)
    numbers = pl.Series("n", [101, 250, 999], dtype=pl.Int32)
    fresh = fresh_identifiers(IdentifierFormat.learn(numbers), 50, numbers, pl.Int32, rng)
    assert fresh.dtype == pl.Int32
    assert fresh.n_unique() == 50
    assert not fresh.is_in(numbers.implode()).any()
