"""The async sub-client of Core: ``client.core.teams.list()``, ``.api_keys.create(...)``, ...

Each resource wraps the typed calls of :class:`inwire.contracts.core.CoreClient` and adds
``iter`` methods that walk every page. The blocking twins are in :mod:`inwire.sdk.core_sync`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Literal

from inwire.contracts.core import (
    ApiKey,
    ApiKeyCreated,
    Caller,
    CoreClient,
    Invitation,
    InvitationCreated,
    InvitationStatus,
    Member,
    MemberSort,
    Order,
    Organization,
    Page,
    Role,
    ServiceAccount,
    Team,
    TeamMember,
    TeamRole,
    TokenGrant,
)
from inwire.sdk.pages import MAX_PER_PAGE, aiterate
from inwire.sdk.session import Session

__all__ = [
    "AsyncApiKeys",
    "AsyncCore",
    "AsyncInvitations",
    "AsyncOrganizations",
    "AsyncServiceAccounts",
    "AsyncTeams",
    "AsyncUsers",
]


class AsyncOrganizations:
    """Organizations the caller belongs to; ``switch`` moves the session to another one."""

    def __init__(self, api: CoreClient, session: Session) -> None:
        self._api = api
        self._session = session

    async def list(
        self,
        *,
        page: int = 1,
        per_page: int = 20,
        sort: Literal["created_at", "name", "slug"] | None = None,
        order: Order | None = None,
        role: Role | None = None,
    ) -> Page[Organization]:
        """One page of the caller's organizations, with the caller's role in each."""
        return await self._api.list_organizations(
            page=page, per_page=per_page, sort=sort, order=order, role=role
        )

    def iter(
        self,
        *,
        per_page: int = MAX_PER_PAGE,
        sort: Literal["created_at", "name", "slug"] | None = "created_at",
        order: Order | None = "asc",
        role: Role | None = None,
    ) -> AsyncIterator[Organization]:
        """Every organization of the caller, fetched page by page."""
        return aiterate(
            lambda n: self.list(page=n, per_page=per_page, sort=sort, order=order, role=role),
            per_page,
        )

    async def get(self, organization_id: str) -> Organization:
        """One organization the caller belongs to."""
        return await self._api.get_organization(organization_id)

    async def create(self, name: str, *, slug: str | None = None) -> Organization:
        """A new organization; the caller becomes its owner."""
        return await self._api.create_organization(name, slug=slug)

    async def update(
        self, organization_id: str, *, name: str | None = None, slug: str | None = None
    ) -> Organization:
        """Rename the current organization or change its slug (admins)."""
        return await self._api.update_organization(organization_id, name=name, slug=slug)

    async def delete(self, organization_id: str) -> None:
        """Delete the current organization and all it owns (owners)."""
        await self._api.delete_organization(organization_id)

    async def switch(self, organization_id: str) -> TokenGrant:
        """Continue in another organization: the session's tokens are replaced.

        Only sessions begun with a password may switch; API-key and SSO sessions stay in
        their organization (403).
        """
        grant = await self._api.switch_organization(organization_id)
        self._session.accept(grant)
        return grant


class AsyncUsers:
    """Members of the current organization."""

    def __init__(self, api: CoreClient) -> None:
        self._api = api

    async def list(
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
        """One page of members; filter by role, is_active or exact e-mail."""
        return await self._api.list_users(
            page=page,
            per_page=per_page,
            sort=sort,
            order=order,
            role=role,
            is_active=is_active,
            email=email,
        )

    def iter(
        self,
        *,
        per_page: int = MAX_PER_PAGE,
        sort: MemberSort | None = "created_at",
        order: Order | None = "asc",
        role: Role | None = None,
        is_active: bool | None = None,
    ) -> AsyncIterator[Member]:
        """Every member, fetched page by page."""
        return aiterate(
            lambda n: self.list(
                page=n, per_page=per_page, sort=sort, order=order, role=role, is_active=is_active
            ),
            per_page,
        )

    async def get(self, user_id: str) -> Member:
        """One member by user id."""
        return await self._api.get_user(user_id)

    async def find(self, email: str) -> Member | None:
        """The member with this e-mail address, if there is one."""
        page = await self._api.list_users(email=email.strip().lower(), per_page=1)
        return page.items[0] if page.items else None

    async def add(
        self,
        email: str,
        *,
        role: Role = "member",
        name: str | None = None,
        password: str | None = None,
    ) -> Member:
        """Add an existing account by e-mail, or create one (``name``, optional ``password``)."""
        return await self._api.add_user(email, role=role, name=name, password=password)

    async def update(
        self,
        user_id: str,
        *,
        name: str | None = None,
        role: Role | None = None,
        is_active: bool | None = None,
    ) -> Member:
        """Rename yourself, or (admins) change a member's role or (de)activate them."""
        return await self._api.update_user(user_id, name=name, role=role, is_active=is_active)

    async def set_role(self, user_id: str, role: Role) -> Member:
        """Give a member another organization role (only owners grant owner)."""
        return await self._api.update_user(user_id, role=role)

    async def remove(self, user_id: str) -> None:
        """Remove a member from the organization (or leave it yourself)."""
        await self._api.remove_user(user_id)


