"""Schema inference, casts and file detection on small frames (no service, no jobs)."""

from __future__ import annotations

import uuid
from pathlib import Path

import polars as pl
import pytest

from inwire.kit.errors import Invalid, UnsupportedMediaType
from inwire.services.synthex.data import formats
from inwire.services.synthex.data.infer import (
    Cast,
    cast_to,
    infer,
    storage_fits,
    text_semantic,
    validated_casts,
    write_cast,
)
from inwire.services.synthex.schema import ColumnType


def kinds(frame: pl.DataFrame) -> dict[str, tuple[str, str | None, str]]:
    result = infer(frame)
    return {c.name: (c.type.value, c.semantic, c.storage) for c in result.schema}


def test_types_are_inferred_from_values_and_counts() -> None:
    n = 200
    frame = pl.DataFrame(
        {
            "customer_id": [f"C-{i:05d}" for i in range(n)],
            "row": list(range(1, n + 1)),
            "age": [str(18 + i % 60) for i in range(n)],
            "price": [f"{i}.99" for i in range(n)],
            "paid": ["Yes", "No"] * (n // 2),
            "segment": ["retail", "pro", "gov", "edu"] * (n // 4),
            "comment": [f"the order {i} arrived late and was cold" for i in range(n)],
            "signed": [f"2023-0{1 + i % 9}-0{1 + i % 9} 12:3{i % 10}:00" for i in range(n)],
            "score": [i / 3 for i in range(n)],
            "nothing": [None] * n,
        }
    )
    got = kinds(frame)
    assert got["customer_id"][0] == "identifier"
    assert got["row"][0] == "identifier"  # unique and counting up by one
    assert got["age"] == ("integer", None, "Int64")
    assert got["price"] == ("float", None, "Float64")
    assert got["paid"] == ("boolean", None, "Boolean")
    assert got["segment"] == ("categorical", None, "String")
    assert got["comment"][0] == "text"
    assert got["signed"][0] == "datetime"
    assert got["signed"][2].startswith("Datetime")
    assert got["score"][0] == "float"
    assert got["nothing"][0] == "text"


def test_repeated_integers_are_integers_not_identifiers() -> None:
    frame = pl.DataFrame({"id": [1, 2, 3] * 20, "count": list(range(60, 0, -1))})
    got = kinds(frame)
    assert got["id"][0] == "integer"  # named id but not unique
    assert got["count"][0] == "integer"  # unique but neither named nor counting up


@pytest.mark.parametrize(
    ("name", "values", "semantic"),
    [
        ("contact", [f"person{i}@mail.example.org" for i in range(30)], "email"),
        ("key", [str(uuid.uuid4()) for _ in range(30)], "uuid"),
        ("site", [f"https://example.com/p/{i}" for i in range(30)], "url"),
        ("client", [f"192.168.1.{i}" for i in range(30)], "ip_address"),
        ("acct", ["DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32"] * 10, "iban"),
        (
            "pan",
            ["4111 1111 1111 1111", "5500 0000 0000 0004", "3400 0000 0000 009"] * 10,
            "credit_card",
        ),
        ("tax", [f"{100 + i:03d}-45-67{i:02d}" for i in range(30)], "ssn"),
        ("Telephone", [f"(555) 123-{1000 + i}" for i in range(30)], "phone"),
        ("contact", [f"+44 20 7946 {1000 + i}" for i in range(30)], "phone"),
        ("ZIP", [f"{10000 + i}" for i in range(30)], "postal_code"),
        ("ccy", ["EUR", "USD", "GBP"] * 10, "currency"),
        ("firstName", ["Anna", "Bob", "Carla"] * 10, "first_name"),
        ("surname", ["Smith", "Jones", "Brown"] * 10, "last_name"),
        ("who", ["James", "Mary", "Robert", "Patricia", "John", "Linda"] * 5, "first_name"),
        ("customer name", ["Ann Lee", "Bo Chan", "Cy Twombly"] * 10, "person_name"),
        ("Town", ["Lyon", "Nantes"] * 15, "city"),
        ("where", [f"{i} Main Street" for i in range(1, 31)], "address"),
        ("land", ["France", "Germany", "Spain", "Italy"] * 5, "country"),
        ("notes", ["good", "bad", "fine"] * 10, None),
        ("when", ["2021-01-01", "2021-02-01"] * 10, None),
    ],
)
def test_semantic_hints_come_from_values_and_names(
    name: str, values: list[str], semantic: str | None
) -> None:
    assert text_semantic(name, sorted(set(values))) == semantic


def test_numeric_semantics_need_a_name_and_a_range() -> None:
    frame = pl.DataFrame(
        {
            "lat": [48.85, 52.52, 41.9] * 5,
            "lng": [2.35, 13.4, 12.49] * 5,
            "latency": [120.0, 300.0, 95.0] * 5,
            "zip": [75001, 10115, 10117] * 5,
            "dob": ["1990-01-02", "1985-06-30", "2001-12-24"] * 5,
        }
    )
    got = kinds(frame)
    assert got["lat"][1] == "latitude"
    assert got["lng"][1] == "longitude"
    assert got["latency"][1] is None  # "lat" as a word, not a prefix
    assert got["zip"][1] == "postal_code"
    assert got["dob"][:2] == ("datetime", "date_of_birth")


def test_leading_zeros_and_mixed_values_stay_text() -> None:
    frame = pl.DataFrame({"code": ["007", "010", "123"] * 10, "mixed": ["1", "2", "three"] * 10})
    result = infer(frame)
    assert result.casts == {}
    assert {c.name: c.storage for c in result.schema} == {"code": "String", "mixed": "String"}


def test_dates_pick_the_format_that_parses_every_value() -> None:
    us = pl.DataFrame({"d": ["12/31/2020", "01/15/2021", "06/01/2021"] * 5})
    eu = pl.DataFrame({"d": ["31/12/2020", "15/01/2021", "01/06/2021"] * 5})
    assert infer(us).casts["d"] == Cast("date", "%m/%d/%Y")
    assert infer(eu).casts["d"] == Cast("date", "%d/%m/%Y")
    both = pl.DataFrame({"d": ["01/02/2020", "03/04/2021"] * 5})
    assert infer(both).casts["d"] == Cast("date", "%m/%d/%Y")  # month first on a tie


def test_a_cast_that_loses_values_past_the_sample_is_dropped(tmp_path: Path) -> None:
    values = [str(i) for i in range(50_000)] + ["n/a"]
    frame = pl.DataFrame({"n": values, "m": [str(i) for i in range(50_001)]})
    result = infer(frame, sample_rows=1000)
    assert set(result.casts) == {"n", "m"}
    kept, rejected = validated_casts(frame.lazy(), result.casts)
    assert set(kept) == {"m"}
    assert rejected == {"n": 1}
    frame.write_parquet(tmp_path / "raw.parquet", row_group_size=10_000)
    write_cast(tmp_path / "raw.parquet", tmp_path / "typed.parquet", kept)
    typed = pl.read_parquet(tmp_path / "typed.parquet")
    assert typed.schema == pl.Schema({"n": pl.String, "m": pl.Int64})
    assert typed["m"].sum() == sum(range(50_001))


def test_storage_decides_whether_a_type_change_needs_a_cast() -> None:
    assert storage_fits("Int64", ColumnType.categorical)
    assert storage_fits("Int64", ColumnType.float)
    assert storage_fits("String", ColumnType.identifier)
    assert storage_fits("Datetime(time_unit='us', time_zone=None)", ColumnType.datetime)
    assert not storage_fits("String", ColumnType.integer)
    assert not storage_fits("Float64", ColumnType.integer)
    assert not storage_fits("String", ColumnType.datetime)
    assert cast_to("x", pl.String(), ColumnType.integer, pl.Series(["1"])) == Cast("integer")
    assert cast_to("x", pl.Int64(), ColumnType.categorical, pl.Series([1])) is None
    with pytest.raises(ValueError, match="'x'"):
        cast_to("x", pl.String(), ColumnType.datetime, pl.Series(["soon"]))
    with pytest.raises(ValueError, match="cannot become"):
        cast_to("x", pl.Boolean(), ColumnType.datetime, pl.Series([True]))


# -- file detection -------------------------------------------------------------------------------


def test_format_comes_from_the_declared_format_the_name_or_the_media_type() -> None:
    assert formats.format_of("a.CSV") == "csv"
    assert formats.format_of("a.ndjson") == "jsonl"
    assert formats.format_of("a.bin", "parquet") == "parquet"
    assert formats.format_of(None, None, "text/tab-separated-values") == "tsv"
    with pytest.raises(UnsupportedMediaType):
        formats.format_of("a.docx")
    with pytest.raises(UnsupportedMediaType):
        formats.format_of("a.csv", "xml")


@pytest.mark.parametrize(
    ("text", "delimiter", "header"),
    [
        ("a,b,c\n1,2,3\n4,5,6\n", ",", True),
        ("name;city\nAnn;Paris\nBo;Rome\n", ";", True),
        ("x\ty\n1\t2\n", "\t", True),
        ("1|2|3\n4|5|6\n", "|", False),
        ('"a, b",c\n"1, 2",3\n"4, 5",6\n', ",", True),
        ("2020-01-01,5\n2020-01-02,6\n", ",", False),
        ("id,id\n1,2\n", ",", False),
    ],
)
def test_delimiter_and_header_are_detected(text: str, delimiter: str, header: bool) -> None:
    dialect = formats.detect_dialect(text.encode(), "csv")
    assert (dialect.delimiter, dialect.header) == (delimiter, header)


def test_encodings_are_detected() -> None:
    assert formats.detect_encoding("naïve café".encode()) == "utf-8"
    assert formats.detect_encoding(b"\xef\xbb\xbfa,b\n") == "utf-8-sig"
    latin = "Nom;Ville\nJérôme;Besançon\nRené;Orléans\nZoë;Noël\n".encode("latin-1") * 20
    assert formats.detect_encoding(latin) == "cp1252"
    # A multi-byte character cut at the end of the head is still UTF-8.
    assert formats.detect_encoding("abc é".encode()[:-1]) == "utf-8"


def test_head_checks_catch_common_mistakes() -> None:
    formats.check_head("csv", b"a,b\n1,2\n", b"1,2\n", 8)
    formats.check_head("parquet", b"PAR1xxxx", b"xxxxPAR1", 100)
    with pytest.raises(Invalid, match="empty"):
        formats.check_head("csv", b"", b"", 0)
    with pytest.raises(Invalid, match="binary"):
        formats.check_head("csv", b"\x00\x01\x02", b"", 3)
    with pytest.raises(Invalid, match="Parquet"):
        formats.check_head("parquet", b"PAR1xxxx", b"truncated", 100)


def test_json_array_is_rewritten_as_lines_object_by_object(tmp_path: Path) -> None:
    rows = [{"a": i, "b": "x" * (i % 5), "c": [i, {"d": True}]} for i in range(3000)]
    import json

    src = tmp_path / "rows.json"
    src.write_text(json.dumps(rows, indent=2))
    out = tmp_path / "rows.jsonl"
    count = formats.json_array_to_lines(src, out, progress=lambda f: None, check=lambda: None)
    assert count == 3000
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows
    bad = tmp_path / "bad.json"
    bad.write_text('[{"a": 1}, 2]')
    with pytest.raises(Invalid, match="not an object"):
        formats.json_array_to_lines(bad, out, progress=lambda f: None, check=lambda: None)
    open_array = tmp_path / "open.json"
    open_array.write_text('[{"a": 1},')
    with pytest.raises(Invalid):
        formats.json_array_to_lines(open_array, out, progress=lambda f: None, check=lambda: None)


def test_work_folders_of_killed_workers_are_swept_once_stale(tmp_path: Path) -> None:
    import os
    import time

    from inwire.services.synthex.data.files import STALE_WORKDIR_SECONDS, new_workdir

    stale = tmp_path / "20200101-dead"
    (stale / "raw").mkdir(parents=True)
    old = time.time() - STALE_WORKDIR_SECONDS - 60
    os.utime(stale, (old, old))
    fresh = new_workdir(tmp_path)
    second = new_workdir(tmp_path)
    assert not stale.exists()
    assert fresh.is_dir()
    assert second.is_dir()
    assert fresh != second
