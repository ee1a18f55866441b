"""Rules of API keys and service accounts.

A key is a long-lived credential of one user or one service account in one organization.
Its plaintext is shown once, at creation; Core keeps only its SHA-256. A key never outranks
its owner: it is created with at most the owner's role, and a later demotion of the owner
caps the key too (auth.service applies that on every use).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.auth.permissions import role_at_least
from inwire.kit.db import utcnow
from inwire.kit.errors import Conflict, Forbidden, Invalid
from inwire.kit.ids import new_id
from inwire.services.core.apikeys.models import ApiKey, ServiceAccount
from inwire.services.core.apikeys.repository import ApiKeyRepository, ServiceAccountRepository
from inwire.services.core.apikeys.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    ServiceAccountIn,
    ServiceAccountUpdate,
)
from inwire.services.core.audit.service import ClientInfo, record_by
from inwire.services.core.security import new_api_key, token_hash

#: Characters of a key kept in the clear for display ("iwk_" and 8 more).
PREFIX_LENGTH = 12

# -- API keys ---------------------------------------------------------------------------------


async def create_key(
    session: AsyncSession, principal: Principal, body: ApiKeyIn, client: ClientInfo
) -> ApiKeyCreated:
    """A key for the calling user, with the caller's role or a lower one."""
    if principal.kind != "user":
        raise Forbidden(
            "Service accounts cannot create API keys; an admin issues them for the account",
            details=[{"message": "use POST /api/v1/service-accounts/{id}/keys"}],
        )
    role = body.role or principal.role
    if not role_at_least(principal.role, role):
        raise Forbidden(
            f"A key cannot have a higher role than yours ({principal.role})",
            details=[{"field": "role", "message": f"at most {principal.role}"}],
        )
    return await _issue(
        session, principal, body, role=role, user_id=principal.subject, client=client
    )


async def list_keys(
    session: AsyncSession, principal: Principal, query: ListQuery
) -> tuple[Sequence[ApiKey], int]:
    """The caller's own keys; admins see every key of the organization."""
    user_id = service_account_id = None
    if not _key_admin(principal):
        if principal.kind == "service":
            service_account_id = principal.subject
        else:
            user_id = principal.subject
    return await ApiKeyRepository(session, principal.org).page_keys(
        query,
        user_id=user_id,
        service_account_id=service_account_id,
        revoked=query.filters.get("revoked"),
    )


async def get_key(session: AsyncSession, principal: Principal, key_id: str) -> ApiKey:
    """One key: the caller's own, or any of the organization's for an admin."""
    key = await ApiKeyRepository(session, principal.org).get(key_id)
    _ensure_key_access(principal, key)
    return key


async def revoke_key(
    session: AsyncSession, principal: Principal, key_id: str, client: ClientInfo
) -> ApiKey:
    """Revoke a key for good; revoking a revoked key changes nothing."""
    keys = ApiKeyRepository(session, principal.org)
    key = await keys.get(key_id)
    _ensure_key_access(principal, key)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await keys.flush()
        await record_by(
            session,
            principal,
            "api_keys.revoked",
            target_type="api_key",
            target_id=key.id,
            client=client,
            name=key.name,
            user_id=key.user_id,
            service_account_id=key.service_account_id,
        )
    return key


def _key_admin(principal: Principal) -> bool:
    """Admins and owners manage every key of their organization."""
    return principal.can("api_keys:admin")


def _ensure_key_access(principal: Principal, key: ApiKey) -> None:
    owner = key.service_account_id if principal.kind == "service" else key.user_id
    if owner != principal.subject and not _key_admin(principal):
        raise Forbidden(
            "Only the key's owner or an organization admin may see or revoke it",
            details=[{"message": "not your key"}],
        )


