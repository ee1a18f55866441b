"""What follows a change of a deployment outside the local controller: Kubernetes manifests
rendered, validated and applied (when the cluster has an API server URL), and the
``deployment.apply`` approval handler that creates or updates a deployment on a
protected target once approved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.auth import Principal
from inwire.services.modelops.deployments import clusters, kubernetes, service
from inwire.services.modelops.deployments.models import Deployment, DeploymentRevision
from inwire.services.modelops.deployments.schemas import DeploymentCreate, DeploymentUpdate
from inwire.services.modelops.governance.gate import register_action
from inwire.services.modelops.settings import ModelOpsSettings


@dataclass
class Context:
    """What the approval handler needs of the running app (set in its lifespan)."""

    settings: ModelOpsSettings
    controller: Any = None


_context: list[Context] = []


def configure(context: Context) -> None:
    """Give the approval handler the app's settings and controller."""
    _context[:] = [context]


def context() -> Context:
    """The running app's context (settings from the environment when none was set)."""
    if not _context:
        _context.append(Context(ModelOpsSettings()))
    return _context[0]


async def on_target(
    session: AsyncSession,
    settings: ModelOpsSettings,
    dep: Deployment,
    revs: list[DeploymentRevision],
    *,
    image: str | None,
    transport: httpx.AsyncBaseTransport | None,
) -> None:
    """For a Kubernetes target: render the manifests of the stable revision, validate
    them, and apply them when the cluster has an API URL (else say nothing was applied)."""
    target = clusters.target(settings, dep.target)
    if target.cluster is None:
        return
    cluster = target.cluster
    if dep.status == "stopped":
        if dep.applied and cluster.api_url:
            await kubernetes.delete(cluster, dep.manifests, transport=transport)
        dep.applied = False
        return
    stable = service.stable_of(revs)
    if stable is None:
        return
    chosen = await service.built_image(session, dep.organization_id, stable.version_id, image)
    objs = kubernetes.manifests(
        deployment_id=dep.id,
        model_name=dep.model_name,
        version=stable.version,
        image=chosen,
        namespace=cluster.namespace,
        replicas=min(stable.replicas, cluster.max_replicas),
    )
    dep.manifests = objs
    if cluster.api_url:
        await kubernetes.apply(cluster, objs, transport=transport)
        dep.applied, dep.status = True, "ready"
        dep.message = f"applied to {cluster.api_url} (namespace {cluster.namespace})"
        stable.status = "ready"
    else:
        dep.applied, dep.status = False, "rendered"
        dep.message = (
            f"cluster {cluster.name!r} has no API server URL: the manifests were rendered "
            "and validated; nothing was applied"
        )
    await session.flush()


async def apply_handler(
    session: AsyncSession, who: Principal, payload: dict[str, Any]
) -> dict[str, Any]:
    """Run an approved create or update of a deployment on a protected target."""
    ctx = context()
    kind = clusters.target(ctx.settings, payload.get("target", "local")).kind
    if payload["op"] == "create":
        data = DeploymentCreate.model_validate(payload["data"])
        dep, revs = await service.create(session, who, data, kind=kind)
        image = data.image
    else:
        upd = DeploymentUpdate.model_validate(payload["data"])
        dep, revs = await service.update(session, who, payload["deployment_id"], upd)
        image = upd.image
    transport = ctx.controller.kube_transport if ctx.controller is not None else None
    await on_target(session, ctx.settings, dep, revs, image=image, transport=transport)
    if ctx.controller is not None and dep.target == "local":
        ctx.controller.kick(dep.id)  # the generation poll would find it too
    return {"deployment_id": dep.id, "status": dep.status, "generation": dep.generation}


register_action(service.APPLY_KIND, apply_handler)
