"""Profiles: one computed profile of a dataset version, stored with its JSON result.

The result lives in the row (a JSON column): its size is bounded by the engine (histograms
of fixed bins, at most ``top_values`` values of at most 200 characters per column,
correlation matrices capped in columns), so it stays far below what either database holds
comfortably, and it goes with its version when that is deleted (``CASCADE``).

A profile's status is its job's status until the job stores the result; the row only
records ``completed_at`` then (see ``repository.profile_status``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TenantMixin
from inwire.kit.db.base import utcnow
from inwire.services.synthex.db import SynthexBase


class Profile(SynthexBase, TenantMixin):
    """The profile of one dataset version, computed by a ``synthex.profile`` job."""

    __tablename__ = "profiles"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    version_id: Mapped[str] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), index=True
    )
    #: The job computing it; one profile per job (a replayed POST finds it by the job).
    job_id: Mapped[str] = mapped_column(String(40), unique=True)
    #: The engine's JSON profile once computed.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    #: Facts copied from the result, so lists show them without loading it.
    rows: Mapped[int | None] = mapped_column(BigInteger, default=None)
    columns: Mapped[int | None] = mapped_column(Integer, default=None)
    alerts: Mapped[int | None] = mapped_column(Integer, default=None)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
