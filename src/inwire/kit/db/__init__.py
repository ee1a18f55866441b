"""Database access: engine per service, a session per request, tenant-scoped repositories."""

from inwire.kit.db.base import Base, TenantMixin, TimestampMixin, utcnow
from inwire.kit.db.engine import Database, SessionDep, get_session
from inwire.kit.db.repository import RepositoryBase

__all__ = [
    "Base",
    "Database",
    "RepositoryBase",
    "SessionDep",
    "TenantMixin",
    "TimestampMixin",
    "get_session",
    "utcnow",
]
