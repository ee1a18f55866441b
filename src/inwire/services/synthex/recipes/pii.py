"""Recipe steps for personal data: mask, keyed hash, fake replacement, generalization.

Keyed steps (``hash``, ``fake``) use a secret salt (``Salts``): the recipe's own, or the
organization's so that values hashed or faked by different recipes still join. The salt
is never written to any output, and without it a hash or fake value cannot be traced back
to its original by trying candidate values (a plain, unkeyed hash could be).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args

import polars as pl
from pydantic import Field, StringConstraints

from inwire.services.synthex.recipes.columns import (
    NUMBERS,
    STORAGE,
    TEMPORAL,
    TEXT,
    Columns,
    Issue,
    RunContext,
    kind_of,
    missing,
)
from inwire.services.synthex.recipes.expressions import Kind
from inwire.services.synthex.recipes.steps import ColumnNames, StepBase
from inwire.services.synthex.schema import ColumnType

Scope = Literal["recipe", "organization"]

#: What ``fake`` can make (alphabetical); semantic hints of the same name default to it.
FakeKind = Literal[
    "address",
    "city",
    "company",
    "country",
    "credit_card",
    "date_of_birth",
    "email",
    "first_name",
    "iban",
    "ip_address",
    "last_name",
    "person_name",
    "phone",
    "postal_code",
    "ssn",
    "url",
    "user_name",
    "uuid",
]
FAKE_KINDS: frozenset[str] = frozenset(get_args(FakeKind))
#: Faker providers whose name differs from the kind.
_PROVIDERS = {
    "person_name": "name",
    "phone": "phone_number",
    "postal_code": "postcode",
    "ip_address": "ipv4",
    "credit_card": "credit_card_number",
    "uuid": "uuid4",
}


def _as_text(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.String)


def _key(salt: bytes, purpose: bytes) -> bytes:
    """A key for one purpose derived from the salt, so hash and fake keys differ."""
    return hmac.new(salt, purpose, hashlib.sha256).digest()


def _keep_text_type(columns: Columns, name: str) -> ColumnType:
    ctype = columns.spec(name).type
    return (
        ctype
        if ctype in (ColumnType.text, ColumnType.categorical, ColumnType.identifier)
        else ColumnType.text
    )


class Mask(StepBase):
    """Hide characters behind ``char``, keeping the first or last few (card ``…1111``).

    Values not longer than ``keep_first + keep_last`` are masked entirely, so short values
    never show in full. ``keep_separators`` leaves everything but letters and digits
    (``-``, ``@``, ``.``, spaces) in place.
    """

    op: Literal["mask"]
    columns: ColumnNames
    keep_first: int = Field(default=0, ge=0, le=100)
    keep_last: int = Field(default=0, ge=0, le=100)
    char: Annotated[str, StringConstraints(min_length=1, max_length=1)] = "*"
    keep_separators: bool = False

    def check(self, columns: Columns) -> list[Issue]:
        return missing(columns, self.columns)

    def output(self, columns: Columns) -> Columns:
        for name in self.columns:
            columns = columns.update(
                name, type=_keep_text_type(columns, name), semantic=None, storage=STORAGE["text"]
            )
        return columns

    def exprs(self, columns: Columns, ctx: RunContext) -> list[pl.Expr]:
        fill = self.char.replace("$", "$$")
        pattern = r"[\p{L}\p{N}]" if self.keep_separators else r"(?s)."
        kept = self.keep_first + self.keep_last
        out = []
        for name in self.columns:
            text = _as_text(name)
            hidden = text.str.replace_all(pattern, fill)
            if kept:
                length = text.str.len_chars()
                middle = text.str.slice(self.keep_first, length - kept).str.replace_all(
                    pattern, fill
                )
                head = text.str.slice(0, self.keep_first)
                tail = (
                    text.str.slice(length - self.keep_last, self.keep_last)
                    if self.keep_last
                    else pl.lit("")
                )
                partial = pl.concat_str([head, middle, tail])
                hidden = pl.when(length <= kept).then(hidden).otherwise(partial)
            out.append(hidden.alias(name))
        return out


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class _Keyed:
    """HMAC-SHA256 (RFC 2104) under one key, for many short values.

    The SHA-256 states after the inner and outer key pads are computed once and copied per
    value: the same digest as ``hmac.new(key, value, sha256)``, about 40 % faster than
    copying an ``hmac`` object (this runs once per distinct value of a column).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self.inner = hashlib.sha256(key.translate(_IPAD))
        self.outer = hashlib.sha256(key.translate(_OPAD))

    def digest(self, value: bytes) -> bytes:
        """HMAC-SHA256 of ``value``."""
        inner = self.inner.copy()
        inner.update(value)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def _hasher(key: bytes, length: int) -> Callable[[pl.Series], pl.Series]:
    keyed = _Keyed(key)

    def run(values: pl.Series) -> pl.Series:
        seen: dict[str, str] = {}

        def one(value: str) -> str:
            found = seen.get(value)
            if found is None:
                found = seen[value] = keyed.digest(value.encode()).hex()[:length]
            return found

        out = [None if v is None else one(v) for v in values.to_list()]
        return pl.Series(values.name, out, dtype=pl.String)

    return run


