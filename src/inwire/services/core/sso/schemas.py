"""Wire shapes of single sign-on. The client secret goes in and never comes out."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from inwire.kit.api import WireModel

#: Roles a provider may grant on first sign-in; ownership is never handed out by an IdP.
ProvisionedRole = Literal["admin", "member", "viewer"]

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 §3.3 scope-token


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (localhost or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _issuer(value: str) -> str:
    parts = urlsplit(value)
    if not parts.hostname or parts.query or parts.fragment or parts.username:
        raise ValueError("must be a URL with a host and no query, fragment or user info")
    # OpenID Connect Discovery 1.0 §2: the issuer is an https URL. Plain http is allowed
    # for an identity provider on this machine only (development).
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(parts.hostname)):
        raise ValueError("must use https (http only for localhost)")
    return value


def _domain(value: str) -> str:
    value = value.strip().lower().removeprefix("@")
    labels = value.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError("must be a domain name such as example.com")
    return value


def _scopes(value: list[str]) -> list[str]:
    if "openid" not in value:
        raise ValueError("must include openid")
    bad = [s for s in value if not _SCOPE.match(s)]
    if bad:
        raise ValueError(f"invalid scope token {bad[0]!r}")
    if len(" ".join(value)) > 500:
        raise ValueError("too long")
    return list(dict.fromkeys(value))


Issuer = Annotated[str, Field(max_length=500), AfterValidator(_issuer)]
Domain = Annotated[str, Field(max_length=253), AfterValidator(_domain)]
Scopes = Annotated[list[str], Field(min_length=1, max_length=20), AfterValidator(_scopes)]
ProviderName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
]
ClientId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
ClientSecret = Annotated[str, Field(min_length=1, max_length=2000)]


class ProviderIn(BaseModel):
    """A new OpenID Connect provider for your organization."""

    name: ProviderName
    issuer: Issuer = Field(description="Issuer URL; discovery is read from its well-known path")
    client_id: ClientId
    client_secret: ClientSecret | None = Field(
        default=None, description="Stored encrypted and never returned; omit for a public client"
    )
    scopes: Scopes = Field(default_factory=lambda: ["openid", "email", "profile"])
    default_role: ProvisionedRole = Field(
        default="member", description="Role of people who join through this provider"
    )
    allowed_domains: list[Domain] = Field(
        default_factory=list,
        max_length=100,
        description="E-mail domains that may sign in; empty allows every verified address",
    )
    enabled: bool = True


class ProviderUpdate(BaseModel):
    """Changes to a provider; ``client_secret: null`` removes the secret."""

    name: ProviderName | None = None
    issuer: Issuer | None = None
    client_id: ClientId | None = None
    client_secret: ClientSecret | None = None
    scopes: Scopes | None = None
    default_role: ProvisionedRole | None = None
    allowed_domains: list[Domain] | None = Field(default=None, max_length=100)
    enabled: bool | None = None


class ProviderOut(WireModel):
    """A provider as the API shows it, with the URLs to configure at the provider."""

    id: str
    organization_id: str
    name: str
    issuer: str
    client_id: str
    has_client_secret: bool
    scopes: list[str]
    default_role: str
    allowed_domains: list[str]
    enabled: bool
    login_url: str = Field(description="Where to send people to sign in")
    redirect_uri: str = Field(description="The redirect URI to register at the provider")
    created_at: datetime
    updated_at: datetime
