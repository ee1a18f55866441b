"""Monitoring endpoints: statistics, reference, thresholds, drift checks, alerts, events."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import polars as pl
import pytest
from fastapi import FastAPI
from modelops_helpers import Auth, create_model, upload_version
from monitoring_helpers import make_deployment, record
from sqlalchemy import select

from inwire.kit.testing.identities import ORGS
from inwire.kit.testing.plugin import assert_error
from inwire.services.modelops.db import OUTBOX
from inwire.services.modelops.monitoring import service as monitoring_service
from inwire.services.modelops.monitoring.models import MonitoringWindow
from inwire.services.modelops.monitoring.recorder import PredictionRecorder


def _rows(seed: int, n: int, shift: float = 0.0, plans: tuple[float, ...] = (0.6, 0.4)) -> list:
    rng = np.random.default_rng(seed)
    ages = rng.normal(40 + shift, 10, n)
    chosen = rng.choice(["basic", "pro"], size=n, p=list(plans))
    return [{"age": float(a), "plan": str(p)} for a, p in zip(ages, chosen, strict=True)]


def _url(deployment_id: str, tail: str = "") -> str:
    return f"/api/v1/deployments/{deployment_id}/monitoring{tail}"


async def _events(app: FastAPI) -> list[dict]:
    async with app.state.db.session(write=False) as session:
        rows = await session.execute(select(OUTBOX.table.c.type, OUTBOX.table.c.payload))
        return [{"type": t, **json.loads(p)} for t, p in rows]


async def test_statistics_per_version(client: httpx.AsyncClient, auth: Auth, app: FastAPI) -> None:
    dep = await make_deployment(app)
    await record(app, dep, "ver_a", _rows(1, 40), outputs=[0, 1] * 20, errors=2, latency=0.02)
    await record(app, dep, "ver_b", _rows(2, 10), outputs=[0.5 * i for i in range(10)])
    r = await client.get(_url(dep), headers=auth("viewer"))
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert (data["requests"], data["errors"], data["rows"]) == (7, 2, 52)
    assert data["error_rate"] == 2 / 7
    by_version = {v["version_id"]: v for v in data["versions"]}
    a = by_version["ver_a"]
    assert (a["requests"], a["errors"]) == (6, 2)
    assert a["predictions"]["kind"] == "classes"
    assert a["predictions"]["classes"] == {"0": 20, "1": 20}
    assert 0.018 < a["latency_seconds"]["p50"] < 0.022
    assert a["latency_seconds"]["p99"] >= a["latency_seconds"]["p50"]
    b = by_version["ver_b"]
    assert b["predictions"]["kind"] == "numbers"
    assert sum(b["predictions"]["histogram"]["counts"]) == 10
    assert sum(p["requests"] for p in data["timeline"]) == 7
    only = await client.get(_url(dep), params={"version": "ver_b"}, headers=auth("viewer"))
    assert [v["version_id"] for v in only.json()["data"]["versions"]] == ["ver_b"]
    past = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    early = await client.get(
        _url(dep), params={"since": past, "until": past[:10] + "T23:59:00Z"}, headers=auth()
    )
    assert early.json()["data"]["requests"] == 0


async def test_statistics_errors(client: httpx.AsyncClient, auth: Auth, app: FastAPI) -> None:
    dep = await make_deployment(app)
    await record(app, dep, "ver_a", _rows(1, 10))
    now = datetime.now(UTC)
    bad = {"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()}
    assert_error(await client.get(_url(dep), params=bad, headers=auth()), 400)
    wide = {"since": (now - timedelta(days=40)).isoformat()}
    assert_error(await client.get(_url(dep), params=wide, headers=auth()), 400)
    assert_error(await client.get(_url(dep), params={"since": "yesterday"}, headers=auth()), 400)
    assert_error(await client.get(_url(dep), headers=auth("admin", "b")), 404)
    assert_error(await client.get(_url("dep_unknown"), headers=auth()), 404)
    assert_error(await client.get(_url(dep)), 401)


async def test_reference_upload_in_three_formats(
    client: httpx.AsyncClient, auth: Auth, app: FastAPI
) -> None:
    dep = await make_deployment(app)
    await record(app, dep, "ver_a", _rows(1, 10))
    rows = _rows(3, 200)
    r = await client.put(_url(dep, "/reference"), json=rows, headers=auth("member"))
    assert r.status_code == 200, r.text
    ref = r.json()["data"]
    assert (ref["source"], ref["rows"]) == ("upload", 200)
    assert ref["columns"] == {"age": "number", "plan": "category"}
    frame = pl.DataFrame(rows)
    csv = frame.write_csv().encode()
    r = await client.put(
        _url(dep, "/reference"), content=csv, headers={**auth(), "Content-Type": "text/csv"}
    )
    assert r.json()["data"]["rows"] == 200
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    parquet = {**auth(), "Content-Type": "application/vnd.apache.parquet"}
    r = await client.put(_url(dep, "/reference"), content=buffer.getvalue(), headers=parquet)
    assert r.json()["data"]["columns"] == {"age": "number", "plan": "category"}
    got = await client.get(_url(dep, "/reference"), headers=auth("viewer"))
    assert got.json()["data"]["rows"] == 200
    assert (await client.delete(_url(dep, "/reference"), headers=auth())).status_code == 204
    assert (await client.get(_url(dep, "/reference"), headers=auth())).json()["data"][
        "source"
    ] is None
    assert_error(await client.delete(_url(dep, "/reference"), headers=auth()), 404)


async def test_reference_errors(client: httpx.AsyncClient, auth: Auth, app: FastAPI) -> None:
    dep = await make_deployment(app)
    await record(app, dep, "ver_a", _rows(1, 10))
    url = _url(dep, "/reference")
    assert_error(await client.put(url, json={"no": "rows"}, headers=auth()), 400)
    assert_error(await client.put(url, json=[], headers=auth()), 400)
    text = {**auth(), "Content-Type": "text/plain"}
    assert_error(await client.put(url, content=b"a,b", headers=text), 415)
    parquet = {**auth(), "Content-Type": "application/vnd.apache.parquet"}
    assert_error(await client.put(url, content=b"not parquet", headers=parquet), 400)
    assert_error(await client.put(url, json=_rows(1, 5), headers=auth("viewer")), 403)
    assert_error(await client.put(url, json=_rows(1, 5), headers=auth("admin", "b")), 404)


async def test_thresholds(client: httpx.AsyncClient, auth: Auth, app: FastAPI) -> None:
    dep = await make_deployment(app)
    await record(app, dep, "ver_a", _rows(1, 10))
    url = _url(dep, "/thresholds")
    r = await client.get(url, headers=auth("viewer"))
    assert r.json()["data"] == {
        "psi": 0.2,
        "p_value": 0.01,
        "min_rows": 50,
        "error_rate": 0.05,
        "overrides": {},
    }
    r = await client.put(url, json={"psi": 0.3, "min_rows": 20}, headers=auth("member"))
    assert r.status_code == 200, r.text
    assert (r.json()["data"]["psi"], r.json()["data"]["overrides"]) == (
        0.3,
        {"psi": 0.3, "min_rows": 20},
    )
    assert_error(await client.put(url, json={"psi": -1}, headers=auth()), 400)
    assert_error(await client.put(url, json={"nope": 1}, headers=auth()), 400)
    assert_error(await client.put(url, json={"psi": 0.3}, headers=auth("viewer")), 403)
    assert_error(await client.get(url, headers=auth("admin", "b")), 404)


async def test_drift_detected_on_shifted_inputs_raises_alerts_and_events(
    client: httpx.AsyncClient, auth: Auth, app: FastAPI
) -> None:
    dep = await make_deployment(app)
    await record(app, dep, "ver_same", _rows(11, 600))
    await record(app, dep, "ver_shift", _rows(12, 600, shift=10, plans=(0.3, 0.7)), errors=100)
    ref = await client.put(_url(dep, "/reference"), json=_rows(10, 2000), headers=auth())
    assert ref.status_code == 200, ref.text
    r = await client.post(_url(dep, "/drift"), json={}, headers=auth("member"))
    assert r.status_code == 200, r.text
    reports = {rep["version_id"]: rep for rep in r.json()["data"]}
    assert reports["ver_same"]["drifted"] is False
    shifted = reports["ver_shift"]
    assert shifted["drifted"] is True
    assert {f["feature"]: f["drifted"] for f in shifted["features"]} == {"age": True, "plan": True}
    assert (shifted["rows"], shifted["reference_rows"]) == (600, 2000)
    alerts = (await client.get(_url(dep, "/alerts"), headers=auth("viewer"))).json()
    kinds = sorted((a["version_id"], a["kind"]) for a in alerts["data"])
    assert kinds == [("ver_shift", "drift"), ("ver_shift", "error_rate")]
    assert alerts["meta"]["total"] == 2
    drift_alert = next(a for a in alerts["data"] if a["kind"] == "drift")
    assert drift_alert["report_id"] == shifted["id"]
    assert drift_alert["details"]["features"] == ["age", "plan"]
    only = await client.get(_url(dep, "/alerts"), params={"kind": "drift"}, headers=auth())
    assert only.json()["meta"]["total"] == 1
    page = await client.get(_url(dep, "/alerts"), params={"per_page": 1, "page": 2}, headers=auth())
    assert len(page.json()["data"]) == 1
    events = await _events(app)
    types = sorted(e["type"] for e in events if e["type"].startswith("inwire.modelops.deployment"))
    assert types == [
        "inwire.modelops.deployment.alert_raised",
        "inwire.modelops.deployment.alert_raised",
        "inwire.modelops.deployment.drift_detected",
    ]
    detected = next(e for e in events if e["type"].endswith("drift_detected"))
    assert detected["subject"] == dep
    assert detected["data"]["version_id"] == "ver_shift"
    listed = await client.get(
        _url(dep, "/drift"), params={"drifted": "true"}, headers=auth("viewer")
    )
    assert [rep["version_id"] for rep in listed.json()["data"]] == ["ver_shift"]


async def test_drift_errors_and_no_reference(
    client: httpx.AsyncClient, auth: Auth, app: FastAPI
) -> None:
    dep = await make_deployment(app)
    await record(app, dep, "ver_a", _rows(1, 100))
    r = await client.post(_url(dep, "/drift"), headers=auth())
    assert r.status_code == 200, r.text
    (report,) = r.json()["data"]
    assert (report["drifted"], report["features"], report["thresholds"]["reference_source"]) == (
        False,
        [],
        None,
    )
    assert_error(await client.post(_url(dep, "/drift"), json={}, headers=auth("viewer")), 403)
    assert_error(await client.post(_url(dep, "/drift"), json={}, headers=auth("admin", "b")), 404)
    assert_error(await client.post(_url(dep, "/drift"), json={"since": "x"}, headers=auth()), 400)
    assert_error(await client.get(_url(dep, "/alerts"), headers=auth("admin", "b")), 404)


async def test_the_recorder_checks_drift_periodically(
    client: httpx.AsyncClient, auth: Auth, app: FastAPI
) -> None:
    dep = await make_deployment(app)
    await record(app, dep, "ver_a", _rows(1, 10))
    ref = await client.put(_url(dep, "/reference"), json=_rows(10, 500), headers=auth())
    assert ref.status_code == 200, ref.text
    recorder = PredictionRecorder(app.state.db, flush_interval=0.05, drift_interval=0.1, seed=1)
    await recorder.start()
    try:
        rows = _rows(12, 300, shift=10)
        for start in range(0, 300, 30):
            recorder.observe(ORGS["a"], dep, "ver_a", rows[start : start + 30], None, 0.01, False)
        reports: list = []
        for _ in range(200):
            listed = await client.get(_url(dep, "/drift"), headers=auth())
            reports = listed.json()["data"]
            if reports:
                break
            await asyncio.sleep(0.05)
    finally:
        await recorder.close()
    assert reports
    assert reports[0]["trigger"] == "periodic"
    assert reports[0]["drifted"] is True


async def test_without_an_upload_the_versions_input_example_is_the_reference(
    client: httpx.AsyncClient, auth: Auth, app: FastAPI
) -> None:
    await create_model(client, auth)
    example = _rows(20, 60)
    r = await upload_version(client, auth, input_example=example)
    assert r.status_code == 201, r.text
    version_id = r.json()["data"]["id"]
    dep = await make_deployment(app)
    await record(app, dep, version_id, _rows(21, 200, shift=15))
    r = await client.post(_url(dep, "/drift"), json={"version_id": version_id}, headers=auth())
    (report,) = r.json()["data"]
    assert report["thresholds"]["reference_source"] == "input_example"
    assert report["reference_rows"] == 60
    assert {f["feature"]: f["drifted"] for f in report["features"]}["age"] is True


async def test_long_periods_read_a_weighted_draw_of_the_windows_samples(
    client: httpx.AsyncClient, auth: Auth, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monitoring_service, "SAMPLE_WINDOWS", 4)
    monkeypatch.setattr(monitoring_service, "DRIFT_WINDOWS", 3)
    dep = await make_deployment(app)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    async with app.state.db.session() as session:
        for i in range(12):
            session.add(
                MonitoringWindow(
                    organization_id=ORGS["a"],
                    deployment_id=dep,
                    version_id="ver_a",
                    window_start=start + timedelta(minutes=i),
                    requests=10,
                    rows=50,
                    prediction_sample=[0.5 + i] * 5,
                    prediction_seen=50,
                    input_sample=[{"age": 40.0 + i}] * 5,
                    input_seen=50,
                )
            )
    r = await client.get(_url(dep), headers=auth())
    data = r.json()["data"]
    assert data["requests"] == 120
    histogram = data["predictions"]["histogram"]
    assert sum(histogram["counts"]) == 600  # 4 draws, each standing for 600 / 4
    assert data["predictions"]["kind"] == "numbers"
    await client.put(_url(dep, "/thresholds"), json={"min_rows": 2}, headers=auth())
    r = await client.post(_url(dep, "/drift"), json={}, headers=auth())
    (report,) = r.json()["data"]
    assert 0 < report["rows"] <= 15  # three windows' samples at most
