"""The logical schema of a dataset version: what each column *is*, beyond its storage type.

Every part of Synthex speaks this schema: import infers it, users correct it, profiles,
recipes, generators and evaluations read it. Data itself is Parquet, read with polars.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ColumnType(StrEnum):
    """The logical type of a column."""

    #: Whole numbers (counts, years, ages); generators keep them whole.
    integer = "integer"
    #: Real numbers.
    float = "float"
    boolean = "boolean"
    #: Few distinct values (strings or codes); modelled as categories.
    categorical = "categorical"
    #: Dates and timestamps.
    datetime = "datetime"
    #: Free text with many distinct values (names, comments, addresses).
    text = "text"
    #: Unique per row, carries no distribution (keys, UUIDs); generators make fresh ones.
    identifier = "identifier"


#: Semantic hints Synthex detects; users may set any of these (or none).
SEMANTICS: tuple[str, ...] = (
    "email",
    "phone",
    "postal_code",
    "person_name",
    "first_name",
    "last_name",
    "address",
    "city",
    "country",
    "ip_address",
    "url",
    "credit_card",
    "iban",
    "ssn",
    "uuid",
    "date_of_birth",
    "latitude",
    "longitude",
    "currency",
)

#: Semantics that identify a person (PII): recipes offer masking, profiles raise alerts.
PII_SEMANTICS: frozenset[str] = frozenset(
    {
        "email",
        "phone",
        "person_name",
        "first_name",
        "last_name",
        "address",
        "ip_address",
        "credit_card",
        "iban",
        "ssn",
        "date_of_birth",
    }
)


class ColumnSpec(BaseModel):
    """One column of a dataset version's schema."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    type: ColumnType
    #: One of ``SEMANTICS``, or None.
    semantic: str | None = None
    nullable: bool = True
    #: The polars dtype the Parquet file stores (``Int64``, ``Float64``, ``String``, …).
    storage: str = ""
    description: str = ""

    @property
    def is_pii(self) -> bool:
        """Whether the semantic hint marks personal data."""
        return self.semantic in PII_SEMANTICS


Schema = list[ColumnSpec]


def by_name(schema: Schema) -> dict[str, ColumnSpec]:
    """The schema as a mapping from column name to its spec."""
    return {c.name: c for c in schema}
