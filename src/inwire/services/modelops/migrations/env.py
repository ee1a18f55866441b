"""Alembic environment of ModelOps."""

from inwire.kit.db.migrations import run_env
from inwire.services.modelops.tables import metadata

run_env(metadata)