class Hash(StepBase):
    """Replace values by their HMAC-SHA256 (hex) under a secret salt: equal values stay
    equal (joins and counts work), originals cannot be recovered or guessed."""

    op: Literal["hash"]
    columns: ColumnNames
    #: ``recipe``: this recipe's salt; ``organization``: shared by the organization's recipes.
    scope: Scope = "recipe"
    #: Hex characters kept (64 = the whole digest).
    length: int = Field(default=64, ge=16, le=64)

    def check(self, columns: Columns) -> list[Issue]:
        return missing(columns, self.columns)

    def output(self, columns: Columns) -> Columns:
        for name in self.columns:
            columns = columns.update(
                name, type=ColumnType.identifier, semantic=None, storage=STORAGE["text"]
            )
        return columns

    def exprs(self, columns: Columns, ctx: RunContext) -> list[pl.Expr]:
        key = _key(ctx.salts.of(self.scope), b"inwire.synthex.hash")
        run = _hasher(key, self.length)
        return [
            _as_text(name).map_batches(run, return_dtype=pl.String, is_elementwise=True).alias(name)
            for name in self.columns
        ]


def _faker(locale: str, kind: str, key: bytes, seed: int) -> Callable[[pl.Series], pl.Series]:
    made: dict[str, Any] = {}

    def run(values: pl.Series) -> pl.Series:
        if "faker" not in made:
            from faker import Faker

            made["faker"] = Faker(locale)
        fake = made["faker"]
        provider = getattr(fake, _PROVIDERS.get(kind, kind))
        keyed = _Keyed(key)
        context = f"{seed}\x1f{kind}\x1f{locale}\x1f".encode()
        seen: dict[str, Any] = {}
        out: list[Any] = []
        for value in values.to_list():
            if value is None:
                out.append(None)
                continue
            if value not in seen:
                # One generator state per original value: the same value always gets the
                # same fake one (joins hold), whatever the row order or batch.
                digest = keyed.digest(context + value.encode())
                fake.seed_instance(int.from_bytes(digest[:8], "big"))
                result = provider()
                if kind == "address":
                    result = ", ".join(result.splitlines())
                seen[value] = result
            out.append(seen[value])
        dtype = pl.Date if kind == "date_of_birth" else pl.String
        return pl.Series(values.name, out, dtype=dtype)

    return run


class Fake(StepBase):
    """Replace values by realistic fake ones (Faker), the same fake for the same original.

    ``kind`` defaults to the column's semantic hint. The choice depends on the original
    value, the recipe's seed and the secret salt, so it is stable across runs and datasets
    (joins still work) yet cannot be reproduced without the salt.
    """

    op: Literal["fake"]
    columns: ColumnNames
    kind: FakeKind | None = None
    locale: Annotated[str, StringConstraints(min_length=2, max_length=20)] = "en_US"
    scope: Scope = "recipe"

    def static_issues(self) -> list[Issue]:
        from faker.config import AVAILABLE_LOCALES

        if self.locale not in AVAILABLE_LOCALES:
            return [
                Issue(f"unknown locale {self.locale!r} (for example en_US, de_DE, fr_FR)", "locale")
            ]
        return []

    def _kind(self, columns: Columns, name: str) -> str | None:
        if self.kind is not None:
            return self.kind
        semantic = columns.spec(name).semantic
        return semantic if semantic in FAKE_KINDS else None

    def check(self, columns: Columns) -> list[Issue]:
        issues = missing(columns, self.columns)
        for name in self.columns:
            if name in columns and self._kind(columns, name) is None:
                issues.append(
                    Issue(f"column {name!r} has no semantic hint to fake; set kind", "kind")
                )
        return issues

    def output(self, columns: Columns) -> Columns:
        for name in self.columns:
            kind = self._kind(columns, name)
            if kind == "date_of_birth":
                changes: dict[str, Any] = {"type": ColumnType.datetime, "storage": STORAGE["date"]}
            else:
                changes = {"type": _keep_text_type(columns, name), "storage": STORAGE["text"]}
            columns = columns.update(
                name, semantic=kind if kind in _SEMANTIC_FAKES else None, **changes
            )
        return columns

    def exprs(self, columns: Columns, ctx: RunContext) -> list[pl.Expr]:
        key = _key(ctx.salts.of(self.scope), b"inwire.synthex.fake")
        out = []
        for name in self.columns:
            kind = self._kind(columns, name)
            assert kind is not None
            run = _faker(self.locale, kind, key, ctx.seed)
            dtype = pl.Date if kind == "date_of_birth" else pl.String
            out.append(
                _as_text(name).map_batches(run, return_dtype=dtype, is_elementwise=True).alias(name)
            )
        return out


