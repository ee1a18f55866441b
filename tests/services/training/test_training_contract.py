"""The Model Training contract client against the real app, and its models against the API's."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from fastapi import FastAPI

from inwire.contracts.training import (
    ArtifactEntry,
    CompareValue,
    Experiment,
    MetricHistory,
    MetricValue,
    Run,
    RunComparison,
    RunSource,
    TrainingClient,
)
from inwire.kit.errors import Conflict, Forbidden, NotFound
from inwire.services.training.artifacts.router import ArtifactOut
from inwire.services.training.experiments.schemas import ExperimentOut
from inwire.services.training.runs import schemas as api


def test_contract_models_name_only_fields_the_api_sends() -> None:
    pairs = [
        (Experiment, ExperimentOut),
        (Run, api.RunOut),
        (RunSource, api.RunSource),
        (MetricHistory, api.MetricHistory),
        (RunComparison, api.RunComparison),
        (CompareValue, api.CompareValue),
        (ArtifactEntry, ArtifactOut),
    ]
    for ours, theirs in pairs:
        assert set(ours.model_fields) <= set(theirs.model_fields), ours


async def _chunks() -> AsyncIterator[bytes]:
    for i in range(5):
        yield bytes([i]) * 100_000


async def test_client_tracks_a_run_end_to_end(
    app: FastAPI, token_factory: Callable[..., str], tmp_path: Path
) -> None:
    async with TrainingClient(app=app, credentials=token_factory("member")) as training:
        exp = await training.create_experiment("contract", tags={"team": "ml"})
        assert (await training.get_experiment_by_name("contract")) == exp
        assert await training.get_experiment_by_name("nope") is None
        with pytest.raises(Conflict):
            await training.create_experiment("contract")
        run = await training.create_run(
            exp.id,
            name="r1",
            params={"lr": "0.1"},
            source=RunSource(git_commit="abcdef1", entry_point="train.py"),
        )
        assert run.status == "running"
        assert run.source.git_commit == "abcdef1"
        logged = await training.log_batch(
            run.id,
            metrics=[MetricValue(key="loss", value=1 / (i + 1), step=i) for i in range(50)],
            params={"depth": "4"},
            tags={"stage": "dev"},
        )
        assert (logged.metrics, logged.params, logged.tags) == (50, 1, 1)
        await training.log_metrics(run.id, [{"key": "nan", "value": math.nan}])
        with pytest.raises(Conflict):
            await training.log_params(run.id, {"lr": "0.2"})
        latest = {m.key: m.value for m in await training.latest_metrics(run.id)}
        assert latest["loss"] == pytest.approx(1 / 50)
        assert math.isnan(latest["nan"])
        history = await training.metric_history(run.id, "loss", per_page=10, page=5)
        assert [p.step for p in history.points] == list(range(40, 50))
        assert history.total == 50
        small = await training.metric_history(run.id, "loss", max_points=10)
        assert small.downsampling == "lttb"
        assert len(small.points) == 10

        stored = await training.upload_artifact(run.id, "model/weights.bin", _chunks())
        assert stored.size == 500_000
        local = tmp_path / "conf.yaml"
        local.write_text("a: 1\n")
        await training.upload_artifact(run.id, "model/conf.yaml", local)
        listed = await training.list_artifacts(run.id)
        assert [(e.path, e.is_dir) for e in listed] == [("model", True)]
        target = tmp_path / "w.bin"
        assert await training.download_artifact(run.id, "model/weights.bin", target) == 500_000
        assert target.read_bytes()[:3] == b"\x00\x00\x00"
        assert await training.delete_artifact(run.id, "model") == 2

        done = await training.update_run(run.id, status="finished")
        assert done.end_time is not None
        other = await training.create_run(exp.id, name="r2", params={"lr": "0.3"})
        found = await training.search_runs(
            experiment_ids=[exp.id], filter="params.lr = '0.1'", order_by=["name ASC"]
        )
        assert [r.id for r in found.items] == [run.id]
        comparison = await training.compare_runs([run.id, other.id])
        assert {p.key: p.differs for p in comparison.params}["lr"] is True
        page = await training.list_runs(experiment_id=exp.id)
        assert page.total == 2
        await training.delete_run(other.id)
        with pytest.raises(NotFound):
            await training.get_run(other.id)

    async with TrainingClient(app=app, credentials=token_factory("viewer")) as viewer:
        assert (await viewer.get_run(run.id)).params == {"lr": "0.1", "depth": "4"}
        with pytest.raises(Forbidden):
            await viewer.create_experiment("nope")
    async with TrainingClient(app=app, credentials=token_factory("admin", "b")) as stranger:
        with pytest.raises(NotFound):
            await stranger.get_run(run.id)
        with pytest.raises(NotFound):
            await stranger.upload_artifact(run.id, "x.txt", b"x")
