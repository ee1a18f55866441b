"""Prediction inputs checked against a model version's signature.

A signature's inputs are MLflow column specs (``{"name": "age", "type": "double",
"required": true}``, see ``models/signatures.py``). Each row must hold every required column
with a value of its type; JSON integers are accepted for ``double``/``float`` columns (and
turned into floats), integral numbers for ``long``/``integer``. Columns the signature does
not name are dropped and the kept ones come in the signature's order, so the model sees the
frame it was logged with. Tensor signatures (``{"type": "tensor", ...}``) and unnamed
columns are not checked here: the rows go to the model as they are.

Errors are ``Invalid`` with code ``INVALID_INPUT`` and one detail per problem naming the
field (the column, with its row in the message), at most ``MAX_ERRORS`` of them.
"""

from __future__ import annotations

from typing import Any

from inwire.kit.errors import Invalid

#: Most problems listed in one error.
MAX_ERRORS = 20
#: The error code of a prediction request whose inputs break the signature.
INVALID_INPUT = "INVALID_INPUT"

_FLOATS = frozenset({"double", "float"})
_INTS = frozenset({"long", "integer"})


def invalid_input(message: str, field: str, detail: str | None = None) -> Invalid:
    """A 400 ``INVALID_INPUT`` naming ``field``."""
    return Invalid(
        message, details=[{"field": field, "message": detail or message}], code=INVALID_INPUT
    )


def named_columns(signature: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The named column specs of a signature's inputs; None when it has none to check."""
    if not signature:
        return None
    inputs = signature.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        return None
    if not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in inputs):
        return None
    if any(c.get("type") == "tensor" for c in inputs):
        return None
    return inputs


def _check(spec: dict[str, Any], value: Any) -> tuple[bool, Any, str]:
    """``(ok, value converted, expected type in words)`` for one value against a spec."""
    kind = spec.get("type")
    if kind in _FLOATS:
        if isinstance(value, float):
            return True, value, "a number"
        if isinstance(value, int) and not isinstance(value, bool):
            return True, float(value), "a number"
        return False, value, "a number"
    if kind in _INTS:
        if isinstance(value, int) and not isinstance(value, bool):
            return True, value, "an integer"
        if isinstance(value, float) and value.is_integer():
            return True, int(value), "an integer"
        return False, value, "an integer"
    if kind == "boolean":
        return isinstance(value, bool), value, "true or false"
    if kind in ("string", "binary", "datetime"):
        return isinstance(value, str), value, "a string"
    if kind == "array":
        if not isinstance(value, list):
            return False, value, "an array"
        items = spec.get("items")
        if isinstance(items, dict):
            out = []
            for item in value:
                ok, converted, words = _check(items, item)
                if not ok:
                    return False, value, f"an array of {words}"
                out.append(converted)
            return True, out, "an array"
        return True, value, "an array"
    if kind == "object":
        return isinstance(value, dict), value, "an object"
    # A type this check does not know (``any``, a newer MLflow type): the model decides.
    return True, value, str(kind)


def validate_inputs(
    signature: dict[str, Any] | None, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``rows`` checked against ``signature``'s inputs, converted and in its column order.

    Raises ``Invalid`` (400, code ``INVALID_INPUT``) naming every bad field: a row that is
    not an object, a missing required column, a value of the wrong type. Without a signature
    (or with a tensor one) the rows come back unchanged once each is known to be an object.
    """
    if not isinstance(rows, list) or not rows:
        raise invalid_input("Send at least one row of inputs", "inputs", "no rows")
    columns = named_columns(signature)
    errors: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            errors.append({"field": f"inputs[{i}]", "message": f"row {i} is not an object"})
        elif columns is None:
            out.append(row)
        else:
            checked: dict[str, Any] = {}
            for spec in columns:
                name = spec["name"]
                value = row.get(name)
                if value is None:
                    if spec.get("required", True):
                        errors.append({"field": name, "message": f"row {i}: {name} is required"})
                    checked[name] = None
                    continue
                ok, converted, words = _check(spec, value)
                if not ok:
                    errors.append(
                        {
                            "field": name,
                            "message": f"row {i}: {name} must be {words}, "
                            f"got {type(value).__name__}",
                        }
                    )
                checked[name] = converted
            out.append(checked)
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        fields = list(dict.fromkeys(e["field"] for e in errors))
        raise Invalid(
            f"The inputs do not match the model's signature: {', '.join(fields[:5])}",
            details=errors[:MAX_ERRORS],
            code=INVALID_INPUT,
        )
    return out
