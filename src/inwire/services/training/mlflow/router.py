"""HTTP endpoints of the MLflow REST API the stock ``mlflow`` 3.x client calls.

Mounted at the root: ``/api/2.0/mlflow/...`` (and the UI's ``/ajax-api/2.0/mlflow/...``),
``/api/2.0/mlflow-artifacts/artifacts/...`` and ``/api/3.0/mlflow/server-info``. GET
requests carry their message as query parameters, the others as a JSON body, as MLflow's
client sends them; every error is MLflow's ``{"error_code", "message"}``.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from inwire.kit.api import APIRouter
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.kit.storage import StorageDep
from inwire.services.training.artifacts import service as run_artifacts
from inwire.services.training.mlflow import artifacts, registry, service
from inwire.services.training.mlflow import schemas as m
from inwire.services.training.mlflow.auth import authenticate
from inwire.services.training.mlflow.errors import MlflowRoute, error_response, invalid
from inwire.services.training.mlflow.peers import MlflowPeers
from inwire.services.training.settings import TrainingSettings

T = TypeVar("T", bound=BaseModel)

api = APIRouter(tags=["mlflow"], route_class=MlflowRoute, dependencies=[Depends(authenticate)])
files = APIRouter(
    prefix="/api/2.0/mlflow-artifacts",
    tags=["mlflow"],
    route_class=MlflowRoute,
    dependencies=[Depends(authenticate)],
)
info = APIRouter(tags=["mlflow"], route_class=MlflowRoute)

ExperimentReader = Annotated[Principal, require("experiments:read")]
ExperimentCreator = Annotated[Principal, require("experiments:create")]
ExperimentUpdater = Annotated[Principal, require("experiments:update")]
RunReader = Annotated[Principal, require("runs:read")]
RunCreator = Annotated[Principal, require("runs:create")]
RunUpdater = Annotated[Principal, require("runs:update")]
MetricReader = Annotated[Principal, require("metrics:read")]
MetricWriter = Annotated[Principal, require("metrics:create")]
ArtifactReader = Annotated[Principal, require("artifacts:read")]
ArtifactWriter = Annotated[Principal, require("artifacts:create")]
ArtifactDeleter = Annotated[Principal, require("artifacts:delete")]
#: Registry calls: ModelOps checks ``models:*`` itself with the caller's token.
Caller = Annotated[Principal, Depends(authenticate)]


def _is_list(model: type[BaseModel], key: str) -> bool:
    field = model.model_fields.get(key)
    return field is not None and typing.get_origin(field.annotation) is list


async def read(request: Request, model: type[T]) -> T:
    """The request's message: query parameters for GET, else the JSON body."""
    if request.method == "GET":
        data: dict[str, Any] = {}
        for key in request.query_params:
            values = request.query_params.getlist(key)
            data[key] = values if _is_list(model, key) else values[-1]
        return model.model_validate(data)
    body = await request.body()
    if not body.strip():
        return model.model_validate({})
    if not body.lstrip().startswith(b"{"):
        raise invalid("The request body must be a JSON object")
    # Parsed and validated in one pass by pydantic-core: a log-batch carries a thousand
    # values, and json.loads-then-validate costs twice that.
    return model.model_validate_json(body)


def _peers(request: Request) -> MlflowPeers:
    peers: MlflowPeers = request.app.state.mlflow_peers
    return peers


def _empty() -> dict[str, Any]:
    return {}


# -- experiments -------------------------------------------------------------------------------


@api.post("/experiments/create")
async def create_experiment(
    request: Request, session: SessionDep, who: ExperimentCreator
) -> dict[str, Any]:
    """Create an experiment (MLflow ``CreateExperiment``)."""
    data = await read(request, m.CreateExperiment)
    created = await service.create_experiment(session, who, data)
    return {"experiment_id": created.id}


