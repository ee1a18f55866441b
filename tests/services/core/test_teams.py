"""Teams: CRUD, team roles (maintainer/member), membership rules, tenancy and lists."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from inwire.kit.testing.identities import identity
from inwire.kit.testing.plugin import assert_error

pytestmark = pytest.mark.usefixtures("seeded")

TEAMS = "/api/v1/teams"


async def make_team(
    client: httpx.AsyncClient, headers: dict[str, str], name: str = "ml-platform", **extra: Any
) -> dict[str, Any]:
    r = await client.post(TEAMS, json={"name": name, **extra}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["data"]


async def test_member_creates_team_and_becomes_its_maintainer(client, auth) -> None:
    team = await make_team(client, auth("member"), "  Vision  ", description="CV models")
    assert team["name"] == "Vision"
    assert team["description"] == "CV models"
    assert team["id"].startswith("team_")
    r = await client.get(f"{TEAMS}/{team['id']}", headers=auth("viewer"))
    assert r.status_code == 200
    assert r.json()["data"] == team
    members = (await client.get(f"{TEAMS}/{team['id']}/members", headers=auth("viewer"))).json()
    assert members["meta"]["total"] == 1
    (only,) = members["data"]
    assert only["user_id"] == identity("member").user_id
    assert only["role"] == "maintainer"
    assert only["email"] == identity("member").email


async def test_create_team_validation_errors(client, auth) -> None:
    for body in (
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 101},
        {"name": "bad\x00name"},
        {"name": "ok", "description": "d" * 1001},
        {"name": "ok", "unknown": 1},
        {"name": 5},
    ):
        r = await client.post(TEAMS, json=body, headers=auth("member"))
        assert_error(r, 400, "VALIDATION_ERROR")


async def test_viewer_cannot_create_and_anonymous_is_401(client, auth) -> None:
    assert_error(await client.post(TEAMS, json={"name": "x"}, headers=auth("viewer")), 403)
    assert_error(await client.post(TEAMS, json={"name": "x"}), 401)
    assert_error(await client.get(TEAMS), 401)


async def test_team_names_are_unique_per_organization_ignoring_case(client, auth) -> None:
    await make_team(client, auth("member"), "Data")
    assert_error(
        await client.post(TEAMS, json={"name": "data"}, headers=auth("admin")), 409, "CONFLICT"
    )
    other = await make_team(client, auth("member"), "Other")
    r = await client.patch(f"{TEAMS}/{other['id']}", json={"name": "DATA"}, headers=auth("admin"))
    assert_error(r, 409, "CONFLICT")
    # The same name in another organization is fine.
    await make_team(client, auth("member", "b"), "Data")
    # Renaming a team to a different case of its own name is fine.
    r = await client.patch(f"{TEAMS}/{other['id']}", json={"name": "OTHER"}, headers=auth())
    assert r.status_code == 200, r.text
    assert r.json()["data"]["name"] == "OTHER"


async def test_list_teams_paginates_sorts_and_filters(client, auth) -> None:
    for name in ("charlie", "alpha", "bravo"):
        await make_team(client, auth("admin"), name)
    await make_team(client, auth("member"), "delta")
    await make_team(client, auth("admin", "b"), "echo")
    r = await client.get(TEAMS, params={"per_page": 2}, headers=auth("viewer"))
    body = r.json()
    assert [t["name"] for t in body["data"]] == ["alpha", "bravo"]
    assert body["meta"] == {"page": 1, "per_page": 2, "total": 4}
    r = await client.get(TEAMS, params={"per_page": 2, "page": 2}, headers=auth("viewer"))
    assert [t["name"] for t in r.json()["data"]] == ["charlie", "delta"]
    r = await client.get(TEAMS, params={"sort": "name", "order": "desc"}, headers=auth("viewer"))
    assert [t["name"] for t in r.json()["data"]] == ["delta", "charlie", "bravo", "alpha"]
    r = await client.get(TEAMS, params={"sort": "created_at", "order": "asc"}, headers=auth())
    assert [t["name"] for t in r.json()["data"]] == ["charlie", "alpha", "bravo", "delta"]
    r = await client.get(TEAMS, params={"name": "bravo"}, headers=auth("viewer"))
    assert [t["name"] for t in r.json()["data"]] == ["bravo"]
    r = await client.get(TEAMS, params={"user_id": identity("member").user_id}, headers=auth())
    assert [t["name"] for t in r.json()["data"]] == ["delta"]
    r = await client.get(TEAMS, headers=auth("viewer", "b"))
    assert [t["name"] for t in r.json()["data"]] == ["echo"]
    for params in ({"sort": "description"}, {"per_page": 101}, {"page": 0}, {"order": "up"}):
        assert_error(
            await client.get(TEAMS, params=params, headers=auth()), 400, "VALIDATION_ERROR"
        )


async def test_another_organizations_team_is_404_everywhere(client, auth) -> None:
    team = await make_team(client, auth("member"), "secret")
    url = f"{TEAMS}/{team['id']}"
    b = auth("admin", "b")
    assert_error(await client.get(url, headers=b), 404, "NOT_FOUND")
    assert_error(await client.patch(url, json={"name": "mine"}, headers=b), 404)
    assert_error(await client.delete(url, headers=b), 404)
    assert_error(await client.get(f"{url}/members", headers=b), 404)
    assert_error(
        await client.post(
            f"{url}/members", json={"user_id": identity("member", "b").user_id}, headers=b
        ),
        404,
    )
    member = identity("member").user_id
    assert_error(
        await client.patch(f"{url}/members/{member}", json={"role": "member"}, headers=b), 404
    )
    assert_error(await client.delete(f"{url}/members/{member}", headers=b), 404)
    assert_error(await client.get(f"{TEAMS}/team_does_not_exist", headers=auth()), 404)
    # A NUL is bad input on every database (PostgreSQL cannot even compare it).
    assert_error(await client.get(f"{TEAMS}/team%00x", headers=auth()), 400, "VALIDATION_ERROR")
    r = await client.get(TEAMS, params={"name": "a\x00b"}, headers=auth())
    assert_error(r, 400, "VALIDATION_ERROR")
    assert (await client.get(url, headers=auth("viewer"))).status_code == 200


async def test_update_and_delete_need_org_admin_or_team_maintainer(client, auth) -> None:
    team = await make_team(client, auth("admin"), "infra")
    url = f"{TEAMS}/{team['id']}"
    # A member of the organization who is not a maintainer of this team.
    assert_error(await client.patch(url, json={"description": "x"}, headers=auth("member")), 403)
    assert_error(await client.delete(url, headers=auth("member")), 403)
    assert_error(await client.patch(url, json={"description": "x"}, headers=auth("viewer")), 403)
    assert_error(await client.delete(url, headers=auth("viewer")), 403)
    # Made a maintainer, the member may change the team.
    r = await client.post(
        f"{url}/members",
        json={"user_id": identity("member").user_id, "role": "maintainer"},
        headers=auth("admin"),
    )
    assert r.status_code == 201, r.text
    r = await client.patch(url, json={"description": "Infrastructure"}, headers=auth("member"))
    assert r.status_code == 200, r.text
    assert r.json()["data"]["description"] == "Infrastructure"
    assert r.json()["data"]["name"] == "infra"
    # A viewer who is a maintainer still may not write: the organization role caps it.
    await client.post(
        f"{url}/members",
        json={"user_id": identity("viewer").user_id, "role": "maintainer"},
        headers=auth("admin"),
    )
    assert_error(await client.patch(url, json={"description": "v"}, headers=auth("viewer")), 403)
    r = await client.delete(url, headers=auth("member"))
    assert r.status_code == 204
    assert_error(await client.get(url, headers=auth()), 404)
    # The owner (an org admin) deletes a team it is no member of.
    other = await make_team(client, auth("member"), "other")
    assert (await client.delete(f"{TEAMS}/{other['id']}", headers=auth("owner"))).status_code == 204


async def test_update_validation_errors(client, auth) -> None:
    team = await make_team(client, auth(), "valid")
    url = f"{TEAMS}/{team['id']}"
    for body in ({"name": None}, {"name": ""}, {"description": "d" * 1001}, {"color": "red"}):
        assert_error(await client.patch(url, json=body, headers=auth()), 400, "VALIDATION_ERROR")
    r = await client.patch(url, json={}, headers=auth())
    assert r.status_code == 200
    assert r.json()["data"]["name"] == "valid"


async def test_add_member_must_belong_to_the_organization(client, auth) -> None:
    team = await make_team(client, auth(), "core")
    url = f"{TEAMS}/{team['id']}/members"
    for user_id in (identity("member", "b").user_id, "usr_nobody"):
        r = await client.post(url, json={"user_id": user_id}, headers=auth())
        assert_error(r, 400, "VALIDATION_ERROR")
        assert r.json()["error"]["details"][0]["field"] == "user_id"
    for body in ({}, {"user_id": identity("viewer").user_id, "role": "owner"}, {"user_id": ""}):
        assert_error(await client.post(url, json=body, headers=auth()), 400, "VALIDATION_ERROR")
    r = await client.post(url, json={"user_id": identity("viewer").user_id}, headers=auth())
    assert r.status_code == 201, r.text
    assert r.json()["data"]["role"] == "member"
    assert r.json()["data"]["email"] == identity("viewer").email
    r = await client.post(
        url, json={"user_id": identity("viewer").user_id, "role": "maintainer"}, headers=auth()
    )
    assert_error(r, 409, "CONFLICT")


async def test_member_roles_change_and_members_leave(client, auth) -> None:
    team = await make_team(client, auth("member"), "nlp")
    url = f"{TEAMS}/{team['id']}/members"
    viewer = identity("viewer").user_id
    admin = identity("admin").user_id
    # A plain member of the organization (not of the team) cannot staff the team.
    r = await client.post(url, json={"user_id": viewer}, headers=auth("viewer"))
    assert_error(r, 403)
    # The maintainer can.
    assert (
        await client.post(url, json={"user_id": viewer}, headers=auth("member"))
    ).status_code == 201
    assert (
        await client.post(url, json={"user_id": admin}, headers=auth("member"))
    ).status_code == 201
    r = await client.patch(f"{url}/{viewer}", json={"role": "maintainer"}, headers=auth("member"))
    assert r.status_code == 200, r.text
    assert r.json()["data"]["role"] == "maintainer"
    assert_error(
        await client.patch(f"{url}/{viewer}", json={"role": "boss"}, headers=auth("member")), 400
    )
    assert_error(await client.patch(f"{url}/{viewer}", json={}, headers=auth("member")), 400)
    assert_error(
        await client.patch(f"{url}/usr_missing", json={"role": "member"}, headers=auth()), 404
    )
    # The viewer, though a maintainer now, has no write rights in the organization.
    assert_error(
        await client.patch(f"{url}/{admin}", json={"role": "maintainer"}, headers=auth("viewer")),
        403,
    )
    assert_error(await client.delete(f"{url}/{admin}", headers=auth("viewer")), 403)
    # But anyone may leave a team.
    assert (await client.delete(f"{url}/{viewer}", headers=auth("viewer"))).status_code == 204
    assert_error(await client.delete(f"{url}/{viewer}", headers=auth()), 404)
    # Members and the filter on role.
    r = await client.get(url, params={"role": "maintainer"}, headers=auth("viewer"))
    assert [m["user_id"] for m in r.json()["data"]] == [identity("member").user_id]
    r = await client.get(url, params={"per_page": 1, "sort": "created_at"}, headers=auth())
    assert r.json()["meta"] == {"page": 1, "per_page": 1, "total": 2}
    assert r.json()["data"][0]["user_id"] == identity("member").user_id
    assert_error(await client.get(url, params={"role": "boss"}, headers=auth()), 400)
    # The admin removes the maintainer; the team stays manageable by admins.
    r = await client.delete(f"{url}/{identity('member').user_id}", headers=auth("admin"))
    assert r.status_code == 204
    assert (await client.get(url, headers=auth())).json()["meta"]["total"] == 1


async def test_team_changes_are_audited(client, auth) -> None:
    team = await make_team(client, auth("member"), "audited")
    url = f"{TEAMS}/{team['id']}/members"
    viewer = identity("viewer").user_id
    await client.post(url, json={"user_id": viewer}, headers=auth("member"))
    await client.patch(f"{url}/{viewer}", json={"role": "maintainer"}, headers=auth("member"))
    await client.delete(f"{TEAMS}/{team['id']}", headers=auth("admin"))
    r = await client.get(
        "/api/v1/audit-events",
        params={"target_type": "team", "order": "asc", "sort": "created_at"},
        headers=auth("admin"),
    )
    events = r.json()["data"]
    assert [e["action"] for e in events] == [
        "teams.created",
        "teams.member_added",
        "teams.member_role_changed",
        "teams.deleted",
    ]
    change = events[2]
    assert change["actor_id"] == identity("member").user_id
    assert change["details"] == {"user_id": viewer, "previous_role": "member", "role": "maintainer"}
