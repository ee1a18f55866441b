"""Queries on API keys and service accounts."""

from __future__ import annotations

from inwire.kit.db import RepositoryBase
from inwire.services.core.apikeys.models import ApiKey, ServiceAccount


class ApiKeyRepository(RepositoryBase[ApiKey]):
    """API keys of the caller's organization (``unscoped`` to authenticate a key)."""

    model = ApiKey
    noun = "API key"

    async def by_hash(self, digest: str) -> ApiKey | None:
        """The key with this hash."""
        return await self.find(ApiKey.key_hash == digest)


class ServiceAccountRepository(RepositoryBase[ServiceAccount]):
    """Service accounts of the caller's organization."""

    model = ServiceAccount
    noun = "Service account"
