"""Printing results: a Rich table for people (default), JSON for scripts (``-o json``).

Results go to stdout; messages, warnings and progress go to stderr, so that
``inwire teams list -o json | jq`` reads nothing but data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import typer

from inwire.cli.context import Output, Settings, console

__all__ = ["Column", "message", "show_list", "show_one"]

Column = tuple[str, str]
"""``(header, field)``: a column of a table and the field of each item it shows."""


def _plain(value: Any) -> Any:
    """JSON-ready data from models, lists and mappings."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _json(data: Any) -> None:
    typer.echo(json.dumps(_plain(data), indent=2, ensure_ascii=False))


def show_list(
    options: Settings,
    items: Sequence[Any],
    columns: Sequence[Column],
    *,
    title: str | None = None,
    empty: str = "Nothing here yet.",
) -> None:
    """A list: one row per item, or a JSON array."""
    if options.output is Output.json:
        _json(list(items))
        return
    if not items:
        message(empty)
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    for item in items:
        table.add_row(*(_cell(_field(item, name)) for _, name in columns))
    console().print(table)


def show_one(options: Settings, item: Any, columns: Sequence[Column]) -> None:
    """One object: a two-column table of fields, or a JSON object."""
    if options.output is Output.json:
        _json(item)
        return
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for header, name in columns:
        table.add_row(header, _cell(_field(item, name)))
    console().print(table)


def message(text: str, *, style: str | None = None) -> None:
    """A note for people, on stderr (never mixed into data)."""
    from rich.markup import escape

    console(stderr=True).print(escape(text), style=style)
