"""``/api/v1/metrics``: values logged to several runs at once, and a run's history by query."""

from __future__ import annotations

import httpx
from helpers import Auth, experiment, run

from inwire.kit.testing.plugin import assert_error

URL = "/api/v1/metrics"


async def _runs(client: httpx.AsyncClient, auth: Auth, n: int = 2, org: str = "a") -> list[str]:
    exp = await experiment(client, auth, org=org)
    return [str((await run(client, auth, exp, org=org))["id"]) for _ in range(n)]


async def test_a_batch_across_runs_lands_in_each_runs_history(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    a, b = await _runs(client, auth)
    body = {
        "metrics": [
            *({"run_id": a, "key": "loss", "value": 1 / (i + 1), "step": i} for i in range(5)),
            {
                "run_id": b,
                "key": "loss",
                "value": 7.0,
                "step": 3,
                "timestamp": "2026-01-01T00:00:00Z",
            },
            {"run_id": b, "key": "acc", "value": 0.9, "step": 3},
        ]
    }
    r = await client.post(URL, json=body, headers=auth("member"))
    assert r.status_code == 201, r.text
    assert r.json()["data"]["metrics"] == 7

    got = await client.get(URL, params={"run_id": a, "key": "loss"}, headers=auth("viewer"))
    assert got.status_code == 200, got.text
    history = got.json()["data"]
    assert (history["run_id"], history["key"], history["total"]) == (a, "loss", 5)
    assert [p["step"] for p in history["points"]] == [0, 1, 2, 3, 4]
    # The same service as the per-run route: identical answers.
    same = await client.get(
        f"/api/v1/runs/{a}/metrics/history", params={"key": "loss"}, headers=auth()
    )
    assert same.json() == got.json()

    other = (await client.get(URL, params={"run_id": b, "key": "loss"}, headers=auth())).json()
    assert [(p["step"], p["value"]) for p in other["data"]["points"]] == [(3, 7.0)]
    assert other["data"]["points"][0]["timestamp"].startswith("2026-01-01T00:00:00")
    latest = (await client.get(f"/api/v1/runs/{b}/metrics", headers=auth())).json()["data"]
    assert {m["key"] for m in latest} == {"loss", "acc"}


async def test_history_pages_and_downsamples(client: httpx.AsyncClient, auth: Auth) -> None:
    (rid,) = await _runs(client, auth, 1)
    body = {"metrics": [{"run_id": rid, "key": "m", "value": i, "step": i} for i in range(25)]}
    assert (await client.post(URL, json=body, headers=auth())).status_code == 201
    params = {"run_id": rid, "key": "m", "per_page": 10}
    pages = [
        (await client.get(URL, params={**params, "page": p}, headers=auth())).json()["data"]
        for p in (1, 2, 3, 4)
    ]
    assert [len(p["points"]) for p in pages] == [10, 10, 5, 0]
    assert all(p["total"] == 25 for p in pages)
    assert [pt["step"] for p in pages for pt in p["points"]] == list(range(25))
    ranged = await client.get(
        URL, params={**params, "step_min": 20, "step_max": 22}, headers=auth()
    )
    assert [p["step"] for p in ranged.json()["data"]["points"]] == [20, 21, 22]
    small = await client.get(
        URL, params={"run_id": rid, "key": "m", "max_points": 5}, headers=auth()
    )
    data = small.json()["data"]
    assert data["downsampling"] == "lttb"
    assert len(data["points"]) == 5
    assert (data["points"][0]["step"], data["points"][-1]["step"]) == (0, 24)


async def test_invalid_input_is_a_400_and_nothing_is_stored(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    (rid,) = await _runs(client, auth, 1)
    for body in (
        {},
        {"metrics": []},
        {"metrics": [{"key": "m", "value": 1}]},
        {"metrics": [{"run_id": rid, "key": "m"}]},
        {"metrics": [{"run_id": rid, "key": "a*b", "value": 1}]},
        {"metrics": [{"run_id": rid, "key": "m", "value": "high"}]},
        {"metrics": [{"run_id": rid, "key": "m", "value": 1, "extra": 1}]},
    ):
        assert_error(await client.post(URL, json=body, headers=auth()), 400)
    r = await client.post(URL, content=b"key=m", headers={**auth(), "Content-Type": "text/plain"})
    assert_error(r, 415)
    for params in ({"run_id": rid}, {"key": "m"}, {"run_id": rid, "key": "m", "max_points": 1}):
        assert_error(await client.get(URL, params=params, headers=auth()), 400)
    assert_error(
        await client.get(
            URL, params={"run_id": rid, "key": "m", "per_page": 10**9}, headers=auth()
        ),
        400,
    )
    # A run that does not exist fails the whole batch: the good run got nothing.
    mixed = {
        "metrics": [
            {"run_id": rid, "key": "m", "value": 1},
            {"run_id": "nope", "key": "m", "value": 2},
        ]
    }
    assert_error(await client.post(URL, json=mixed, headers=auth()), 404)
    got = await client.get(URL, params={"run_id": rid, "key": "m"}, headers=auth())
    assert got.json()["data"]["total"] == 0


async def test_archived_runs_refuse_values(client: httpx.AsyncClient, auth: Auth) -> None:
    a, b = await _runs(client, auth)
    assert (await client.post(f"/api/v1/runs/{b}/archive", headers=auth())).status_code == 200
    body = {
        "metrics": [{"run_id": a, "key": "m", "value": 1}, {"run_id": b, "key": "m", "value": 1}]
    }
    assert_error(await client.post(URL, json=body, headers=auth()), 409)
    got = await client.get(URL, params={"run_id": a, "key": "m"}, headers=auth())
    assert got.json()["data"]["total"] == 0


async def test_roles_and_organizations(client: httpx.AsyncClient, auth: Auth) -> None:
    (mine,) = await _runs(client, auth, 1)
    (theirs,) = await _runs(client, auth, 1, org="b")
    one = {"metrics": [{"run_id": mine, "key": "m", "value": 1}]}
    assert_error(await client.post(URL, json=one, headers=auth("viewer")), 403)
    # Another organization's run is not found, and not written to, from either side.
    assert_error(await client.post(URL, json=one, headers=auth(org="b")), 404)
    both = {
        "metrics": [
            {"run_id": mine, "key": "m", "value": 1},
            {"run_id": theirs, "key": "m", "value": 1},
        ]
    }
    assert_error(await client.post(URL, json=both, headers=auth()), 404)
    assert_error(
        await client.get(URL, params={"run_id": mine, "key": "m"}, headers=auth(org="b")), 404
    )
    empty = await client.get(URL, params={"run_id": theirs, "key": "m"}, headers=auth(org="b"))
    assert empty.json()["data"]["total"] == 0
