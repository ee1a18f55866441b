"""Logical schema inference: what each column *is*, from its values and its name.

``infer(lf)`` reads a sample (the first ``sample_rows`` rows) and, over the whole data,
the row, null and approximate distinct counts. For every column it decides

* a cast, when text holds something typed (``"42"``, ``"3,14"``, ``"yes"``,
  ``"24.12.2025"``): ``Cast.expr`` turns it into Int64, Float64, Boolean, Date or Datetime
  (values that do not parse become null, and ``validated_casts`` drops a cast that would
  lose values anywhere in the data);
* a logical ``ColumnType`` (integer, float, boolean, categorical, datetime, text,
  identifier);
* a semantic hint from ``schema.SEMANTICS``, from value patterns (e-mail, UUID, IP, URL,
  IBAN and card numbers with their check digits, …) and column names (``zip`` →
  postal_code, ``dob`` → date_of_birth, …).

The rules are deliberately simple and documented in docs/synthex.md; users correct the
result by patching the version's schema.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import polars as pl

from inwire.services.synthex.schema import ColumnSpec, ColumnType, Schema

CastKind = Literal[
    "integer", "float", "decimal_comma", "boolean", "date", "datetime", "string", "json"
]

#: Share of sampled values a pattern must match to name a semantic or a date format.
MATCH_SHARE = 0.9
#: Distinct values at or under which text is categorical (scaled with the data, capped).
CATEGORICAL_MIN, CATEGORICAL_MAX, CATEGORICAL_SHARE = 20, 1000, 0.05
#: Share of distinct values that makes a column unique; the whole-data count is
#: approximate (HyperLogLog, a few percent off), so "unique" allows for it.
UNIQUE_SHARE = 0.95
#: Most distinct sampled values checked against patterns.
PATTERN_SAMPLE = 2000

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_BOOL_PAIRS = ({"true", "false"}, {"t", "f"}, {"yes", "no"}, {"y", "n"})
_INT = re.compile(r"^[+-]?(0|[1-9]\d{0,17})$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+(,\d+)?$")

#: Date formats tried on text, in order; the first that parses the sample wins (so US
#: month-first beats day-first when both parse every value).
DATE_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%d %b %Y",
    "%b %d, %Y",
    "%d %B %Y",
    "%B %d, %Y",
)
DATETIME_FORMATS: tuple[str, ...] = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%z",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
)


@dataclass(frozen=True)
class Cast:
    """How a stored column becomes its inferred type."""

    kind: CastKind
    format: str | None = None

    def expr(self, name: str) -> pl.Expr:
        """The polars expression that casts column ``name`` (unparseable values → null)."""
        col = pl.col(name)
        text = col.cast(pl.String).str.strip_chars()
        if self.kind == "integer":
            return text.cast(pl.Int64, strict=False).alias(name)
        if self.kind == "float":
            return col.cast(pl.Float64, strict=False).alias(name)
        if self.kind == "decimal_comma":
            return text.str.replace(",", ".", literal=True).cast(pl.Float64, strict=False)
        if self.kind == "boolean":
            lowered = text.str.to_lowercase()
            return (
                pl.when(lowered.is_in(sorted(_TRUE)))
                .then(True)
                .when(lowered.is_in(sorted(_FALSE)))
                .then(False)
                .otherwise(None)
                .cast(pl.Boolean)
                .alias(name)
            )
        if self.kind == "date":
            return text.str.strptime(pl.Date, self.format, strict=False).alias(name)
        if self.kind == "datetime":
            parsed = text.str.strptime(pl.Datetime("us"), self.format, strict=False)
            return parsed.alias(name)
        if self.kind == "json":
            return col.map_elements(_json_text, return_dtype=pl.String).alias(name)
        return col.cast(pl.String).alias(name)

    def as_dict(self) -> dict[str, str | None]:
        """JSON form (job results, logs)."""
        return {"kind": self.kind, "format": self.format}


def _json_text(value: object) -> str:
    import json

    return json.dumps(value, default=str, ensure_ascii=False)


@dataclass
class Inference:
    """The inferred schema (``storage`` as it will be after the casts) and the casts."""

    schema: Schema
    casts: dict[str, Cast] = field(default_factory=dict)


# -- column names ---------------------------------------------------------------------------


def name_tokens(name: str) -> tuple[set[str], str]:
    """A column name's lower-case words and its letters joined (``"zipCode"`` → zip, code)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    words = {w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w}
    return words, "".join(sorted(words, key=spaced.lower().find))


