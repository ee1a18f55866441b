"""What recipe steps know about the table they work on: its columns as a step sees them.

Validation and application walk the steps with a ``Columns`` value: the logical schema
after the previous step. Validation computes it from the steps alone; application refreshes
each column's storage type from the real plan, so step k is always checked against what
step k-1 produced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from inwire.services.synthex.recipes.expressions import Kind
from inwire.services.synthex.schema import ColumnSpec, ColumnType, Schema

_INTEGER = re.compile(r"^U?Int\d+$")
_FLOAT = re.compile(r"^(Float\d+|Decimal.*)$")
_TYPE_KINDS: dict[ColumnType, Kind] = {
    ColumnType.integer: "integer",
    ColumnType.float: "float",
    ColumnType.boolean: "boolean",
    ColumnType.datetime: "datetime",
}
#: Storage names steps announce for the columns they make (``str`` of the polars dtype).
STORAGE: dict[str, str] = {
    "integer": str(pl.Int64),
    "float": str(pl.Float64),
    "boolean": str(pl.Boolean),
    "text": str(pl.String),
    "date": str(pl.Date),
    "datetime": str(pl.Datetime("us")),
    "flag": str(pl.Int8),
}


def kind_of(spec: ColumnSpec) -> Kind:
    """How expressions and type checks see a column: by its storage when known."""
    storage = spec.storage
    if storage:
        if storage == "Boolean":
            return "boolean"
        if _INTEGER.match(storage):
            return "integer"
        if _FLOAT.match(storage):
            return "float"
        if storage == "Date":
            return "date"
        if storage.startswith("Datetime"):
            return "datetime"
        if storage in ("String", "Utf8", "Categorical", "Null") or storage.startswith(
            ("Categorical", "Enum")
        ):
            return "text"
        return "any"
    return _TYPE_KINDS.get(spec.type, "text")


def type_for(kind: Kind) -> ColumnType:
    """The logical type of a value of ``kind`` (what a derived column is)."""
    return {
        "integer": ColumnType.integer,
        "float": ColumnType.float,
        "boolean": ColumnType.boolean,
        "date": ColumnType.datetime,
        "datetime": ColumnType.datetime,
    }.get(kind, ColumnType.text)


@dataclass(frozen=True)
class Issue:
    """One thing wrong with a step: a message and the step field it concerns."""

    message: str
    field: str | None = None


class StepFailed(Exception):
    """A step found a problem only the data could show (raised while applying)."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(i.message for i in issues))
        self.issues = issues


@dataclass(frozen=True)
class Salts:
    """Secret keys of keyed PII transforms (hashing, fake values); never part of any output.

    ``recipe`` is the recipe's own; ``organization`` is shared by every recipe of the
    organization, so values hashed by different recipes still join.
    """

    recipe: bytes
    organization: bytes

    def of(self, scope: str) -> bytes:
        """The key of ``scope`` (``recipe`` or ``organization``)."""
        return self.organization if scope == "organization" else self.recipe


@dataclass
class RunContext:
    """What applying steps needs besides the data: keys, the seed, fitted values."""

    salts: Salts
    seed: int = 0
    #: Values steps learnt from the data (means, bin edges, categories), step by step.
    fitted: list[dict[str, Any]] = field(default_factory=list)
    #: Index of the step being applied (for ``fitted``).
    step: int = 0

    def record(self, **values: Any) -> None:
        """Remember values the current step learnt from the data."""
        self.fitted.append({"step": self.step, **values})


class _Kinds(Mapping[str, Kind]):
    def __init__(self, columns: Columns) -> None:
        self.columns = columns

    def __getitem__(self, name: str) -> Kind:
        spec = self.columns.get(name)
        if spec is None:
            raise KeyError(name)
        return kind_of(spec)

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns.names)

    def __len__(self) -> int:
        return len(self.columns.names)


