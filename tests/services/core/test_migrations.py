"""Core's migrations build exactly the tables its models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from inwire.services.core.models import metadata


async def test_migrated_schema_matches_the_models(app, db_backend) -> None:
    def diff(connection):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _: (
                    not (kind == "table" and str(name).startswith("alembic_version"))
                ),
            },
        )
        return compare_metadata(context, metadata)

    async with app.state.db.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []


async def test_version_table_is_named_after_the_service(app) -> None:
    from sqlalchemy import inspect

    async with app.state.db.engine.connect() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert "alembic_version_core" in names