def _hint(name: str, words: set[str], joined: Iterable[str]) -> bool:
    tokens, squashed = name_tokens(name)
    return bool(tokens & words) or any(j == squashed or squashed.endswith(j) for j in joined)


_ID_WORDS = {"id", "uuid", "guid", "pk", "key"}
_NAME_HINTS: dict[str, tuple[set[str], tuple[str, ...]]] = {
    "email": ({"email", "mail"}, ("emailaddress",)),
    "phone": ({"phone", "tel", "telephone", "mobile", "cell", "fax"}, ("phonenumber",)),
    "postal_code": ({"zip", "zipcode", "postal", "postcode", "plz"}, ("postalcode", "zipcode")),
    "first_name": ({"firstname", "forename", "fname", "givenname"}, ("firstname", "givenname")),
    "last_name": ({"lastname", "surname", "lname", "familyname"}, ("lastname", "familyname")),
    "address": ({"address", "street", "addr", "address1", "address2"}, ("streetaddress",)),
    "city": ({"city", "town", "municipality"}, ()),
    "country": ({"country", "nation"}, ("countryname",)),
    "ip_address": ({"ip", "ipv4", "ipv6"}, ("ipaddress", "ipaddr")),
    "url": ({"url", "website", "homepage", "uri", "link"}, ()),
    "credit_card": ({"cc", "pan"}, ("creditcard", "cardnumber", "ccnumber", "creditcardnumber")),
    "iban": ({"iban"}, ()),
    "ssn": ({"ssn"}, ("socialsecurity", "socialsecuritynumber")),
    "date_of_birth": ({"dob", "birthday", "birthdate", "born"}, ("dateofbirth", "birthdate")),
    "latitude": ({"lat", "latitude"}, ()),
    "longitude": ({"lon", "lng", "long", "longitude"}, ()),
    "currency": ({"currency", "ccy"}, ("currencycode",)),
}
_PERSON_CONTEXT = {
    "full",
    "person",
    "customer",
    "patient",
    "employee",
    "user",
    "contact",
    "client",
    "owner",
    "member",
    "author",
    "student",
}


def _name_says(semantic: str, name: str) -> bool:
    words, joined = _NAME_HINTS[semantic]
    tokens, _ = name_tokens(name)
    if semantic == "first_name" and {"first", "name"} <= tokens:
        return True
    if semantic == "last_name" and ({"last", "name"} <= tokens or {"family", "name"} <= tokens):
        return True
    if semantic == "date_of_birth" and {"birth"} & tokens:
        return True
    return _hint(name, words, joined)


def _person_name_hint(name: str) -> bool:
    tokens, squashed = name_tokens(name)
    return squashed in ("name", "fullname") or ("name" in tokens and bool(tokens & _PERSON_CONTEXT))


def _identifier_name(name: str) -> bool:
    tokens, squashed = name_tokens(name)
    return bool(tokens & _ID_WORDS) or (squashed.endswith("id") and len(squashed) <= 20)


# -- value patterns --------------------------------------------------------------------------

_EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_URL = re.compile(r"^(https?|ftp)://[^\s/$.?#][^\s]*$", re.IGNORECASE)
_SSN = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_IBAN = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$")
_PHONE = re.compile(r"^\+?[\d\s().\-/]{7,22}$")
_POSTAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{1,9}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_PERSON = re.compile(r"^[A-Z][a-zà-ÿ'\u2019.-]+( [A-Z][a-zà-ÿ'\u2019.-]+){1,3}$")
_STREET = re.compile(
    r"^\d+[A-Za-z]?\s+.*\b(st|street|ave|avenue|rd|road|blvd|boulevard|lane|ln|dr|drive|way|"
    r"court|ct|place|pl|terrace|square|sq|highway|hwy|str|strasse|straße|rue|via|calle)\b",
    re.IGNORECASE,
)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_card(value: str) -> bool:
    digits = re.sub(r"[ -]", "", value)
    return digits.isdigit() and 13 <= len(digits) <= 19 and _luhn(digits)


def _is_iban(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    if not _IBAN.match(compact):
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_phone(value: str) -> bool:
    digits = sum(ch.isdigit() for ch in value)
    return bool(_PHONE.match(value)) and 7 <= digits <= 15


@cache
def _words(kind: str) -> frozenset[str]:
    """Reference word lists shipped with Faker (first names, last names, countries)."""
    from faker.providers.address.en_US import Provider as Address
    from faker.providers.person.en_US import Provider as Person

    if kind == "first":
        names = set(Person.first_names) | set(Person.first_names_female)
        return frozenset(n.lower() for n in names | set(Person.first_names_male))
    if kind == "last":
        return frozenset(n.lower() for n in Person.last_names)
    return frozenset(n.lower() for n in Address.countries)


def _share(values: list[str], test: Callable[[str], bool]) -> float:
    if not values:
        return 0.0
    return sum(1 for v in values if test(v)) / len(values)


def _in_words(kind: str) -> Callable[[str], bool]:
    words = _words(kind)
    return lambda v: v.strip().lower() in words


def text_semantic(name: str, values: list[str]) -> str | None:
    """The semantic hint of a text column from its name and distinct sampled values."""
    checks: list[tuple[str, Callable[[str], bool], bool]] = [
        # (semantic, value test, whether the column name must also say so)
        ("email", lambda v: bool(_EMAIL.match(v)), False),
        ("uuid", lambda v: bool(_UUID.match(v)), False),
        ("url", lambda v: bool(_URL.match(v)), False),
        ("ip_address", _is_ip, False),
        ("iban", _is_iban, False),
        ("ssn", lambda v: bool(_SSN.match(v)), False),
        ("credit_card", _is_card, False),
        ("phone", _is_phone, True),
        ("phone", lambda v: v.startswith("+") and _is_phone(v), False),
        ("postal_code", lambda v: bool(_POSTAL.match(v)), True),
        ("currency", lambda v: bool(_CURRENCY.match(v)), True),
        ("first_name", lambda v: bool(v.strip()), True),
        ("last_name", lambda v: bool(v.strip()), True),
        ("city", lambda v: bool(v.strip()), True),
        ("address", lambda v: bool(v.strip()), True),
        ("address", lambda v: bool(_STREET.match(v)), False),
        ("country", lambda v: bool(v.strip()), True),
        ("country", _in_words("country"), False),
    ]
    for semantic, test, needs_name in checks:
        if needs_name and not _name_says(semantic, name):
            continue
        if _share(values, test) >= MATCH_SHARE:
            return semantic
    person = _share(values, lambda v: bool(_PERSON.match(v)))
    if _person_name_hint(name) and person >= 0.7:
        return "person_name"
    if person >= MATCH_SHARE:
        first_known = _share(values, lambda v: v.split(" ", 1)[0].lower() in _words("first"))
        if first_known >= 0.7:
            return "person_name"
    if _share(values, _in_words("first")) >= 0.8 and len(values) >= 5:
        return "first_name"
    if _share(values, _in_words("last")) >= 0.8 and len(values) >= 5:
        return "last_name"
    return None


def numeric_semantic(name: str, series: pl.Series) -> str | None:
    """The semantic hint of a numeric column (coordinates, codes kept as numbers)."""
    values = series.drop_nulls()
    if values.is_empty():
        return None
    low, high = float(values.min()), float(values.max())  # type: ignore[arg-type]
    if _name_says("latitude", name) and low >= -90 and high <= 90:
        return "latitude"
    if _name_says("longitude", name) and low >= -180 and high <= 180:
        return "longitude"
    if series.dtype.is_integer():
        for semantic in ("postal_code", "phone"):
            if _name_says(semantic, name):
                return semantic
    return None


# -- casts of text -----------------------------------------------------------------------------


def _date_cast(values: pl.Series) -> Cast | None:
    for kind, formats, dtype in (
        ("date", DATE_FORMATS, pl.Date),
        ("datetime", DATETIME_FORMATS, pl.Datetime("us")),
    ):
        for fmt in formats:
            try:
                parsed = values.str.strptime(dtype, fmt, strict=False)
            except pl.exceptions.PolarsError:
                continue
            if parsed.null_count() == 0:
                return Cast(kind, fmt)  # type: ignore[arg-type]
    return None


def text_cast(values: pl.Series) -> Cast | None:
    """The cast a text column's sampled non-null values call for, if any."""
    stripped = values.str.strip_chars()
    stripped = stripped.filter(stripped != "")
    if stripped.is_empty():
        return None
    distinct = stripped.unique()
    lowered = set(distinct.str.to_lowercase().to_list())
    if any(lowered <= pair for pair in _BOOL_PAIRS):
        return Cast("boolean")
    if distinct.str.contains(r"^[+-]?0\d+$").any():
        return None  # leading zeros (postal codes, account numbers) are text, not numbers
    if distinct.str.contains(_INT.pattern).all():
        return Cast("integer")
    if distinct.str.contains(_FLOAT.pattern).all():
        return Cast("float")
    if distinct.str.contains(_DECIMAL_COMMA.pattern).all() and distinct.str.contains(",").any():
        return Cast("decimal_comma")
    if distinct.str.contains(r"\d").all():
        return _date_cast(distinct.head(PATTERN_SAMPLE))
    return None


# -- the whole frame ---------------------------------------------------------------------------


def _is_nested(dtype: pl.DataType) -> bool:
    return isinstance(dtype, pl.List | pl.Struct | pl.Array | pl.Object)


def _storage_cast(dtype: pl.DataType) -> Cast | None:
    """Casts for storage types the rest of Synthex does not handle as such."""
    if _is_nested(dtype):
        return Cast("json")
    if isinstance(dtype, pl.Decimal):
        return Cast("float")
    if dtype == pl.Null or isinstance(dtype, pl.Binary | pl.Time | pl.Duration):
        return Cast("string")
    return None


def _categorical_limit(non_null: int) -> int:
    return max(CATEGORICAL_MIN, min(CATEGORICAL_MAX, int(CATEGORICAL_SHARE * non_null)))


def _type_of_text(name: str, sample: pl.Series, non_null: int, distinct: int) -> ColumnType:
    if non_null == 0:
        return ColumnType.text
    if distinct <= _categorical_limit(non_null) and (distinct < non_null or non_null <= 20):
        return ColumnType.categorical
    unique = non_null >= 10 and distinct >= UNIQUE_SHARE * non_null
    values = sample.drop_nulls()
    if unique and not values.is_empty():
        spaced = float(values.str.contains(r"\s").mean() or 0.0)  # type: ignore[arg-type]
        longest = int(values.str.len_chars().max() or 0)  # type: ignore[arg-type]
        if spaced < 0.05 and longest <= 64:
            return ColumnType.identifier
    return ColumnType.text


def _type_of_integer(name: str, sample: pl.Series, non_null: int, distinct: int) -> ColumnType:
    unique = non_null >= 10 and distinct >= UNIQUE_SHARE * non_null
    if not unique:
        return ColumnType.integer
    if _identifier_name(name):
        return ColumnType.identifier
    values = sample.drop_nulls()
    # Row numbers: unique and counting up by one.
    if values.len() >= 10 and values.diff().drop_nulls().eq(1).all():
        return ColumnType.identifier
    return ColumnType.integer


def column_type(name: str, sample: pl.Series, non_null: int, distinct: int) -> ColumnType:
    """The logical type of a column from its (cast) sample and whole-data counts."""
    dtype = sample.dtype
    if dtype == pl.Boolean:
        return ColumnType.boolean
    if dtype.is_temporal():
        return ColumnType.datetime
    if dtype.is_integer():
        return _type_of_integer(name, sample, non_null, distinct)
    if dtype.is_float() or dtype.is_numeric():
        return ColumnType.float
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return ColumnType.categorical
    return _type_of_text(name, sample.cast(pl.String), non_null, distinct)


def semantic_of(name: str, ctype: ColumnType, sample: pl.Series) -> str | None:
    """The semantic hint of a column of logical type ``ctype``."""
    if ctype == ColumnType.datetime:
        return "date_of_birth" if _name_says("date_of_birth", name) else None
    if ctype == ColumnType.boolean:
        return None
    if sample.dtype.is_numeric():
        return numeric_semantic(name, sample)
    values = sample.drop_nulls().cast(pl.String).unique().head(PATTERN_SAMPLE).to_list()
    return text_semantic(name, [v for v in values if v.strip()])


def infer(lf: pl.LazyFrame | pl.DataFrame, *, sample_rows: int = 20_000) -> Inference:
    """Infer the logical schema of ``lf`` and the casts its text columns need.

    Reads the first ``sample_rows`` rows, plus one streaming pass for whole-data counts.
    """
    lazy = lf.lazy()
    dtypes = lazy.collect_schema()
    sample = lazy.head(sample_rows).collect()
    countable = [n for n, d in dtypes.items() if not _is_nested(d) and d != pl.Object]
    stats = lazy.select(
        pl.len().alias("__rows__"),
        *[pl.col(n).null_count().alias(f"null:{n}") for n in dtypes],
        *[pl.col(n).approx_n_unique().alias(f"distinct:{n}") for n in countable],
    ).collect(engine="streaming")
    rows = int(stats["__rows__"][0])

    casts: dict[str, Cast] = {}
    schema: Schema = []
    for name, dtype in dtypes.items():
        nulls = int(stats[f"null:{name}"][0])
        non_null = rows - nulls
        if name not in countable:
            distinct = non_null
        elif rows <= sample.height:
            # The sample is the whole data: count exactly.
            distinct = sample[name].drop_nulls().n_unique()
        else:
            distinct = max(0, int(stats[f"distinct:{name}"][0]) - (1 if nulls else 0))
        cast = _storage_cast(dtype)
        if cast is None and dtype == pl.String:
            cast = text_cast(sample[name].drop_nulls())
        column = sample[name]
        if cast is not None:
            column = sample.select(cast.expr(name))[name]
            casts[name] = cast
        ctype = column_type(name, column, non_null, distinct)
        schema.append(
            ColumnSpec(
                name=name,
                type=ctype,
                semantic=semantic_of(name, ctype, column),
                nullable=nulls > 0,
                storage=str(column.dtype),
            )
        )
    return Inference(schema=schema, casts=casts)


def validated_casts(
    lf: pl.LazyFrame, casts: Mapping[str, Cast]
) -> tuple[dict[str, Cast], dict[str, int]]:
    """The casts that lose no value anywhere in ``lf`` (one streaming pass), and the
    number of values each rejected cast would have lost."""
    checked = {n: c for n, c in casts.items() if c.kind not in ("json", "string", "float")}
    if not checked:
        return dict(casts), {}
    lost = lf.select(
        *[
            (
                pl.col(n).is_not_null()
                & (pl.col(n).cast(pl.String).str.strip_chars() != "")
                & c.expr(n).is_null()
            )
            .sum()
            .alias(n)
            for n, c in checked.items()
        ]
    ).collect(engine="streaming")
    rejected = {n: int(lost[n][0]) for n in checked if int(lost[n][0]) > 0}
    return {n: c for n, c in casts.items() if n not in rejected}, rejected


def schema_from_dtypes(dtypes: Mapping[str, pl.DataType]) -> Schema:
    """A schema from storage types alone (no values looked at)."""
    out: Schema = []
    for name, dtype in dtypes.items():
        if dtype == pl.Boolean:
            ctype = ColumnType.boolean
        elif dtype.is_temporal():
            ctype = ColumnType.datetime
        elif dtype.is_integer():
            ctype = ColumnType.integer
        elif dtype.is_numeric():
            ctype = ColumnType.float
        elif isinstance(dtype, pl.Categorical | pl.Enum):
            ctype = ColumnType.categorical
        else:
            ctype = ColumnType.text
        out.append(ColumnSpec(name=name, type=ctype, storage=str(dtype)))
    return out


# -- corrections ---------------------------------------------------------------------------------

_INTEGER_STORAGE = re.compile(r"^U?Int\d+$")
_FLOAT_STORAGE = re.compile(r"^Float\d+$")


def storage_fits(storage: str, target: ColumnType) -> bool:
    """Whether data stored as ``storage`` (a polars dtype name) already serves ``target``.

    Changing a column's logical type within what its storage holds (integer codes as
    categorical, text as identifier, integers as float) edits metadata only; anything
    else (text to integer, text to datetime, …) needs the data cast into a new version.
    """
    if target == ColumnType.integer:
        return bool(_INTEGER_STORAGE.match(storage))
    if target == ColumnType.float:
        return bool(_INTEGER_STORAGE.match(storage) or _FLOAT_STORAGE.match(storage))
    if target == ColumnType.boolean:
        return storage == "Boolean"
    if target == ColumnType.datetime:
        return storage == "Date" or storage.startswith("Datetime")
    return not storage.startswith(("List", "Struct", "Array", "Object", "Binary"))


def cast_to(name: str, dtype: pl.DataType, target: ColumnType, sample: pl.Series) -> Cast | None:
    """The cast that makes column ``name`` (stored as ``dtype``) hold ``target`` values.

    None when the storage already fits; ValueError naming the column when no cast can.
    """
    if storage_fits(str(dtype), target):
        return _storage_cast(dtype)
    if target == ColumnType.integer and (dtype == pl.String or dtype.is_float()):
        return Cast("integer")
    if target == ColumnType.float and dtype == pl.String:
        inferred = text_cast(sample.drop_nulls())
        return inferred if inferred and inferred.kind == "decimal_comma" else Cast("float")
    if target == ColumnType.boolean and (dtype == pl.String or dtype.is_integer()):
        return Cast("boolean")
    if target == ColumnType.datetime and dtype == pl.String:
        values = sample.drop_nulls().str.strip_chars()
        found = _date_cast(values.filter(values != "").unique().head(PATTERN_SAMPLE))
        if found is None:
            raise ValueError(f"column {name!r}: the values are not dates in a known format")
        return found
    raise ValueError(f"column {name!r}: {dtype} values cannot become {target.value}")


def write_cast(source: Path, target: Path, casts: Mapping[str, Cast]) -> None:
    """Copy a Parquet file applying ``casts``, one row group at a time.

    Done batch by batch (not with a polars streaming sink) so memory stays at one row
    group whatever the file size.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    exprs = [cast.expr(name) for name, cast in casts.items()]
    reader = pq.ParquetFile(source)
    writer: pq.ParquetWriter | None = None
    try:
        for i in range(reader.num_row_groups):
            frame = pl.from_arrow(reader.read_row_group(i))
            assert isinstance(frame, pl.DataFrame)
            table: pa.Table = frame.with_columns(exprs).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema, compression="zstd")
            writer.write_table(table.cast(writer.schema))
        if writer is None:
            pl.scan_parquet(source).with_columns(exprs).collect().write_parquet(target)
    finally:
        if writer is not None:
            writer.close()
