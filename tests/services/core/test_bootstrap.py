"""First start of Core creates an owner whose password is printed once and saved privately."""

from __future__ import annotations

import json
from pathlib import Path

import httpx


async def test_bootstrap_creates_owner_once_with_private_credentials(core_settings) -> None:
    from inwire.services.core.app import create_app

    settings = core_settings.model_copy(update={"bootstrap": True})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass
    cred = Path(settings.home) / "credentials"
    assert oct(cred.stat().st_mode & 0o777) == "0o600"
    values = json.loads(cred.read_text())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.post(
                "/api/v1/auth/login",
                json={"email": values["email"], "password": values["password"]},
            )
            assert r.status_code == 200
            assert r.json()["data"]["role"] == "owner"
    assert json.loads(cred.read_text()) == values