class AsyncInvitations:
    """Invitations to join the current organization."""

    def __init__(self, api: CoreClient, session: Session) -> None:
        self._api = api
        self._session = session

    async def list(
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
        """One page of invitations; filter by status, e-mail or role."""
        return await self._api.list_invitations(
            page=page,
            per_page=per_page,
            sort=sort,
            order=order,
            status=status,
            email=email,
            role=role,
        )

    def iter(
        self,
        *,
        per_page: int = MAX_PER_PAGE,
        sort: Literal["created_at", "expires_at", "email"] | None = "created_at",
        order: Order | None = "asc",
        status: InvitationStatus | None = None,
    ) -> AsyncIterator[Invitation]:
        """Every invitation, fetched page by page."""
        return aiterate(
            lambda n: self.list(page=n, per_page=per_page, sort=sort, order=order, status=status),
            per_page,
        )

    async def create(self, email: str, *, role: Role = "member") -> InvitationCreated:
        """Invite an address; ``token`` is mailed and returned in this answer only."""
        return await self._api.create_invitation(email, role=role)

    async def revoke(self, invitation_id: str) -> None:
        """Revoke a pending invitation."""
        await self._api.revoke_invitation(invitation_id)

    async def accept(
        self, token: str, *, name: str | None = None, password: str | None = None
    ) -> TokenGrant:
        """Accept an invitation; the session continues as the invited account.

        For a new account give ``name`` and ``password``; an existing account proves itself
        with this client's credentials or its ``password``.
        """
        grant = await self._api.accept_invitation(token, name=name, password=password)
        self._session.accept(grant)
        return grant


class AsyncTeams:
    """Teams of the current organization and their members."""

    def __init__(self, api: CoreClient) -> None:
        self._api = api

    async def list(
        self,
        *,
        page: int = 1,
        per_page: int = 20,
        sort: Literal["name", "created_at"] | None = None,
        order: Order | None = None,
        name: str | None = None,
        user_id: str | None = None,
    ) -> Page[Team]:
        """One page of teams (by name by default); filter by exact name or a member."""
        return await self._api.list_teams(
            page=page, per_page=per_page, sort=sort, order=order, name=name, user_id=user_id
        )

    def iter(
        self,
        *,
        per_page: int = MAX_PER_PAGE,
        sort: Literal["name", "created_at"] | None = "created_at",
        order: Order | None = "asc",
        user_id: str | None = None,
    ) -> AsyncIterator[Team]:
        """Every team, fetched page by page."""
        return aiterate(
            lambda n: self.list(page=n, per_page=per_page, sort=sort, order=order, user_id=user_id),
            per_page,
        )

    async def get(self, team_id: str) -> Team:
        """One team."""
        return await self._api.get_team(team_id)

    async def find(self, name: str) -> Team | None:
        """The team with exactly this name, if there is one."""
        page = await self._api.list_teams(name=name, per_page=1)
        return page.items[0] if page.items else None

    async def create(self, name: str, *, description: str = "") -> Team:
        """A new team; the caller becomes its maintainer."""
        return await self._api.create_team(name, description=description)

    async def update(
        self, team_id: str, *, name: str | None = None, description: str | None = None
    ) -> Team:
        """Rename a team or change its description."""
        return await self._api.update_team(team_id, name=name, description=description)

    async def delete(self, team_id: str) -> None:
        """Delete a team and its memberships."""
        await self._api.delete_team(team_id)

    async def members(
        self,
        team_id: str,
        *,
        page: int = 1,
        per_page: int = 20,
        sort: Literal["created_at", "role"] | None = None,
        order: Order | None = None,
        role: TeamRole | None = None,
    ) -> Page[TeamMember]:
        """One page of a team's members with their team role."""
        return await self._api.list_team_members(
            team_id, page=page, per_page=per_page, sort=sort, order=order, role=role
        )

    def iter_members(
        self, team_id: str, *, per_page: int = MAX_PER_PAGE, role: TeamRole | None = None
    ) -> AsyncIterator[TeamMember]:
        """Every member of a team, fetched page by page."""
        return aiterate(
            lambda n: self.members(team_id, page=n, per_page=per_page, role=role), per_page
        )

    async def add_member(
        self, team_id: str, user_id: str, *, role: TeamRole = "member"
    ) -> TeamMember:
        """Add a member of the organization to a team."""
        return await self._api.add_team_member(team_id, user_id, role=role)

    async def set_member_role(self, team_id: str, user_id: str, role: TeamRole) -> TeamMember:
        """Change a team member's role."""
        return await self._api.update_team_member(team_id, user_id, role)

    async def remove_member(self, team_id: str, user_id: str) -> None:
        """Remove someone from a team (or leave it yourself)."""
        await self._api.remove_team_member(team_id, user_id)


class AsyncApiKeys:
    """API keys: the caller's own (admins see every key of the organization)."""

    def __init__(self, api: CoreClient) -> None:
        self._api = api

    async def list(
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
        """One page of keys (never their secrets)."""
        return await self._api.list_api_keys(
            page=page,
            per_page=per_page,
            sort=sort,
            order=order,
            user_id=user_id,
            service_account_id=service_account_id,
            revoked=revoked,
            role=role,
        )

    def iter(
        self,
        *,
        per_page: int = MAX_PER_PAGE,
        sort: Literal["created_at", "name", "last_used_at", "expires_at"] | None = "created_at",
        order: Order | None = "asc",
        revoked: bool | None = None,
    ) -> AsyncIterator[ApiKey]:
        """Every key, fetched page by page."""
        return aiterate(
            lambda n: self.list(page=n, per_page=per_page, sort=sort, order=order, revoked=revoked),
            per_page,
        )

    async def get(self, key_id: str) -> ApiKey:
        """One key."""
        return await self._api.get_api_key(key_id)

    async def create(
        self,
        name: str,
        *,
        role: Role | None = None,
        expires_in_days: int | None = None,
        expires_at: datetime | None = None,
    ) -> ApiKeyCreated:
        """A key for the caller; ``.key`` is the secret, shown in this answer only."""
        return await self._api.create_api_key(
            name, role=role, expires_in_days=expires_in_days, expires_at=expires_at
        )

    async def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key at once."""
        return await self._api.revoke_api_key(key_id)


class AsyncServiceAccounts:
    """Non-human principals of the organization, and their keys (admins)."""

    def __init__(self, api: CoreClient) -> None:
        self._api = api

    async def list(
        self,
        *,
        page: int = 1,
        per_page: int = 20,
        sort: Literal["name", "created_at"] | None = None,
        order: Order | None = None,
        role: Role | None = None,
        is_active: bool | None = None,
    ) -> Page[ServiceAccount]:
        """One page of service accounts."""
        return await self._api.list_service_accounts(
            page=page, per_page=per_page, sort=sort, order=order, role=role, is_active=is_active
        )

    def iter(
        self,
        *,
        per_page: int = MAX_PER_PAGE,
        sort: Literal["name", "created_at"] | None = "created_at",
        order: Order | None = "asc",
        is_active: bool | None = None,
    ) -> AsyncIterator[ServiceAccount]:
        """Every service account, fetched page by page."""
        return aiterate(
            lambda n: self.list(
                page=n, per_page=per_page, sort=sort, order=order, is_active=is_active
            ),
            per_page,
        )

    async def get(self, account_id: str) -> ServiceAccount:
        """One service account."""
        return await self._api.get_service_account(account_id)

    async def create(self, name: str, *, role: Role, description: str = "") -> ServiceAccount:
        """A service account with a role no higher than the caller's."""
        return await self._api.create_service_account(name, role=role, description=description)

    async def update(
        self,
        account_id: str,
        *,
        description: str | None = None,
        role: Role | None = None,
        is_active: bool | None = None,
    ) -> ServiceAccount:
        """Change a service account's role or description, or (de)activate it."""
        return await self._api.update_service_account(
            account_id, description=description, role=role, is_active=is_active
        )

    async def delete(self, account_id: str) -> None:
        """Delete a service account and all of its keys."""
        await self._api.delete_service_account(account_id)

    async def create_key(
        self,
        account_id: str,
        name: str,
        *,
        role: Role | None = None,
        expires_in_days: int | None = None,
        expires_at: datetime | None = None,
    ) -> ApiKeyCreated:
        """An API key owned by the service account; ``.key`` is shown this once."""
        return await self._api.create_service_account_key(
            account_id, name, role=role, expires_in_days=expires_in_days, expires_at=expires_at
        )

    async def keys(
        self,
        account_id: str,
        *,
        page: int = 1,
        per_page: int = 20,
        revoked: bool | None = None,
    ) -> Page[ApiKey]:
        """One page of the service account's keys (revoke with ``api_keys.revoke``)."""
        return await self._api.list_service_account_keys(
            account_id, page=page, per_page=per_page, revoked=revoked
        )


class AsyncCore:
    """Core: identity, organizations, members, invitations, teams, API keys, service accounts.

    ``api`` is the underlying :class:`~inwire.contracts.core.CoreClient` for calls the
    resources do not wrap (``await client.core.api.change_password(...)``).
    """

    def __init__(self, api: CoreClient, session: Session) -> None:
        self.api = api
        self.organizations = AsyncOrganizations(api, session)
        self.users = AsyncUsers(api)
        self.invitations = AsyncInvitations(api, session)
        self.teams = AsyncTeams(api)
        self.api_keys = AsyncApiKeys(api)
        self.service_accounts = AsyncServiceAccounts(api)

    async def me(self) -> Caller:
        """Who this client acts as: identity, organization, role and other organizations."""
        return await self.api.me()
