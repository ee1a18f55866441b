"""kit.auth.ServiceAccountCredentials against the real Core: exchange, cache, use."""

from __future__ import annotations

from inwire.kit.auth.service_account import ServiceAccountCredentials
from inwire.kit.ids import new_id
from inwire.kit.peers import ServiceClient
from inwire.kit.testing.identities import ORGS, identity
from inwire.services.core.apikeys.models import ApiKey, ServiceAccount
from inwire.services.core.security import new_api_key, token_hash


async def test_service_account_key_gives_cached_tokens_that_core_accepts(app, seeded) -> None:
    key = new_api_key()
    async with app.state.db.session() as session:
        account = ServiceAccount(
            id=new_id("sva"),
            organization_id=ORGS["a"],
            name="trainer",
            role="member",
            created_by=identity().user_id,
        )
        session.add(account)
        await session.flush()
        session.add(
            ApiKey(
                id=new_id("key"),
                organization_id=ORGS["a"],
                name="k",
                prefix=key[:12],
                key_hash=token_hash(key),
                role="member",
                service_account_id=account.id,
                created_by=identity().user_id,
            )
        )
    credentials = ServiceAccountCredentials(key, app=app)
    first = await credentials()
    assert await credentials() == first
    client = ServiceClient(app=app, credentials=credentials)
    me = await client.get("/api/v1/auth/me")
    assert me["kind"] == "service"
    assert me["id"] == account.id
    assert me["organization_id"] == ORGS["a"]
    await client.close()
    await credentials.close()
