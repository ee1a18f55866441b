"""ModelOps' declarative base, with its own metadata, its job tables and its outbox."""

from __future__ import annotations

from inwire.kit.db import Base
from inwire.kit.db.base import new_metadata
from inwire.kit.events.outbox import Outbox
from inwire.kit.jobs.models import job_tables


class ModelOpsBase(Base):
    """Base of ModelOps' tables."""

    __abstract__ = True
    metadata = new_metadata()


#: ModelOps' job record (builds, rollouts).
JOB_TABLES = job_tables(ModelOpsBase.metadata)

#: ModelOps' transactional outbox: events commit with the change, the app's relay sends
#: them (``inwire.modelops.model.created``, ``…model.version.stage_changed``, …).
OUTBOX = Outbox(ModelOpsBase.metadata)
