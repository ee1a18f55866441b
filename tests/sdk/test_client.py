"""The SDK against the real Core app, in process (ASGI) and over a real port (uvicorn)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from inwire.sdk import AsyncClient, Client, RetryPolicy, Tokens
from inwire.sdk.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized, Unreachable

if TYPE_CHECKING:
    from core_server import RunningCore


def client_for(core: RunningCore, **kw: Any) -> AsyncClient:
    """An async client of ``core``; signs in as its admin unless told otherwise."""
    if not {"api_key", "token", "email"} & kw.keys():
        kw.update(email=core.admin_email, password=core.admin_password)
    return AsyncClient(**core.target(), **kw)


async def test_password_login_happens_on_first_call_and_reports_tokens(core: RunningCore) -> None:
    seen: list[Tokens | None] = []
    async with client_for(core, on_tokens=seen.append) as client:
        assert client.tokens is None

        me = await client.core.me()

        assert me.email == core.admin_email
        assert me.organization_id == core.organization_id
        assert me.role == "owner"
        assert client.tokens is not None
        assert client.tokens.refresh_token
        assert seen == [client.tokens]


async def test_explicit_login_and_logout_revoke_the_session(core: RunningCore) -> None:
    async with AsyncClient(**core.target()) as client:
        grant = await client.login(core.admin_email, core.admin_password)
        access = grant.access_token
        assert (await client.me()).email == core.admin_email

        await client.logout()

        assert client.tokens is None
        async with AsyncClient(**core.target(), token=access) as stale:
            with pytest.raises(Unauthorized) as caught:
                await stale.me()
        assert caught.value.code == "TOKEN_REVOKED"


async def test_a_wrong_password_is_unauthorized_with_the_servers_code(core: RunningCore) -> None:
    async with client_for(core, email=core.admin_email, password="not-the-password") as client:
        with pytest.raises(Unauthorized) as caught:
            await client.core.me()
    assert caught.value.code == "INVALID_CREDENTIALS"
    assert caught.value.status == 401


async def test_an_expired_access_token_is_refreshed_once_and_the_call_retried(
    core: RunningCore,
) -> None:
    async with client_for(core) as first:
        await first.core.me()
        assert first.tokens is not None
        real = first.tokens
    expired = await core.expired_copy(real.access_token)
    seen: list[Tokens | None] = []

    async with client_for(
        core, token=expired, refresh_token=real.refresh_token, on_tokens=seen.append
    ) as client:
        me = await client.core.me()

        assert me.email == core.admin_email
        assert len(seen) == 1
        assert client.tokens is not None
        assert client.tokens.refresh_token not in (None, real.refresh_token)
        assert client.tokens.access_token != expired


async def test_concurrent_calls_with_an_expired_token_share_one_refresh(core: RunningCore) -> None:
    # Refresh tokens work once and reuse revokes the family: two refreshes would end it.
    async with client_for(core) as first:
        await first.core.me()
        assert first.tokens is not None
        real = first.tokens
    expired = await core.expired_copy(real.access_token)
    seen: list[Tokens | None] = []

    async with client_for(
        core, token=expired, refresh_token=real.refresh_token, on_tokens=seen.append
    ) as client:
        results = await asyncio.gather(*(client.core.me() for _ in range(5)))

        assert {me.email for me in results} == {core.admin_email}
        assert len(seen) == 1


async def test_a_token_known_to_be_expiring_is_refreshed_before_the_call(
    core: RunningCore,
) -> None:
    async with client_for(core) as first:
        await first.core.me()
        assert first.tokens is not None
        real = first.tokens
    seen: list[Tokens | None] = []

    async with client_for(
        core,
        token=real.access_token,
        refresh_token=real.refresh_token,
        token_expires_at=datetime.now(UTC),
        on_tokens=seen.append,
    ) as client:
        await client.core.me()

    assert len(seen) == 1
    assert seen[0] is not None
    assert seen[0].access_token != real.access_token


async def test_an_expired_token_without_a_refresh_token_is_unauthorized(
    core: RunningCore,
) -> None:
    async with client_for(core) as first:
        await first.core.me()
        assert first.tokens is not None
        expired = await core.expired_copy(first.tokens.access_token)

    async with client_for(core, token=expired) as client:
        with pytest.raises(Unauthorized) as caught:
            await client.core.me()
    assert caught.value.code == "TOKEN_EXPIRED"


async def test_api_key_authenticates_every_call(core: RunningCore) -> None:
    async with client_for(core) as admin:
        created = await admin.core.api_keys.create("script", role="member")
    assert created.key.startswith("iwk_")

    async with client_for(core, api_key=created.key) as client:
        me = await client.core.me()
        keys = await client.core.api_keys.list()

    assert me.role == "member"
    assert [k.id for k in keys.items] == [created.id]
    assert keys.items[0].prefix == created.prefix
    assert not hasattr(keys.items[0], "key")


async def test_the_pagination_iterator_walks_every_page(core: RunningCore) -> None:
    async with client_for(core) as client:
        names = [f"team-{i:02d}" for i in range(23)]
        for name in names:
            await client.core.teams.create(name)
        pages: list[int] = []
        original = client.core.teams.list

        async def counting(**kw: Any) -> Any:
            pages.append(kw["page"])
            return await original(**kw)

        client.core.teams.list = counting  # type: ignore[method-assign]

        seen = [team.name async for team in client.core.teams.iter(per_page=10)]

    assert seen == names
    assert pages == [1, 2, 3]


async def test_one_page_reports_the_totals(core: RunningCore) -> None:
    async with client_for(core) as client:
        for i in range(3):
            await client.core.teams.create(f"t{i}")
        page = await client.core.teams.list(per_page=2, sort="name", order="asc")

    assert [t.name for t in page.items] == ["t0", "t1"]
    assert (page.page, page.per_page, page.total, page.has_next) == (1, 2, 3, True)


async def test_a_missing_resource_is_not_found(core: RunningCore) -> None:
    async with client_for(core) as client:
        with pytest.raises(NotFound) as caught:
            await client.core.teams.get("team_01NOSUCHTEAM0000000000000")
    assert caught.value.status == 404
    assert caught.value.code == "NOT_FOUND"


async def test_a_missing_permission_is_forbidden(core: RunningCore) -> None:
    password = "viewer-password-0123456789"
    async with client_for(core) as admin:
        await admin.core.users.add(
            "viewer@example.com", role="viewer", name="Vera", password=password
        )
    async with client_for(core, email="viewer@example.com", password=password) as viewer:
        with pytest.raises(Forbidden) as caught:
            await viewer.core.teams.create("not-allowed")
    assert caught.value.status == 403
    assert "teams:create" in caught.value.message


async def test_validation_and_conflict_errors_keep_their_details(core: RunningCore) -> None:
    async with client_for(core) as client:
        await client.core.teams.create("dupe")
        with pytest.raises(Conflict):
            await client.core.teams.create("dupe")
        with pytest.raises(Invalid) as caught:
            await client.core.teams.create("")
    assert caught.value.details
    assert caught.value.details[0]["field"]


async def test_core_resources_cover_members_invitations_and_service_accounts(
    core: RunningCore,
) -> None:
    async with client_for(core) as client:
        member = await client.core.users.add(
            "ada@example.com", role="member", name="Ada", password="ada-password-0123456789"
        )
        assert (await client.core.users.find("ADA@example.com")) == member
        promoted = await client.core.users.set_role(member.id, "admin")
        assert promoted.role == "admin"

        team = await client.core.teams.create("research", description="papers")
        await client.core.teams.add_member(team.id, member.id)
        changed = await client.core.teams.set_member_role(team.id, member.id, "maintainer")
        assert changed.role == "maintainer"
        members = [m.email async for m in client.core.teams.iter_members(team.id)]
        assert "ada@example.com" in members
        await client.core.teams.remove_member(team.id, member.id)
        assert (await client.core.teams.find("research")) is not None
        await client.core.teams.delete(team.id)
        assert (await client.core.teams.find("research")) is None

        invitation = await client.core.invitations.create("bob@example.com", role="viewer")
        assert invitation.token
        pending = await client.core.invitations.list(status="pending")
        assert [i.id for i in pending.items] == [invitation.id]
        await client.core.invitations.revoke(invitation.id)
        assert (await client.core.invitations.list(status="pending")).total == 0

        account = await client.core.service_accounts.create("ci", role="member")
        key = await client.core.service_accounts.create_key(account.id, "ci-key")
        assert key.service_account_id == account.id
        assert (await client.core.service_accounts.keys(account.id)).total == 1
        revoked = await client.core.api_keys.revoke(key.id)
        assert revoked.status == "revoked"
        await client.core.service_accounts.delete(account.id)

        await client.core.users.remove(member.id)
        assert (await client.core.users.find("ada@example.com")) is None


async def test_switching_organization_replaces_the_sessions_tokens(core: RunningCore) -> None:
    async with client_for(core) as client:
        other = await client.core.organizations.create("Second")
        names = {o.name async for o in client.core.organizations.iter()}
        assert {"Second"} <= names

        await client.core.organizations.switch(other.id)

        assert (await client.core.me()).organization_id == other.id
        assert client.tokens is not None
        assert client.tokens.organization_id == other.id


def test_the_blocking_client_works_outside_an_event_loop(served_core: RunningCore) -> None:
    with Client(
        core_url=served_core.url, email=served_core.admin_email, password=served_core.admin_password
    ) as client:
        team = client.core.teams.create("blocking")
        assert [t.id for t in client.core.teams.iter()] == [team.id]
        assert client.me().email == served_core.admin_email


async def test_the_blocking_client_works_inside_a_running_event_loop(
    served_core: RunningCore,
) -> None:
    asyncio.get_running_loop()  # this test body runs on pytest-asyncio's loop
    with Client(
        core_url=served_core.url, email=served_core.admin_email, password=served_core.admin_password
    ) as client:
        client.core.teams.create("from-a-coroutine")
        names = [t.name for t in client.core.teams.list().items]
        with pytest.raises(NotFound):
            client.core.teams.get("team_01NOSUCHTEAM0000000000000")
    assert names == ["from-a-coroutine"]


def test_a_closed_blocking_client_refuses_calls(served_core: RunningCore) -> None:
    client = Client(core_url=served_core.url, api_key="iwk_unused")
    client.close()
    client.close()

    with pytest.raises(RuntimeError, match="closed"):
        client.me()


async def test_an_unreachable_address_raises_unreachable_naming_it() -> None:
    async with AsyncClient(
        core_url="http://127.0.0.1:9", api_key="iwk_x", retry=RetryPolicy(backoff=0.01)
    ) as client:
        with pytest.raises(Unreachable) as caught:
            await client.core.me()
    assert caught.value.url == "http://127.0.0.1:9"
    assert "core at http://127.0.0.1:9" in caught.value.message
    assert caught.value.status == 503


def test_the_gateway_address_puts_each_service_under_its_prefix() -> None:
    gateway = AsyncClient("http://gw:8080/", api_key="iwk_x")
    direct = AsyncClient("http://gw:8080", core_url="http://core:18000/", api_key="iwk_x")
    mapped = AsyncClient(services={"core": "http://other:1"}, api_key="iwk_x")

    assert gateway.core.api.base_url == "http://gw:8080/core"
    assert direct.core.api.base_url == "http://core:18000"
    assert mapped.core.api.base_url == "http://other:1"
    for name in ("training", "synthex", "modelops"):
        assert getattr(gateway, f"{name}_api").base_url == f"http://gw:8080/{name}"
    beside = AsyncClient(
        "http://gw:8080", services={"synthex": "http://synthex:18090/"}, api_key="iwk_x"
    )
    assert beside.synthex_api.base_url == "http://synthex:18090"
    assert beside.modelops_api.base_url == "http://gw:8080/modelops"


def test_the_environment_supplies_url_and_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INWIRE_URL", "http://env-gateway:8080")
    monkeypatch.setenv("INWIRE_API_KEY", "iwk_from_env")

    client = AsyncClient()

    assert client.core.api.base_url == "http://env-gateway:8080/core"
    assert client.session.api_key == "iwk_from_env"


@pytest.mark.parametrize(
    "kw",
    [
        {"api_key": "iwk_x", "email": "a@b.example", "password": "p"},
        {"email": "a@b.example"},
        {"refresh_token": "r"},
    ],
)
def test_contradictory_credentials_are_refused(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"api_key|email|refresh_token"):
        AsyncClient("http://gw", **kw)
