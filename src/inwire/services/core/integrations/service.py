"""Integration rules: per-kind validation, sealed credentials, connection tests."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.db import utcnow
from inwire.kit.errors import Conflict, Forbidden
from inwire.kit.ids import new_id
from inwire.services.core.audit.service import ClientInfo, record_by
from inwire.services.core.auth.service import acting_principal
from inwire.services.core.context import CoreContext
from inwire.services.core.integrations.kinds import (
    KINDS,
    ConnectionFailed,
    IntegrationKind,
    validate,
)
from inwire.services.core.integrations.models import Integration
from inwire.services.core.integrations.repository import IntegrationRepository
from inwire.services.core.integrations.schemas import (
    ConnectionTestOut,
    IntegrationIn,
    IntegrationKindOut,
    IntegrationOut,
    IntegrationUpdate,
    ResolvedIntegrationOut,
    ResolveIn,
)

log = logging.getLogger("inwire.core.integrations")

_MESSAGE_LIMIT = 1000


def kind_catalog() -> list[IntegrationKindOut]:
    """Every kind with the JSON Schemas of its config and credentials."""
    return [
        IntegrationKindOut(
            kind=k.name,
            title=k.title,
            description=k.description,
            config_schema=k.config.model_json_schema(),
            credentials_schema=k.credentials.model_json_schema(),
        )
        for k in KINDS.values()
    ]


def _credentials(core: CoreContext, row: Integration) -> dict[str, Any] | None:
    """The stored credentials, or None if there are none or they cannot be opened."""
    if not row.credentials_sealed:
        return None
    try:
        data = json.loads(core.sealer.open(row.credentials_sealed))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def present(core: CoreContext, row: Integration) -> IntegrationOut:
    """The public view of an integration: credential field names, never their values."""
    creds = _credentials(core, row)
    return IntegrationOut(
        id=row.id,
        organization_id=row.organization_id,
        name=row.name,
        kind=row.kind,
        config=row.config,
        status=row.status,
        last_tested_at=row.last_tested_at,
        last_test_message=row.last_test_message,
        has_credentials=row.credentials_sealed is not None,
        credential_fields=sorted(k for k, v in (creds or {}).items() if v is not None),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _seal(core: CoreContext, credentials: dict[str, Any]) -> str:
    return core.sealer.seal(json.dumps(credentials))


async def list_integrations(
    core: CoreContext, session: AsyncSession, principal: Principal, query: ListQuery
) -> tuple[list[IntegrationOut], int]:
    """One page of the organization's integrations."""
    rows, total = await IntegrationRepository(session, principal.org).page(query)
    return [present(core, r) for r in rows], total


async def get_integration(session: AsyncSession, principal: Principal, id_: str) -> Integration:
    """One integration of the caller's organization."""
    return await IntegrationRepository(session, principal.org).get(id_)


async def create_integration(
    core: CoreContext,
    session: AsyncSession,
    principal: Principal,
    body: IntegrationIn,
    client: ClientInfo,
) -> Integration:
    """Validate config and credentials for the kind, seal the credentials, store."""
    kind = KINDS[body.kind]
    config, credentials = validate(kind, config=body.config, credentials=body.credentials)
    row = Integration(
        id=new_id("int"),
        organization_id=principal.org,
        name=body.name,
        kind=kind.name,
        config=config or {},
        credentials_sealed=_seal(core, credentials or {}),
        status="untested",
        last_test_message="",
        created_by=principal.subject,
    )
    await IntegrationRepository(session, principal.org).add(row)
    await record_by(
        session,
        principal,
        "integrations.created",
        target_type="integration",
        target_id=row.id,
        client=client,
        name=row.name,
        kind=row.kind,
    )
    return row


def _merge(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7396) of a flat config: null removes a key."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


async def update_integration(
    core: CoreContext,
    session: AsyncSession,
    principal: Principal,
    id_: str,
    body: IntegrationUpdate,
    client: ClientInfo,
) -> Integration:
    """Rename, change config or replace credentials; a changed connection is untested again."""
    repo = IntegrationRepository(session, principal.org)
    row = await repo.get(id_)
    kind = KINDS[row.kind]
    changed: list[str] = []
    if body.name is not None and body.name != row.name:
        row.name = body.name
        changed.append("name")
    config, credentials = validate(
        kind,
        config=None if body.config is None else _merge(row.config, body.config),
        credentials=body.credentials,
    )
    if config is not None and config != row.config:
        row.config = config
        changed.append("config")
    if credentials is not None:
        row.credentials_sealed = _seal(core, credentials)
        changed.append("credentials")
    if {"config", "credentials"} & set(changed):
        row.status = "untested"
        row.last_test_message = ""
    if changed:
        row.updated_at = utcnow()
        await repo.flush()
        await record_by(
            session,
            principal,
            "integrations.updated",
            target_type="integration",
            target_id=row.id,
            client=client,
            fields=changed,
        )
    return row