@api.get("/experiments/get")
async def get_experiment(
    request: Request, session: SessionDep, who: ExperimentReader
) -> dict[str, Any]:
    """One experiment by id (MLflow ``GetExperiment``)."""
    data = await read(request, m.ExperimentRef)
    found = await service.experiment(session, who, data.experiment_id)
    return {"experiment": service.experiment_out(found)}


@api.get("/experiments/get-by-name")
async def get_experiment_by_name(
    request: Request, session: SessionDep, who: ExperimentReader
) -> dict[str, Any]:
    """One experiment by name; 404 ``RESOURCE_DOES_NOT_EXIST`` when there is none."""
    data = await read(request, m.ExperimentByName)
    found = await service.experiment_by_name(session, who, data.experiment_name)
    return {"experiment": service.experiment_out(found)}


@api.post("/experiments/search")
async def search_experiments(
    request: Request, session: SessionDep, who: ExperimentReader
) -> dict[str, Any]:
    """Experiments by filter, order and page (MLflow ``SearchExperiments``)."""
    data = await read(request, m.SearchExperiments)
    return await service.search_experiments(session, who, data)


@api.post("/experiments/update")
async def update_experiment(
    request: Request, session: SessionDep, who: ExperimentUpdater
) -> dict[str, Any]:
    """Rename an experiment."""
    data = await read(request, m.UpdateExperiment)
    if data.new_name:
        await service.update_experiment(session, who, data.experiment_id, {"name": data.new_name})
    return _empty()


@api.post("/experiments/delete")
async def delete_experiment(
    request: Request, session: SessionDep, who: ExperimentUpdater
) -> dict[str, Any]:
    """Delete an experiment: MLflow's soft delete, our archive (restorable)."""
    data = await read(request, m.ExperimentRef)
    await service.set_experiment_lifecycle(session, who, data.experiment_id, "archived")
    return _empty()


@api.post("/experiments/restore")
async def restore_experiment(
    request: Request, session: SessionDep, who: ExperimentUpdater
) -> dict[str, Any]:
    """Restore a deleted experiment."""
    data = await read(request, m.ExperimentRef)
    await service.set_experiment_lifecycle(session, who, data.experiment_id, "active")
    return _empty()


@api.post("/experiments/set-experiment-tag")
async def set_experiment_tag(
    request: Request, session: SessionDep, who: ExperimentUpdater
) -> dict[str, Any]:
    """Set one experiment tag."""
    data = await read(request, m.SetExperimentTag)
    await service.set_experiment_tag(session, who, data.experiment_id, data.key, data.value)
    return _empty()


@api.post("/experiments/delete-experiment-tag")
async def delete_experiment_tag(
    request: Request, session: SessionDep, who: ExperimentUpdater
) -> dict[str, Any]:
    """Remove one experiment tag."""
    data = await read(request, m.DeleteExperimentTag)
    await service.set_experiment_tag(session, who, data.experiment_id, data.key, None)
    return _empty()


# -- runs --------------------------------------------------------------------------------------


async def _run_out(session: SessionDep, run: Any) -> dict[str, Any]:
    return {"run": (await service.runs_out(session, [run]))[0]}


@api.post("/runs/create")
async def create_run(request: Request, session: SessionDep, who: RunCreator) -> dict[str, Any]:
    """Start a run (MLflow ``CreateRun``)."""
    data = await read(request, m.CreateRun)
    return await _run_out(session, await service.create_run(session, who, data))


@api.get("/runs/get")
async def get_run(request: Request, session: SessionDep, who: RunReader) -> dict[str, Any]:
    """A run with its params, tags, latest metrics, inputs and outputs."""
    data = await read(request, m.RunRef)
    return await _run_out(session, await service.run(session, who, data.run_id))


@api.post("/runs/update")
async def update_run(request: Request, session: SessionDep, who: RunUpdater) -> dict[str, Any]:
    """End a run or rename it (MLflow ``UpdateRun``)."""
    data = await read(request, m.UpdateRun)
    updated = await service.update_run(session, who, data)
    return {"run_info": service.run_info(updated)}


