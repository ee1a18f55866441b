"""The deployments tables: a deployment's desired state and the revisions it serves."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TenantMixin, TimestampMixin
from inwire.services.modelops.db import ModelOpsBase


class Deployment(ModelOpsBase, TenantMixin, TimestampMixin):
    """A model served on a target with a strategy; the controller makes it so."""

    __tablename__ = "deployments"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    #: The registered model (no foreign key: a deployment's history outlives its model).
    model_id: Mapped[str] = mapped_column(String(40), default="", index=True)
    model_name: Mapped[str] = mapped_column(String(250), default="")
    #: ``local`` or the name of a configured Kubernetes cluster.
    target: Mapped[str] = mapped_column(String(100), default="local", index=True)
    #: ``rolling``, ``blue_green``, ``canary`` or ``shadow``.
    strategy: Mapped[str] = mapped_column(String(20), default="rolling")
    strategy_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    environment: Mapped[str] = mapped_column(String(40), default="")
    #: ``deploying``, ``ready``, ``rolling_out``, ``rolled_back``, ``failed``, ``stopped``.
    status: Mapped[str] = mapped_column(String(20), default="deploying", index=True)
    message: Mapped[str] = mapped_column(Text, default="")
    replicas_min: Mapped[int] = mapped_column(Integer, default=1)
    replicas_max: Mapped[int] = mapped_column(Integer, default=1)
    #: ``{"metric": "in_flight"|"rps"|"p50_latency_ms", "target": ..., cooldowns}`` or {}.
    autoscaling: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: What was rendered (and applied, when ``applied``) for a Kubernetes target.
    manifests: Mapped[list[Any]] = mapped_column(JSON, default=list)
    applied: Mapped[bool] = mapped_column(default=False)
    #: Bumped on every change of the desired state; the controller reconciles to it.
    generation: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(100), default="")


class DeploymentRevision(ModelOpsBase, TenantMixin, TimestampMixin):
    """A model version inside a deployment: its role, traffic weight and replica count."""

    __tablename__ = "deployment_revisions"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    version_id: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    #: ``stable``, ``canary``, ``green``, ``blue``, ``shadow`` or ``rolling`` (the incoming
    #: version of a rolling update).
    role: Mapped[str] = mapped_column(String(10))
    #: Share of the traffic in percent (a shadow gets a copy of everything, weight 0).
    weight: Mapped[int] = mapped_column(Integer, default=0)
    #: Replicas wanted now (the autoscaler moves it between the deployment's bounds).
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    #: ``starting``, ``ready``, ``failed``, ``retired``, ``rolled_back``.
    status: Mapped[str] = mapped_column(String(12), default="starting", index=True)
    message: Mapped[str] = mapped_column(Text, default="")
