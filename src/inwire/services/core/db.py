"""Core's declarative base, with its own metadata."""

from __future__ import annotations

from inwire.kit.db import Base
from inwire.kit.db.base import new_metadata


class CoreBase(Base):
    """Base of Core's tables."""

    __abstract__ = True
    metadata = new_metadata()
