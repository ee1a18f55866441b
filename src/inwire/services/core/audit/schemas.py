"""Wire shapes of the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from inwire.kit.api import WireModel


class AuditEventOut(WireModel):
    """One security event: who did what to which resource, from where, and how it ended."""

    id: str
    organization_id: str
    action: str
    outcome: str
    actor_id: str
    actor_kind: str
    target_type: str
    target_id: str
    ip: str
    user_agent: str
    details: dict[str, Any]
    created_at: datetime