@api.post("/runs/delete")
async def delete_run(request: Request, session: SessionDep, who: RunUpdater) -> dict[str, Any]:
    """Delete a run: MLflow's soft delete, our archive (restorable)."""
    data = await read(request, m.RunRef)
    await service.set_run_lifecycle(session, who, data.run_id, "archived")
    return _empty()


@api.post("/runs/restore")
async def restore_run(request: Request, session: SessionDep, who: RunUpdater) -> dict[str, Any]:
    """Restore a deleted run."""
    data = await read(request, m.RunRef)
    await service.set_run_lifecycle(session, who, data.run_id, "active")
    return _empty()


@api.post("/runs/log-metric")
async def log_metric(request: Request, session: SessionDep, who: MetricWriter) -> dict[str, Any]:
    """Log one metric value."""
    data = await read(request, m.LogMetric)
    await service.log_batch(session, who, data.run_id, metrics=[data])
    return _empty()


@api.post("/runs/log-parameter")
async def log_param(request: Request, session: SessionDep, who: RunUpdater) -> dict[str, Any]:
    """Log one param (a second value for a logged key is INVALID_PARAMETER_VALUE)."""
    data = await read(request, m.LogParam)
    await service.log_batch(session, who, data.run_id, params={data.key: data.value})
    return _empty()


@api.post("/runs/set-tag")
async def set_tag(request: Request, session: SessionDep, who: RunUpdater) -> dict[str, Any]:
    """Set one run tag (``mlflow.runName`` renames the run)."""
    data = await read(request, m.SetTag)
    await service.log_batch(session, who, data.run_id, tags={data.key: data.value})
    return _empty()


@api.post("/runs/delete-tag")
async def delete_tag(request: Request, session: SessionDep, who: RunUpdater) -> dict[str, Any]:
    """Remove one run tag."""
    data = await read(request, m.DeleteTag)
    await service.delete_tag(session, who, data.run_id, data.key)
    return _empty()


@api.post("/runs/log-batch")
async def log_batch(request: Request, session: SessionDep, who: MetricWriter) -> dict[str, Any]:
    """Metrics, params and tags together, all stored or none (MLflow ``LogBatch``)."""
    data = await read(request, m.LogBatch)
    params: dict[str, str] = {}
    for p in data.params:
        if params.get(p.key, p.value) != p.value:
            raise invalid(f"Duplicate parameter key {p.key!r} with different values")
        params[p.key] = p.value
    await service.log_batch(
        session,
        who,
        data.run_id,
        metrics=data.metrics,
        params=params,
        tags={t.key: t.value for t in data.tags},
    )
    return _empty()


@api.post("/runs/log-inputs")
async def log_inputs(request: Request, session: SessionDep, who: RunUpdater) -> dict[str, Any]:
    """Record the datasets a run used (MLflow ``LogInputs``)."""
    await service.log_inputs(session, who, await read(request, m.LogInputs))
    return _empty()


@api.post("/runs/outputs")
async def log_outputs(request: Request, session: SessionDep, who: RunUpdater) -> dict[str, Any]:
    """Record the logged models a run produced (MLflow ``LogOutputs``)."""
    await service.log_outputs(session, who, await read(request, m.LogOutputs))
    return _empty()


@api.post("/runs/search")
async def search_runs(request: Request, session: SessionDep, who: RunReader) -> dict[str, Any]:
    """Runs by MLflow filter, ``order_by`` and page token (MLflow ``SearchRuns``)."""
    return await service.search_runs(session, who, await read(request, m.SearchRuns))


@api.get("/metrics/get-history")
async def metric_history(
    request: Request, session: SessionDep, who: MetricReader
) -> dict[str, Any]:
    """Every value of one metric of a run, by step, paged."""
    return await service.metric_history(session, who, await read(request, m.GetMetricHistory))


