"""Prediction request bodies read into rows (records), in each form a client may send.

- ``{"inputs": [{...}, ...]}``: records, Inwire's form. ``inputs`` may also be columns of
  equal length (``{"age": [31, 40]}``) or rows of values in the signature's column order;
- MLflow's scoring forms: ``{"dataframe_split": {"columns": [...], "data": [[...]]}}``,
  ``{"dataframe_records": [...]}`` and ``{"instances": [...]}`` (TF-serving's, read as
  ``inputs``).
"""

from __future__ import annotations

from typing import Any

from inwire.services.modelops.serving.validate import invalid_input

#: The body keys that carry rows; exactly one of them is expected.
ROW_KEYS = ("inputs", "dataframe_split", "dataframe_records", "instances")


def _values_rows(data: list[Any], columns: list[str] | None, field: str) -> list[dict[str, Any]]:
    """Rows given as lists of values, named by ``columns``."""
    if columns is None:
        raise invalid_input(
            "Rows of plain values need a signature naming the columns; send records "
            '({"column": value}) instead',
            field,
        )
    rows: list[dict[str, Any]] = []
    for i, values in enumerate(data):
        if not isinstance(values, list) or len(values) != len(columns):
            raise invalid_input(
                f"Row {i} must hold {len(columns)} values ({', '.join(columns)})", f"{field}[{i}]"
            )
        rows.append(dict(zip(columns, values, strict=True)))
    return rows


def _records(data: Any, columns: list[str] | None, field: str) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        if data and all(isinstance(v, list) for v in data.values()):
            lengths = {len(v) for v in data.values()}
            if len(lengths) != 1:
                raise invalid_input("Every column must hold the same number of values", field)
            n = lengths.pop()
            keys = list(data)
            return [{k: data[k][i] for k in keys} for i in range(n)]
        return [data]
    if not isinstance(data, list) or not data:
        raise invalid_input("Send a non-empty list of rows", field)
    if isinstance(data[0], dict):
        return data
    if isinstance(data[0], list):
        return _values_rows(data, columns, field)
    if columns is not None and len(columns) == 1:
        return [{columns[0]: v} for v in data]
    raise invalid_input("Each row must be an object of column values", f"{field}[0]")


def _split(split: Any, columns: list[str] | None) -> list[dict[str, Any]]:
    if not isinstance(split, dict) or not isinstance(split.get("data"), list):
        raise invalid_input(
            'dataframe_split is {"columns": [...], "data": [[...], ...]}', "dataframe_split"
        )
    names = split.get("columns", columns)
    if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
        raise invalid_input("dataframe_split.columns must be a list of names", "columns")
    return _values_rows(split["data"], names, "dataframe_split.data")


def rows_from_body(body: Any, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """The rows of a prediction request; ``Invalid`` (``INVALID_INPUT``) naming the field
    when the body is in none of the accepted forms. ``columns`` names the values of rows
    sent as plain lists (the signature's inputs)."""
    if not isinstance(body, dict):
        raise invalid_input('The body must be a JSON object such as {"inputs": [...]}', "body")
    present = [k for k in ROW_KEYS if k in body]
    if len(present) != 1:
        raise invalid_input(
            "Send exactly one of " + ", ".join(ROW_KEYS),
            "inputs",
            "missing" if not present else "several row keys",
        )
    unknown = set(body) - set(ROW_KEYS) - {"params"}
    if unknown:
        name = sorted(unknown)[0]
        raise invalid_input(f"Unknown field {name!r}", name, "unknown field")
    if body.get("params"):
        raise invalid_input("This model takes no params", "params", "not supported")
    key = present[0]
    rows = _split(body[key], columns) if key == "dataframe_split" else None
    if rows is None:
        rows = _records(body[key], columns, key)
    if not rows:
        raise invalid_input("Send at least one row", key, "no rows")
    return rows