@dataclass(frozen=True)
class Columns:
    """The table's columns in order, as a step sees them.

    ``open_prefixes`` are one-hot prefixes whose columns are only known once the data is
    read (validation without data accepts any ``<prefix>_<value>`` name after them).
    """

    specs: tuple[ColumnSpec, ...]
    open_prefixes: tuple[str, ...] = ()

    @classmethod
    def of(cls, schema: Schema) -> Columns:
        """The columns of a schema."""
        return cls(tuple(schema))

    @property
    def names(self) -> list[str]:
        """Column names in order."""
        return [c.name for c in self.specs]

    def get(self, name: str) -> ColumnSpec | None:
        """The spec of ``name``, or None if there is no such column."""
        for spec in self.specs:
            if spec.name == name:
                return spec
        for prefix in self.open_prefixes:
            if name.startswith(f"{prefix}_"):
                return ColumnSpec(name=name, type=ColumnType.integer, storage=STORAGE["flag"])
        return None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def spec(self, name: str) -> ColumnSpec:
        """The spec of a column a check already found."""
        spec = self.get(name)
        if spec is None:  # pragma: no cover - steps check names first
            raise KeyError(name)
        return spec

    def kind(self, name: str) -> Kind:
        """The kind of a known column."""
        return kind_of(self.spec(name))

    def kinds(self) -> Mapping[str, Kind]:
        """Column name → kind, for the expression compiler."""
        return _Kinds(self)

    def schema(self) -> Schema:
        """The logical schema."""
        return list(self.specs)

    # -- changes (each returns new Columns) ------------------------------------------------

    def put(self, spec: ColumnSpec) -> Columns:
        """Replace the column of the same name in place, or append it."""
        specs = list(self.specs)
        for i, old in enumerate(specs):
            if old.name == spec.name:
                specs[i] = spec
                return Columns(tuple(specs), self.open_prefixes)
        return Columns((*specs, spec), self.open_prefixes)

    def update(self, name: str, **changes: Any) -> Columns:
        """The same columns with ``name``'s spec changed."""
        return self.put(self.spec(name).model_copy(update=changes))

    def only(self, names: Iterable[str]) -> Columns:
        """Just these columns, in this order."""
        return Columns(tuple(self.spec(n) for n in names), ())

    def without(self, names: Iterable[str]) -> Columns:
        """All columns but these."""
        gone = set(names)
        return Columns(tuple(c for c in self.specs if c.name not in gone), self.open_prefixes)

    def renamed(self, mapping: Mapping[str, str]) -> Columns:
        """Columns with new names."""
        specs = tuple(
            c.model_copy(update={"name": mapping.get(c.name, c.name)}) for c in self.specs
        )
        return Columns(specs, self.open_prefixes)

    def opened(self, prefix: str) -> Columns:
        """Columns plus a one-hot prefix whose names come from the data."""
        return Columns(self.specs, (*self.open_prefixes, prefix))

    def with_storage(self, dtypes: Mapping[str, pl.DataType]) -> Columns:
        """Columns matching the real plan: names, order and storage from ``dtypes``."""
        specs = []
        for name, dtype in dtypes.items():
            spec = self.get(name) or ColumnSpec(name=name, type=ColumnType.text)
            specs.append(spec.model_copy(update={"storage": str(dtype)}))
        return Columns(tuple(specs), ())


# -- checks shared by steps -------------------------------------------------------------------


def missing(columns: Columns, names: Iterable[str], field: str = "columns") -> list[Issue]:
    """An issue for each name that is not a column."""
    return [Issue(f"unknown column {n!r}", field) for n in names if n not in columns]


def wrong_kind(
    columns: Columns,
    names: Iterable[str],
    allowed: frozenset[Kind],
    needs: str,
    field: str = "columns",
) -> list[Issue]:
    """Unknown columns, and an issue for each column whose kind is not ``allowed``."""
    issues: list[Issue] = []
    for name in names:
        spec = columns.get(name)
        if spec is None:
            issues.append(Issue(f"unknown column {name!r}", field))
            continue
        kind = kind_of(spec)
        if kind != "any" and kind not in allowed:
            stored = f", stored as {spec.storage}" if spec.storage else ""
            issues.append(Issue(f"column {name!r} is {spec.type.value}{stored}; {needs}", field))
    return issues


def clashes(
    columns: Columns, names: Iterable[str], field: str, allowed: Iterable[str] = ()
) -> list[Issue]:
    """An issue for each new column name that an existing column already has."""
    keep = set(allowed)
    return [
        Issue(f"a column named {n!r} already exists", field)
        for n in names
        if n in columns and n not in keep
    ]


NUMBERS: frozenset[Kind] = frozenset({"integer", "float"})
TEMPORAL: frozenset[Kind] = frozenset({"date", "datetime"})
TEXT: frozenset[Kind] = frozenset({"text"})
