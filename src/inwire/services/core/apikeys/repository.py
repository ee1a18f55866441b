"""Queries on API keys and service accounts."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func

from inwire.kit.api import ListQuery
from inwire.kit.db import RepositoryBase
from inwire.services.core.apikeys.models import ApiKey, ServiceAccount


class ApiKeyRepository(RepositoryBase[ApiKey]):
    """API keys of the caller's organization (``unscoped`` to authenticate a key)."""

    model = ApiKey
    noun = "API key"

    async def by_hash(self, digest: str) -> ApiKey | None:
        """The key with this hash."""
        return await self.find(ApiKey.key_hash == digest)

    async def page_keys(
        self,
        query: ListQuery,
        *,
        user_id: str | None = None,
        service_account_id: str | None = None,
        revoked: bool | None = None,
    ) -> tuple[Sequence[ApiKey], int]:
        """A page of keys, narrowed to one owner when given; equality filters from ``query``."""
        stmt = self.select()
        if user_id is not None:
            stmt = stmt.where(ApiKey.user_id == user_id)
        if service_account_id is not None:
            stmt = stmt.where(ApiKey.service_account_id == service_account_id)
        if revoked is not None:
            stmt = stmt.where(
                ApiKey.revoked_at.is_not(None) if revoked else ApiKey.revoked_at.is_(None)
            )
        return await self.page(query, stmt)


class ServiceAccountRepository(RepositoryBase[ServiceAccount]):
    """Service accounts of the caller's organization."""

    model = ServiceAccount
    noun = "Service account"

    async def by_name(self, name: str) -> ServiceAccount | None:
        """The account with this name, compared case-insensitively."""
        return await self.find(func.lower(ServiceAccount.name) == name.lower())
