"""Small helpers shared by the Model Training API tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

Auth = Callable[..., dict[str, str]]


async def experiment(
    client: httpx.AsyncClient, auth: Auth, name: str = "exp", org: str = "a"
) -> str:
    """A new experiment's id."""
    r = await client.post("/api/v1/experiments", json={"name": name}, headers=auth(org=org))
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["id"])


async def run(
    client: httpx.AsyncClient, auth: Auth, experiment_id: str, org: str = "a", **body: Any
) -> dict[str, Any]:
    """A new run (its JSON)."""
    r = await client.post(
        "/api/v1/runs", json={"experiment_id": experiment_id, **body}, headers=auth(org=org)
    )
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()["data"]
    return data
