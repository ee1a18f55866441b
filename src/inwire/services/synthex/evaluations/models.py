"""Evaluations: one comparison of a synthetic dataset version with real data, stored.

An evaluation is made by a ``synthex.evaluate`` job (any two versions, on request) or by a
generation job for the version it published (``source = "generation"``, see
``store.save_report``). The report lives in the row (a JSON column): the engine bounds its
size (fixed chart bins, at most ``chart_categories`` categories per column, one entry per
column pair), so it stays small.

The synthetic version owns its evaluations (``CASCADE``); the real and holdout versions are
nullable references, so deleting one is refused while evaluations name it unless forced,
which keeps the evaluations and clears the reference (``datasets.service.dependents``).
Like profiles, an evaluation's status is its job's until the report is stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TenantMixin
from inwire.kit.db.base import utcnow
from inwire.services.synthex.db import SynthexBase


class Evaluation(SynthexBase, TenantMixin):
    """Quality and privacy of one synthetic version against real data."""

    __tablename__ = "evaluations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: ``request`` (POST /evaluations) or ``generation`` (stored by a generation job).
    source: Mapped[str] = mapped_column(String(20), index=True)
    # Dataset ids are plain copies (filters without a join); versions are references.
    real_dataset_id: Mapped[str] = mapped_column(String(40), index=True)
    real_version_id: Mapped[str | None] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="SET NULL"), index=True
    )
    synthetic_dataset_id: Mapped[str] = mapped_column(String(40), index=True)
    synthetic_version_id: Mapped[str] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), index=True
    )
    holdout_version_id: Mapped[str | None] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="SET NULL"), default=None, index=True
    )
    #: Share of the real version a generation job held out of its fit (the holdout then
    #: is that part of the real version, not another version).
    holdout_share: Mapped[float | None] = mapped_column(Float, default=None)
    #: The column ML utility predicts, if any.
    target: Mapped[str | None] = mapped_column(String(256), default=None)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    generator_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    #: The job that computed it; one evaluation per job (a retried job finds its row).
    job_id: Mapped[str] = mapped_column(String(40), unique=True)
    #: The engine's report once computed.
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    #: Headline figures copied from the report, so lists show and sort them.
    quality: Mapped[float | None] = mapped_column(Float, default=None, index=True)
    detection: Mapped[float | None] = mapped_column(Float, default=None)
    ml_utility_ratio: Mapped[float | None] = mapped_column(Float, default=None)
    exact_copy_rate: Mapped[float | None] = mapped_column(Float, default=None)
    dcr_close_share: Mapped[float | None] = mapped_column(Float, default=None)
    membership_risk: Mapped[float | None] = mapped_column(Float, default=None)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)

    def store(self, report: dict[str, Any]) -> None:
        """Keep ``report`` and copy its headline figures into their columns."""
        summary = report.get("summary") or {}
        self.report = report
        self.quality = summary.get("quality")
        self.detection = summary.get("detection")
        self.ml_utility_ratio = summary.get("ml_utility_ratio")
        self.exact_copy_rate = summary.get("exact_copy_rate")
        self.dcr_close_share = summary.get("dcr_close_share")
        self.membership_risk = summary.get("membership_risk")
        self.completed_at = utcnow()
