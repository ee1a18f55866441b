"""The blocking sub-client of Core: the same resources as :mod:`inwire.sdk.core`.

Each method runs its async twin on the client's background loop and waits for it, so both
share one implementation of credentials, refresh, retries and errors.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from inwire.contracts.core import (
    ApiKey,
    ApiKeyCreated,
    Caller,
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
from inwire.sdk.core import (
    AsyncApiKeys,
    AsyncCore,
    AsyncInvitations,
    AsyncOrganizations,
    AsyncServiceAccounts,
    AsyncTeams,
    AsyncUsers,
)
from inwire.sdk.pages import MAX_PER_PAGE, iterate

__all__ = ["ApiKeys", "Core", "Invitations", "Organizations", "ServiceAccounts", "Teams", "Users"]

T = TypeVar("T")


class Run(Protocol):
    """Runs a coroutine to completion and returns its result (see :class:`LoopThread`)."""

    def __call__(self, coro: Coroutine[Any, Any, T], /) -> T: ...


class _Resource:
    def __init__(self, run: Run) -> None:
        self._run = run


class Organizations(_Resource):
    """Organizations the caller belongs to; ``switch`` moves the session to another one."""

    def __init__(self, inner: AsyncOrganizations, run: Run) -> None:
        super().__init__(run)
        self._inner = inner

    def list(
        self,
        *,
        page: int = 1,
        per_page: int = 20,
        sort: Literal["created_at", "name", "slug"] | None = None,
        order: Order | None = None,
        role: Role | None = None,
    ) -> Page[Organization]:
        """One page of the caller's organizations, with the caller's role in each."""
        return self._run(
            self._inner.list(page=page, per_page=per_page, sort=sort, order=order, role=role)
        )

    def iter(
        self,
        *,
        per_page: int = MAX_PER_PAGE,
        sort: Literal["created_at", "name", "slug"] | None = "created_at",
        order: Order | None = "asc",
        role: Role | None = None,
    ) -> Iterator[Organization]:
        """Every organization of the caller, fetched page by page."""
        return iterate(
            lambda n: self.list(page=n, per_page=per_page, sort=sort, order=order, role=role),
            per_page,
        )

    def get(self, organization_id: str) -> Organization:
        """One organization the caller belongs to."""
        return self._run(self._inner.get(organization_id))

    def create(self, name: str, *, slug: str | None = None) -> Organization:
        """A new organization; the caller becomes its owner."""
        return self._run(self._inner.create(name, slug=slug))

    def update(
        self, organization_id: str, *, name: str | None = None, slug: str | None = None
    ) -> Organization:
        """Rename the current organization or change its slug (admins)."""
        return self._run(self._inner.update(organization_id, name=name, slug=slug))

    def delete(self, organization_id: str) -> None:
        """Delete the current organization and all it owns (owners)."""
        self._run(self._inner.delete(organization_id))

    def switch(self, organization_id: str) -> TokenGrant:
        """Continue in another organization: the session's tokens are replaced."""
        return self._run(self._inner.switch(organization_id))


