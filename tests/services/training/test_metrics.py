"""Metrics: single and batch logging, latest values, history pages and downsampling."""

from __future__ import annotations

import math

import httpx
import numpy as np
import pytest
from helpers import Auth, experiment, run

from inwire.kit.testing.plugin import assert_error
from inwire.services.training.runs.downsample import downsample, lttb, minmax


async def _run_id(client: httpx.AsyncClient, auth: Auth) -> str:
    return str((await run(client, auth, await experiment(client, auth)))["id"])


async def test_single_and_batch_logging_keep_the_latest_value_per_key(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    rid = await _run_id(client, auth)
    url = f"/api/v1/runs/{rid}/metrics"
    one = await client.post(
        url, json={"key": "loss", "value": 1.0, "step": 0}, headers=auth("member")
    )
    assert one.status_code == 201, one.text
    assert one.json()["data"]["metrics"] == 1
    batch = {
        "metrics": [
            {"key": "loss", "value": 0.5, "step": 2, "timestamp": "2026-01-01T00:00:00Z"},
            {"key": "loss", "value": 0.7, "step": 1},
            {"key": "acc", "value": 0.8, "step": 3},
        ]
    }
    r = await client.post(url, json=batch, headers=auth())
    assert r.json()["data"]["metrics"] == 3
    # An older step does not replace the latest value.
    await client.post(url, json={"key": "loss", "value": 9.0, "step": 1}, headers=auth())
    latest = await client.get(url, headers=auth("viewer"))
    assert {m["key"]: (m["value"], m["step"]) for m in latest.json()["data"]} == {
        "loss": (0.5, 2),
        "acc": (0.8, 3),
    }
    got = (await client.get(f"/api/v1/runs/{rid}", headers=auth())).json()["data"]
    assert {m["key"] for m in got["metrics"]} == {"loss", "acc"}


async def test_logging_refuses_bad_values_wrong_role_other_org_and_oversized_batches(
    client: httpx.AsyncClient, auth: Auth, training_settings: object
) -> None:
    rid = await _run_id(client, auth)
    url = f"/api/v1/runs/{rid}/metrics"
    for body in (
        {"key": "loss"},
        {"key": "", "value": 1},
        {"key": "a*b", "value": 1},
        {"key": "x", "value": "high"},
        {"metrics": []},
        {"key": "x", "value": 1, "step": 2**64},
    ):
        assert_error(await client.post(url, json=body, headers=auth()), 400)
    assert_error(await client.post(url, json={"key": "x", "value": 1}, headers=auth("viewer")), 403)
    assert_error(await client.post(url, json={"key": "x", "value": 1}, headers=auth(org="b")), 404)
    assert_error(await client.get(url, headers=auth(org="b")), 404)


async def test_batch_is_all_or_nothing(client: httpx.AsyncClient, auth: Auth) -> None:
    exp = await experiment(client, auth)
    r0 = await run(client, auth, exp, params={"lr": "0.1"})
    url = f"/api/v1/runs/{r0['id']}/batch"
    ok = await client.post(
        url,
        json={
            "metrics": [{"key": "m", "value": 1, "step": i} for i in range(10)],
            "params": {"depth": "3"},
            "tags": {"t": "v"},
        },
        headers=auth(),
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["data"] == {"metrics": 10, "params": 1, "tags": 1}
    bad = await client.post(
        url,
        json={"metrics": [{"key": "n", "value": 1}], "params": {"lr": "0.5"}},
        headers=auth(),
    )
    assert_error(bad, 409, "PARAM_CHANGED")
    latest = (await client.get(f"/api/v1/runs/{r0['id']}/metrics", headers=auth())).json()
    assert {m["key"] for m in latest["data"]} == {"m"}
    assert_error(await client.post(url, json={"metrics": []}, headers=auth("viewer")), 403)


async def test_nan_and_infinity_round_trip_as_strings(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    rid = await _run_id(client, auth)
    url = f"/api/v1/runs/{rid}/metrics"
    body = (
        b'{"metrics": [{"key": "x", "value": NaN, "step": 0}, '
        b'{"key": "x", "value": Infinity, "step": 1}, '
        b'{"key": "y", "value": -Infinity, "step": 0}]}'
    )
    r = await client.post(url, content=body, headers={**auth(), "Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    hist = await client.get(f"{url}/history?key=x", headers=auth())
    assert [p["value"] for p in hist.json()["data"]["points"]] == ["NaN", "Infinity"]
    latest = {m["key"]: m["value"] for m in (await client.get(url, headers=auth())).json()["data"]}
    assert latest == {"x": "Infinity", "y": "-Infinity"}


async def test_history_pages_in_step_order_with_step_range(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    rid = await _run_id(client, auth)
    url = f"/api/v1/runs/{rid}/metrics"
    values = [
        {"key": "loss", "value": 1 / (i + 1), "step": i, "timestamp": 1_700_000_000_000 + i}
        for i in reversed(range(250))
    ]
    await client.post(url, json={"metrics": values}, headers=auth())
    # The same batch again adds nothing (exact duplicates are kept once).
    await client.post(url, json={"metrics": values[:10]}, headers=auth())
    r = await client.get(f"{url}/history?key=loss&per_page=100&page=2", headers=auth("viewer"))
    data = r.json()["data"]
    assert data["total"] == 250
    assert data["downsampling"] == "none"
    assert [p["step"] for p in data["points"]] == list(range(100, 200))
    ranged = await client.get(f"{url}/history?key=loss&step_min=10&step_max=19", headers=auth())
    assert [p["step"] for p in ranged.json()["data"]["points"]] == list(range(10, 20))
    missing = await client.get(f"{url}/history?key=nope", headers=auth())
    assert missing.json()["data"]["points"] == []
    assert missing.json()["data"]["total"] == 0
    assert_error(await client.get(f"{url}/history", headers=auth()), 400)
    assert_error(await client.get(f"{url}/history?key=loss&max_points=2", headers=auth()), 400)
    assert_error(await client.get(f"{url}/history?key=loss&per_page=1000000", headers=auth()), 400)
    assert_error(await client.get(f"{url}/history?key=loss", headers=auth(org="b")), 404)


@pytest.mark.parametrize("method", ["lttb", "minmax"])
async def test_history_downsamples_long_series_keeping_extremes(
    client: httpx.AsyncClient, auth: Auth, method: str
) -> None:
    rid = await _run_id(client, auth)
    url = f"/api/v1/runs/{rid}/metrics"
    n = 5000
    points = [{"key": "s", "value": math.sin(i / 100), "step": i} for i in range(n)]
    points[3333]["value"] = 50.0  # a spike the chart must show
    for start in range(0, n, 1000):
        await client.post(url, json={"metrics": points[start : start + 1000]}, headers=auth())
    r = await client.get(f"{url}/history?key=s&max_points=200&method={method}", headers=auth())
    data = r.json()["data"]
    assert data["total"] == n
    assert data["downsampling"] == method
    steps = [p["step"] for p in data["points"]]
    assert len(steps) <= 200
    assert steps == sorted(steps)
    assert steps[0] == 0
    assert steps[-1] == n - 1
    assert 3333 in steps
    small = await client.get(f"{url}/history?key=s&max_points=100000", headers=auth())
    assert small.json()["data"]["downsampling"] == "none"
    assert len(small.json()["data"]["points"]) == n


def test_lttb_and_minmax_pick_representative_indices() -> None:
    x = np.arange(1000, dtype=np.float64)
    y = np.sin(x / 50)
    y[500] = 10.0
    picked = lttb(x, y, 50)
    assert len(picked) == 50
    assert picked[0] == 0
    assert picked[-1] == 999
    assert 500 in picked
    assert np.all(np.diff(picked) > 0)
    mm = minmax(y, 50)
    assert 500 in mm
    assert len(mm) <= 50
    assert np.all(np.diff(mm) > 0)
    assert list(lttb(x[:10], y[:10], 50)) == list(range(10))
    y[10] = np.nan
    kept = downsample(x.astype(np.int64), y, 20)
    assert 10 not in kept
    assert len(kept) <= 20
