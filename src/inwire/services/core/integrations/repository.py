"""Queries on integrations."""

from __future__ import annotations

from inwire.kit.db import RepositoryBase
from inwire.services.core.integrations.models import Integration


class IntegrationRepository(RepositoryBase[Integration]):
    """Integrations of the caller's organization."""

    model = Integration
    noun = "Integration"
