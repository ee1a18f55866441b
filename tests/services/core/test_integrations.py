"""Core integrations: per-kind config, sealed credentials, real connection tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
import respx
from sqlalchemy import select

from inwire.kit.testing.plugin import assert_error
from inwire.kit.testing.serving import s3_server
from inwire.services.core.audit.models import AuditEvent
from inwire.services.core.integrations.models import Integration
from inwire.services.core.integrations.service import redact

pytestmark = pytest.mark.usefixtures("seeded")

BASE = "/api/v1/integrations"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "ghp_0123456789abcdefghijABCDEFGHIJ012345"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3 protocol server (moto) on a free local port."""
    with s3_server() as url:
        yield url


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A fresh bucket on the S3 server."""
    name = f"inwire-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=s3_endpoint,
        aws_access_key_id="AKIAEXAMPLE",
        aws_secret_access_key=SECRET,
    )
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="data/one.csv", Body=b"a,b\n1,2\n")
    return name


def s3_body(endpoint: str, bucket: str, name: str = "lake", **config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "s3",
        "config": {"bucket": bucket, "region": "us-east-1", "endpoint_url": endpoint, **config},
        "credentials": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET},
    }


def github_body(name: str = "gh", owner: str = "inwire-ai") -> dict[str, Any]:
    return {
        "name": name,
        "kind": "github",
        "config": {"owner": owner},
        "credentials": {"token": TOKEN},
    }


async def create(client, auth, body: dict[str, Any], role: str = "admin", org: str = "a") -> Any:
    r = await client.post(BASE, json=body, headers=auth(role, org))
    assert r.status_code == 201, r.text
    return r.json()["data"]


async def run_test(client, auth, integration_id: str) -> dict[str, Any]:
    r = await client.post(f"{BASE}/{integration_id}/test", headers=auth())
    assert r.status_code == 200, r.text
    return r.json()["data"]


async def audit_actions(app, target_id: str) -> list[tuple[str, str]]:
    async with app.state.core.db.session() as session:
        rows = await session.execute(
            select(AuditEvent).where(AuditEvent.target_id == target_id).order_by(AuditEvent.id)
        )
        return [(e.action, e.outcome) for e in rows.scalars()]


# -- kinds ---------------------------------------------------------------------------------------


async def test_kinds_publish_json_schemas_of_config_and_credentials(client, auth) -> None:
    r = await client.get(f"{BASE}/kinds", headers=auth("viewer"))
    assert r.status_code == 200, r.text
    kinds = {k["kind"]: k for k in r.json()["data"]}
    assert set(kinds) == {
        "s3",
        "gcs",
        "azure_blob",
        "github",
        "gitlab",
        "container_registry",
        "huggingface",
        "postgres",
    }
    s3 = kinds["s3"]
    assert s3["config_schema"]["required"] == ["bucket"]
    assert {"bucket", "region", "endpoint_url", "prefix"} <= set(s3["config_schema"]["properties"])
    assert set(s3["credentials_schema"]["properties"]) == {"access_key_id", "secret_access_key"}
    assert kinds["github"]["config_schema"]["properties"]["api_url"]["default"] == (
        "https://api.github.com"
    )
    assert_error(await client.get(f"{BASE}/kinds"), 401)


# -- create, read, sealing -----------------------------------------------------------------------


async def test_create_seals_credentials_and_never_returns_them(app, client, auth) -> None:
    data = await create(client, auth, s3_body("http://127.0.0.1:9", "my-bucket", prefix="raw/"))
    assert data["id"].startswith("int_")
    assert data["kind"] == "s3"
    assert data["config"] == {
        "bucket": "my-bucket",
        "region": "us-east-1",
        "endpoint_url": "http://127.0.0.1:9",
        "prefix": "raw/",
    }
    assert data["status"] == "untested"
    assert data["has_credentials"] is True
    assert data["credential_fields"] == ["access_key_id", "secret_access_key"]
    assert data["created_by"].startswith("usr_")
    got = await client.get(f"{BASE}/{data['id']}", headers=auth("member"))
    listed = await client.get(BASE, headers=auth("viewer"))
    for response in (got, listed):
        assert response.status_code == 200
        assert SECRET not in response.text
        assert "AKIAEXAMPLE" not in response.text
    assert got.json()["data"] == data
    async with app.state.core.db.session() as session:
        row = await session.get(Integration, data["id"])
        assert row is not None
        assert row.credentials_sealed
        assert SECRET not in row.credentials_sealed
        opened = json.loads(app.state.core.sealer.open(row.credentials_sealed))
        assert opened == {"access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET}
    assert await audit_actions(app, data["id"]) == [("integrations.created", "success")]
    duplicate = s3_body("http://127.0.0.1:9", "other-bucket")
    assert_error(await client.post(BASE, json=duplicate, headers=auth()), 409, "CONFLICT")
    # Another organization may use the same name.
    await create(client, auth, duplicate, org="b")


async def test_create_validates_config_and_credentials_per_kind(client, auth) -> None:
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"name": "x", "kind": "ftp", "config": {}, "credentials": {}}, {"kind"}),
        ({"name": "", "kind": "github", "credentials": {"token": "t"}}, {"name"}),
        ({"name": "x", "kind": "github", "config": {"owner": "o"}}, {"credentials"}),
        (
            {"name": "x", "kind": "s3", "config": {}, "credentials": {"access_key_id": "a"}},
            {"config.bucket", "credentials.secret_access_key"},
        ),
        (
            {**s3_body("ftp://host", "Bad_Bucket"), "name": "x"},
            {"config.bucket", "config.endpoint_url"},
        ),
        ({**github_body(), "config": {"owner": "o", "colour": "red"}}, {"config.colour"}),
        (
            {
                "name": "x",
                "kind": "azure_blob",
                "config": {"account": "acct01", "container": "models"},
                "credentials": {"connection_string": SECRET, "account_key": SECRET},
            },
            {"credentials"},
        ),
        (
            {
                "name": "x",
                "kind": "gcs",
                "config": {"bucket": "b-1", "project": "proj-123"},
                "credentials": {"service_account_json": SECRET},
            },
            {"credentials"},
        ),
    ]
    for body, fields in cases:
        r = await client.post(BASE, json=body, headers=auth())
        assert_error(r, 400, "VALIDATION_ERROR")
        assert {d["field"] for d in r.json()["error"]["details"]} == fields, r.text
        assert SECRET not in r.text


async def test_only_admins_change_integrations_and_other_orgs_see_404(client, auth) -> None:
    data = await create(client, auth, github_body())
    url = f"{BASE}/{data['id']}"
    for role in ("member", "viewer"):
        headers = auth(role)
        assert (await client.get(url, headers=headers)).status_code == 200
        assert_error(await client.post(BASE, json=github_body("x"), headers=headers), 403)
        assert_error(await client.patch(url, json={"name": "y"}, headers=headers), 403)
        assert_error(await client.delete(url, headers=headers), 403)
        assert_error(await client.post(f"{url}/test", headers=headers), 403)
    owner = auth("owner")
    assert (await client.patch(url, json={"name": "owned"}, headers=owner)).status_code == 200
    # Organization b's admin cannot tell that organization a's integration exists.
    other = auth("admin", "b")
    assert_error(await client.get(url, headers=other), 404, "NOT_FOUND")
    assert_error(await client.patch(url, json={"name": "z"}, headers=other), 404)
    assert_error(await client.delete(url, headers=other), 404)
    assert_error(await client.post(f"{url}/test", headers=other), 404)
    assert (await client.get(BASE, headers=other)).json()["meta"]["total"] == 0
    assert_error(await client.get(BASE), 401)


async def test_list_paginates_sorts_and_filters(app, client, auth) -> None:
    for name in ("delta", "alpha", "charlie"):
        await create(client, auth, github_body(name))
    s3 = await create(client, auth, s3_body("http://127.0.0.1:9", "bucket-x", name="bravo"))
    async with app.state.core.db.session() as session:
        row = await session.get(Integration, s3["id"])
        assert row is not None
        row.status = "failed"

    r = await client.get(
        BASE, params={"sort": "name", "order": "asc", "per_page": 3}, headers=auth()
    )
    body = r.json()
    assert [i["name"] for i in body["data"]] == ["alpha", "bravo", "charlie"]
    assert body["meta"] == {"page": 1, "per_page": 3, "total": 4}
    r = await client.get(
        BASE, params={"sort": "name", "order": "asc", "per_page": 3, "page": 2}, headers=auth()
    )
    assert [i["name"] for i in r.json()["data"]] == ["delta"]
    r = await client.get(BASE, params={"kind": "github", "sort": "name"}, headers=auth())
    assert [i["name"] for i in r.json()["data"]] == ["delta", "charlie", "alpha"]
    r = await client.get(BASE, params={"status": "failed"}, headers=auth())
    assert [i["name"] for i in r.json()["data"]] == ["bravo"]
    r = await client.get(BASE, params={"status": "untested", "kind": "s3"}, headers=auth())
    assert r.json()["meta"]["total"] == 0
    for bad in ({"sort": "kind"}, {"kind": "ftp"}, {"status": "meh"}, {"per_page": 101}):
        assert_error(await client.get(BASE, params=bad, headers=auth()), 400, "VALIDATION_ERROR")


# -- update and delete ---------------------------------------------------------------------------


async def test_patch_merges_config_replaces_credentials_and_resets_status(
    app, client, auth
) -> None:
    data = await create(client, auth, s3_body("http://127.0.0.1:9", "bucket-a", prefix="raw/"))
    url = f"{BASE}/{data['id']}"
    async with app.state.core.db.session() as session:
        row = await session.get(Integration, data["id"])
        assert row is not None
        row.status, row.last_test_message = "ok", "listed"
    r = await client.patch(
        url,
        json={"config": {"bucket": "bucket-b", "prefix": None}},
        headers=auth(),
    )
    assert r.status_code == 200, r.text
    updated = r.json()["data"]
    assert updated["config"] == {
        "bucket": "bucket-b",
        "region": "us-east-1",
        "endpoint_url": "http://127.0.0.1:9",
    }
    assert updated["status"] == "untested"
    assert updated["last_test_message"] == ""

    new_secret = "another-secret-access-key-0000"
    r = await client.patch(
        url,
        json={"credentials": {"access_key_id": "AKIANEW", "secret_access_key": new_secret}},
        headers=auth(),
    )
    assert r.status_code == 200
    assert new_secret not in r.text
    async with app.state.core.db.session() as session:
        row = await session.get(Integration, data["id"])
        assert row is not None
        assert row.credentials_sealed
        opened = json.loads(app.state.core.sealer.open(row.credentials_sealed))
        assert opened["secret_access_key"] == new_secret

    r = await client.patch(url, json={"name": "renamed"}, headers=auth())
    assert r.json()["data"]["name"] == "renamed"
    assert await audit_actions(app, data["id"]) == [
        ("integrations.created", "success"),
        ("integrations.updated", "success"),
        ("integrations.updated", "success"),
        ("integrations.updated", "success"),
    ]


async def test_patch_is_validated_against_the_kind_and_delete_removes(app, client, auth) -> None:
    await create(client, auth, github_body("taken"))
    data = await create(client, auth, github_body())
    url = f"{BASE}/{data['id']}"
    r = await client.patch(url, json={"config": {"owner": "-bad-"}}, headers=auth())
    assert_error(r, 400, "VALIDATION_ERROR")
    assert r.json()["error"]["details"][0]["field"] == "config.owner"
    r = await client.patch(url, json={"config": {"owner": None}}, headers=auth())
    assert_error(r, 400, "VALIDATION_ERROR")
    r = await client.patch(url, json={"credentials": {"password": TOKEN}}, headers=auth())
    assert_error(r, 400, "VALIDATION_ERROR")
    assert TOKEN not in r.text
    assert_error(await client.patch(url, json={"name": ""}, headers=auth()), 400)
    assert_error(await client.patch(url, json={"name": "taken"}, headers=auth()), 409)
    assert (await client.get(url, headers=auth())).json()["data"]["config"]["owner"] == "inwire-ai"

    r = await client.delete(url, headers=auth())
    assert r.status_code == 204
    assert_error(await client.get(url, headers=auth()), 404)
    assert_error(await client.delete(url, headers=auth()), 404)
    assert (await audit_actions(app, data["id"]))[-1] == ("integrations.deleted", "success")


# -- connection tests ----------------------------------------------------------------------------


async def test_s3_connection_test_against_a_real_s3_server(
    app, client, auth, s3_endpoint, bucket
) -> None:
    good = await create(client, auth, s3_body(s3_endpoint, bucket, prefix="data/"))
    result = await run_test(client, auth, good["id"])
    assert result["ok"] is True, result
    assert bucket in result["message"]
    assert result["latency_ms"] >= 0
    stored = (await client.get(f"{BASE}/{good['id']}", headers=auth())).json()["data"]
    assert stored["status"] == "ok"
    assert stored["last_tested_at"] is not None
    assert stored["last_test_message"] == result["message"]

    missing = await create(client, auth, s3_body(s3_endpoint, "no-such-bucket-here", name="gone"))
    result = await run_test(client, auth, missing["id"])
    assert result["ok"] is False
    assert result["message"] == "bucket 'no-such-bucket-here' does not exist (NoSuchBucket)"
    assert SECRET not in json.dumps(result)
    stored = (await client.get(f"{BASE}/{missing['id']}", headers=auth())).json()["data"]
    assert stored["status"] == "failed"
    assert await audit_actions(app, missing["id"]) == [
        ("integrations.created", "success"),
        ("integrations.tested", "failure"),
    ]

    unreachable = await create(client, auth, s3_body("http://127.0.0.1:9", bucket, name="down"))
    result = await run_test(client, auth, unreachable["id"])
    assert result["ok"] is False
    assert result["message"].startswith("could not reach S3")


async def test_github_connection_test_checks_token_and_owner(client, auth) -> None:
    data = await create(client, auth, github_body())
    with respx.mock(assert_all_called=False) as mock:
        user = mock.get("https://api.github.com/user")
        user.respond(200, json={"login": "octocat"})
        owner = mock.get("https://api.github.com/users/inwire-ai")
        owner.respond(200, json={"login": "inwire-ai"})
        result = await run_test(client, auth, data["id"])
        assert result == {
            "ok": True,
            "message": "authenticated as octocat; owner 'inwire-ai' found",
            "latency_ms": result["latency_ms"],
        }
        assert user.calls.last.request.headers["authorization"] == f"Bearer {TOKEN}"

        owner.respond(404, json={"message": "Not Found"})
        result = await run_test(client, auth, data["id"])
        assert result["ok"] is False
        assert "owner 'inwire-ai' was not found" in result["message"]

        user.respond(401, json={"message": "Bad credentials"})
        result = await run_test(client, auth, data["id"])
        assert result["ok"] is False
        assert result["message"] == "GitHub rejected the credentials (401 Unauthorized)"

        user.side_effect = httpx.ConnectError("connection refused")
        result = await run_test(client, auth, data["id"])
        assert result["ok"] is False
        assert result["message"] == "could not reach GitHub at api.github.com: ConnectError"


async def test_gitlab_and_huggingface_tests_check_access_to_the_namespace(client, auth) -> None:
    data = await create(
        client,
        auth,
        {
            "name": "gl",
            "kind": "gitlab",
            "config": {"group": "ml/vision", "project": "detector", "url": "https://git.corp"},
            "credentials": {"token": TOKEN},
        },
    )
    with respx.mock(assert_all_called=False) as mock:
        user = mock.get("https://git.corp/api/v4/user").respond(200, json={"username": "ada"})
        project = mock.get("https://git.corp/api/v4/projects/ml%2Fvision%2Fdetector")
        project.respond(200, json={"id": 7})
        result = await run_test(client, auth, data["id"])
        assert result["ok"] is True, result
        assert result["message"] == "authenticated as ada; project 'ml/vision/detector' found"
        assert user.calls.last.request.headers["private-token"] == TOKEN
        project.respond(404)
        result = await run_test(client, auth, data["id"])
        assert result["ok"] is False
        assert "project 'ml/vision/detector' was not found" in result["message"]

    data = await create(
        client,
        auth,
        {
            "name": "hf",
            "kind": "huggingface",
            "config": {"organization": "inwire"},
            "credentials": {"token": "hf_" + "x" * 30},
        },
    )
    with respx.mock(assert_all_called=False) as mock:
        whoami = mock.get("https://huggingface.co/api/whoami-v2")
        whoami.respond(200, json={"name": "ada", "orgs": [{"name": "inwire"}]})
        result = await run_test(client, auth, data["id"])
        assert result["ok"] is True
        assert result["message"] == "authenticated as ada; member of 'inwire'"
        whoami.respond(200, json={"name": "ada", "orgs": []})
        result = await run_test(client, auth, data["id"])
        assert result["ok"] is False
        assert "not a member of organization 'inwire'" in result["message"]


async def test_registry_connection_test_with_basic_and_token_auth(client, auth) -> None:
    password = "registry-password-0123456789"
    data = await create(
        client,
        auth,
        {
            "name": "ghcr",
            "kind": "container_registry",
            "config": {"registry": "ghcr.io", "namespace": "inwire"},
            "credentials": {"username": "ada", "password": password},
        },
    )
    basic = httpx.BasicAuth("ada", password)._auth_header
    with respx.mock(assert_all_called=False) as mock:
        v2 = mock.get("https://ghcr.io/v2/")
        v2.respond(200)
        assert (await run_test(client, auth, data["id"]))["ok"] is True
        assert v2.calls.last.request.headers["authorization"] == basic

        # Token authentication: a Bearer challenge, a token from the realm, a retry.
        challenge = 'Bearer realm="https://ghcr.io/token",service="ghcr.io"'
        v2.side_effect = lambda request: (
            httpx.Response(200)
            if request.headers.get("authorization") == "Bearer reg-token"
            else httpx.Response(401, headers={"www-authenticate": challenge})
        )
        token = mock.get("https://ghcr.io/token").respond(200, json={"token": "reg-token"})
        result = await run_test(client, auth, data["id"])
        assert result["ok"] is True, result
        sent = token.calls.last.request
        assert sent.headers["authorization"] == basic
        assert sent.url.params["service"] == "ghcr.io"
        assert sent.url.params["scope"].startswith("repository:inwire/")

        token.respond(401)
        result = await run_test(client, auth, data["id"])
        assert result["ok"] is False
        assert "rejected the credentials" in result["message"]
        assert password not in result["message"]


async def test_missing_optional_client_library_is_reported_not_faked(client, auth) -> None:
    key = {
        "type": "service_account",
        "client_email": "sa@inwire-123.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----",
    }
    cases = [
        (
            "gcs",
            "google.cloud.storage",
            {"bucket": "models-1", "project": "inwire-123"},
            {"service_account_json": json.dumps(key)},
        ),
        (
            "azure_blob",
            "azure.storage.blob",
            {"account": "inwire01", "container": "models"},
            {"account_key": SECRET},
        ),
    ]
    for kind, module, config, credentials in cases:
        # The libraries are no dependency of Core: this pins the report when they are absent.
        try:
            __import__(module)
        except ImportError:
            pass
        else:
            continue
        body = {"name": kind, "kind": kind, "config": config, "credentials": credentials}
        data = await create(client, auth, body)
        result = await run_test(client, auth, data["id"])
        extra = kind.removesuffix("_blob")
        assert result == {
            "ok": False,
            "message": f"client library for {extra} is not installed (pip install inwire[{extra}])",
            "latency_ms": result["latency_ms"],
        }
    message = f"upstream said: token {TOKEN} is bad; key={SECRET}"
    assert redact(message, [TOKEN, SECRET, "ab"]) == "upstream said: token *** is bad; key=***"
