"""Alembic environment of Synthex."""

from inwire.kit.db.migrations import run_env
from inwire.services.synthex.models import metadata

run_env(metadata)
