"""Real model-server processes: started by the local runtime, answering like the model in
process, batching concurrent requests, stopped, and replaced when killed."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from serving_helpers import SIGNATURE, expected, metric, rows, write_mlflow_sklearn

from inwire.services.modelops.serving.runtime import LocalRuntime, Replica, ReplicaFailed

pytestmark = pytest.mark.slow


async def replaced(rt: LocalRuntime, dead: Replica) -> Replica:
    """The ready replica that replaced ``dead`` (waits up to 60 s)."""
    for _ in range(600):
        live = [r for r in rt.replicas(dead.deployment_id) if r.replaces == dead.id]
        if live and live[0].state == "ready":
            return live[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"replica {dead.id} was not replaced")


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[tuple[LocalRuntime, list[tuple[str, str]]]]:
    events: list[tuple[str, str]] = []
    rt = LocalRuntime(
        tmp_path / "runtime",
        max_batch=32,
        batch_wait_ms=2.0,
        on_event=lambda event, replica: events.append((event, replica.id)),
        probe_interval=1.0,
    )
    await rt.start()
    try:
        yield rt, events
    finally:
        await rt.close()


async def test_replica_answers_batches_and_stops(
    runtime: tuple[LocalRuntime, list[tuple[str, str]]], tmp_path: Path
) -> None:
    rt, events = runtime
    model_dir = write_mlflow_sklearn(tmp_path / "model")
    replica = await rt.start_replica("dep_1", "ver_1", model_dir, SIGNATURE)
    assert replica.state == "ready"
    assert replica.url == f"http://127.0.0.1:{replica.port}"
    assert rt.replicas("dep_1") == [replica]
    assert rt.replicas("dep_other") == []
    records = rows(60, start=40)
    async with httpx.AsyncClient(base_url=replica.url, timeout=30) as client:
        one = await client.post("/predict", json={"inputs": records})
        assert one.json() == {"predictions": expected(records)}
        bad = await client.post("/predict", json={"inputs": [{"sepal_length": 1.0}]})
        assert bad.status_code == 400
        assert bad.json()["error"]["details"][0]["field"] == "sepal_width"
        # Requests batch when they arrive while the model runs; how many do depends on the
        # machine's timing, so a burst is sent again (up to five times) until one did.
        for burst in range(1, 6):
            answers = await asyncio.gather(
                *(client.post("/predict", json={"inputs": [r]}) for r in records)
            )
            assert [a.json()["predictions"][0] for a in answers] == expected(records)
            metrics = (await client.get("/metrics")).text
            calls = metric(metrics, "inwire_model_batch_requests_count")
            answered = metric(metrics, "inwire_model_batch_requests_sum")
            assert answered == 1 + 60 * burst
            if calls < answered:  # some model call answered several requests: batch size > 1
                break
        assert calls < answered
    await rt.stop_replica(replica.id)
    assert replica.state == "stopped"
    assert rt.replicas() == []
    with pytest.raises(ProcessLookupError):
        os.kill(replica.pid, 0)
    assert events == [("started", replica.id), ("stopped", replica.id)]


async def test_killed_replica_is_replaced(
    runtime: tuple[LocalRuntime, list[tuple[str, str]]], tmp_path: Path
) -> None:
    rt, events = runtime
    model_dir = write_mlflow_sklearn(tmp_path / "model")
    first = await rt.start_replica("dep_1", "ver_1", model_dir, SIGNATURE)
    os.kill(first.pid, signal.SIGKILL)
    replacement = await replaced(rt, first)
    assert first.state == "failed"
    assert replacement.pid != first.pid
    assert replacement.replaces == first.id
    assert (replacement.deployment_id, replacement.version_id) == ("dep_1", "ver_1")
    assert ("failed", first.id) in events
    assert ("replaced", replacement.id) in events
    async with httpx.AsyncClient(base_url=replacement.url, timeout=30) as client:
        r = await client.post("/predict", json={"inputs": rows(3)})
    assert r.json() == {"predictions": expected(rows(3))}
    await rt.stop_deployment("dep_1")
    assert rt.replicas() == []
    assert replacement.state == "stopped"


async def test_a_hung_replica_is_killed_and_replaced(
    runtime: tuple[LocalRuntime, list[tuple[str, str]]], tmp_path: Path
) -> None:
    rt, _ = runtime
    first = await rt.start_replica("dep_1", "ver_1", write_mlflow_sklearn(tmp_path / "m"), None)
    os.kill(first.pid, signal.SIGSTOP)  # alive, but answers nothing
    replacement = await replaced(rt, first)
    assert replacement.pid != first.pid
    with pytest.raises(ProcessLookupError):
        os.kill(first.pid, 0)
    async with httpx.AsyncClient(base_url=replacement.url, timeout=30) as client:
        assert (await client.get("/ready")).status_code == 200


async def test_a_model_that_cannot_load_fails_with_its_log(
    runtime: tuple[LocalRuntime, list[tuple[str, str]]], tmp_path: Path
) -> None:
    rt, _ = runtime
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no model here")
    with pytest.raises(ReplicaFailed) as info:
        await rt.start_replica("dep_1", "ver_1", empty, None, timeout=60)
    assert "No model in" in str(info.value)
    assert rt.replicas() == []


async def test_a_real_mlflow_model_folder_is_served(
    runtime: tuple[LocalRuntime, list[tuple[str, str]]], tmp_path: Path
) -> None:
    """A folder written by mlflow itself (skops format, MLflow 3's default)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from serving_helpers import iris_model

    model, features = iris_model()
    folder = tmp_path / "mlflow_model"
    mlflow.sklearn.save_model(
        model, str(folder), signature=infer_signature(features, model.predict(features))
    )
    rt, _ = runtime
    replica = await rt.start_replica("dep_2", "ver_9", folder, None)
    records = rows(20, start=70)
    async with httpx.AsyncClient(base_url=replica.url, timeout=30) as client:
        r = await client.post("/invocations", json={"dataframe_records": records})
        meta = (await client.get("/metadata")).json()
    assert r.json() == {"predictions": expected(records)}
    assert [c["name"] for c in meta["signature"]["inputs"]] == list(records[0])
