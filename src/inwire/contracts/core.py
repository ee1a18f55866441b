"""Core's contract: what other services, the gateway and the SDK may rely on.

The models mirror the response shapes of Core's ``/api/v1`` (its ``schemas.py`` per concept;
``tests/sdk/test_wire_models.py`` fails when the two drift apart) and :class:`CoreClient` has
one typed method per endpoint. Response models ignore fields they do not know, so an older
client keeps working against a newer Core.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from inwire.kit.peers import QueryParams, ServiceClient

#: Where Core's API lives behind the gateway: ``http://gateway:8080/core/api/v1/...``.
GATEWAY_PREFIX = "/core"

#: An organization role, lowest to highest: viewer, member, admin, owner.
Role = Literal["owner", "admin", "member", "viewer"]
#: A role inside a team.
TeamRole = Literal["maintainer", "member"]
#: Sort direction of a list.
Order = Literal["asc", "desc"]
InvitationStatus = Literal["pending", "accepted", "revoked", "expired"]
#: Sort fields of the member list.
MemberSort = Literal["created_at", "joined_at", "email", "name"]

T = TypeVar("T", bound=BaseModel)


class Page(BaseModel, Generic[T]):
    """One page of a list: the items and the pagination facts from the envelope's ``meta``."""

    items: list[T]
    page: int
    per_page: int
    total: int

    @property
    def has_next(self) -> bool:
        """Whether a later page holds more items."""
        return self.page * self.per_page < self.total and bool(self.items)


# -- authentication ---------------------------------------------------------------------------


class UserBrief(BaseModel):
    """The signed-in user, as login returns it."""

    id: str
    email: str
    name: str


class TokenGrant(BaseModel):
    """Tokens issued by login, refresh, organization switch, SSO or API-key exchange."""

    access_token: str
    refresh_token: str | None = None
    token_type: str = "Bearer"
    expires_in: int
    organization_id: str
    role: str
    user: UserBrief | None = None


class OrganizationRole(BaseModel):
    """One organization of the caller and the role held there."""

    id: str
    name: str
    slug: str
    role: str


class Caller(BaseModel):
    """``GET /auth/me``: who the bearer is, where they act, and their other organizations."""

    id: str
    kind: str
    email: str | None = None
    name: str
    organization_id: str
    role: str
    permissions_sample: list[str] = []
    organizations: list[OrganizationRole] = []
    token_expires_at: datetime | None = None


# -- organizations, members, invitations ------------------------------------------------------


class Organization(BaseModel):
    """An organization and the caller's role in it."""

    id: str
    name: str
    slug: str
    role: str
    created_at: datetime
    updated_at: datetime


class Member(BaseModel):
    """A member of the organization: the user account and the role held there."""

    id: str
    email: str
    name: str
    role: str
    is_active: bool
    joined_at: datetime
    created_at: datetime
    last_login_at: datetime | None = None


class Invitation(BaseModel):
    """An invitation to join the organization (its token is shown only at creation)."""

    id: str
    email: str
    role: str
    status: str
    invited_by: str
    expires_at: datetime
    accepted_at: datetime | None = None
    revoked_at: datetime | None = None
    created_at: datetime


class InvitationCreated(Invitation):
    """A new invitation with its token, shown in this response only."""

    token: str
    mail_sent: bool


# -- teams ------------------------------------------------------------------------------------


class Team(BaseModel):
    """A team of the organization."""

    id: str
    organization_id: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


class TeamMember(BaseModel):
    """A user's place in a team."""

    team_id: str
    user_id: str
    role: str
    email: str
    name: str
    created_at: datetime
    updated_at: datetime


# -- API keys and service accounts ------------------------------------------------------------


class ApiKey(BaseModel):
    """An API key as listed: never the secret, only its first characters (``prefix``)."""

    id: str
    organization_id: str
    name: str
    prefix: str
    role: str
    user_id: str | None = None
    service_account_id: str | None = None
    created_by: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    status: str = Field(default="active", description="active, revoked or expired")


class ApiKeyCreated(ApiKey):
    """A key just created: ``key`` is in this response only and cannot be shown again."""

    key: str


