"""Core test fixtures: Core on a fresh database, seeded with the plugin's test identities."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from inwire.kit.auth.tokens import sign_token
from inwire.kit.testing.identities import ALL, ORGS, identity
from inwire.services.core.app import create_app
from inwire.services.core.organizations.models import Membership, Organization
from inwire.services.core.settings import CoreSettings
from inwire.services.core.users.models import User

#: Cheap argon2 parameters: tests need speed, not resistance to cracking.
FAST_HASH: dict[str, Any] = {"argon2_time_cost": 1, "argon2_memory_kib": 1024}


@pytest.fixture
def core_settings(inwire_settings: dict[str, Any]) -> CoreSettings:
    """Core's settings on the test database, without the first-start admin."""
    return CoreSettings(**inwire_settings, bootstrap=False, **FAST_HASH)


@pytest.fixture
def service_app(core_settings: CoreSettings) -> FastAPI:
    """Core, built from test settings."""
    return create_app(core_settings)


@pytest.fixture
async def seeded(app: FastAPI) -> None:
    """Organizations a and b, and one user per role in each, with their test passwords."""
    core = app.state.core
    async with core.db.session() as session:
        for key, org_id in ORGS.items():
            session.add(Organization(id=org_id, name=f"Org {key.upper()}", slug=f"org-{key}"))
        await session.flush()
        for who in ALL:
            session.add(
                User(
                    id=who.user_id,
                    email=who.email,
                    name=f"{who.role} {who.org_key}",
                    password_hash=await core.passwords.hash(who.password),
                )
            )
        await session.flush()
        for who in ALL:
            session.add(
                Membership(
                    id=f"mem_{who.user_id[4:]}",
                    organization_id=who.org_id,
                    user_id=who.user_id,
                    role=who.role,
                )
            )


@pytest.fixture
async def token_factory(app: FastAPI, seeded: None) -> Callable[..., str]:
    """Access tokens signed with Core's real current key for the seeded identities."""
    core = app.state.core
    kid, key = await core.keyring.signing_key()

    def mint(role: str = "admin", org: str = "a", **claims: Any) -> str:
        who = identity(role, org)
        now = int(time.time())
        body = {
            "iss": core.settings.issuer,
            "aud": core.settings.audience,
            "sub": who.user_id,
            "org": who.org_id,
            "roles": [role],
            "kind": "user",
            "name": who.email,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
        }
        body.update(claims)
        return sign_token(key, kid, body)

    return mint
