"""Signature inference from examples and reading MLmodel files."""

from __future__ import annotations

from typing import Any

import pytest
from modelops_helpers import SKLEARN_MLMODEL

from inwire.kit.errors import Invalid
from inwire.services.modelops.models.signatures import (
    flavor_of,
    infer_schema,
    infer_signature,
    mlmodel_signature,
    parse_mlmodel,
    registry_flavors,
)

RECORDS = [{"age": 30, "plan": "gold", "vip": True}, {"age": 41, "plan": None, "vip": False}]
EXPECTED = [
    {"name": "age", "type": "long", "required": True},
    {"name": "plan", "type": "string", "required": False},
    {"name": "vip", "type": "boolean", "required": True},
]


@pytest.mark.parametrize(
    "example",
    [
        RECORDS,
        {"columns": ["age", "plan", "vip"], "data": [[30, "gold", True], [41, None, False]]},
        {"age": [30, 41], "plan": ["gold", None], "vip": [True, False]},
    ],
)
def test_records_split_and_columns_give_the_same_schema(example: Any) -> None:
    assert infer_schema(example, "input_example") == EXPECTED


def test_one_record_and_plain_values() -> None:
    assert infer_schema({"x": 1.5, "name": "a"}, "e") == [
        {"name": "x", "type": "double", "required": True},
        {"name": "name", "type": "string", "required": True},
    ]
    assert infer_schema([1, 2, None], "e") == [{"type": "long", "required": False}]
    assert infer_schema([0.5, 1], "e") == [{"type": "double", "required": True}]


def test_missing_keys_are_optional_and_ints_with_floats_are_doubles() -> None:
    schema = infer_schema([{"a": 1}, {"a": 2.5, "b": "x"}], "e")
    assert schema == [
        {"name": "a", "type": "double", "required": True},
        {"name": "b", "type": "string", "required": False},
    ]


def test_nested_values_are_arrays_and_objects() -> None:
    schema = infer_schema([{"v": [1.0, 2.0], "m": {"k": "x", "n": 1}}], "e")
    assert schema == [
        {"name": "v", "type": "array", "items": {"type": "double"}, "required": True},
        {
            "name": "m",
            "type": "object",
            "properties": {
                "k": {"type": "string", "required": True},
                "n": {"type": "long", "required": True},
            },
            "required": True,
        },
    ]


@pytest.mark.parametrize(
    ("example", "field"),
    [
        ([{"a": 1}, {"a": "x"}], "input_example.a"),
        ([{"a": None}], "input_example.a"),
        ([], "input_example"),
        ({}, "input_example"),
        ("text", "input_example"),
        ({"a": [1, 2], "b": [1]}, "input_example"),
        ({"columns": ["a"], "data": [[1, 2]]}, "input_example.data[0]"),
        ([{"a": 1}, 3], "input_example[1]"),
        ([{"a": [[[[[[[[[1]]]]]]]]]}], "input_example.a"),
    ],
)
def test_untypable_examples_name_the_field(example: Any, field: str) -> None:
    with pytest.raises(Invalid) as exc:
        infer_schema(example, "input_example")
    assert exc.value.details[0]["field"].startswith(field), exc.value.details


def test_signature_with_and_without_outputs() -> None:
    assert infer_signature(RECORDS)["outputs"] is None
    assert infer_signature(RECORDS, ["a", "b"])["outputs"] == [{"type": "string", "required": True}]


def test_mlmodel_flavors_and_signature() -> None:
    mlmodel = parse_mlmodel(SKLEARN_MLMODEL)
    assert flavor_of(mlmodel) == "sklearn"
    assert registry_flavors(mlmodel) == {"sklearn", "python"}
    assert mlmodel_signature(mlmodel) == {
        "inputs": [
            {"type": "double", "name": "age", "required": True},
            {"type": "string", "name": "plan", "required": True},
        ],
        "outputs": [{"type": "long", "required": True}],
        "params": None,
    }
    pyfunc = parse_mlmodel(b"flavors:\n  python_function:\n    loader_module: my.model\n")
    assert flavor_of(pyfunc) == "python"
    assert mlmodel_signature(pyfunc) is None
    assert flavor_of(parse_mlmodel(b"flavors:\n  keras: {}\n")) is None
    for name in ("xgboost", "lightgbm", "onnx", "pytorch"):
        text = f"flavors:\n  python_function: {{}}\n  {name}: {{}}\n".encode()
        assert flavor_of(parse_mlmodel(text)) == name


@pytest.mark.parametrize(
    "text", [b"[1, 2]", b"a: [", b"\xff\xfe", b"signature:\n  inputs: '[not json'\n"]
)
def test_bad_mlmodel_files_are_invalid(text: bytes) -> None:
    with pytest.raises(Invalid):
        mlmodel_signature(parse_mlmodel(text))
