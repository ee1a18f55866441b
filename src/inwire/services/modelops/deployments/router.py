"""HTTP endpoints of deployments (create, list, get, update, traffic, promote, rollback,
shadow comparison, delete, predict) and of clusters (the deployment targets)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.kit.errors import Unavailable
from inwire.services.modelops.deployments import actions, clusters, service
from inwire.services.modelops.deployments.controller import DeploymentController
from inwire.services.modelops.deployments.fastpath import encode, parse_body
from inwire.services.modelops.deployments.models import Deployment, DeploymentRevision
from inwire.services.modelops.deployments.schemas import (
    ClusterOut,
    DeploymentCreate,
    DeploymentOut,
    DeploymentUpdate,
    ShadowOut,
    TrafficSet,
)
from inwire.services.modelops.governance.gate import gate
from inwire.services.modelops.governance.schemas import ApprovalOut
from inwire.services.modelops.models.router import SettingsDep
from inwire.services.modelops.settings import ModelOpsSettings

router = APIRouter(prefix="/deployments", tags=["deployments"])
clusters_router = APIRouter(prefix="/clusters", tags=["clusters"])
routers = [router, clusters_router]

Reader = Annotated[Principal, require("deployments:read")]
Creator = Annotated[Principal, require("deployments:create")]
Updater = Annotated[Principal, require("deployments:update")]
Deleter = Annotated[Principal, require("deployments:delete")]
Executor = Annotated[Principal, require("deployments:execute")]
ClusterReader = Annotated[Principal, require("clusters:read")]

_query = list_params(
    ("created_at", "updated_at", "name"),
    filters={
        "status": Literal[
            "deploying", "ready", "rolling_out", "rolled_back", "failed", "stopped", "rendered"
        ],
        "target": str,
        "strategy": Literal["rolling", "blue_green", "canary", "shadow"],
        "environment": str,
    },
)

_GATED: dict[int | str, dict[str, Any]] = {
    202: {
        "model": Item[ApprovalOut],
        "description": "The protected target's change awaits approval",
    }
}


async def _controller(request: Request) -> DeploymentController | None:
    return getattr(request.app.state, "deployments", None)


ControllerDep = Annotated[DeploymentController | None, Depends(_controller)]


def _need(controller: DeploymentController | None) -> DeploymentController:
    if controller is None:
        raise Unavailable("The deployments controller is not running")
    return controller


def view(
    dep: Deployment, revs: list[DeploymentRevision], controller: DeploymentController | None
) -> DeploymentOut:
    """A deployment as the API shows it: revisions (newest first) with their replicas."""
    route = controller.routes.get(dep.id) if controller else None
    if route is not None:
        traffic = {
            str(r.version): round(100 * (c - p) / route.cumulative[-1])
            for r, p, c in zip(
                route.serving, [0, *route.cumulative], route.cumulative, strict=False
            )
        }
    else:
        traffic = {str(r.version): r.weight for r in service.active(revs) if r.weight > 0}
    revisions = [
        {
            "id": r.id,
            "version": r.version,
            "version_id": r.version_id,
            "role": r.role,
            "weight": r.weight,
            "replicas": r.replicas,
            "status": r.status,
            "message": r.message,
            "instances": (
                controller.instances(dep.id, r.version_id)
                if controller and r.status in service.ACTIVE
                else []
            ),
            "created_at": r.created_at,
        }
        for r in reversed(revs)
    ]
    return DeploymentOut(
        id=dep.id,
        name=dep.name,
        model_id=dep.model_id,
        model_name=dep.model_name,
        target=dep.target,
        strategy=dep.strategy,
        strategy_params=dep.strategy_params or {},
        environment=dep.environment,
        status=dep.status,
        message=dep.message,
        replicas_min=dep.replicas_min,
        replicas_max=dep.replicas_max,
        autoscaling=dep.autoscaling or None,
        traffic=traffic,
        revisions=revisions,
        manifests=dep.manifests or [],
        applied=dep.applied,
        created_by=dep.created_by,
        created_at=dep.created_at,
        updated_at=dep.updated_at,
    )


def _awaiting(approval: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"data": approval, "meta": {"approval_required": True}}, status_code=202)


async def _after(
    session: AsyncSession,
    settings: ModelOpsSettings,
    controller: DeploymentController | None,
    dep: Deployment,
    revs: list[DeploymentRevision],
    image: str | None = None,
) -> None:
    transport = controller.kube_transport if controller else None
    await actions.on_target(session, settings, dep, revs, image=image, transport=transport)


@router.post("", status_code=201, response_model=Item[DeploymentOut], responses=_GATED)
async def create_deployment(
    data: DeploymentCreate,
    session: SessionDep,
    settings: SettingsDep,
    controller: ControllerDep,
    who: Creator,
) -> Any:
    """Deploy a model version (number or alias) to a target with a strategy; the replicas
    start in the background (`status` goes `deploying` -> `ready`). On a protected target
    it answers 202 with the approval it waits for."""
    target = clusters.target(settings, data.target)
    approval = await gate(
        session,
        who,
        service.APPLY_KIND,
        {"op": "create", "target": target.name, "data": data.model_dump(mode="json")},
        protected=target.protected,
        summary=f"deploy {data.model} to the protected target {target.name}",
    )
    if approval is not None:
        return _awaiting(approval)
    dep, revs = await service.create(session, who, data, kind=target.kind)
    await _after(session, settings, controller, dep, revs, data.image)
    await session.commit()
    if controller is not None and target.kind == "local":
        controller.kick(dep.id)
    return {"data": view(dep, revs, controller)}


@router.get("", response_model=Page[DeploymentOut])
async def list_deployments(
    session: SessionDep,
    controller: ControllerDep,
    query: Annotated[ListQuery, Depends(_query)],
    who: Reader,
    model: Annotated[str | None, Query(max_length=250, description="Model id or name")] = None,
) -> dict[str, Any]:
    """Deployments of your organization, newest first; filter by status, target,
    strategy, environment and model."""
    rows, total = await service.list_deployments(session, who, query, model)
    revs = await service.RevisionRepository(session, who.org).of([r.id for r in rows])
    return query.page_of([view(r, revs[r.id], controller) for r in rows], total)


@router.get("/{deployment_id}", response_model=Item[DeploymentOut])
async def get_deployment(
    deployment_id: str, session: SessionDep, controller: ControllerDep, who: Reader
) -> dict[str, Any]:
    """One deployment: status, revisions with their role, weight, replicas and health,
    the traffic split, and the manifests of a Kubernetes target."""
    dep, revs = await service.load(session, who.org, deployment_id)
    return {"data": view(dep, revs, controller)}


@router.patch("/{deployment_id}", response_model=Item[DeploymentOut], responses=_GATED)
async def update_deployment(
    deployment_id: str,
    data: DeploymentUpdate,
    session: SessionDep,
    settings: SettingsDep,
    controller: ControllerDep,
    who: Updater,
) -> Any:
    """Change a deployment. A new `version` (or `alias`) rolls out with the strategy;
    replica bounds, autoscaling and strategy parameters apply at once."""
    dep, _ = await service.load(session, who.org, deployment_id)
    target = clusters.target(settings, dep.target)
    approval = await gate(
        session,
        who,
        service.APPLY_KIND,
        {
            "op": "update",
            "target": target.name,
            "deployment_id": dep.id,
            "data": data.model_dump(mode="json", exclude_unset=True),
        },
        protected=target.protected,
        summary=f"change deployment {dep.id} on the protected target {target.name}",
    )
    if approval is not None:
        return _awaiting(approval)
    dep, revs = await service.update(session, who, deployment_id, data)
    await _after(session, settings, controller, dep, revs, data.image)
    await session.commit()
    if controller is not None:
        await controller.refresh(dep.id)
    return {"data": view(dep, revs, controller)}


async def _traffic_change(
    session: AsyncSession, controller: DeploymentController | None, dep_id: str
) -> dict[str, Any]:
    await session.commit()
    if controller is not None:
        await controller.refresh(dep_id)
    dep, revs = await service.load(session, None, dep_id)
    return {"data": view(dep, revs, controller)}


@router.post("/{deployment_id}/traffic", response_model=Item[DeploymentOut])
async def set_traffic(
    deployment_id: str,
    data: TrafficSet,
    session: SessionDep,
    controller: ControllerDep,
    who: Updater,
) -> dict[str, Any]:
    """Set the canary's share of the traffic by hand (percent; the stable version gets
    the rest). A step schedule carries on from the next step above it."""
    await service.set_weight(session, who.org, who.subject, deployment_id, data.weight)
    return await _traffic_change(session, controller, deployment_id)


@router.post("/{deployment_id}/promote", response_model=Item[DeploymentOut])
async def promote(
    deployment_id: str, session: SessionDep, controller: ControllerDep, who: Updater
) -> dict[str, Any]:
    """Make the version rolling out (canary, green, shadow) the stable one; the previous
    one's replicas stop."""
    await service.promote(session, who.org, who.subject, deployment_id)
    return await _traffic_change(session, controller, deployment_id)


