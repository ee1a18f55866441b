"""Synthex's declarative base, with its own metadata, its job tables and its outbox."""

from __future__ import annotations

from inwire.kit.db import Base
from inwire.kit.db.base import new_metadata
from inwire.kit.events.outbox import Outbox
from inwire.kit.jobs.models import job_tables


class SynthexBase(Base):
    """Base of Synthex's tables."""

    __abstract__ = True
    metadata = new_metadata()


#: Synthex's job record (imports, profiles, recipes, generation, evaluation).
JOB_TABLES = job_tables(SynthexBase.metadata)

#: Synthex's transactional outbox: events commit with the change, the app's relay sends
#: them (``inwire.synthex.dataset.created``, ``…dataset.version.created``, …).
OUTBOX = Outbox(SynthexBase.metadata)
