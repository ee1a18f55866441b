"""Model Training's declarative base, with its own metadata and its job tables."""

from __future__ import annotations

from inwire.kit.db import Base
from inwire.kit.db.base import new_metadata
from inwire.kit.jobs.models import job_tables


class TrainingBase(Base):
    """Base of Model Training's tables."""

    __abstract__ = True
    metadata = new_metadata()


#: Model Training's job record (training jobs, tuning).
JOB_TABLES = job_tables(TrainingBase.metadata)