@router.post("/{deployment_id}/rollback", response_model=Item[DeploymentOut])
async def rollback(
    deployment_id: str,
    session: SessionDep,
    controller: ControllerDep,
    who: Updater,
    reason: Annotated[str, Body(embed=True, max_length=500)] = "rolled back by hand",
) -> dict[str, Any]:
    """Drop the version rolling out: the stable (blue) version takes all traffic again
    at once; the other's replicas stop."""
    await service.rollback(session, who.org, who.subject, deployment_id, reason)
    return await _traffic_change(session, controller, deployment_id)


@router.get("/{deployment_id}/shadow", response_model=Item[ShadowOut])
async def shadow(
    deployment_id: str, session: SessionDep, controller: ControllerDep, who: Reader
) -> dict[str, Any]:
    """The shadow version against the serving one over the mirrored requests kept in
    memory: agreement rate, mean absolute difference of numbers, latency p50/p99 each."""
    await service.load(session, who.org, deployment_id)
    return {"data": _need(controller).shadow_report(deployment_id)}


@router.delete("/{deployment_id}", status_code=204)
async def delete_deployment(
    deployment_id: str,
    session: SessionDep,
    settings: SettingsDep,
    controller: ControllerDep,
    who: Deleter,
) -> Response:
    """Stop a deployment: its replicas stop (Kubernetes: its objects are deleted); the
    record stays, `stopped`."""
    dep = await service.delete(session, who, deployment_id)
    _, revs = await service.load(session, who.org, deployment_id)
    await _after(session, settings, controller, dep, revs)
    await session.commit()
    if controller is not None:
        await controller.refresh(dep.id)
    return Response(status_code=204)


_PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": '`{"inputs": [{"column": value}, ...]}` (or columns, MLflow\'s '
        "`dataframe_split`, `dataframe_records`, `instances`)",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post("/{deployment_id}/predict", openapi_extra=_PREDICT_BODY)
async def predict(
    deployment_id: str, request: Request, controller: ControllerDep, who: Executor
) -> Response:
    """Predict: inputs checked against the serving version's signature (400 naming the
    field), routed by the strategy's weights to a ready replica;
    `{"predictions", "version", "deployment"}`."""
    # Calls with a bearer token are answered before FastAPI's routing (``fastpath``); this
    # route serves the rest (a service on behalf of a user) and documents the endpoint.
    body = parse_body(await request.body())
    answer = await _need(controller).predict(who.org, deployment_id, body)
    # Encoded here: the hot path skips FastAPI's inference and validation of a return type.
    return Response(encode(answer), media_type="application/json")


@clusters_router.get("", response_model=Page[ClusterOut])
async def list_clusters(
    settings: SettingsDep, controller: ControllerDep, who: ClusterReader
) -> dict[str, Any]:
    """The deployment targets: `local` with its capacity, and the configured Kubernetes
    clusters."""
    running = len(controller.runtime.replicas()) if controller else 0
    items = clusters.describe(settings, running)
    return {"data": items, "meta": {"page": 1, "per_page": len(items), "total": len(items)}}


@clusters_router.get("/{name}", response_model=Item[ClusterOut])
async def get_cluster(
    name: str, settings: SettingsDep, controller: ControllerDep, who: ClusterReader
) -> dict[str, Any]:
    """One deployment target."""
    running = len(controller.runtime.replicas()) if controller else 0
    return {"data": clusters.one(settings, name, running)}
