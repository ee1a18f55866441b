"""Queries on the audit log."""

from __future__ import annotations

from inwire.kit.db import RepositoryBase
from inwire.services.core.audit.models import AuditEvent


class AuditRepository(RepositoryBase[AuditEvent]):
    """Audit events of one organization."""

    model = AuditEvent
    noun = "Audit event"
