"""Alembic migrations per service: own script folder, own version table, run at start.

A service's ``migrations/env.py`` is two lines: import its metadata and call ``run_env``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def alembic_config(script_location: Path, url: str, *, service: str, schema: str = "") -> Config:
    """An Alembic config for one service, built in code (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["url"] = url
    cfg.attributes["service"] = service
    cfg.attributes["schema"] = schema
    return cfg


def upgrade(
    script_location: Path, url: str, *, service: str, schema: str = "", revision: str = "head"
) -> None:
    """Apply migrations up to ``revision`` (blocking: call it from a thread)."""
    command.upgrade(alembic_config(script_location, url, service=service, schema=schema), revision)


async def upgrade_async(script_location: Path, url: str, *, service: str, schema: str = "") -> None:
    """Apply every pending migration without blocking the event loop."""
    await asyncio.to_thread(upgrade, script_location, url, service=service, schema=schema)


def run_env(target_metadata: MetaData) -> None:
    """Body of a service's ``env.py``: online migrations on the async engine."""
    cfg = context.config
    url: str = cfg.attributes["url"]
    service: str = cfg.attributes["service"]
    schema: str = cfg.attributes.get("schema", "")
    sqlite = url.startswith("sqlite")
    connect_args: dict[str, Any] = {}
    if schema and not sqlite:
        connect_args = {"server_settings": {"search_path": schema}}

    def do_run(connection: Connection) -> None:
        if schema and not sqlite:
            connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=f"alembic_version_{service}",
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool, connect_args=connect_args)
        try:
            async with engine.connect() as conn:
                await conn.run_sync(do_run)
                await conn.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())


def autogenerate(
    script_location: Path, url: str, *, service: str, message: str, rev_id: str | None = None
) -> None:
    """Write a new revision from the difference between the models and the database."""
    command.upgrade(alembic_config(script_location, url, service=service), "head")
    command.revision(
        alembic_config(script_location, url, service=service),
        message=message,
        autogenerate=True,
        rev_id=rev_id,
    )