async def delete_integration(
    session: AsyncSession, principal: Principal, id_: str, client: ClientInfo
) -> None:
    """Delete an integration and its sealed credentials."""
    repo = IntegrationRepository(session, principal.org)
    row = await repo.get(id_)
    await repo.remove(row)
    await record_by(
        session,
        principal,
        "integrations.deleted",
        target_type="integration",
        target_id=row.id,
        client=client,
        name=row.name,
        kind=row.kind,
    )


def redact(message: str, secrets: Iterable[str]) -> str:
    """Replace any secret (and its long fragments) that found its way into a message."""
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        message = message.replace(secret, "***")
    return message[:_MESSAGE_LIMIT]


def _secret_values(creds: dict[str, Any]) -> list[str]:
    values: list[str] = []
    for value in creds.values():
        if isinstance(value, str):
            values.append(value)
            if value.lstrip().startswith("{"):  # a key file: each of its strings is secret
                try:
                    inner = json.loads(value)
                except ValueError:
                    continue
                if isinstance(inner, dict):
                    values.extend(v for v in inner.values() if isinstance(v, str))
    return values


async def _run_check(kind: IntegrationKind, config: Any, creds: Any) -> tuple[bool, str]:
    try:
        return True, await kind.check(config, creds)
    except ConnectionFailed as exc:
        return False, str(exc)
    except Exception as exc:
        # A bug or an unexpected library error: say what kind of error, not its text,
        # which may echo request details.
        log.warning("connection test of %s failed unexpectedly", kind.name, exc_info=True)
        return False, f"connection test failed unexpectedly ({type(exc).__name__})"


async def check_connection(
    core: CoreContext,
    session: AsyncSession,
    principal: Principal,
    id_: str,
    client: ClientInfo,
) -> ConnectionTestOut:
    """Really connect with the stored credentials; store and return the outcome."""
    row = await IntegrationRepository(session, principal.org).get(id_)
    kind = KINDS[row.kind]
    started = time.perf_counter()
    creds = _credentials(core, row)
    if creds is None:
        ok, message = (
            False,
            (
                "no usable credentials: they are missing or cannot be decrypted with the "
                "current key; set them again"
            ),
        )
    else:
        try:
            config = kind.config.model_validate(row.config)
            secret = kind.credentials.model_validate(creds)
        except ValidationError:
            ok, message = False, "stored config or credentials no longer fit the kind; update them"
        else:
            ok, message = await _run_check(kind, config, secret)
    latency_ms = int((time.perf_counter() - started) * 1000)
    message = redact(message, _secret_values(creds or {}))
    row.status = "ok" if ok else "failed"
    row.last_tested_at = utcnow()
    row.last_test_message = message
    await record_by(
        session,
        principal,
        "integrations.tested",
        target_type="integration",
        target_id=row.id,
        outcome="success" if ok else "failure",
        client=client,
        latency_ms=latency_ms,
    )
    return ConnectionTestOut(ok=ok, message=message, latency_ms=latency_ms)


async def resolve_integration(
    core: CoreContext, session: AsyncSession, id_: str, body: ResolveIn, client: ClientInfo
) -> ResolvedIntegrationOut:
    """An integration's config and decrypted credentials, for a platform service working
    for ``body.on_behalf_of`` in ``body.organization_id`` (the route has checked the
    internal secret). That principal must still be allowed to read the organization's
    integrations, and the integration must be the organization's (404 otherwise). Every
    resolution is audited in the principal's name.
    """
    principal = await acting_principal(session, body.organization_id, body.on_behalf_of)
    if not principal.can("integrations:read"):
        raise Forbidden("Missing permission integrations:read")
    row = await IntegrationRepository(session, principal.org).get(id_)
    creds = _credentials(core, row)
    if creds is None:
        raise Conflict(
            "The integration has no usable credentials; set them again",
            code="NO_CREDENTIALS",
            details=[{"field": "credentials", "message": "missing or undecryptable"}],
        )
    await record_by(
        session,
        principal,
        "integrations.resolved",
        target_type="integration",
        target_id=row.id,
        client=client,
    )
    return ResolvedIntegrationOut(
        id=row.id,
        organization_id=row.organization_id,
        name=row.name,
        kind=row.kind,
        config=row.config,
        credentials=creds,
    )
