"""``inwire migrate``: apply a service's Alembic migrations to the database its settings name.

A service's app module exposes its Alembic folder as ``MIGRATIONS``; the version table is
the service's own (``alembic_version_<service>``), as when the app migrates at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inwire.services.registry import ServiceSpec


@dataclass(frozen=True)
class MigrationOutcome:
    """What ``migrate`` did for one service."""

    service: str
    database: str
    schema: str
    applied: bool
    reason: str = ""


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _ensure_sqlite_folder(url: str) -> None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def migrate(spec: ServiceSpec, **overrides: Any) -> MigrationOutcome:
    """Upgrade ``spec``'s database to the newest revision (blocking)."""
    from inwire.kit.db.migrations import upgrade

    settings = spec.settings(**overrides)
    location = spec.migrations()
    database = _redacted(settings.database_url)
    if location is None:
        return MigrationOutcome(
            spec.name, database, settings.database_schema, False, "no MIGRATIONS in app module"
        )
    _ensure_sqlite_folder(settings.database_url)
    upgrade(
        location,
        settings.database_url,
        service=settings.service,
        schema=settings.database_schema,
    )
    return MigrationOutcome(spec.name, database, settings.database_schema, True)