@api.get("/artifacts/list")
async def list_run_artifacts(
    request: Request, session: SessionDep, store: StorageDep, who: ArtifactReader
) -> dict[str, Any]:
    """Files directly in a folder of a run's artifacts (MLflow ``ListArtifacts``)."""
    data = await read(request, m.ListArtifacts)
    run = await service.run(session, who, data.run_id)
    entries = await run_artifacts.list_folder(store, who.org, run.id, data.path)
    return {
        "root_uri": service.run_artifact_uri(run),
        "files": [
            {"path": e.path, "is_dir": e.is_dir}
            | ({"file_size": e.size} if not e.is_dir and e.size is not None else {})
            for e in entries
        ],
    }


# -- logged models -----------------------------------------------------------------------------


@api.post("/logged-models")
async def create_logged_model(
    request: Request, session: SessionDep, who: RunCreator
) -> dict[str, Any]:
    """Create a pending logged model (MLflow 3's ``log_model`` starts here)."""
    data = await read(request, m.CreateLoggedModel)
    model = await service.create_logged_model(session, who, data)
    return {"model": service.logged_model_out(model)}


@api.post("/logged-models/search")
async def search_logged_models(
    request: Request, session: SessionDep, who: RunReader
) -> dict[str, Any]:
    """Logged models of experiments, filtered on name, tags and params."""
    data = await read(request, m.SearchLoggedModels)
    return await service.search_logged_models(session, who, data)


@api.get("/logged-models/{model_id}")
async def get_logged_model(model_id: str, session: SessionDep, who: RunReader) -> dict[str, Any]:
    """One logged model."""
    return {"model": service.logged_model_out(await service.logged_model(session, who, model_id))}


@api.patch("/logged-models/{model_id}")
async def finalize_logged_model(
    model_id: str, request: Request, session: SessionDep, who: RunUpdater
) -> dict[str, Any]:
    """Mark a logged model READY (or failed) once its files are uploaded."""
    data = await read(request, m.FinalizeLoggedModel)
    model = await service.change_logged_model(session, who, model_id, status=data.status)
    return {"model": service.logged_model_out(model)}


@api.delete("/logged-models/{model_id}")
async def delete_logged_model(
    model_id: str, session: SessionDep, who: RunUpdater
) -> dict[str, Any]:
    """Delete a logged model (its files stay with its run)."""
    await service.change_logged_model(session, who, model_id, lifecycle="deleted")
    return _empty()


@api.patch("/logged-models/{model_id}/tags")
async def set_logged_model_tags(
    model_id: str, request: Request, session: SessionDep, who: RunUpdater
) -> dict[str, Any]:
    """Set tags of a logged model."""
    data = await read(request, m.LoggedModelTags)
    await service.change_logged_model(
        session, who, model_id, tags={t.key: t.value for t in data.tags}
    )
    return _empty()


@api.delete("/logged-models/{model_id}/tags/{key:path}")
async def delete_logged_model_tag(
    model_id: str, key: str, session: SessionDep, who: RunUpdater
) -> dict[str, Any]:
    """Remove one tag of a logged model."""
    await service.change_logged_model(session, who, model_id, delete_tag=key)
    return _empty()


@api.post("/logged-models/{model_id}/params")
async def log_logged_model_params(
    model_id: str, request: Request, session: SessionDep, who: RunUpdater
) -> dict[str, Any]:
    """Add params to a logged model (beyond the first hundred sent at creation)."""
    data = await read(request, m.LoggedModelParams)
    await service.change_logged_model(
        session, who, model_id, params={p.key: p.value for p in data.params}
    )
    return _empty()


