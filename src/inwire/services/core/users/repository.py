"""Queries on users."""

from __future__ import annotations

from sqlalchemy import func

from inwire.kit.db import RepositoryBase
from inwire.services.core.users.models import User


class UserRepository(RepositoryBase[User]):
    """Users are platform-wide; organization scoping goes through memberships."""

    model = User
    noun = "User"

    async def by_email(self, email: str) -> User | None:
        """The user with this address (case-insensitive), if any."""
        return await self.find(func.lower(User.email) == email.strip().lower())
