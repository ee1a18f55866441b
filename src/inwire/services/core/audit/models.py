"""The security audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TenantMixin, utcnow
from inwire.services.core.db import CoreBase


class AuditEvent(CoreBase, TenantMixin):
    """One security-relevant event (login, failure, role change, key issued or revoked).

    ``organization_id`` is empty for events that belong to no organization, such as a
    failed login for an unknown address; only platform operators see those.
    """

    __tablename__ = "audit_events"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    action: Mapped[str] = mapped_column(String(60), index=True)
    outcome: Mapped[str] = mapped_column(String(20), default="success")
    actor_id: Mapped[str] = mapped_column(String(40), default="", index=True)
    actor_kind: Mapped[str] = mapped_column(String(20), default="user")
    target_type: Mapped[str] = mapped_column(String(40), default="")
    target_id: Mapped[str] = mapped_column(String(80), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