async def _issue(
    session: AsyncSession,
    principal: Principal,
    body: ApiKeyIn,
    *,
    role: str,
    client: ClientInfo,
    user_id: str | None = None,
    service_account_id: str | None = None,
) -> ApiKeyCreated:
    """Make the key, store its hash, record the event and return the plaintext once."""
    now = utcnow()
    expires_at = body.expires_at
    if expires_at is not None:
        expires_at = expires_at.replace(tzinfo=UTC) if expires_at.tzinfo is None else expires_at
        if expires_at <= now:
            raise Invalid(
                "expires_at must lie in the future",
                details=[{"field": "expires_at", "message": "in the past"}],
            )
        if expires_at > now + timedelta(days=3650):
            raise Invalid(
                "expires_at may be at most ten years ahead",
                details=[{"field": "expires_at", "message": "too far ahead"}],
            )
    elif body.expires_in_days is not None:
        expires_at = now + timedelta(days=body.expires_in_days)
    plaintext = new_api_key()
    key = await ApiKeyRepository(session, principal.org).add(
        ApiKey(
            id=new_id("key"),
            name=body.name,
            prefix=plaintext[:PREFIX_LENGTH],
            key_hash=token_hash(plaintext),
            role=role,
            user_id=user_id,
            service_account_id=service_account_id,
            created_by=principal.subject,
            expires_at=expires_at,
        )
    )
    await record_by(
        session,
        principal,
        "api_keys.created",
        target_type="api_key",
        target_id=key.id,
        client=client,
        name=key.name,
        role=role,
        user_id=user_id,
        service_account_id=service_account_id,
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    shown = ApiKeyOut.model_validate(key).model_dump(exclude={"status"})
    return ApiKeyCreated(**shown, key=plaintext)


# -- service accounts -------------------------------------------------------------------------


async def list_service_accounts(
    session: AsyncSession, principal: Principal, query: ListQuery
) -> tuple[Sequence[ServiceAccount], int]:
    """A page of the organization's service accounts (filters ``role``, ``is_active``)."""
    return await ServiceAccountRepository(session, principal.org).page(query)


async def get_service_account(
    session: AsyncSession, principal: Principal, account_id: str
) -> ServiceAccount:
    """One service account of the organization."""
    return await ServiceAccountRepository(session, principal.org).get(account_id)


async def create_service_account(
    session: AsyncSession, principal: Principal, body: ServiceAccountIn, client: ClientInfo
) -> ServiceAccount:
    """A new service account with a role no higher than the caller's."""
    _ensure_role_grantable(principal, body.role)
    accounts = ServiceAccountRepository(session, principal.org)
    await _ensure_name_free(accounts, body.name)
    account = await accounts.add(
        ServiceAccount(
            id=new_id("sa"),
            name=body.name,
            description=body.description,
            role=body.role,
            is_active=True,
            created_by=principal.subject,
        )
    )
    await record_by(
        session,
        principal,
        "service_accounts.created",
        target_type="service_account",
        target_id=account.id,
        client=client,
        name=account.name,
        role=account.role,
    )
    return account


async def update_service_account(
    session: AsyncSession,
    principal: Principal,
    account_id: str,
    body: ServiceAccountUpdate,
    client: ClientInfo,
) -> ServiceAccount:
    """Change an account's description, role or activity."""
    accounts = ServiceAccountRepository(session, principal.org)
    account = await accounts.get(account_id)
    _ensure_outranks(principal, account)
    changes = body.model_dump(exclude_unset=True)
    if "role" in changes:
        _ensure_role_grantable(principal, changes["role"])
    details: dict[str, object] = {}
    for field, value in changes.items():
        if getattr(account, field) != value:
            details[field] = {"from": getattr(account, field), "to": value}
            setattr(account, field, value)
    if details:
        account.updated_at = utcnow()
        await accounts.flush()
        await record_by(
            session,
            principal,
            "service_accounts.updated",
            target_type="service_account",
            target_id=account.id,
            client=client,
            changes=details,
        )
    return account


async def delete_service_account(
    session: AsyncSession, principal: Principal, account_id: str, client: ClientInfo
) -> None:
    """Delete an account and every key it holds."""
    accounts = ServiceAccountRepository(session, principal.org)
    account = await accounts.get(account_id)
    _ensure_outranks(principal, account)
    keys = await ApiKeyRepository(session, principal.org).delete_where(
        ApiKey.service_account_id == account.id
    )
    await accounts.remove(account)
    await record_by(
        session,
        principal,
        "service_accounts.deleted",
        target_type="service_account",
        target_id=account.id,
        client=client,
        name=account.name,
        keys_deleted=keys,
    )


async def issue_service_account_key(
    session: AsyncSession,
    principal: Principal,
    account_id: str,
    body: ApiKeyIn,
    client: ClientInfo,
) -> ApiKeyCreated:
    """A key owned by a service account, with the account's role or a lower one."""
    account = await ServiceAccountRepository(session, principal.org).get(account_id)
    _ensure_outranks(principal, account)
    if not account.is_active:
        raise Conflict("Service account is deactivated; activate it before issuing keys")
    role = body.role or account.role
    if not role_at_least(account.role, role):
        raise Invalid(
            f"A key cannot have a higher role than its service account ({account.role})",
            details=[{"field": "role", "message": f"at most {account.role}"}],
        )
    return await _issue(
        session, principal, body, role=role, service_account_id=account.id, client=client
    )


async def list_service_account_keys(
    session: AsyncSession, principal: Principal, account_id: str, query: ListQuery
) -> tuple[Sequence[ApiKey], int]:
    """A page of the keys a service account holds."""
    account = await ServiceAccountRepository(session, principal.org).get(account_id)
    return await ApiKeyRepository(session, principal.org).page_keys(
        query, service_account_id=account.id, revoked=query.filters.get("revoked")
    )


def _ensure_role_grantable(principal: Principal, role: str) -> None:
    if not role_at_least(principal.role, role):
        raise Forbidden(
            f"You cannot grant a role higher than yours ({principal.role})",
            details=[{"field": "role", "message": f"at most {principal.role}"}],
        )


def _ensure_outranks(principal: Principal, account: ServiceAccount) -> None:
    """An admin cannot steer an owner-level account (nor mint its keys)."""
    if not role_at_least(principal.role, account.role):
        raise Forbidden(
            f"This service account's role ({account.role}) is higher than yours",
            details=[{"message": f"requires role {account.role}"}],
        )


async def _ensure_name_free(accounts: ServiceAccountRepository, name: str) -> None:
    if await accounts.by_name(name) is not None:
        raise Conflict(
            f"A service account named {name!r} already exists",
            details=[{"field": "name", "message": "already taken"}],
        )
