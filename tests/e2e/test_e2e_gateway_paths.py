"""The gateway's refusals through a real ``inwire up``: 401, 403, 404, 413, 429 and 504.

Every call goes to the gateway's port, which forwards to the services' own processes. The
limits are narrowed through the gateway's settings environment so each refusal is cheap to
provoke: a 1 MiB body limit, a two-request budget for one route group, no cache of
exchanged API keys (a revoked key fails at once), and, on a second platform, a one-second
upstream timeout in front of a Core whose password hashing is slow.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from e2e_support import Platform, running_platform

from inwire.kit.testing.plugin import assert_error

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
#: Two requests at once, then one per 100 s: the third request in a row is refused.
INVITATIONS_BUDGET = {"rate": 0.01, "burst": 2}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """``inwire up`` with a small body limit, a tiny budget for invitations, no key cache."""
    with running_platform(
        tmp_path_factory.mktemp("paths"),
        INWIRE_GATEWAY_MAX_BODY_BYTES=str(MiB),
        INWIRE_GATEWAY_API_KEY_CACHE_SECONDS="0",
        INWIRE_GATEWAY_ROUTE_GROUPS=json.dumps({"invitations": ["/core/api/v1/invitations"]}),
        INWIRE_GATEWAY_GROUP_LIMITS=json.dumps({"invitations": INVITATIONS_BUDGET}),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(platform: Platform) -> Iterator[httpx.Client]:
    with platform.client() as c:
        yield c


@pytest.fixture(scope="module")
def owner(platform: Platform, client: httpx.Client) -> dict[str, str]:
    """Bearer headers of the first admin (owner of the first organization)."""
    return platform.login(client)


def new_key(client: httpx.Client, owner: dict[str, str], role: str, name: str) -> dict[str, str]:
    """An API key of the owner with ``role``: its id and secret."""
    response = client.post(
        "/core/api/v1/api-keys", json={"name": name, "role": role}, headers=owner
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    return {"id": data["id"], "key": data["key"]}


def upload_csv(
    client: httpx.Client, headers: dict[str, str], name: str, body: bytes
) -> httpx.Response:
    return client.post(
        "/synthex/api/v1/datasets",
        params={"filename": f"{name}.csv", "name": name},
        content=body,
        headers={**headers, "Content-Type": "text/csv"},
    )


def test_calls_without_or_with_bad_credentials_are_401(
    client: httpx.Client, owner: dict[str, str]
) -> None:
    for path in ("/core/api/v1/teams", "/synthex/api/v1/datasets", "/training/api/v1/jobs"):
        assert_error(client.get(path), 401)
    assert_error(
        client.get("/core/api/v1/teams", headers={"Authorization": "Bearer not-a-token"}), 401
    )
    forged = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    assert_error(
        client.get("/synthex/api/v1/datasets", headers={"Authorization": f"Bearer {forged}"}),
        401,
    )
    assert_error(client.get("/core/api/v1/teams", headers={"X-API-Key": "iwk_" + "x" * 40}), 401)

    key = new_key(client, owner, "member", "short-lived")
    assert client.get("/core/api/v1/teams", headers={"X-API-Key": key["key"]}).status_code == 200
    revoked = client.delete(f"/core/api/v1/api-keys/{key['id']}", headers=owner)
    assert revoked.status_code in (200, 204), revoked.text
    # No cache of exchanged keys here: the revoked key is refused on its next use.
    assert_error(client.get("/core/api/v1/teams", headers={"X-API-Key": key["key"]}), 401)
    assert_error(
        client.get("/synthex/api/v1/datasets", headers={"Authorization": f"Bearer {key['key']}"}),
        401,
    )


def test_a_viewer_doing_a_members_work_is_403(client: httpx.Client, owner: dict[str, str]) -> None:
    viewer = {"X-API-Key": new_key(client, owner, "viewer", "read-only")["key"]}
    assert client.get("/core/api/v1/teams", headers=viewer).status_code == 200
    assert client.get("/synthex/api/v1/datasets", headers=viewer).status_code == 200
    assert_error(
        client.post("/core/api/v1/teams", json={"name": "not-allowed"}, headers=viewer), 403
    )
    assert_error(upload_csv(client, viewer, "not-allowed", b"a,b\n1,2\n"), 403)
    listed = client.get("/synthex/api/v1/datasets", headers=viewer).json()["data"]
    assert "not-allowed" not in [d["name"] for d in listed]


def test_another_organizations_resources_and_unknown_routes_are_404(
    client: httpx.Client, owner: dict[str, str]
) -> None:
    created = client.post("/core/api/v1/organizations", json={"name": "Other"}, headers=owner)
    assert created.status_code == 201, created.text
    switched = client.post(
        "/core/api/v1/auth/switch-organization",
        json={"organization_id": created.json()["data"]["id"]},
        headers=owner,
    )
    assert switched.status_code == 200, switched.text
    other = {"Authorization": f"Bearer {switched.json()['data']['access_token']}"}
    team = client.post("/core/api/v1/teams", json={"name": "theirs"}, headers=other)
    assert team.status_code == 201, team.text
    dataset = upload_csv(client, other, "theirs", b"id,amount\n1,2.5\n2,3.5\n")
    assert dataset.status_code == 202, dataset.text
    team_path = f"/core/api/v1/teams/{team.json()['data']['id']}"
    dataset_path = f"/synthex/api/v1/datasets/{dataset.json()['data']['dataset']['id']}"

    for path in (team_path, dataset_path):
        assert client.get(path, headers=other).status_code == 200
        assert_error(client.get(path, headers=owner), 404)
    assert_error(client.get("/nowhere/api/v1/things", headers=owner), 404, "NOT_FOUND")
    assert_error(client.get("/core/api/v1/no-such-thing", headers=owner), 404)
    assert_error(client.get("/synthex/api/v1/no-such-thing", headers=owner), 404)


def test_a_body_over_the_gateways_limit_is_413_and_stores_nothing(
    client: httpx.Client, owner: dict[str, str]
) -> None:
    row = b"1234567890,abcdefghijklmnopqrstuvwxyz\n"
    big = b"n,s\n" + row * (2 * MiB // len(row))
    # Declared too long: refused before a byte is read.
    assert_error(upload_csv(client, owner, "too-big", big), 413, "PAYLOAD_TOO_LARGE")

    # Chunked, with no length to check up front: cut off once past the limit.
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = client.post(
        "/synthex/api/v1/datasets",
        params={"filename": "too-big-chunked.csv", "name": "too-big-chunked"},
        content=chunks(),
        headers={**owner, "Content-Type": "text/csv"},
    )
    assert_error(streamed, 413, "PAYLOAD_TOO_LARGE")

    fits = upload_csv(client, owner, "fits", big[: MiB // 2])
    assert fits.status_code == 202, fits.text
    names = [
        d["name"]
        for d in client.get(
            "/synthex/api/v1/datasets", params={"per_page": 100}, headers=owner
        ).json()["data"]
    ]
    assert "fits" in names
    assert not {"too-big", "too-big-chunked"} & set(names)


def test_a_route_groups_budget_runs_out_with_429(
    client: httpx.Client, owner: dict[str, str]
) -> None:
    for _ in range(INVITATIONS_BUDGET["burst"]):
        allowed = client.get("/core/api/v1/invitations", headers=owner)
        assert allowed.status_code == 200, allowed.text
        assert "ratelimit-limit" in allowed.headers
    refused = client.get("/core/api/v1/invitations", headers=owner)
    assert_error(refused, 429, "RATE_LIMITED")
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["details"][0]["group"] == "invitations"
    # Other routes spend the caller's shared budget, which is far from empty.
    assert client.get("/core/api/v1/teams", headers=owner).status_code == 200


def test_the_internal_secret_works_only_between_services_never_through_the_gateway(
    platform: Platform, client: httpx.Client, owner: dict[str, str]
) -> None:
    created = client.post(
        "/core/api/v1/integrations",
        json={
            "name": "warehouse",
            "kind": "postgres",
            "config": {"host": "db.internal", "database": "sales"},
            "credentials": {"user": "reader", "password": "never-shown-to-users"},
        },
        headers=owner,
    )
    assert created.status_code == 201, created.text
    path = f"/api/v1/integrations/{created.json()['data']['id']}/resolve"
    me = client.get("/core/api/v1/auth/me", headers=owner).json()["data"]
    body = {"organization_id": me["organization_id"], "on_behalf_of": me["id"]}

    core = platform.url_of("core")
    guessed = client.post(f"/core{path}", json=body, headers={**owner, "X-Inwire-Internal": "x"})
    assert_error(guessed, 403, "INTERNAL_ONLY")
    wrong = httpx.post(
        f"{core}{path}", json=body, headers={"X-Inwire-Internal": "x"}, trust_env=False
    )
    assert_error(wrong, 403, "INTERNAL_ONLY")
    # Even the installation's real secret (made on that first check, shared by the services
    # through the home) is dropped by the gateway: from outside, the endpoint is closed.
    secret_file = platform.home / "internal-secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    secret = secret_file.read_text().strip()
    stolen = client.post(f"/core{path}", json=body, headers={**owner, "X-Inwire-Internal": secret})
    assert_error(stolen, 403, "INTERNAL_ONLY")
    assert "never-shown-to-users" not in stolen.text

    # Service to service, on Core's own port, the secret opens it.
    direct = httpx.post(
        f"{core}{path}",
        json=body,
        headers={"X-Inwire-Internal": secret},
        trust_env=False,
        timeout=30,
    )
    assert direct.status_code == 200, direct.text
    assert direct.json()["data"]["credentials"]["password"] == "never-shown-to-users"


@pytest.fixture(scope="module")
def slow_core_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """``inwire up`` whose gateway waits one second for an answer, in front of a Core whose
    password hashing (argon2id, 150 passes over 19 MiB) takes several seconds."""
    with running_platform(
        tmp_path_factory.mktemp("timeout"),
        INWIRE_GATEWAY_UPSTREAM_TIMEOUT_SECONDS="1",
        INWIRE_CORE_ARGON2_TIME_COST="150",
    ) as running:
        yield running


def test_an_upstream_slower_than_the_gateways_timeout_is_504(
    slow_core_platform: Platform,
) -> None:
    credentials = slow_core_platform.credentials()
    with slow_core_platform.client() as client:
        login = client.post(
            "/core/api/v1/auth/login",
            json={"email": credentials["email"], "password": credentials["password"]},
        )
        assert_error(login, 504, "UPSTREAM_TIMEOUT")
        assert login.json()["error"]["details"] == [{"service": "core"}]
        # One timeout does not open Core's circuit: once Core is done hashing, quick
        # calls pass again.
        deadline = time.monotonic() + 60
        while (keys := client.get("/core/.well-known/jwks.json")).status_code != 200:
            assert keys.status_code == 504, keys.text
            assert time.monotonic() < deadline, "Core did not answer quickly again"
            time.sleep(0.5)
        assert keys.json()["keys"]
