"""Helpers of the governance tests: the policy switch, a promotion request, decisions."""

from __future__ import annotations

from typing import Any

import httpx
from modelops_helpers import Auth, create_model, upload_version


async def models_with_versions(
    client: httpx.AsyncClient, auth: Auth, n: int = 2, name: str = "churn"
) -> None:
    """A model ``name`` with ``n`` READY versions (uploaded by a member)."""
    await create_model(client, auth, name)
    for _ in range(n):
        r = await upload_version(client, auth, name)
        assert r.status_code == 201, r.text


async def require_approval(client: httpx.AsyncClient, auth: Auth, on: bool = True) -> None:
    """Turn the organization's approval policy on (or off), as an admin."""
    r = await client.put(
        "/api/v1/governance/policy",
        json={"require_approval_for_production": on},
        headers=auth("admin"),
    )
    assert r.status_code == 200, r.text


async def promote(
    client: httpx.AsyncClient,
    auth: Auth,
    version: int,
    role: str = "member",
    *,
    archive: bool = False,
    model: str = "churn",
) -> httpx.Response:
    """Ask for version ``version`` to go to Production."""
    return await client.post(
        f"/api/v1/models/{model}/versions/{version}/stage",
        json={"stage": "Production", "archive_existing_versions": archive},
        headers=auth(role),
    )


async def decide(
    client: httpx.AsyncClient,
    auth: Auth,
    approval_id: str,
    verb: str = "approve",
    role: str = "admin",
    org: str = "a",
    comment: str | None = None,
) -> httpx.Response:
    """Approve, reject or cancel an approval."""
    body: dict[str, Any] | None = None if comment is None else {"comment": comment}
    return await client.post(
        f"/api/v1/approvals/{approval_id}/{verb}", json=body, headers=auth(role, org)
    )


async def stage_of(client: httpx.AsyncClient, auth: Auth, version: int) -> str:
    """The stage of version ``version`` of churn."""
    r = await client.get(f"/api/v1/models/churn/versions/{version}", headers=auth("viewer"))
    stage: str = r.json()["data"]["stage"]
    return stage
