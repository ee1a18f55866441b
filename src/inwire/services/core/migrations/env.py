"""Alembic environment of Core."""

from inwire.kit.db.migrations import run_env
from inwire.services.core.models import metadata

run_env(metadata)
