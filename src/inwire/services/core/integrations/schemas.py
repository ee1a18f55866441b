"""Wire shapes of integrations. Credentials go in and never come out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from inwire.kit.api import WireModel
from inwire.services.core.integrations.kinds import KindName

IntegrationStatus = Literal["untested", "ok", "failed"]
IntegrationName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
]


class IntegrationIn(BaseModel):
    """A new integration; ``config`` and ``credentials`` follow the kind's schema."""

    name: IntegrationName
    kind: KindName
    config: dict[str, Any] = Field(
        default_factory=dict, description="Non-secret settings, see GET /integrations/kinds"
    )
    credentials: dict[str, Any] = Field(
        description="Secret settings; stored encrypted and never returned"
    )


class IntegrationUpdate(BaseModel):
    """Changes: ``config`` is merged (null removes an optional field), ``credentials`` replaced."""

    name: IntegrationName | None = None
    config: dict[str, Any] | None = Field(
        default=None, description="Fields to change; merged into the current config (RFC 7396)"
    )
    credentials: dict[str, Any] | None = Field(
        default=None, description="The complete new credentials; replace the stored ones"
    )


class IntegrationOut(WireModel):
    """An integration as the API shows it: config, test status, and which credentials exist."""

    id: str
    organization_id: str
    name: str
    kind: str
    config: dict[str, Any]
    status: IntegrationStatus
    last_tested_at: datetime | None
    last_test_message: str
    has_credentials: bool
    credential_fields: list[str] = Field(description="Names of the stored secret fields")
    created_by: str
    created_at: datetime
    updated_at: datetime


class ConnectionTestOut(BaseModel):
    """The outcome of a connection test."""

    ok: bool
    message: str
    latency_ms: int


class IntegrationKindOut(BaseModel):
    """A kind of integration and the JSON Schemas of its config and credentials."""

    kind: str
    title: str
    description: str
    config_schema: dict[str, Any]
    credentials_schema: dict[str, Any]


class ResolveIn(BaseModel):
    """Who a platform service is working for when it needs an integration's credentials."""

    organization_id: str = Field(min_length=1, max_length=40)
    on_behalf_of: str = Field(
        min_length=1,
        max_length=40,
        description="The user or service account whose work needs the integration",
    )


class ResolvedIntegrationOut(BaseModel):
    """An integration with its decrypted credentials, for platform services only."""

    id: str
    organization_id: str
    name: str
    kind: str
    config: dict[str, Any]
    credentials: dict[str, Any]