@api.get("/logged-models/{model_id}/artifacts/directories")
async def list_logged_model_artifacts(
    model_id: str, request: Request, session: SessionDep, store: StorageDep, who: ArtifactReader
) -> dict[str, Any]:
    """Files directly in a folder of a logged model's files."""
    model = await service.logged_model(session, who, model_id)
    folder, base = service.model_files(model)
    path = request.query_params.get("artifact_directory_path", "")
    at = artifacts.Location(folder, base).join(path)
    entries = await run_artifacts.list_folder(store, who.org, at.folder, at.path)
    prefix = base + "/" if base else ""
    return {
        "root_uri": service.model_artifact_uri(model),
        "files": [
            {"path": e.path.removeprefix(prefix), "is_dir": e.is_dir}
            | ({"file_size": e.size} if not e.is_dir and e.size is not None else {})
            for e in entries
        ],
    }


# -- model registry (ModelOps) -----------------------------------------------------------------


@api.post("/registered-models/create")
async def create_registered_model(request: Request, who: Caller) -> dict[str, Any]:
    """Register a model name in ModelOps."""
    data = await read(request, m.CreateRegisteredModel)
    return {"registered_model": await registry.create_model(_peers(request).modelops, data)}


@api.get("/registered-models/get")
async def get_registered_model(request: Request, who: Caller) -> dict[str, Any]:
    """A registered model with its latest versions and aliases."""
    data = await read(request, m.ModelName)
    found = await _peers(request).modelops.get_model(data.name)
    return {"registered_model": registry.model_out(found)}


@api.post("/registered-models/rename")
async def rename_registered_model(request: Request, who: Caller) -> dict[str, Any]:
    """Rename a registered model."""
    data = await read(request, m.RenameRegisteredModel)
    found = await _peers(request).modelops.update_model(data.name, name=data.new_name)
    return {"registered_model": registry.model_out(found)}


@api.patch("/registered-models/update")
async def update_registered_model(request: Request, who: Caller) -> dict[str, Any]:
    """Change a registered model's description."""
    data = await read(request, m.UpdateRegisteredModel)
    found = await _peers(request).modelops.update_model(data.name, description=data.description)
    return {"registered_model": registry.model_out(found)}


@api.delete("/registered-models/delete")
async def delete_registered_model(request: Request, who: Caller) -> dict[str, Any]:
    """Delete a registered model with its versions."""
    data = await read(request, m.ModelName)
    await _peers(request).modelops.delete_model(data.name)
    return _empty()


@api.get("/registered-models/search")
async def search_registered_models(request: Request, who: Caller) -> dict[str, Any]:
    """Registered models by name and tag filters."""
    data = await read(request, m.SearchRegistry)
    return await registry.search_models(_peers(request).modelops, data)


@api.post("/registered-models/get-latest-versions")
async def get_latest_versions(request: Request, who: Caller) -> dict[str, Any]:
    """The newest version of a model in each stage."""
    data = await read(request, m.LatestVersions)
    return await registry.latest_versions(_peers(request).modelops, data.name, data.stages)


@api.post("/registered-models/set-tag")
async def set_registered_model_tag(request: Request, who: Caller) -> dict[str, Any]:
    """Set one tag of a registered model."""
    data = await read(request, m.ModelTag)
    await _peers(request).modelops.set_model_tag(data.name, data.key, data.value)
    return _empty()


@api.delete("/registered-models/delete-tag")
async def delete_registered_model_tag(request: Request, who: Caller) -> dict[str, Any]:
    """Remove one tag of a registered model."""
    data = await read(request, m.ModelTagKey)
    await _peers(request).modelops.delete_model_tag(data.name, data.key)
    return _empty()


@api.post("/registered-models/alias")
async def set_alias(request: Request, who: Caller) -> dict[str, Any]:
    """Point an alias at a version (moving it from the version that had it)."""
    await registry.set_alias(_peers(request).modelops, await read(request, m.AliasSet))
    return _empty()


@api.delete("/registered-models/alias")
async def delete_alias(request: Request, who: Caller) -> dict[str, Any]:
    """Remove an alias."""
    data = await read(request, m.AliasRef)
    await _peers(request).modelops.delete_alias(data.name, data.alias)
    return _empty()


