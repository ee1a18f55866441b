"""Experiments: a named group of runs in one organization."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TenantMixin, TimestampMixin
from inwire.services.training.db import TrainingBase


class Experiment(TrainingBase, TenantMixin, TimestampMixin):
    """A named group of runs; the name is unique in its organization, archived or not."""

    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(250))
    description: Mapped[str] = mapped_column(Text, default="")
    #: Key-value tags (``{"team": "risk"}``), serialised by ``json.dumps``.
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: ``active`` or ``archived``; archived experiments keep their runs and their name.
    lifecycle: Mapped[str] = mapped_column(String(10), default="active", index=True)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by: Mapped[str] = mapped_column(String(100))