class Users(_Resource):
    """Members of the current organization."""

    def __init__(self, inner: AsyncUsers, run: Run) -> None:
        super().__init__(run)
        self._inner = inner

    def list(
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
        return self._run(
            self._inner.list(
                page=page,
                per_page=per_page,
                sort=sort,
                order=order,
                role=role,
                is_active=is_active,
                email=email,
            )
        )

    def iter(
        self,
        *,
        per_page: int = MAX_PER_PAGE,
        sort: MemberSort | None = "created_at",
        order: Order | None = "asc",
        role: Role | None = None,
        is_active: bool | None = None,
    ) -> Iterator[Member]:
        """Every member, fetched page by page."""
        return iterate(
            lambda n: self.list(
                page=n, per_page=per_page, sort=sort, order=order, role=role, is_active=is_active
            ),
            per_page,
        )

    def get(self, user_id: str) -> Member:
        """One member by user id."""
        return self._run(self._inner.get(user_id))

    def find(self, email: str) -> Member | None:
        """The member with this e-mail address, if there is one."""
        return self._run(self._inner.find(email))

    def add(
        self,
        email: str,
        *,
        role: Role = "member",
        name: str | None = None,
        password: str | None = None,
    ) -> Member:
        """Add an existing account by e-mail, or create one (``name``, optional ``password``)."""
        return self._run(self._inner.add(email, role=role, name=name, password=password))

    def update(
        self,
        user_id: str,
        *,
        name: str | None = None,
        role: Role | None = None,
        is_active: bool | None = None,
    ) -> Member:
        """Rename yourself, or (admins) change a member's role or (de)activate them."""
        return self._run(self._inner.update(user_id, name=name, role=role, is_active=is_active))

    def set_role(self, user_id: str, role: Role) -> Member:
        """Give a member another organization role (only owners grant owner)."""
        return self._run(self._inner.set_role(user_id, role))

    def remove(self, user_id: str) -> None:
        """Remove a member from the organization (or leave it yourself)."""
        self._run(self._inner.remove(user_id))


class Invitations(_Resource):
    """Invitations to join the current organization."""

    def __init__(self, inner: AsyncInvitations, run: Run) -> None:
        super().__init__(run)
        self._inner = inner

    def list(
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
        return self._run(
            self._inner.list(
                page=page,
                per_page=per_page,
                sort=sort,
                order=order,
                status=status,
                email=email,
                role=role,
            )
        )

    def iter(
        self,
        *,
        per_page: int = MAX_PER_PAGE,
        sort: Literal["created_at", "expires_at", "email"] | None = "created_at",
        order: Order | None = "asc",
        status: InvitationStatus | None = None,
    ) -> Iterator[Invitation]:
        """Every invitation, fetched page by page."""
        return iterate(
            lambda n: self.list(page=n, per_page=per_page, sort=sort, order=order, status=status),
            per_page,
        )

    def create(self, email: str, *, role: Role = "member") -> InvitationCreated:
        """Invite an address; ``token`` is mailed and returned in this answer only."""
        return self._run(self._inner.create(email, role=role))

    def revoke(self, invitation_id: str) -> None:
        """Revoke a pending invitation."""
        self._run(self._inner.revoke(invitation_id))

    def accept(
        self, token: str, *, name: str | None = None, password: str | None = None
    ) -> TokenGrant:
        """Accept an invitation; the session continues as the invited account."""
        return self._run(self._inner.accept(token, name=name, password=password))


class Teams(_Resource):
    """Teams of the current organization and their members."""

    def __init__(self, inner: AsyncTeams, run: Run) -> None:
        super().__init__(run)
        self._inner = inner

    def list(
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
        return self._run(
            self._inner.list(
                page=page, per_page=per_page, sort=sort, order=order, name=name, user_id=user_id
            )
        )

    def iter(
        self,
        *,
        per_page: int = MAX_PER_PAGE,
        sort: Literal["name", "created_at"] | None = "created_at",
        order: Order | None = "asc",
        user_id: str | None = None,
    ) -> Iterator[Team]:
        """Every team, fetched page by page."""
        return iterate(
            lambda n: self.list(page=n, per_page=per_page, sort=sort, order=order, user_id=user_id),
            per_page,
        )

    def get(self, team_id: str) -> Team:
        """One team."""
        return self._run(self._inner.get(team_id))

    def find(self, name: str) -> Team | None:
        """The team with exactly this name, if there is one."""
        return self._run(self._inner.find(name))

    def create(self, name: str, *, description: str = "") -> Team:
        """A new team; the caller becomes its maintainer."""
        return self._run(self._inner.create(name, description=description))

    def update(
        self, team_id: str, *, name: str | None = None, description: str | None = None
    ) -> Team:
        """Rename a team or change its description."""
        return self._run(self._inner.update(team_id, name=name, description=description))

    def delete(self, team_id: str) -> None:
        """Delete a team and its memberships."""
        self._run(self._inner.delete(team_id))

    def members(
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
        return self._run(
            self._inner.members(
                team_id, page=page, per_page=per_page, sort=sort, order=order, role=role
            )
        )

    def iter_members(
        self, team_id: str, *, per_page: int = MAX_PER_PAGE, role: TeamRole | None = None
    ) -> Iterator[TeamMember]:
        """Every member of a team, fetched page by page."""
        return iterate(
            lambda n: self.members(team_id, page=n, per_page=per_page, role=role), per_page
        )

    def add_member(self, team_id: str, user_id: str, *, role: TeamRole = "member") -> TeamMember:
        """Add a member of the organization to a team."""
        return self._run(self._inner.add_member(team_id, user_id, role=role))

    def set_member_role(self, team_id: str, user_id: str, role: TeamRole) -> TeamMember:
        """Change a team member's role."""
        return self._run(self._inner.set_member_role(team_id, user_id, role))

    def remove_member(self, team_id: str, user_id: str) -> None:
        """Remove someone from a team (or leave it yourself)."""
        self._run(self._inner.remove_member(team_id, user_id))


class ApiKeys(_Resource):
    """API keys: the caller's own (admins see every key of the organization)."""

    def __init__(self, inner: AsyncApiKeys, run: Run) -> None:
        super().__init__(run)
        self._inner = inner

    def list(
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
        return self._run(
            self._inner.list(
                page=page,
                per_page=per_page,
                sort=sort,
                order=order,
                user_id=user_id,
                service_account_id=service_account_id,
                revoked=revoked,
                role=role,
            )
        )

    def iter(
        self,
        *,
        per_page: int = MAX_PER_PAGE,
        sort: Literal["created_at", "name", "last_used_at", "expires_at"] | None = "created_at",
        order: Order | None = "asc",
        revoked: bool | None = None,
    ) -> Iterator[ApiKey]:
        """Every key, fetched page by page."""
        return iterate(
            lambda n: self.list(page=n, per_page=per_page, sort=sort, order=order, revoked=revoked),
            per_page,
        )

    def get(self, key_id: str) -> ApiKey:
        """One key."""
        return self._run(self._inner.get(key_id))

    def create(
        self,
        name: str,
        *,
        role: Role | None = None,
        expires_in_days: int | None = None,
        expires_at: datetime | None = None,
    ) -> ApiKeyCreated:
        """A key for the caller; ``.key`` is the secret, shown in this answer only."""
        return self._run(
            self._inner.create(
                name, role=role, expires_in_days=expires_in_days, expires_at=expires_at
            )
        )

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key at once."""
        return self._run(self._inner.revoke(key_id))


class ServiceAccounts(_Resource):
    """Non-human principals of the organization, and their keys (admins)."""

    def __init__(self, inner: AsyncServiceAccounts, run: Run) -> None:
        super().__init__(run)
        self._inner = inner

    def list(
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
        return self._run(
            self._inner.list(
                page=page,
                per_page=per_page,
                sort=sort,
                order=order,
                role=role,
                is_active=is_active,
            )
        )

    def iter(
        self,
        *,
        per_page: int = MAX_PER_PAGE,
        sort: Literal["name", "created_at"] | None = "created_at",
        order: Order | None = "asc",
        is_active: bool | None = None,
    ) -> Iterator[ServiceAccount]:
        """Every service account, fetched page by page."""
        return iterate(
            lambda n: self.list(
                page=n, per_page=per_page, sort=sort, order=order, is_active=is_active
            ),
            per_page,
        )

    def get(self, account_id: str) -> ServiceAccount:
        """One service account."""
        return self._run(self._inner.get(account_id))

    def create(self, name: str, *, role: Role, description: str = "") -> ServiceAccount:
        """A service account with a role no higher than the caller's."""
        return self._run(self._inner.create(name, role=role, description=description))

    def update(
        self,
        account_id: str,
        *,
        description: str | None = None,
        role: Role | None = None,
        is_active: bool | None = None,
    ) -> ServiceAccount:
        """Change a service account's role or description, or (de)activate it."""
        return self._run(
            self._inner.update(account_id, description=description, role=role, is_active=is_active)
        )

    def delete(self, account_id: str) -> None:
        """Delete a service account and all of its keys."""
        self._run(self._inner.delete(account_id))

    def create_key(
        self,
        account_id: str,
        name: str,
        *,
        role: Role | None = None,
        expires_in_days: int | None = None,
        expires_at: datetime | None = None,
    ) -> ApiKeyCreated:
        """An API key owned by the service account; ``.key`` is shown this once."""
        return self._run(
            self._inner.create_key(
                account_id, name, role=role, expires_in_days=expires_in_days, expires_at=expires_at
            )
        )

    def keys(
        self, account_id: str, *, page: int = 1, per_page: int = 20, revoked: bool | None = None
    ) -> Page[ApiKey]:
        """One page of the service account's keys (revoke with ``api_keys.revoke``)."""
        return self._run(
            self._inner.keys(account_id, page=page, per_page=per_page, revoked=revoked)
        )


class Core(_Resource):
    """Core: identity, organizations, members, invitations, teams, API keys, service accounts.

    ``api`` is the async :class:`~inwire.contracts.core.CoreClient` underneath, for calls the
    resources do not wrap: ``client.run(client.core.api.change_password(old, new))``.
    """

    def __init__(self, inner: AsyncCore, run: Run) -> None:
        super().__init__(run)
        self._inner = inner
        self.api = inner.api
        self.organizations = Organizations(inner.organizations, run)
        self.users = Users(inner.users, run)
        self.invitations = Invitations(inner.invitations, run)
        self.teams = Teams(inner.teams, run)
        self.api_keys = ApiKeys(inner.api_keys, run)
        self.service_accounts = ServiceAccounts(inner.service_accounts, run)

    def me(self) -> Caller:
        """Who this client acts as: identity, organization, role and other organizations."""
        return self._run(self._inner.me())
