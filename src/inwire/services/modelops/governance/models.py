"""Governance tables: approvals, audit entries, production intervals, policies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TenantMixin, TimestampMixin, utcnow
from inwire.services.modelops.db import ModelOpsBase


class Approval(ModelOpsBase, TenantMixin, TimestampMixin):
    """A request to run a protected action, decided by an approver who is not the requester.

    ``status``: ``pending`` until decided; ``approved`` once approved and the action ran,
    ``failed`` when approved but the action raised (``error`` says why), ``rejected``, or
    ``cancelled`` by its requester.
    """

    __tablename__ = "approvals"
    # At most one pending request per action: the same request twice, even at the same
    # moment, finds the first one.
    __table_args__ = (
        Index(
            "ux_approvals_pending_key",
            "organization_id",
            "kind",
            "payload_key",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: What is to run: ``model.promote``, ``deployment.apply``.
    kind: Mapped[str] = mapped_column(String(60), index=True)
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    #: What the action runs with once approved.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: A digest of kind and payload: the same request twice finds the pending one.
    payload_key: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(100), index=True)
    decided_by: Mapped[str | None] = mapped_column(String(100), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    comment: Mapped[str] = mapped_column(Text, default="")
    #: The action's result once it ran, or its error (``{"code", "message", "details",
    #: "status"}``) when it failed.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class AuditEntry(ModelOpsBase, TenantMixin):
    """Who did what to which resource, when, with the resource before and after."""

    __tablename__ = "audit_entries"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    actor: Mapped[str] = mapped_column(String(100), index=True)
    action: Mapped[str] = mapped_column(String(80), index=True)
    resource_type: Mapped[str] = mapped_column(String(40), index=True)
    resource_id: Mapped[str] = mapped_column(String(100), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ProductionInterval(ModelOpsBase, TenantMixin):
    """A span of time during which a version served production, and how.

    ``source`` is ``stage`` (the version was in the Production stage), ``alias`` (the
    ``production`` alias pointed at it) or ``deployment`` (a production deployment served
    it, ``deployment_id``). ``ended_at`` is None while it lasts.
    """

    __tablename__ = "production_intervals"
    __table_args__ = (Index("ix_production_intervals_model_started", "model_id", "started_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(40), index=True)
    version_id: Mapped[str] = mapped_column(String(40), index=True)
    version: Mapped[int | None] = mapped_column(default=None)
    source: Mapped[str] = mapped_column(String(12))
    deployment_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_by: Mapped[str] = mapped_column(String(100))
    start_reason: Mapped[str] = mapped_column(Text, default="")
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_by: Mapped[str | None] = mapped_column(String(100), default=None)
    end_reason: Mapped[str | None] = mapped_column(Text, default=None)


class GovernancePolicy(ModelOpsBase, TenantMixin):
    """An organization's governance settings; no row means the defaults."""

    __tablename__ = "governance_policies"
    organization_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    require_approval_for_production: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_by: Mapped[str] = mapped_column(String(100), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
