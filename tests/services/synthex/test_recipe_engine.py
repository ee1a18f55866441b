"""The recipe engine: each step on small frames with exact outputs, schema tracking through
the steps, validation naming the step, and the expression language's safety."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime
from typing import Any

import polars as pl
import pytest

from inwire.services.synthex.recipes.engine import (
    OPS,
    RecipeError,
    Salts,
    apply,
    output_schema,
    validate,
)
from inwire.services.synthex.recipes.expressions import ExpressionError, compile_expression
from inwire.services.synthex.schema import ColumnSpec, ColumnType


def run(
    frame: pl.DataFrame, *steps: dict[str, Any], **kwargs: Any
) -> tuple[pl.DataFrame, list[ColumnSpec]]:
    lf, schema = apply(frame.lazy(), list(steps), **kwargs)
    return lf.collect(), schema


def col(frame: pl.DataFrame, name: str) -> list[Any]:
    return frame[name].to_list()


def types(schema: list[ColumnSpec]) -> dict[str, str]:
    return {c.name: c.type.value for c in schema}


PEOPLE = pl.DataFrame(
    {
        "id": [1, 2, 3, 4],
        "name": ["Ann", "bob", None, "Cy"],
        "age": [34, None, 61, 17],
        "income": [1200.5, 800.0, None, 3000.0],
        "joined": [date(2024, 1, 31), date(2023, 6, 15), None, date(2025, 3, 2)],
    }
)


# -- structure -------------------------------------------------------------------------------


def test_select_keeps_listed_columns_in_order() -> None:
    out, schema = run(PEOPLE, {"op": "select", "columns": ["age", "id"]})
    assert out.columns == ["age", "id"]
    assert [c.name for c in schema] == ["age", "id"]


def test_drop_removes_columns() -> None:
    out, _ = run(PEOPLE, {"op": "drop", "columns": ["income", "joined"]})
    assert out.columns == ["id", "name", "age"]


def test_rename_renames_and_keeps_types() -> None:
    out, schema = run(PEOPLE, {"op": "rename", "columns": {"age": "years"}})
    assert out.columns == ["id", "name", "years", "income", "joined"]
    assert types(schema)["years"] == "integer"


def test_rename_onto_an_existing_column_is_a_problem() -> None:
    with pytest.raises(RecipeError) as err:
        run(PEOPLE, {"op": "rename", "columns": {"age": "id"}})
    assert "already exists" in err.value.problems[0].message


def test_cast_converts_and_unreadable_values_become_null() -> None:
    frame = pl.DataFrame(
        {
            "n": [" 12", "x", "7", None],
            "f": ["1.5", "2", "bad", "3e2"],
            "b": ["yes", "No", "1", "maybe"],
            "d": ["2024-01-31", "2024-02-01", "nope", None],
            "x": [1.6, 2.4, -0.5, None],
        }
    )
    out, schema = run(
        frame,
        {
            "op": "cast",
            "columns": {
                "n": "integer",
                "f": "float",
                "b": "boolean",
                "d": "datetime",
                "x": "integer",
            },
        },
    )
    assert col(out, "n") == [12, None, 7, None]
    assert col(out, "f") == [1.5, 2.0, None, 300.0]
    assert col(out, "b") == [True, False, True, None]
    assert col(out, "d") == [datetime(2024, 1, 31), datetime(2024, 2, 1), None, None]
    assert col(out, "x") == [2, 2, 0, None]
    assert types(schema) == {
        "n": "integer",
        "f": "float",
        "b": "boolean",
        "d": "datetime",
        "x": "integer",
    }


def test_cast_with_a_date_format() -> None:
    frame = pl.DataFrame({"d": ["31.01.2024", "01.02.2024"]})
    out, _ = run(frame, {"op": "cast", "columns": {"d": "datetime"}, "format": "%d.%m.%Y"})
    assert col(out, "d") == [datetime(2024, 1, 31), datetime(2024, 2, 1)]


def test_cast_a_date_to_a_number_is_refused() -> None:
    problems = validate(
        [{"op": "cast", "columns": {"joined": "integer"}}],
        [ColumnSpec(name="joined", type=ColumnType.datetime, storage="Date")],
    )
    assert problems[0].op == "cast"
    assert "cannot become integer" in problems[0].message


# -- missing values and duplicates ----------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "value", "age", "income"),
    [
        ("value", 0, [34, 0, 61, 17], [1200.5, 800.0, 0.0, 3000.0]),
        ("mean", None, [34, 37, 61, 17], [1200.5, 800.0, 5000.5 / 3, 3000.0]),
        ("median", None, [34, 34, 61, 17], [1200.5, 800.0, 1200.5, 3000.0]),
        ("forward", None, [34, 34, 61, 17], [1200.5, 800.0, 800.0, 3000.0]),
        ("backward", None, [34, 61, 61, 17], [1200.5, 800.0, 3000.0, 3000.0]),
    ],
)
def test_fill_missing_numbers(
    strategy: str, value: Any, age: list[int], income: list[float]
) -> None:
    step: dict[str, Any] = {
        "op": "fill_missing",
        "columns": ["age", "income"],
        "strategy": strategy,
    }
    if value is not None:
        step["value"] = value
    out, _ = run(PEOPLE, step)
    assert col(out, "age") == age
    assert col(out, "income") == pytest.approx(income)
    assert out["age"].dtype == pl.Int64


def test_fill_missing_mode_takes_the_smallest_most_common_value_and_nan_counts_as_missing() -> None:
    frame = pl.DataFrame(
        {"c": ["b", "a", None, "b", "a"], "x": [1.0, float("nan"), 2.0, 2.0, None]}
    )
    out, _ = run(frame, {"op": "fill_missing", "columns": ["c", "x"], "strategy": "mode"})
    assert col(out, "c") == ["b", "a", "a", "b", "a"]
    assert col(out, "x") == [1.0, 2.0, 2.0, 2.0, 2.0]


def test_fill_missing_value_must_fit_the_column() -> None:
    problems = validate(
        [{"op": "fill_missing", "columns": ["age"], "strategy": "value", "value": "old"}],
        [ColumnSpec(name="age", type=ColumnType.integer, storage="Int64")],
    )
    assert problems[0].field == "value"
    assert "needs a number" in problems[0].message


def test_fill_missing_date_value() -> None:
    out, _ = run(
        PEOPLE,
        {"op": "fill_missing", "columns": ["joined"], "strategy": "value", "value": "2000-01-01"},
    )
    assert col(out, "joined")[2] == date(2000, 1, 1)


def test_drop_missing_any_and_all() -> None:
    frame = pl.DataFrame({"a": [1, None, None, 4], "b": [1.0, 2.0, None, float("nan")]})
    out, _ = run(frame, {"op": "drop_missing"})
    assert col(out, "a") == [1]
    out, _ = run(frame, {"op": "drop_missing", "how": "all"})
    assert col(out, "a") == [1, None, 4]
    out, _ = run(frame, {"op": "drop_missing", "columns": ["a"]})
    assert col(out, "a") == [1, 4]


@pytest.mark.parametrize(
    ("keep", "ids"), [("first", [1, 2, 4]), ("last", [2, 3, 4]), ("none", [2, 4])]
)
def test_dedupe_on_a_subset(keep: str, ids: list[int]) -> None:
    frame = pl.DataFrame({"id": [1, 2, 3, 4], "k": ["x", "y", "x", "z"]})
    out, _ = run(frame, {"op": "dedupe", "columns": ["k"], "keep": keep})
    assert col(out, "id") == ids


def test_dedupe_whole_rows() -> None:
    frame = pl.DataFrame({"a": [1, 1, 2], "b": ["x", "x", "x"]})
    out, _ = run(frame, {"op": "dedupe"})
    assert out.rows() == [(1, "x"), (2, "x")]


# -- expressions -----------------------------------------------------------------------------


def test_filter_keeps_rows_where_true_and_drops_missing() -> None:
    out, _ = run(PEOPLE, {"op": "filter", "expr": "age >= 18 and name is not None"})
    assert col(out, "id") == [1]
    out, _ = run(PEOPLE, {"op": "filter", "expr": 'lower(name) in ["ann", "bob"] or age < 18'})
    assert col(out, "id") == [1, 2, 4]
    out, _ = run(PEOPLE, {"op": "filter", "expr": 'joined >= "2024-01-01"'})
    assert col(out, "id") == [1, 4]


def test_filter_must_be_true_or_false() -> None:
    problems = validate(
        [{"op": "filter", "expr": "age + 1"}],
        [ColumnSpec(name="age", type=ColumnType.integer, storage="Int64")],
    )
    assert "true or false" in problems[0].message


def test_derive_adds_typed_columns() -> None:
    out, schema = run(
        PEOPLE,
        {"op": "derive", "column": "monthly", "expr": "round(income / 12, 1)"},
        {"op": "derive", "column": "label", "expr": 'concat(upper(name), "-", id)'},
        {"op": "derive", "column": "senior", "expr": "age >= 60"},
        {"op": "derive", "column": "band", "expr": '"old" if age > 40 else "young"'},
        {"op": "derive", "column": "tenure", "expr": 'days_between(joined, date("2025-03-02"))'},
        {"op": "derive", "column": "year", "expr": "year(joined)"},
    )
    assert col(out, "monthly") == [100.0, 66.7, None, 250.0]
    assert col(out, "label") == ["ANN-1", "BOB-2", None, "CY-4"]
    assert col(out, "senior") == [False, None, True, False]
    assert col(out, "band") == ["young", "young", "old", "young"]
    assert col(out, "tenure") == [396, 626, None, 0]
    assert col(out, "year") == [2024, 2023, None, 2025]
    assert types(schema) | {} == {
        "id": "integer",
        "name": "text",
        "age": "integer",
        "income": "float",
        "joined": "datetime",
        "monthly": "float",
        "label": "text",
        "senior": "boolean",
        "band": "text",
        "tenure": "integer",
        "year": "integer",
    }


def test_derive_replaces_a_column_in_place() -> None:
    out, _ = run(PEOPLE, {"op": "derive", "column": "age", "expr": "coalesce(age, 0) * 2"})
    assert out.columns == PEOPLE.columns
    assert col(out, "age") == [68, 0, 122, 34]


def test_derive_type_override_must_fit_the_result() -> None:
    schema = [ColumnSpec(name="age", type=ColumnType.integer, storage="Int64")]
    ok = validate([{"op": "derive", "column": "c", "expr": "age", "type": "categorical"}], schema)
    assert ok == []
    bad = validate([{"op": "derive", "column": "c", "expr": "age / 2", "type": "integer"}], schema)
    assert bad[0].field == "type"


def test_a_later_step_sees_columns_an_earlier_one_made() -> None:
    out, _ = run(
        PEOPLE,
        {"op": "derive", "column": "double", "expr": "age * 2"},
        {"op": "filter", "expr": "double > 60"},
        {"op": "rename", "columns": {"double": "twice"}},
        {"op": "select", "columns": ["id", "twice"]},
    )
    assert out.rows() == [(1, 68), (3, 122)]


# -- numbers ---------------------------------------------------------------------------------


def test_clip_outliers_iqr_clips_to_tukeys_fences() -> None:
    # Q1=2, Q3=4 (linear), IQR=2 → fences [-1, 7].
    frame = pl.DataFrame({"x": [1, 2, 3, 4, 100], "y": [1.0, 2.0, 3.0, 4.0, -50.0]})
    out, _ = run(frame, {"op": "clip_outliers", "columns": ["x"]})
    assert col(out, "x") == [1, 2, 3, 4, 7]
    assert out["x"].dtype == pl.Int64
    out, _ = run(frame, {"op": "clip_outliers", "columns": ["y"], "action": "null"})
    assert col(out, "y") == [1.0, 2.0, 3.0, 4.0, None]


def test_clip_outliers_quantile_and_zscore() -> None:
    frame = pl.DataFrame({"x": [float(v) for v in range(101)]})
    out, _ = run(
        frame,
        {"op": "clip_outliers", "columns": ["x"], "method": "quantile", "lower": 0.1, "upper": 0.9},
    )
    assert min(col(out, "x")) == 10.0
    assert max(col(out, "x")) == 90.0
    values = [0.0] * 20 + [100.0]
    out, _ = run(
        pl.DataFrame({"x": values}),
        {"op": "clip_outliers", "columns": ["x"], "method": "zscore", "threshold": 2.0},
    )
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    assert col(out, "x")[-1] == pytest.approx(mean + 2 * std)
    assert col(out, "x")[0] == 0.0


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("zscore", [-1.0, 0.0, 1.0, None]),
        ("minmax", [0.0, 0.5, 1.0, None]),
        ("robust", [-1.0, 0.0, 1.0, None]),
    ],
)
def test_normalize(method: str, expected: list[float | None]) -> None:
    frame = pl.DataFrame({"x": [1, 2, 3, None]})
    out, schema = run(frame, {"op": "normalize", "columns": ["x"], "method": method})
    assert col(out, "x")[:3] == pytest.approx(expected[:3])
    assert col(out, "x")[3] is None
    assert types(schema) == {"x": "float"}


def test_normalize_constant_column_is_zero() -> None:
    out, _ = run(pl.DataFrame({"x": [5.0, 5.0, None]}), {"op": "normalize", "columns": ["x"]})
    assert col(out, "x") == [0.0, 0.0, None]


def test_normalize_text_is_a_problem_naming_the_step() -> None:
    schema = [ColumnSpec(name="name", type=ColumnType.text, storage="String")]
    problems = validate(
        [{"op": "select", "columns": ["name"]}, {"op": "normalize", "columns": ["name"]}], schema
    )
    assert len(problems) == 1
    assert (problems[0].step, problems[0].op) == (1, "normalize")
    assert "needs numbers" in problems[0].message
    detail = problems[0].detail()
    assert detail["field"] == "steps[1].columns"
    assert detail["step"] == 1
    assert detail["op"] == "normalize"


def test_bin_equal_width_quantile_and_edges() -> None:
    frame = pl.DataFrame({"x": [0, 1, 5, 9, 10, None]})
    out, schema = run(frame, {"op": "bin", "column": "x", "bins": 2, "into": "b"})
    assert col(out, "b") == ["[0, 5)", "[0, 5)", "[5, 10]", "[5, 10]", "[5, 10]", None]
    assert types(schema)["b"] == "categorical"
    out, _ = run(frame, {"op": "bin", "column": "x", "method": "quantile", "bins": 2})
    # Median of 0,1,5,9,10 is 5.
    assert col(out, "x") == ["[0, 5)", "[0, 5)", "[5, 10]", "[5, 10]", "[5, 10]", None]
    out, _ = run(
        frame,
        {
            "op": "bin",
            "column": "x",
            "method": "edges",
            "edges": [1, 5, 9],
            "labels": ["low", "high"],
        },
    )
    assert col(out, "x") == [None, "low", "high", "high", None, None]


def test_bin_rejects_unsorted_edges_and_wrong_label_count() -> None:
    problems = validate(
        [
            {"op": "bin", "column": "x", "method": "edges", "edges": [3, 1]},
            {"op": "bin", "column": "x", "bins": 3, "labels": ["a", "b"]},
        ]
    )
    assert [(p.step, p.field) for p in problems] == [(0, "edges"), (1, "labels")]


# -- categories and dates -------------------------------------------------------------------


def test_one_hot_from_data_with_other() -> None:
    frame = pl.DataFrame({"c": ["a", "b", "a", "c", None, "a", "b"]})
    out, schema = run(frame, {"op": "one_hot", "column": "c", "max_categories": 2})
    assert out.columns == ["c_a", "c_b", "c_other"]
    assert col(out, "c_a") == [1, 0, 1, 0, 0, 1, 0]
    assert col(out, "c_b") == [0, 1, 0, 0, 0, 0, 1]
    assert col(out, "c_other") == [0, 0, 0, 1, 0, 0, 0]
    assert types(schema) == {"c_a": "integer", "c_b": "integer", "c_other": "integer"}


def test_one_hot_with_given_categories_keeps_the_original() -> None:
    frame = pl.DataFrame({"c": ["x", "y", "z"]})
    out, _ = run(
        frame,
        {
            "op": "one_hot",
            "column": "c",
            "categories": ["x", "z"],
            "prefix": "is",
            "drop_original": False,
        },
    )
    assert out.columns == ["c", "is_x", "is_z"]
    assert out.rows() == [("x", 1, 0), ("y", 0, 0), ("z", 0, 1)]


def test_steps_after_one_hot_may_name_its_columns_before_data_is_read() -> None:
    schema = [ColumnSpec(name="c", type=ColumnType.categorical, storage="String")]
    steps = [
        {"op": "one_hot", "column": "c"},
        {"op": "filter", "expr": "c_a == 1"},
    ]
    assert validate(steps, schema) == []
    out, _ = run(pl.DataFrame({"c": ["a", "b"]}), *steps)
    assert out.rows() == [(1, 0)]
    # With the data, a missing category is an unknown column of the filter step.
    with pytest.raises(RecipeError) as err:
        run(pl.DataFrame({"c": ["b"]}), *steps)
    assert err.value.problems[0].step == 1


def test_date_parts() -> None:
    frame = pl.DataFrame({"t": [datetime(2024, 3, 17, 13, 45, 6), None]})
    out, schema = run(
        frame,
        {
            "op": "date_parts",
            "column": "t",
            "parts": ["year", "quarter", "month", "day", "weekday", "day_of_year", "hour"],
            "drop_original": True,
        },
    )
    assert out.row(0) == (2024, 1, 3, 17, 7, 77, 13)
    assert out.row(1) == (None,) * 7
    assert out.columns[0] == "t_year"
    assert set(types(schema).values()) == {"integer"}


def test_date_parts_of_a_date_has_hour_zero_and_needs_a_date() -> None:
    out, _ = run(PEOPLE, {"op": "date_parts", "column": "joined", "parts": ["hour", "week"]})
    assert col(out, "joined_hour") == [0, 0, None, 0]
    assert col(out, "joined_week") == [5, 24, None, 9]
    problems = validate(
        [{"op": "date_parts", "column": "name", "parts": ["year"]}],
        [ColumnSpec(name="name", type=ColumnType.text, storage="String")],
    )
    assert "needs dates" in problems[0].message


# -- text ------------------------------------------------------------------------------------


def test_clean_text_all_options() -> None:
    frame = pl.DataFrame({"s": ["  Crème   Brûlée ", "Foo-123", "   ", None]})
    out, _ = run(
        frame,
        {
            "op": "clean_text",
            "columns": ["s"],
            "strip_accents": True,
            "collapse_whitespace": True,
            "case": "lower",
            "replace": [{"pattern": r"-(\d+)", "replacement": " #$1"}],
            "empty_to_null": True,
        },
    )
    assert col(out, "s") == ["creme brulee", "foo #123", None, None]


def test_clean_text_literal_replace_and_upper() -> None:
    frame = pl.DataFrame({"s": ["a.b.c"]})
    out, _ = run(
        frame,
        {
            "op": "clean_text",
            "columns": ["s"],
            "case": "upper",
            "replace": [{"pattern": ".", "replacement": "/", "regex": False}],
        },
    )
    assert col(out, "s") == ["A/B/C"]


def test_clean_text_bad_regex_is_found_without_a_schema() -> None:
    problems = validate([{"op": "clean_text", "columns": ["s"], "replace": [{"pattern": "(a"}]}])
    assert problems[0].field == "replace[0].pattern"
    assert "regular expression" in problems[0].message


# -- personal data ---------------------------------------------------------------------------


def test_mask_keeps_first_or_last_characters() -> None:
    frame = pl.DataFrame(
        {"card": ["4111111111111111", "12", None], "mail": ["ann@ex.com", "b@x.io", None]}
    )
    out, schema = run(
        frame,
        {"op": "mask", "columns": ["card"], "keep_last": 4},
        {"op": "mask", "columns": ["mail"], "keep_first": 1, "keep_separators": True, "char": "#"},
    )
    assert col(out, "card") == ["************1111", "**", None]
    assert col(out, "mail") == ["a##@##.###", "b@#.##", None]
    assert types(schema) == {"card": "text", "mail": "text"}


def test_mask_numbers_as_text() -> None:
    out, _ = run(pl.DataFrame({"n": [123456]}), {"op": "mask", "columns": ["n"], "keep_first": 2})
    assert col(out, "n") == ["12****"]


def test_hash_is_hmac_sha256_under_the_scoped_salt() -> None:
    frame = pl.DataFrame({"email": ["a@x.com", "b@y.org", "a@x.com", None], "n": [1, 2, 1, None]})
    salts = Salts(recipe=b"recipe-secret", organization=b"org-secret")
    out, schema = run(
        frame,
        {"op": "hash", "columns": ["email"]},
        {"op": "hash", "columns": ["n"], "scope": "organization", "length": 16},
        salt=salts,
    )
    key = hmac.new(b"recipe-secret", b"inwire.synthex.hash", hashlib.sha256).digest()
    expected = hmac.new(key, b"a@x.com", hashlib.sha256).hexdigest()
    assert col(out, "email")[0] == expected
    assert col(out, "email")[0] == col(out, "email")[2]
    assert col(out, "email")[3] is None
    org_key = hmac.new(b"org-secret", b"inwire.synthex.hash", hashlib.sha256).digest()
    assert col(out, "n")[0] == hmac.new(org_key, b"1", hashlib.sha256).hexdigest()[:16]
    assert types(schema) == {"email": "identifier", "n": "identifier"}


def test_hash_differs_with_another_salt() -> None:
    frame = pl.DataFrame({"v": ["x"]})
    one, _ = run(frame, {"op": "hash", "columns": ["v"]}, salt=b"one")
    two, _ = run(frame, {"op": "hash", "columns": ["v"]}, salt=b"two")
    assert col(one, "v") != col(two, "v")


def test_fake_is_realistic_and_the_same_for_the_same_original() -> None:
    frame = pl.DataFrame(
        {
            "email": ["a@x.com", "b@y.org", "a@x.com", None],
            "who": ["Ann Lee", "Bob Ray", "Ann Lee", "Cy Po"],
        }
    )
    schema = [
        ColumnSpec(name="email", type=ColumnType.text, semantic="email", storage="String"),
        ColumnSpec(name="who", type=ColumnType.text, storage="String"),
    ]
    steps = [
        {"op": "fake", "columns": ["email"]},
        {"op": "fake", "columns": ["who"], "kind": "person_name", "locale": "de_DE"},
    ]
    out, out_schema = run(frame, *steps, schema=schema, salt=b"s", seed=7)
    emails = col(out, "email")
    assert emails[0] == emails[2]
    assert emails[0] != emails[1]
    assert emails[3] is None
    assert all("@" in e for e in emails[:3])
    assert "a@x.com" not in emails
    names = col(out, "who")
    assert names[0] == names[2]
    assert "Ann Lee" not in names
    assert all(" " in n for n in names)
    assert {c.name: c.semantic for c in out_schema} == {"email": "email", "who": "person_name"}
    # Reproducible with the same seed and salt, in another order; different otherwise.
    again, _ = run(frame.reverse(), *steps, schema=schema, salt=b"s", seed=7)
    assert col(again, "email")[::-1] == emails
    other, _ = run(frame, *steps, schema=schema, salt=b"s", seed=8)
    assert col(other, "email")[:2] != emails[:2]


def test_fake_dates_of_birth_are_dates_and_kind_is_needed_without_a_hint() -> None:
    frame = pl.DataFrame({"dob": ["1980-01-01", "1990-05-05"]})
    out, schema = run(frame, {"op": "fake", "columns": ["dob"], "kind": "date_of_birth"})
    assert out["dob"].dtype == pl.Date
    assert types(schema) == {"dob": "datetime"}
    problems = validate(
        [{"op": "fake", "columns": ["dob"]}],
        [ColumnSpec(name="dob", type=ColumnType.text, storage="String")],
    )
    assert problems[0].field == "kind"
    assert validate([{"op": "fake", "columns": ["x"], "locale": "xx_XX"}])[0].field == "locale"


def test_generalize_numbers_dates_and_postal_codes() -> None:
    frame = pl.DataFrame(
        {
            "age": [37, 90, 5, None],
            "ratio": [0.25, 1.75, 0.5, None],
            "seen": [datetime(2024, 3, 17, 9), datetime(2023, 12, 31), None, datetime(2024, 1, 1)],
            "zip": ["75011", "1010", None, "9"],
        }
    )
    out, schema = run(
        frame,
        {"op": "generalize", "columns": ["age"], "width": 10, "top": 90},
        {"op": "generalize", "columns": ["ratio"], "width": 0.5},
        {"op": "generalize", "columns": ["seen"], "granularity": "month"},
        {"op": "generalize", "columns": ["zip"], "keep_chars": 3},
    )
    assert col(out, "age") == ["30-39", "90+", "0-9", None]
    assert col(out, "ratio") == ["[0.0, 0.5)", "[1.5, 2.0)", "[0.5, 1.0)", None]
    assert col(out, "seen") == [
        datetime(2024, 3, 1),
        datetime(2023, 12, 1),
        None,
        datetime(2024, 1, 1),
    ]
    assert col(out, "zip") == ["750**", "101*", None, "9"]
    assert types(schema) == {
        "age": "categorical",
        "ratio": "categorical",
        "seen": "datetime",
        "zip": "text",
    }


def test_generalize_needs_the_parameter_of_the_column_type() -> None:
    schema = [ColumnSpec(name="zip", type=ColumnType.text, storage="String")]
    problems = validate([{"op": "generalize", "columns": ["zip"], "width": 10}], schema)
    assert problems[0].field == "keep_chars"


# -- validation ------------------------------------------------------------------------------


SCHEMA = [
    ColumnSpec(name="id", type=ColumnType.identifier, storage="Int64"),
    ColumnSpec(name="name", type=ColumnType.text, storage="String"),
    ColumnSpec(name="age", type=ColumnType.integer, storage="Int64"),
]


def test_validate_names_unknown_ops_and_bad_parameters_without_a_schema() -> None:
    problems = validate(
        [
            {"op": "select", "columns": ["a"]},
            {"op": "explode"},
            {"columns": ["a"]},
            {"op": "normalize", "columns": []},
            {"op": "filter", "expr": "a +"},
            {"op": "drop", "columns": ["a"], "extra": 1},
        ]
    )
    by_step = {p.step: p for p in problems}
    assert sorted(by_step) == [1, 2, 3, 4, 5]
    assert "unknown op 'explode'" in by_step[1].message
    assert by_step[2].field == "op"
    assert by_step[3].field == "columns"
    assert by_step[4].field == "expr"
    assert "syntax error" in by_step[4].message
    assert by_step[5].field == "extra"


def test_validate_tracks_the_schema_and_stops_after_a_broken_step() -> None:
    steps = [
        {"op": "rename", "columns": {"name": "full_name"}},
        {"op": "clean_text", "columns": ["name"]},
        {"op": "normalize", "columns": ["nothing"]},
    ]
    problems = validate(steps, SCHEMA)
    assert [(p.step, p.message) for p in problems] == [(1, "unknown column 'name'")]


def test_validate_unknown_column_in_an_expression() -> None:
    problems = validate([{"op": "derive", "column": "x", "expr": "age * salary"}], SCHEMA)
    assert problems[0].field == "expr"
    assert "unknown column 'salary'" in problems[0].message


def test_output_schema_follows_the_steps() -> None:
    schema = output_schema(
        [
            {"op": "derive", "column": "adult", "expr": "age >= 18"},
            {"op": "hash", "columns": ["name"]},
            {"op": "drop", "columns": ["id"]},
        ],
        SCHEMA,
    )
    assert [(c.name, c.type.value, c.storage) for c in schema] == [
        ("name", "identifier", "String"),
        ("age", "integer", "Int64"),
        ("adult", "boolean", "Boolean"),
    ]


def test_apply_records_what_steps_fitted() -> None:
    fitted: list[dict[str, Any]] = []
    run(
        PEOPLE,
        {"op": "fill_missing", "columns": ["age"], "strategy": "median"},
        {"op": "normalize", "columns": ["age"], "method": "minmax"},
        fitted=fitted,
    )
    assert fitted[0] == {"step": 0, "op": "fill_missing", "values": {"age": 34.0}}
    assert fitted[1]["params"] == {"age": {"center": 17.0, "scale": 44.0}}


def test_apply_is_lazy_until_collected(tmp_path: Any) -> None:
    path = tmp_path / "data.parquet"
    PEOPLE.write_parquet(path)
    lf, _ = apply(
        pl.scan_parquet(path),
        [{"op": "filter", "expr": "age > 20"}, {"op": "hash", "columns": ["name"]}],
        salt=b"k",
    )
    assert isinstance(lf, pl.LazyFrame)
    target = tmp_path / "out.parquet"
    lf.sink_parquet(target)
    assert pl.read_parquet(target)["id"].to_list() == [1, 3]


def test_every_op_is_documented_in_ops() -> None:
    from inwire.services.synthex.recipes.engine import Step

    union = Step.__origin__ if hasattr(Step, "__origin__") else Step
    ops = {m.model_fields["op"].annotation.__args__[0] for m in union.__args__}
    assert ops == set(OPS)


# -- expression language safety --------------------------------------------------------------


KINDS = {"age": "integer", "name": "text", "ok": "boolean", "when": "date"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("name.upper()", "only the listed functions"),
        ("age.__class__", "attribute access"),
        ("().__class__.__bases__[0].__subclasses__()", "only the listed functions"),
        ('__import__("os").system("id")', "only the listed functions"),
        ('__import__("os")', "unknown function '__import__'"),
        ('eval("1+1")', "unknown function 'eval'"),
        ('exec("x=1")', "unknown function 'exec'"),
        ('open("/etc/passwd")', "unknown function 'open'"),
        ('getattr(age, "real")', "unknown function 'getattr'"),
        ("globals()", "unknown function 'globals'"),
        ("__builtins__", "names starting with '__'"),
        ("col('__dict__')", "names starting with '__'"),
        ("age[0]", "indexing"),
        ("(lambda: 1)()", "only the listed functions"),
        ("[x for x in name]", "comprehensions"),
        ('f"{age}"', "f-strings"),
        ("round(x=age)", "positional arguments only"),
        ("abs(*[age])", "'*' arguments"),
        ("age | 1", "bitwise"),
        ("{'a': 1}", "dictionaries"),
        ("9999999999999999999999", "64 bits"),
        ("age +", "syntax error"),
        ("x = 1", "syntax error"),
        ("salary > 1", "unknown column 'salary'"),
        ("name + 1", "needs numbers"),
        ("age and ok", "needs true/false"),
        ("age > 'a'", "cannot compare"),
        ("when > 'soon'", "not a date"),
        ("age in [name]", "literal values only"),
        ("age in ['a']", "cannot look for"),
        ("ok < ok", "cannot be ordered"),
        ("1 if age else 2", "condition of 'if'"),
        ("log(age, -1)", "positive number"),
        ("matches(name, '(')", "invalid regular expression"),
        ("age + " * 300 + "1", "too complex"),
        ("a" * 2001, "longer than"),
        ("", "empty"),
    ],
)
def test_expression_refusals(text: str, reason: str) -> None:
    with pytest.raises(ExpressionError) as err:
        compile_expression(text, KINDS)  # type: ignore[arg-type]
    assert reason in str(err.value)


def test_deep_nesting_is_fine_within_limits_or_refused_cleanly() -> None:
    # Parentheses make no syntax nodes: deep ones compile; deep operators are refused.
    assert compile_expression("(" * 60 + "age" + ")" * 60, KINDS).kind == "integer"  # type: ignore[arg-type]
    with pytest.raises(ExpressionError):
        compile_expression("-" * 5000 + "age", KINDS)  # type: ignore[arg-type]


def test_expression_functions_and_syntax_only_mode() -> None:
    frame = pl.DataFrame({"age": [10, None], "name": [" Ann ", "Bo"], "ok": [True, False]})
    expr = compile_expression(
        'len(strip(name)) + abs(-2) + coalesce(age, 0) if startswith(strip(name), "A") else -1',
        KINDS,  # type: ignore[arg-type]
    )
    assert expr.kind == "integer"
    assert expr.columns == {"age", "name"}
    assert frame.select(expr.expr.alias("x"))["x"].to_list() == [15, -1]
    # Without a schema any column name is accepted and not type-checked.
    assert compile_expression("anything + other", None).columns == {"anything", "other"}
    with pytest.raises(ExpressionError):
        compile_expression("anything.attr", None)
