"""Public identifiers: a short type prefix and a ULID, so they sort by creation time."""

from __future__ import annotations

from ulid import ULID


def new_id(prefix: str) -> str:
    """A new sortable id such as ``org_01J9Z…``."""
    return f"{prefix}_{ULID()}"