class ServiceAccount(BaseModel):
    """A non-human principal of the organization, for automation."""

    id: str
    organization_id: str
    name: str
    description: str
    role: str
    is_active: bool
    created_by: str
    created_at: datetime
    updated_at: datetime


# -- integrations ---------------------------------------------------------------------------


class Integration(BaseModel):
    """A connection to an outside system, as users see it: config, never credentials."""

    id: str
    organization_id: str
    name: str
    kind: str
    config: dict[str, Any]
    status: str
    last_tested_at: datetime | None
    last_test_message: str
    has_credentials: bool
    credential_fields: list[str]
    created_by: str
    created_at: datetime
    updated_at: datetime


class ResolvedIntegration(BaseModel):
    """An integration with its decrypted credentials, as Core gives it to platform services.

    Keep it in memory only, for the work at hand: never store, log or return it.
    """

    id: str
    organization_id: str
    name: str
    kind: str
    config: dict[str, Any]
    credentials: dict[str, Any] = Field(repr=False)


def _set(**fields: Any) -> dict[str, Any]:
    """The fields that were given: ``None`` means "leave out" (Core's PATCH refuses nulls)."""
    return {k: v for k, v in fields.items() if v is not None}


class CoreClient(ServiceClient):
    """Typed calls to Core (``http://host:18000``, ``http://gateway:8080/core`` or its app).

    List methods take ``page`` (from 1), ``per_page`` (1-100), ``sort``, ``order`` and the
    endpoint's filters (``None`` leaves one out) and return a :class:`Page`.
    """

    async def _page(self, path: str, model: type[T], params: Mapping[str, Any]) -> Page[T]:
        query: QueryParams = {k: v for k, v in params.items() if v is not None}
        data, meta = await self.get_page(path, params=query)
        return Page[model](  # type: ignore[valid-type]
            items=[model.model_validate(row) for row in data],
            page=int(meta.get("page", params.get("page") or 1)),
            per_page=int(meta.get("per_page", params.get("per_page") or len(data))),
            total=int(meta.get("total", len(data))),
        )

    # -- authentication -----------------------------------------------------------------------

    async def login(
        self, email: str, password: str, organization_id: str | None = None
    ) -> TokenGrant:
        """Sign in with a password."""
        body: dict[str, Any] = {"email": email, "password": password}
        if organization_id:
            body["organization_id"] = organization_id
        return TokenGrant.model_validate(await self.post("/api/v1/auth/login", json=body))

    async def refresh(self, refresh_token: str) -> TokenGrant:
        """Rotate a refresh token (each works once; reuse revokes its whole family)."""
        data = await self.post("/api/v1/auth/token/refresh", json={"refresh_token": refresh_token})
        return TokenGrant.model_validate(data)

    async def exchange_api_key(self, api_key: str) -> TokenGrant:
        """A short-lived access token for an API key (what the gateway caches)."""
        data = await self.post("/api/v1/auth/token", json={"api_key": api_key})
        return TokenGrant.model_validate(data)

    async def me(self) -> Caller:
        """The caller behind this client's credentials."""
        return Caller.model_validate(await self.get("/api/v1/auth/me"))

    async def logout(self, refresh_token: str | None = None) -> None:
        """Revoke the current access token and, if given, the refresh token's family."""
        await self.post("/api/v1/auth/logout", json=_set(refresh_token=refresh_token))

    async def switch_organization(self, organization_id: str) -> TokenGrant:
        """Tokens for another organization the caller belongs to (password sessions only)."""
        data = await self.post(
            "/api/v1/auth/switch-organization", json={"organization_id": organization_id}
        )
        return TokenGrant.model_validate(data)

    async def change_password(self, current_password: str, new_password: str) -> None:
        """Change the caller's password; signs them out everywhere else."""
        await self.post(
            "/api/v1/auth/password/change",
            json={"current_password": current_password, "new_password": new_password},
        )

    # -- organizations ------------------------------------------------------------------------

    async def list_organizations(
        self,
        *,
        page: int = 1,
        per_page: int = 20,
        sort: Literal["created_at", "name", "slug"] | None = None,
        order: Order | None = None,
        role: Role | None = None,
    ) -> Page[Organization]:
        """The organizations the caller belongs to, with the caller's role in each."""
        params = {"page": page, "per_page": per_page, "sort": sort, "order": order, "role": role}
        return await self._page("/api/v1/organizations", Organization, params)

    async def get_organization(self, organization_id: str) -> Organization:
        """One organization the caller belongs to."""
        data = await self.get(f"/api/v1/organizations/{organization_id}")
        return Organization.model_validate(data)

    async def create_organization(self, name: str, *, slug: str | None = None) -> Organization:
        """A new organization; the caller becomes its owner."""
        data = await self.post("/api/v1/organizations", json=_set(name=name, slug=slug))
        return Organization.model_validate(data)

    async def update_organization(
        self, organization_id: str, *, name: str | None = None, slug: str | None = None
    ) -> Organization:
        """Rename the caller's current organization or change its slug."""
        data = await self.patch(
            f"/api/v1/organizations/{organization_id}", json=_set(name=name, slug=slug)
        )
        return Organization.model_validate(data)

    async def delete_organization(self, organization_id: str) -> None:
        """Delete the caller's current organization and everything it owns (owners only)."""
        await self.delete(f"/api/v1/organizations/{organization_id}")

    # -- members (users) ----------------------------------------------------------------------

    async def list_users(
        self,
        *,
        page: int = 1,
        per_page: int = 20,
        sort: MemberSort | None = None,
        order: Order | None = None,
        role: Role | None = None,
        is_active: bool | None = None,
        email: str | None = None,
    ) -> Page[Member]:
        """Members of the caller's organization."""
        params = {
            "page": page,
            "per_page": per_page,
            "sort": sort,
            "order": order,
            "role": role,
            "is_active": is_active,
            "email": email,
        }
        return await self._page("/api/v1/users", Member, params)

    async def get_user(self, user_id: str) -> Member:
        """One member of the caller's organization."""
        return Member.model_validate(await self.get(f"/api/v1/users/{user_id}"))

    async def add_user(
        self,
        email: str,
        *,
        role: Role = "member",
        name: str | None = None,
        password: str | None = None,
    ) -> Member:
        """Add an existing account by e-mail, or create an account (with ``name``)."""
        body = _set(email=email, role=role, name=name, password=password)
        return Member.model_validate(await self.post("/api/v1/users", json=body))

    async def update_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        role: Role | None = None,
        is_active: bool | None = None,
    ) -> Member:
        """Rename yourself, or (admins) change a member's role or (de)activate them."""
        body = _set(name=name, role=role, is_active=is_active)
        return Member.model_validate(await self.patch(f"/api/v1/users/{user_id}", json=body))

    async def remove_user(self, user_id: str) -> None:
        """Remove a member from the organization (or leave it yourself)."""
        await self.delete(f"/api/v1/users/{user_id}")

    # -- invitations --------------------------------------------------------------------------

    async def list_invitations(
        self,
        *,
        page: int = 1,
        per_page: int = 20,
        sort: Literal["created_at", "expires_at", "email"] | None = None,
        order: Order | None = None,
        status: InvitationStatus | None = None,
        email: str | None = None,
        role: Role | None = None,
    ) -> Page[Invitation]:
        """Invitations of the caller's organization."""
        params = {
            "page": page,
            "per_page": per_page,
            "sort": sort,
            "order": order,
            "status": status,
            "email": email,
            "role": role,
        }
        return await self._page("/api/v1/invitations", Invitation, params)

    async def create_invitation(self, email: str, *, role: Role = "member") -> InvitationCreated:
        """Invite an e-mail address; the token is mailed and returned this once."""
        data = await self.post("/api/v1/invitations", json={"email": email, "role": role})
        return InvitationCreated.model_validate(data)

    async def revoke_invitation(self, invitation_id: str) -> None:
        """Revoke a pending invitation."""
        await self.delete(f"/api/v1/invitations/{invitation_id}")

    async def accept_invitation(
        self, token: str, *, name: str | None = None, password: str | None = None
    ) -> TokenGrant:
        """Accept an invitation (``name`` and ``password`` create a new account)."""
        body = _set(token=token, name=name, password=password)
        return TokenGrant.model_validate(await self.post("/api/v1/invitations/accept", json=body))

    # -- teams --------------------------------------------------------------------------------

    async def list_teams(
        self,
        *,
        page: int = 1,
        per_page: int = 20,
        sort: Literal["name", "created_at"] | None = None,
        order: Order | None = None,
        name: str | None = None,
        user_id: str | None = None,
    ) -> Page[Team]:
        """Teams of the caller's organization; filter by exact name or by a member."""
        params = {
            "page": page,
            "per_page": per_page,
            "sort": sort,
            "order": order,
            "name": name,
            "user_id": user_id,
        }
        return await self._page("/api/v1/teams", Team, params)

    async def get_team(self, team_id: str) -> Team:
        """One team."""
        return Team.model_validate(await self.get(f"/api/v1/teams/{team_id}"))

    async def create_team(self, name: str, *, description: str = "") -> Team:
        """A new team; the caller becomes its maintainer."""
        data = await self.post("/api/v1/teams", json={"name": name, "description": description})
        return Team.model_validate(data)

    async def update_team(
        self, team_id: str, *, name: str | None = None, description: str | None = None
    ) -> Team:
        """Rename a team or change its description."""
        data = await self.patch(
            f"/api/v1/teams/{team_id}", json=_set(name=name, description=description)
        )
        return Team.model_validate(data)

    async def delete_team(self, team_id: str) -> None:
        """Delete a team and its memberships."""
        await self.delete(f"/api/v1/teams/{team_id}")

    async def list_team_members(
        self,
        team_id: str,
        *,
        page: int = 1,
        per_page: int = 20,
        sort: Literal["created_at", "role"] | None = None,
        order: Order | None = None,
        role: TeamRole | None = None,
    ) -> Page[TeamMember]:
        """Members of a team with their team role."""
        params = {"page": page, "per_page": per_page, "sort": sort, "order": order, "role": role}
        return await self._page(f"/api/v1/teams/{team_id}/members", TeamMember, params)

    async def add_team_member(
        self, team_id: str, user_id: str, *, role: TeamRole = "member"
    ) -> TeamMember:
        """Add a member of the organization to a team."""
        data = await self.post(
            f"/api/v1/teams/{team_id}/members", json={"user_id": user_id, "role": role}
        )
        return TeamMember.model_validate(data)

    async def update_team_member(self, team_id: str, user_id: str, role: TeamRole) -> TeamMember:
        """Change a team member's role."""
        data = await self.patch(f"/api/v1/teams/{team_id}/members/{user_id}", json={"role": role})
        return TeamMember.model_validate(data)

    async def remove_team_member(self, team_id: str, user_id: str) -> None:
        """Remove someone from a team (or leave it yourself)."""
        await self.delete(f"/api/v1/teams/{team_id}/members/{user_id}")

    # -- API keys -----------------------------------------------------------------------------

    async def list_api_keys(
        self,
        *,
        page: int = 1,
        per_page: int = 20,
        sort: Literal["created_at", "name", "last_used_at", "expires_at"] | None = None,
        order: Order | None = None,
        user_id: str | None = None,
        service_account_id: str | None = None,
        revoked: bool | None = None,
        role: Role | None = None,
    ) -> Page[ApiKey]:
        """The caller's API keys (admins: every key of the organization)."""
        params = {
            "page": page,
            "per_page": per_page,
            "sort": sort,
            "order": order,
            "user_id": user_id,
            "service_account_id": service_account_id,
            "revoked": revoked,
            "role": role,
        }
        return await self._page("/api/v1/api-keys", ApiKey, params)

    async def get_api_key(self, key_id: str) -> ApiKey:
        """One API key (never its secret)."""
        return ApiKey.model_validate(await self.get(f"/api/v1/api-keys/{key_id}"))

    async def create_api_key(
        self,
        name: str,
        *,
        role: Role | None = None,
        expires_in_days: int | None = None,
        expires_at: datetime | None = None,
    ) -> ApiKeyCreated:
        """A key for the caller; its secret ``key`` is in this response only."""
        body = _set(name=name, role=role, expires_in_days=expires_in_days, expires_at=expires_at)
        return ApiKeyCreated.model_validate(await self.post("/api/v1/api-keys", json=body))

    async def revoke_api_key(self, key_id: str) -> ApiKey:
        """Revoke a key at once; the record stays for the audit."""
        return ApiKey.model_validate(await self.delete(f"/api/v1/api-keys/{key_id}"))

    # -- service accounts ---------------------------------------------------------------------

    async def list_service_accounts(
        self,
        *,
        page: int = 1,
        per_page: int = 20,
        sort: Literal["name", "created_at"] | None = None,
        order: Order | None = None,
        role: Role | None = None,
        is_active: bool | None = None,
    ) -> Page[ServiceAccount]:
        """Service accounts of the organization (admins)."""
        params = {
            "page": page,
            "per_page": per_page,
            "sort": sort,
            "order": order,
            "role": role,
            "is_active": is_active,
        }
        return await self._page("/api/v1/service-accounts", ServiceAccount, params)

    async def get_service_account(self, account_id: str) -> ServiceAccount:
        """One service account."""
        data = await self.get(f"/api/v1/service-accounts/{account_id}")
        return ServiceAccount.model_validate(data)

    async def create_service_account(
        self, name: str, *, role: Role, description: str = ""
    ) -> ServiceAccount:
        """A service account with a role no higher than the caller's."""
        body = {"name": name, "role": role, "description": description}
        return ServiceAccount.model_validate(await self.post("/api/v1/service-accounts", json=body))

    async def update_service_account(
        self,
        account_id: str,
        *,
        description: str | None = None,
        role: Role | None = None,
        is_active: bool | None = None,
    ) -> ServiceAccount:
        """Change a service account's role or description, or (de)activate it."""
        body = _set(description=description, role=role, is_active=is_active)
        data = await self.patch(f"/api/v1/service-accounts/{account_id}", json=body)
        return ServiceAccount.model_validate(data)

    async def delete_service_account(self, account_id: str) -> None:
        """Delete a service account and all of its API keys."""
        await self.delete(f"/api/v1/service-accounts/{account_id}")

    async def create_service_account_key(
        self,
        account_id: str,
        name: str,
        *,
        role: Role | None = None,
        expires_in_days: int | None = None,
        expires_at: datetime | None = None,
    ) -> ApiKeyCreated:
        """An API key owned by a service account; its secret is in this response only."""
        body = _set(name=name, role=role, expires_in_days=expires_in_days, expires_at=expires_at)
        data = await self.post(f"/api/v1/service-accounts/{account_id}/keys", json=body)
        return ApiKeyCreated.model_validate(data)

    async def list_service_account_keys(
        self,
        account_id: str,
        *,
        page: int = 1,
        per_page: int = 20,
        sort: Literal["created_at", "name", "last_used_at", "expires_at"] | None = None,
        order: Order | None = None,
        revoked: bool | None = None,
        role: Role | None = None,
    ) -> Page[ApiKey]:
        """API keys of a service account."""
        params = {
            "page": page,
            "per_page": per_page,
            "sort": sort,
            "order": order,
            "revoked": revoked,
            "role": role,
        }
        return await self._page(f"/api/v1/service-accounts/{account_id}/keys", ApiKey, params)

    # -- integrations ---------------------------------------------------------------------

    async def get_integration(self, integration_id: str) -> Integration:
        """One integration of the caller's organization (404 for another's)."""
        data = await self.get(f"/api/v1/integrations/{integration_id}")
        return Integration.model_validate(data)

    async def resolve_integration(
        self,
        integration_id: str,
        *,
        organization_id: str,
        on_behalf_of: str,
        internal_secret: str,
    ) -> ResolvedIntegration:
        """An integration's config and credentials, for work done for ``on_behalf_of``.

        Platform services only: needs the installation's internal secret
        (``inwire.kit.auth.internal``); Core checks that ``on_behalf_of`` may still read the
        organization's integrations, and audits the call.
        """
        from inwire.kit.auth.internal import INTERNAL_HEADER

        data = await self.post(
            f"/api/v1/integrations/{integration_id}/resolve",
            json={"organization_id": organization_id, "on_behalf_of": on_behalf_of},
            headers={INTERNAL_HEADER: internal_secret},
        )
        return ResolvedIntegration.model_validate(data)