@api.get("/registered-models/alias")
async def get_by_alias(request: Request, who: Caller) -> dict[str, Any]:
    """The version an alias points at."""
    data = await read(request, m.AliasRef)
    found = await registry.by_alias(_peers(request).modelops, data.name, data.alias)
    return {"model_version": found}


@api.post("/model-versions/create")
async def create_model_version(
    request: Request, session: SessionDep, who: Caller
) -> dict[str, Any]:
    """Register a version from a run's artifacts or a logged model; ModelOps copies it."""
    data = await read(request, m.CreateModelVersion)
    version = await registry.create_version(session, who, _peers(request).modelops, data)
    return {"model_version": version}


@api.get("/model-versions/get")
async def get_model_version(request: Request, who: Caller) -> dict[str, Any]:
    """One model version."""
    data = await read(request, m.VersionRef)
    return {
        "model_version": await registry.get_version(
            _peers(request).modelops, data.name, data.version
        )
    }


@api.patch("/model-versions/update")
async def update_model_version(request: Request, who: Caller) -> dict[str, Any]:
    """Change a version's description."""
    data = await read(request, m.UpdateModelVersion)
    found = await _peers(request).modelops.update_version(
        data.name, registry._version_number(data.version), description=data.description
    )
    return {"model_version": registry.version_out(found)}


@api.delete("/model-versions/delete")
async def delete_model_version(request: Request, who: Caller) -> dict[str, Any]:
    """Delete a version with its files."""
    data = await read(request, m.VersionRef)
    await _peers(request).modelops.delete_version(data.name, registry._version_number(data.version))
    return _empty()


@api.get("/model-versions/search")
async def search_model_versions(request: Request, who: Caller) -> dict[str, Any]:
    """Versions by name, run id and tag filters."""
    data = await read(request, m.SearchRegistry)
    return await registry.search_versions(_peers(request).modelops, data)


@api.get("/model-versions/get-download-uri")
async def get_download_uri(request: Request, who: Caller) -> dict[str, Any]:
    """Where a version's files are downloaded from (the registry's copy)."""
    data = await read(request, m.VersionRef)
    uri = await registry.download_uri(_peers(request).modelops, data.name, data.version)
    return {"artifact_uri": uri}


@api.post("/model-versions/transition-stage")
async def transition_stage(request: Request, who: Caller) -> dict[str, Any]:
    """Move a version to a stage (None, Staging, Production, Archived)."""
    data = await read(request, m.TransitionStage)
    found = await _peers(request).modelops.transition_stage(
        data.name,
        registry._version_number(data.version),
        data.stage,
        archive_existing_versions=data.archive_existing_versions,
    )
    return {"model_version": registry.version_out(found)}


@api.post("/model-versions/set-tag")
async def set_version_tag(request: Request, who: Caller) -> dict[str, Any]:
    """Set one tag of a version."""
    data = await read(request, m.VersionTag)
    await _peers(request).modelops.set_version_tag(
        data.name, registry._version_number(data.version), data.key, data.value
    )
    return _empty()


@api.delete("/model-versions/delete-tag")
async def delete_version_tag(request: Request, who: Caller) -> dict[str, Any]:
    """Remove one tag of a version."""
    data = await read(request, m.VersionTagKey)
    await _peers(request).modelops.delete_version_tag(
        data.name, registry._version_number(data.version), data.key
    )
    return _empty()


# MLflow's clients send these searches as POST; its REST docs also allow GET.
api.add_api_route(
    "/experiments/search", search_experiments, methods=["GET"], include_in_schema=False
)
api.add_api_route("/runs/search", search_runs, methods=["GET"], include_in_schema=False)
api.add_api_route(
    "/registered-models/get-latest-versions",
    get_latest_versions,
    methods=["GET"],
    include_in_schema=False,
)


# -- mlflow-artifacts --------------------------------------------------------------------------


async def _resolve(request: Request, who: Principal, path: str) -> artifacts.Location:
    """Where an artifact path points, in a short session of its own: transfers may last
    minutes and must not hold a transaction (on SQLite, the write lock)."""
    async with request.app.state.db.session(write=False) as session:
        return await artifacts.resolve(session, who, path)


