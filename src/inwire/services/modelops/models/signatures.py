"""A model version's flavor and signature: read from an MLmodel file, or inferred.

An MLflow model folder has an ``MLmodel`` YAML file naming its flavors
(``python_function``, ``sklearn``, …) and, when logged with one, its signature: input and
output schemas as JSON strings in MLflow's schema form (column specs
``{"type": "double", "name": "x", "required": true}`` or tensor specs). Without one, a
signature is inferred from an example payload the way MLflow's ``infer_signature`` reads a
DataFrame: one column per field, typed from its values (JSON integers are ``long``,
numbers ``double``, strings ``string``, booleans ``boolean``; nested lists and objects
are ``array`` and ``object``), optional when a value is missing or null.
"""

from __future__ import annotations

import json
from typing import Any

from inwire.kit.errors import Invalid

#: MLflow's flavor names for the flavors the registry knows, most specific first.
_MLFLOW_FLAVORS: dict[str, str] = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "onnx": "onnx",
    "pytorch": "pytorch",
}
#: Most rows of an example read to infer a signature.
MAX_EXAMPLE_ROWS = 1000
#: Deepest nesting of arrays and objects inferred.
MAX_DEPTH = 8


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(message, details=[{"field": field, "message": message}])


# -- MLmodel ----------------------------------------------------------------------------------


