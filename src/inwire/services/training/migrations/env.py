"""Alembic environment of Model Training."""

from inwire.kit.db.migrations import run_env
from inwire.services.training.models import metadata

run_env(metadata)