@files.get("/artifacts")
async def list_artifacts(
    request: Request, store: StorageDep, who: ArtifactReader, path: str = ""
) -> dict[str, Any]:
    """Files and folders directly in an artifact folder (base names, as MLflow lists)."""
    if not path.strip("/"):
        return {}
    at = await _resolve(request, who, path)
    found = await artifacts.list_files(_peers(request), store, who, at)
    return {"files": found} if found else {}


_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file's bytes, sent as the raw body (any size; streamed).",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@files.put("/artifacts/{path:path}", openapi_extra=_UPLOAD_BODY)
async def upload_artifact(
    path: str, request: Request, store: StorageDep, who: ArtifactWriter
) -> dict[str, Any]:
    """Upload one artifact file, streamed to the object store."""
    at = await _resolve(request, who, path)
    if at.registry is not None:
        raise invalid("Registered model versions are read-only")
    settings: TrainingSettings = request.app.state.settings
    await run_artifacts.upload(
        store,
        who.org,
        at.folder,
        at.path,
        request.stream(),
        max_bytes=settings.max_artifact_bytes,
        content_type=request.headers.get("content-type"),
    )
    return _empty()


@files.get(
    "/artifacts/{path:path}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def download_artifact(
    path: str, request: Request, store: StorageDep, who: ArtifactReader
) -> Response:
    """Download one artifact file, streamed."""
    at = await _resolve(request, who, path)
    name = at.path.rpartition("/")[2] or "artifact"
    disposition = f"attachment; filename*=UTF-8''{quote(name)}"
    if at.registry is not None:
        body = await artifacts.open_registry_file(_peers(request), at)
        return StreamingResponse(
            body,
            media_type="application/octet-stream",
            headers={"Content-Disposition": disposition},
        )
    reader = await run_artifacts.open_file(store, who.org, at.folder, at.path)
    return StreamingResponse(
        reader,
        media_type=reader.info.content_type or "application/octet-stream",
        headers={"Content-Length": str(reader.info.size), "Content-Disposition": disposition},
        background=BackgroundTask(reader.aclose),
    )


@files.delete("/artifacts/{path:path}")
async def delete_artifact(
    path: str, request: Request, store: StorageDep, who: ArtifactDeleter
) -> dict[str, Any]:
    """Delete an artifact file or folder."""
    at = await _resolve(request, who, path)
    if at.registry is not None or not at.path:
        raise invalid("Only files or folders inside a run's artifacts can be deleted")
    await run_artifacts.delete(store, who.org, at.folder, at.path)
    return _empty()


# -- server info -------------------------------------------------------------------------------


@info.get("/api/3.0/mlflow/server-info")
async def server_info() -> dict[str, Any]:
    """What this MLflow-compatible server offers (no multipart artifact transfers)."""
    return {
        "store_type": "InwireStore",
        "workspaces_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
    }


fallback = APIRouter(route_class=MlflowRoute, include_in_schema=False)


@fallback.api_route(
    "/api/2.0/mlflow/{rest:path}", methods=["GET", "POST", "PATCH", "PUT", "DELETE"]
)
async def unknown_endpoint(rest: str, request: Request) -> JSONResponse:
    """MLflow endpoints this server does not implement."""
    return error_response(
        "ENDPOINT_NOT_FOUND", f"{request.method} /api/2.0/mlflow/{rest} is not implemented"
    )


def _mounted() -> list[APIRouter]:
    routers = []
    for prefix, listed in (("/api/2.0/mlflow", True), ("/ajax-api/2.0/mlflow", False)):
        outer = APIRouter(prefix=prefix, include_in_schema=listed)
        outer.include_router(api)
        routers.append(outer)
    return [*routers, files, info, fallback]


#: Mounted at ``/`` by the app (``_routers()``).
root_routers = _mounted()
