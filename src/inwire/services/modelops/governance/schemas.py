"""Wire shapes of governance: approvals, audit entries, production history, the policy."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from inwire.kit.api import WireModel

ApprovalStatus = Literal["pending", "approved", "failed", "rejected", "cancelled"]


class ApprovalOut(WireModel):
    """A request to run a protected action and its decision.

    ``status``: ``pending``; ``approved`` (the action ran, ``result`` holds what it
    returned); ``failed`` (approved, but the action was refused: ``error`` holds the
    error as the API would have answered it); ``rejected``; ``cancelled`` by its requester.
    """

    id: str
    kind: str
    status: ApprovalStatus
    summary: str
    payload: dict[str, Any]
    requested_by: str
    decided_by: str | None
    decided_at: datetime | None
    comment: str
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class Decision(BaseModel):
    """An approver's comment on an approval or a rejection."""

    model_config = ConfigDict(extra="forbid")
    comment: str = Field(default="", max_length=2000)


class AuditEntryOut(WireModel):
    """One audited action: who (``actor``), what (``action``), when, on which resource,
    with the resource before and after (``None`` for a creation or a deletion)."""

    id: str
    actor: str
    action: str
    resource_type: str
    resource_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


class ProductionIntervalOut(WireModel):
    """A span during which a version served production; ``ended_at`` None while it lasts.

    ``source``: ``stage`` (the version was in the Production stage), ``alias`` (the
    ``production`` alias pointed at it) or ``deployment`` (``deployment_id`` served it).
    """

    id: str
    model_id: str
    version_id: str
    version: int | None
    source: Literal["stage", "alias", "deployment"]
    deployment_id: str | None
    started_at: datetime
    started_by: str
    start_reason: str
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str | None


class PolicyOut(BaseModel):
    """An organization's governance policy."""

    require_approval_for_production: bool
    updated_by: str | None = None
    updated_at: datetime | None = None


class PolicyIn(BaseModel):
    """The policy to store, whole."""

    model_config = ConfigDict(extra="forbid")
    #: Whether promoting a model version to production (its stage, or the ``production``
    #: alias) waits for an approver.
    require_approval_for_production: StrictBool
