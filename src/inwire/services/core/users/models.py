"""Users: people who sign in. A user may belong to several organizations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TimestampMixin
from inwire.services.core.db import CoreBase


class User(CoreBase, TimestampMixin):
    """A person. E-mail is stored lower-cased and unique platform-wide."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    is_active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    password_changed_at: Mapped[datetime | None] = mapped_column(default=None)
    #: Organization chosen at login when none is asked for.
    default_organization_id: Mapped[str | None] = mapped_column(String(40), default=None)