def parse_mlmodel(text: bytes) -> dict[str, Any]:
    """The MLmodel YAML as a dict; ``Invalid`` naming the file when it is not one."""
    import yaml

    try:
        data = yaml.safe_load(text.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _invalid("MLmodel", f"The MLmodel file is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise _invalid("MLmodel", "The MLmodel file is not a YAML mapping")
    return data


def mlmodel_flavors(mlmodel: dict[str, Any]) -> list[str]:
    """Every flavor the MLmodel lists, in its order."""
    flavors = mlmodel.get("flavors")
    return [str(k) for k in flavors] if isinstance(flavors, dict) else []


def flavor_of(mlmodel: dict[str, Any]) -> str | None:
    """The registry's flavor for an MLmodel: the framework flavor it lists, else ``python``
    for a pure ``python_function`` (custom pyfunc) model, else None."""
    listed = mlmodel_flavors(mlmodel)
    for name in listed:
        if name in _MLFLOW_FLAVORS:
            return _MLFLOW_FLAVORS[name]
    return "python" if "python_function" in listed else None


def registry_flavors(mlmodel: dict[str, Any]) -> set[str]:
    """Every registry flavor an MLmodel supports (``python`` for ``python_function``)."""
    listed = mlmodel_flavors(mlmodel)
    offered = {_MLFLOW_FLAVORS[n] for n in listed if n in _MLFLOW_FLAVORS}
    return offered | ({"python"} if "python_function" in listed else set())


def mlmodel_signature(mlmodel: dict[str, Any]) -> dict[str, Any] | None:
    """The signature an MLmodel carries, with its JSON strings parsed; None without one."""
    raw = mlmodel.get("signature")
    if not isinstance(raw, dict) or raw.get("inputs") in (None, ""):
        return None
    out: dict[str, Any] = {}
    for part in ("inputs", "outputs", "params"):
        value = raw.get(part)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise _invalid(
                    f"MLmodel.signature.{part}", f"The MLmodel's {part} are not JSON: {exc}"
                ) from exc
        out[part] = value if isinstance(value, list) and value else None
    if out["inputs"] is None:
        return None
    return out


# -- inference from an example ----------------------------------------------------------------


def example_rows(example: Any, field: str) -> list[dict[str, Any]] | list[Any]:
    """The rows of an example payload: a list of records, pandas' split form
    ``{"columns": [...], "data": [[...]]}``, columns of equal-length lists, one record, or
    a list of plain values (a single unnamed column)."""
    if isinstance(example, list):
        if not example:
            raise _invalid(field, "The example has no rows")
        return example[:MAX_EXAMPLE_ROWS]
    if isinstance(example, dict):
        if not example:
            raise _invalid(field, "The example has no fields")
        if set(example) >= {"columns", "data"} and set(example) <= {"columns", "data", "index"}:
            columns, data = example["columns"], example["data"]
            if not (isinstance(columns, list) and isinstance(data, list) and data):
                raise _invalid(field, "A split example has a list of columns and rows of data")
            rows: list[dict[str, Any]] = []
            for i, row in enumerate(data[:MAX_EXAMPLE_ROWS]):
                if not isinstance(row, list) or len(row) != len(columns):
                    raise _invalid(f"{field}.data[{i}]", "Each row has one value per column")
                rows.append(dict(zip((str(c) for c in columns), row, strict=True)))
            return rows
        values = list(example.values())
        if all(isinstance(v, list) for v in values):
            lengths = {len(v) for v in values}
            if len(lengths) != 1 or 0 in lengths:
                raise _invalid(field, "Columns of an example have the same, non-zero length")
            n = min(lengths.pop(), MAX_EXAMPLE_ROWS)
            return [{k: example[k][i] for k in example} for i in range(n)]
        return [example]
    raise _invalid(field, "An example is a list of rows or an object")


def _type_of(values: list[Any], where: str, depth: int) -> dict[str, Any]:
    """The spec (without name) of a field from its non-null values."""
    if depth > MAX_DEPTH:
        raise _invalid(where, f"Examples nest at most {MAX_DEPTH} levels deep")
    kinds = {_kind(v) for v in values}
    if not kinds:
        raise _invalid(where, "Every value is null: give at least one to infer its type")
    if kinds == {"long", "double"}:
        kinds = {"double"}
    if len(kinds) > 1:
        raise _invalid(where, f"Values of different types: {', '.join(sorted(kinds))}")
    kind = kinds.pop()
    if kind == "array":
        items = [item for v in values for item in v if item is not None]
        return {"type": "array", "items": _type_of(items, f"{where}[]", depth + 1)}
    if kind == "object":
        return {"type": "object", "properties": _columns(values, where, depth + 1, named=False)}
    return {"type": kind}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(type(value).__name__)


def _columns(rows: list[Any], where: str, depth: int, *, named: bool) -> Any:
    """Column specs (a list when ``named``, else an object's properties) from records."""
    order: dict[str, None] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise _invalid(f"{where}[{i}]", "Every row of an example is an object")
        for key in row:
            order.setdefault(str(key), None)
    specs: dict[str, dict[str, Any]] = {}
    for name in order:
        present = [row.get(name) for row in rows]
        values = [v for v in present if v is not None]
        spec = _type_of(values, f"{where}.{name}", depth)
        spec["required"] = len(values) == len(rows)
        specs[name] = spec
    if named:
        return [{"name": name, **spec} for name, spec in specs.items()]
    return specs


def infer_schema(example: Any, field: str) -> list[dict[str, Any]]:
    """Column specs (MLflow's schema form) inferred from an example payload.

    A list of plain values is one unnamed column; anything else is read as rows of
    named fields. ``Invalid`` names the field (``input_example.age``) whose values cannot
    be typed.
    """
    rows = example_rows(example, field)
    if all(not isinstance(r, dict) for r in rows):
        values = [r for r in rows if r is not None]
        spec = _type_of(values, field, 1)
        return [{**spec, "required": len(values) == len(rows)}]
    columns: list[dict[str, Any]] = _columns(rows, field, 1, named=True)
    return columns


def infer_signature(input_example: Any, output_example: Any = None) -> dict[str, Any]:
    """A signature from an input example and, when given, an output example."""
    return {
        "inputs": infer_schema(input_example, "input_example"),
        "outputs": (
            infer_schema(output_example, "output_example") if output_example is not None else None
        ),
        "params": None,
    }