def _semantic_fakes() -> frozenset[str]:
    from inwire.services.synthex.schema import SEMANTICS

    return frozenset(k for k in FAKE_KINDS if k in SEMANTICS)


_SEMANTIC_FAKES = _semantic_fakes()

Granularity = Literal["year", "quarter", "month", "week", "day", "hour"]
_TRUNCATE = {"year": "1y", "quarter": "1q", "month": "1mo", "week": "1w", "day": "1d", "hour": "1h"}


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class Generalize(StepBase):
    """Make values less precise: numbers to ranges (``37`` → ``30-39``, with ``top`` →
    ``90+``), dates truncated (``2024-03-17`` → ``2024-03-01`` by month), text cut to its
    first characters (postal code ``75011`` → ``750**``)."""

    op: Literal["generalize"]
    columns: ColumnNames
    #: Numbers: range width.
    width: float | None = Field(default=None, gt=0)
    #: Numbers: values at or above this become one ``<top>+`` range (top-coding).
    top: float | None = None
    #: Dates: the unit they are truncated to.
    granularity: Granularity | None = None
    #: Text: characters kept from the start.
    keep_chars: int | None = Field(default=None, ge=0, le=100)
    #: Text: the character replacing each removed one (empty: just cut).
    fill: Annotated[str, StringConstraints(max_length=1)] = "*"

    def static_issues(self) -> list[Issue]:
        if (
            self.width is None
            and self.top is None
            and self.granularity is None
            and self.keep_chars is None
        ):
            return [
                Issue("say how: width or top (numbers), granularity (dates) or keep_chars (text)")
            ]
        return []

    def check(self, columns: Columns) -> list[Issue]:
        issues = missing(columns, self.columns)
        for name in self.columns:
            spec = columns.get(name)
            if spec is None:
                continue
            kind = kind_of(spec)
            if kind in NUMBERS and self.width is None and self.top is None:
                issues.append(Issue(f"column {name!r} holds numbers: set width (or top)", "width"))
            elif kind in TEMPORAL and self.granularity is None:
                issues.append(Issue(f"column {name!r} holds dates: set granularity", "granularity"))
            elif kind in TEXT and self.keep_chars is None:
                issues.append(Issue(f"column {name!r} holds text: set keep_chars", "keep_chars"))
            elif kind == "boolean":
                issues.append(
                    Issue(f"column {name!r} is true/false; nothing to generalize", "columns")
                )
        return issues

    def output(self, columns: Columns) -> Columns:
        for name in self.columns:
            kind = columns.kind(name)
            if kind in NUMBERS:
                columns = columns.update(name, type=ColumnType.categorical, storage=STORAGE["text"])
        return columns

    def exprs(self, columns: Columns, ctx: RunContext) -> list[pl.Expr]:
        out = []
        for name in self.columns:
            kind = columns.kind(name)
            col = pl.col(name)
            if kind in NUMBERS:
                out.append(self._ranges(col, kind).alias(name))
            elif kind in TEMPORAL:
                assert self.granularity is not None
                if kind == "date" and self.granularity == "hour":
                    out.append(col)
                else:
                    out.append(col.dt.truncate(_TRUNCATE[self.granularity]).alias(name))
            elif kind in TEXT or kind == "any":
                keep = self.keep_chars or 0
                text = col.cast(pl.String)
                cut = text.str.slice(0, keep)
                if self.fill:
                    rest = text.str.slice(keep).str.replace_all(
                        r"(?s).", self.fill.replace("$", "$$")
                    )
                    cut = pl.concat_str([cut, rest])
                out.append(cut.alias(name))
        return out

    def _ranges(self, col: pl.Expr, kind: Kind) -> pl.Expr:
        value = col.fill_nan(None) if kind == "float" else col
        if self.width is None:
            label = value.cast(pl.String)
        else:
            low = (value / self.width).floor() * self.width
            whole = kind == "integer" and float(self.width).is_integer()
            if whole:
                start = low.cast(pl.Int64)
                label = pl.format("{}-{}", start, start + int(self.width) - 1)
            else:
                label = pl.format("[{}, {})", low, low + self.width)
        if self.top is not None:
            label = (
                pl.when(value >= self.top)
                .then(pl.lit(f"{_number_text(self.top)}+"))
                .otherwise(label)
            )
        return label.cast(pl.String)
