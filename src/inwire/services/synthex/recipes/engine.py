"""The recipe engine: check and apply a list of declarative steps to a polars LazyFrame.

A recipe is a JSON list of steps, each an object with an ``op`` (``select``, ``filter``,
``normalize``, ``hash``, …) and its parameters. ``validate(steps, schema)`` lists every
problem, each naming the step (index and op): malformed parameters, bad expressions,
unknown columns, a column of the wrong type. The schema is tracked through the steps, so
step k is checked against what step k-1 produces. Without a schema, only what the steps
say alone is checked (parameters, expression syntax, patterns).

``apply(lf, steps, schema=..., salt=..., seed=...)`` returns the transformed LazyFrame
and its schema; nothing is read except the small aggregates steps fit (means, quantiles,
categories), so a large version streams. Pure: no database, no object store, no HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import polars as pl
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from inwire.services.synthex.recipes.columns import (
    Columns,
    Issue,
    RunContext,
    Salts,
    StepFailed,
)
from inwire.services.synthex.recipes.pii import Fake, Generalize, Hash, Mask
from inwire.services.synthex.recipes.steps import (
    Bin,
    Cast,
    CleanText,
    ClipOutliers,
    DateParts,
    Dedupe,
    Derive,
    Drop,
    DropMissing,
    FillMissing,
    Filter,
    Normalize,
    OneHot,
    Rename,
    Select,
)
from inwire.services.synthex.schema import ColumnSpec, Schema

Step = Annotated[
    Select
    | Drop
    | Rename
    | Cast
    | FillMissing
    | DropMissing
    | Dedupe
    | Filter
    | Derive
    | ClipOutliers
    | Bin
    | OneHot
    | Normalize
    | DateParts
    | CleanText
    | Mask
    | Hash
    | Fake
    | Generalize,
    Field(discriminator="op"),
]
#: Every step op, in the order the docs present them.
OPS: tuple[str, ...] = (
    "select", "drop", "rename", "cast", "fill_missing", "drop_missing", "dedupe", "filter",
    "derive", "clip_outliers", "bin", "one_hot", "normalize", "date_parts", "clean_text",
    "mask", "hash", "fake", "generalize",
)  # fmt: skip
#: Most steps one recipe holds.
MAX_STEPS = 200

_STEP: TypeAdapter[Step] = TypeAdapter(Step)
StepLike = Mapping[str, Any] | Any


@dataclass(frozen=True)
class Problem:
    """One problem of a recipe, naming the step (0-based ``step`` index and its ``op``)."""

    step: int
    op: str | None
    message: str
    field: str | None = None

    def detail(self) -> dict[str, Any]:
        """The problem as an error-envelope detail."""
        where = f"steps[{self.step}]" + (f".{self.field}" if self.field else "")
        return {
            "field": where,
            "message": f"step {self.step} ({self.op or 'unknown op'}): {self.message}",
            "type": "recipe_step",
            "step": self.step,
            "op": self.op,
            "problem": self.message,
        }


class RecipeError(ValueError):
    """Steps that cannot be applied; ``problems`` name each step and what is wrong."""

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0] if problems else None
        summary = f"step {first.step} ({first.op}): {first.message}" if first else "invalid"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"Invalid recipe: {summary}{more}")
        self.problems = problems


def _op_of(raw: Any) -> str | None:
    if isinstance(raw, Mapping):
        op = raw.get("op")
        return op if isinstance(op, str) else None
    op = getattr(raw, "op", None)
    return op if isinstance(op, str) else None


def _pydantic_problems(index: int, op: str | None, exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        # A discriminated union puts the op name first in the location; drop it.
        if loc and op is not None and loc[0] == op:
            loc = loc[1:]
        if error["type"] == "union_tag_invalid":
            message = f"unknown op {op!r}; one of: {', '.join(OPS)}"
            loc = ["op"]
        elif error["type"] == "union_tag_not_found":
            message = f"each step needs an op, one of: {', '.join(OPS)}"
            loc = ["op"]
        else:
            message = error["msg"]
        field = ".".join(loc) or None
        problems.append(Problem(index, op, message, field))
    return problems


def _parse(steps: Sequence[StepLike]) -> tuple[list[Step | None], list[Problem]]:
    """Each step as a model (None where malformed), and the problems seen so far."""
    if len(steps) > MAX_STEPS:
        return [], [Problem(MAX_STEPS, None, f"a recipe holds at most {MAX_STEPS} steps")]
    parsed: list[Step | None] = []
    problems: list[Problem] = []
    for index, raw in enumerate(steps):
        op = _op_of(raw)
        data = raw.model_dump() if isinstance(raw, BaseModel) else raw
        try:
            step = _STEP.validate_python(data)
        except ValidationError as exc:
            problems += _pydantic_problems(index, op, exc)
            parsed.append(None)
            continue
        issues = step.static_issues()
        problems += [_problem(index, step, i) for i in issues]
        parsed.append(None if issues else step)
    return parsed, problems


def parse_steps(steps: Sequence[StepLike]) -> list[Step]:
    """Steps as models; RecipeError naming every malformed one."""
    parsed, problems = _parse(steps)
    if problems:
        raise RecipeError(problems)
    return [s for s in parsed if s is not None]


def _problem(index: int, step: Step, issue: Issue) -> Problem:
    return Problem(index, step.op, issue.message, issue.field)


def validate(steps: Sequence[StepLike], schema: Schema | None = None) -> list[Problem]:
    """Every problem of ``steps``, on a table of ``schema`` (or syntax only without one).

    The schema is carried through the steps; after a step with a problem its output is
    unknown, so later steps are checked on their own only.
    """
    parsed, problems = _parse(steps)
    if schema is None:
        return problems
    columns = Columns.of(schema)
    for index, step in enumerate(parsed):
        if step is None:
            break
        issues = step.check(columns)
        if issues:
            problems += [_problem(index, step, i) for i in issues]
            break
        columns = step.output(columns)
    return sorted(problems, key=lambda p: p.step)


def output_schema(steps: Sequence[StepLike], schema: Schema) -> Schema:
    """The schema ``steps`` produce from ``schema`` (RecipeError if they do not apply)."""
    problems = validate(steps, schema)
    if problems:
        raise RecipeError(problems)
    columns = Columns.of(schema)
    for step in parse_steps(steps):
        columns = step.output(columns)
    return columns.schema()


def apply(
    lf: pl.LazyFrame,
    steps: Sequence[StepLike],
    *,
    schema: Schema | None = None,
    salt: bytes | Salts = b"",
    seed: int = 0,
    fitted: list[dict[str, Any]] | None = None,
) -> tuple[pl.LazyFrame, Schema]:
    """Apply ``steps`` to ``lf``: the resulting LazyFrame and its logical schema.

    ``schema`` is ``lf``'s logical schema (default: from its storage types). ``salt`` keys
    ``hash`` and ``fake`` (one key, or a recipe's and an organization's); ``seed`` makes
    ``fake`` reproducible. Values steps learn from the data are appended to ``fitted``.
    Raises RecipeError naming the first step that cannot apply.
    """
    parsed = parse_steps(steps)
    dtypes = lf.collect_schema()
    columns = _initial_columns(schema, dtypes)
    salts = salt if isinstance(salt, Salts) else Salts(salt, salt)
    ctx = RunContext(salts=salts, seed=seed)
    for index, step in enumerate(parsed):
        ctx.step = index
        issues = step.check(columns)
        if issues:
            raise RecipeError([_problem(index, step, i) for i in issues])
        try:
            lf, columns = step.transform(lf, columns, ctx)
            dtypes = lf.collect_schema()
        except StepFailed as exc:
            raise RecipeError([_problem(index, step, i) for i in exc.issues]) from exc
        except pl.exceptions.PolarsError as exc:
            reason = str(exc).split("\n", 1)[0]
            raise RecipeError([Problem(index, step.op, f"cannot be applied: {reason}")]) from exc
        columns = columns.with_storage(dtypes)
    if fitted is not None:
        fitted.extend(ctx.fitted)
    return lf, columns.schema()


def _initial_columns(schema: Schema | None, dtypes: Mapping[str, pl.DataType]) -> Columns:
    if schema is None:
        from inwire.services.synthex.data.infer import schema_from_dtypes

        return Columns.of(schema_from_dtypes(dtypes))
    specs = {c.name: c for c in schema}
    unknown = [n for n in dtypes if n not in specs]
    if unknown:
        raise ValueError(f"the schema does not describe column(s) {unknown}")
    return Columns(
        tuple(specs[n].model_copy(update={"storage": str(d)}) for n, d in dtypes.items())
    )


__all__ = [
    "OPS",
    "ColumnSpec",
    "Problem",
    "RecipeError",
    "Salts",
    "Step",
    "apply",
    "output_schema",
    "parse_steps",
    "validate",
]
