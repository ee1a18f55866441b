"""Deployments' domain logic on the database: the desired state the controller serves.

A deployment holds revisions (a model version each) with a role, a traffic weight and a
replica count. Creating one makes a ``stable`` revision; a new version makes an incoming
revision by strategy — ``rolling`` (replicas moved over one at a time), ``green`` beside
``blue``, ``canary`` with a weight, ``shadow`` mirrored — that ``promote`` makes stable
and ``rollback`` drops. Every change is audited, published through the outbox
(``inwire.modelops.deployment.<verb>``) and bumps the deployment's ``generation`` so that
the controller reconciles. ``apply`` is also the ``deployment.apply`` approval handler
for protected targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.db import RepositoryBase
from inwire.kit.errors import Conflict, Invalid, NotFound
from inwire.kit.events import CloudEvent
from inwire.kit.ids import new_id
from inwire.services.modelops.builds.models import Build
from inwire.services.modelops.db import OUTBOX
from inwire.services.modelops.deployments.models import Deployment, DeploymentRevision
from inwire.services.modelops.deployments.schemas import (
    DeploymentCreate,
    DeploymentUpdate,
    StrategyParams,
)
from inwire.services.modelops.governance import audit, history
from inwire.services.modelops.models import service as registry
from inwire.services.modelops.models.models import ModelVersion
from inwire.services.modelops.models.repository import AliasRepository, VersionRepository

SOURCE = "/inwire/modelops"
#: The actor of the controller's own moves (automatic rollback, canary steps, scaling).
SYSTEM_ACTOR = "system:deployments"
#: Revisions that serve (or are being started).
ACTIVE = ("starting", "ready")
#: Roles of a revision that is not (yet) the deployment's stable one.
INCOMING = ("rolling", "canary", "green", "shadow")
#: The approval kind of a create/update on a protected target.
APPLY_KIND = "deployment.apply"


class DeploymentRepository(RepositoryBase[Deployment]):
    """Deployments of one organization."""

    model = Deployment
    noun = "Deployment"


class RevisionRepository(RepositoryBase[DeploymentRevision]):
    """Revisions of one organization's deployments."""

    model = DeploymentRevision
    noun = "Revision"

    async def of(self, deployment_ids: Sequence[str]) -> dict[str, list[DeploymentRevision]]:
        """Revisions per deployment, oldest first."""
        out: dict[str, list[DeploymentRevision]] = {d: [] for d in deployment_ids}
        if not deployment_ids:
            return out
        rows = await self.session.execute(
            self.select(DeploymentRevision.deployment_id.in_(deployment_ids)).order_by(
                DeploymentRevision.created_at, DeploymentRevision.id
            )
        )
        for r in rows.scalars():
            out[r.deployment_id].append(r)
        return out


def active(revisions: Sequence[DeploymentRevision]) -> list[DeploymentRevision]:
    """The revisions that serve or are starting."""
    return [r for r in revisions if r.status in ACTIVE]


def stable_of(revisions: Sequence[DeploymentRevision]) -> DeploymentRevision | None:
    """The active stable (or, after a blue/green switch, blue) revision."""
    return next((r for r in active(revisions) if r.role in ("stable", "blue")), None)


def incoming_of(revisions: Sequence[DeploymentRevision]) -> DeploymentRevision | None:
    """The active incoming revision (rolling, canary, green or shadow), if any."""
    return next((r for r in active(revisions) if r.role in INCOMING), None)


def snapshot(dep: Deployment, revisions: Sequence[DeploymentRevision]) -> dict[str, Any]:
    """What the audit trail keeps of a deployment."""
    return {
        "status": dep.status,
        "strategy": dep.strategy,
        "target": dep.target,
        "replicas_min": dep.replicas_min,
        "replicas_max": dep.replicas_max,
        "autoscaling": dep.autoscaling or None,
        "revisions": [
            {"version": r.version, "role": r.role, "weight": r.weight, "replicas": r.replicas}
            for r in active(revisions)
        ],
    }


async def emit(
    session: AsyncSession, org_id: str, actor: str, verb: str, dep: Deployment, **data: Any
) -> None:
    """Publish ``inwire.modelops.deployment.<verb>`` with the change."""
    await OUTBOX.add(
        session,
        CloudEvent(
            source=SOURCE,
            type=f"inwire.modelops.deployment.{verb}",
            subject=dep.id,
            data={
                "deployment_id": dep.id,
                "model_id": dep.model_id,
                "target": dep.target,
                "status": dep.status,
                "actor": actor,
                **data,
            },
            inwireorg=org_id,
        ),
    )


async def load(
    session: AsyncSession, org_id: str | None, deployment_id: str
) -> tuple[Deployment, list[DeploymentRevision]]:
    """A deployment and its revisions (``org_id`` None: any organization's); 404."""
    if org_id is None:
        dep = await DeploymentRepository.unscoped(session).get(deployment_id)
    else:
        dep = await DeploymentRepository(session, org_id).get(deployment_id)
    revs = await RevisionRepository(session, dep.organization_id).of([dep.id])
    return dep, revs[dep.id]


def _serving(revisions: Sequence[DeploymentRevision]) -> dict[str, int]:
    return {r.version_id: r.weight for r in active(revisions) if r.weight > 0}


async def _record(
    session: AsyncSession,
    org_id: str,
    actor: str,
    action: str,
    dep: Deployment,
    before: dict[str, Any] | None,
    revisions: Sequence[DeploymentRevision],
    reason: str,
    before_serving: dict[str, int] | None = None,
) -> None:
    """Audit, bump the generation, and write the production history when the serving
    version of a production deployment changed."""
    dep.generation += 1
    await audit.record(
        session,
        org_id,
        actor,
        action,
        "deployment",
        dep.id,
        before=before,
        after=None
        if dep.status == "stopped" and action == "deployment.delete"
        else snapshot(dep, revisions),
    )
    if before_serving is not None and (dep.environment == "production" or dep.target != "local"):
        now = _serving(revisions)
        main = max(now, key=lambda v: now[v]) if now else None
        was = max(before_serving, key=lambda v: before_serving[v]) if before_serving else None
        if main != was:
            await history.production_changed(
                session,
                org_id,
                model_id=dep.model_id,
                version_id=main,
                deployment_id=dep.id,
                actor=actor,
                reason=reason,
            )
    await session.flush()


# -- resolving what to deploy --------------------------------------------------------------


async def resolve_version(
    session: AsyncSession, who: Principal, model: str, version: int | None, alias: str | None
) -> tuple[Any, ModelVersion]:
    """The model and the version named by number or alias; READY only."""
    row = await registry.get_model(session, who, model)
    if version is not None:
        found = await VersionRepository(session, who.org).by_number(row.id, version)
        field = "version"
    else:
        assert alias is not None
        pointer = await AliasRepository(session, who.org).named(row.id, alias)
        found = (
            await VersionRepository(session, who.org).find(ModelVersion.id == pointer.version_id)
            if pointer is not None
            else None
        )
        field = "alias"
    if found is None:
        raise Invalid(
            f"Model {row.name!r} has no {field} {version if version is not None else alias!r}",
            details=[{"field": field, "message": "not found"}],
        )
    if found.status != "READY":
        raise Invalid(
            f"Version {found.version} of {row.name!r} is {found.status}, not READY",
            details=[{"field": field, "message": "not READY"}],
        )
    return row, found


class _BuildRepo(RepositoryBase[Build]):
    model = Build
    noun = "Build"


async def built_image(
    session: AsyncSession, org_id: str, version_id: str, given: str | None
) -> str:
    """The container image of a Kubernetes deployment: the one given, else the newest
    build of the version that produced an image; 400 naming ``image`` otherwise."""
    if given:
        return given
    rows = await session.execute(
        _BuildRepo(session, org_id)
        .select(Build.version_id == version_id, Build.image.is_not(None))
        .order_by(Build.created_at.desc())
        .limit(1)
    )
    build = rows.scalars().first()
    if build is None or not build.image:
        raise Invalid(
            "A Kubernetes target runs a container image: build one (POST /builds with a "
            "container builder configured) or give `image`",
            details=[{"field": "image", "message": "no image for this version"}],
        )
    image: str = build.image
    return image


# -- create, update, delete -----------------------------------------------------------------


def _check_strategy_params(strategy: str, params: StrategyParams) -> None:
    if strategy != "canary" and params.steps is not None:
        raise Invalid(
            "steps belong to the canary strategy",
            details=[{"field": "strategy_params.steps", "message": "only for canary"}],
        )


async def create(
    session: AsyncSession, who: Principal, data: DeploymentCreate, *, kind: str
) -> tuple[Deployment, list[DeploymentRevision]]:
    """A new deployment serving one version as its stable revision (``kind`` is the
    target's: ``local`` or ``kubernetes``)."""
    model, version = await resolve_version(session, who, data.model, data.version, data.alias)
    _check_strategy_params(data.strategy, data.strategy_params)
    if kind == "kubernetes" and data.strategy != "rolling":
        raise Invalid(
            "Kubernetes targets roll out with the rolling strategy only",
            details=[{"field": "strategy", "message": "rolling only on kubernetes"}],
        )
    if kind == "kubernetes":
        await built_image(session, who.org, version.id, data.image)
    replicas_max = data.replicas_max or max(data.replicas_min, 1)
    dep = Deployment(
        id=new_id("dep"),
        organization_id=who.org,
        name=data.name or f"{model.name}-v{version.version}",
        model_id=model.id,
        model_name=model.name,
        target=data.target,
        strategy=data.strategy,
        strategy_params=data.strategy_params.model_dump(exclude_none=True),
        environment=data.environment,
        status="deploying",
        message="",
        replicas_min=data.replicas_min,
        replicas_max=replicas_max,
        autoscaling=data.autoscaling.model_dump() if data.autoscaling else {},
        manifests=[],
        applied=False,
        generation=0,
        created_by=who.subject,
    )
    await DeploymentRepository(session, who.org).add(dep)
    rev = DeploymentRevision(
        id=new_id("rev"),
        organization_id=who.org,
        deployment_id=dep.id,
        version_id=version.id,
        version=version.version,
        role="stable",
        weight=100,
        replicas=max(data.replicas_min, 1),
        status="starting",
        message="",
    )
    await RevisionRepository(session, who.org).add(rev)
    await _record(
        session,
        who.org,
        who.subject,
        "deployment.create",
        dep,
        None,
        [rev],
        f"deployment {dep.id} created",
        before_serving={},
    )
    await emit(session, who.org, who.subject, "created", dep, version=version.version)
    return dep, [rev]


def _incoming_role(strategy: str) -> str:
    return {"rolling": "rolling", "blue_green": "green", "canary": "canary", "shadow": "shadow"}[
        strategy
    ]


async def update(
    session: AsyncSession, who: Principal, deployment_id: str, data: DeploymentUpdate
) -> tuple[Deployment, list[DeploymentRevision]]:
    """Change bounds, autoscaling and strategy; a new version starts a rollout."""
    dep, revs = await load(session, who.org, deployment_id)
    if dep.status == "stopped":
        raise Conflict(f"Deployment {dep.id!r} is stopped")
    before = snapshot(dep, revs)
    before_serving = _serving(revs)
    if data.strategy is not None:
        dep.strategy = data.strategy
    if data.strategy_params is not None:
        _check_strategy_params(dep.strategy, data.strategy_params)
        dep.strategy_params = data.strategy_params.model_dump(exclude_none=True)
    lo = data.replicas_min if data.replicas_min is not None else dep.replicas_min
    hi = data.replicas_max if data.replicas_max is not None else max(dep.replicas_max, lo, 1)
    if hi < lo:
        raise Invalid(
            "replicas_max must be at least replicas_min",
            details=[{"field": "replicas_max", "message": "below replicas_min"}],
        )
    dep.replicas_min, dep.replicas_max = lo, hi
    if data.autoscaling is not None:
        dep.autoscaling = data.autoscaling.model_dump()
    stable = stable_of(revs)
    if stable is not None and not dep.autoscaling:
        stable.replicas = min(max(stable.replicas, lo, 1), hi)
    verb = "updated"
    if data.version is not None or data.alias is not None:
        if incoming_of(revs) is not None:
            raise Conflict(
                f"Deployment {dep.id!r} is rolling out a version: promote or roll it back first",
                code="ROLLOUT_IN_PROGRESS",
            )
        model = await registry.get_model(session, who, dep.model_id)
        _, version = await resolve_version(session, who, model.id, data.version, data.alias)
        if stable is not None and stable.version_id == version.id:
            raise Invalid(
                f"Deployment {dep.id!r} already serves version {version.version}",
                details=[{"field": "version", "message": "already served"}],
            )
        if dep.target != "local":
            await built_image(session, who.org, version.id, data.image)
        params = StrategyParams.model_validate(dep.strategy_params)
        role = _incoming_role(dep.strategy)
        replicas = {
            "rolling": 0,
            "green": stable.replicas if stable else 1,
            "canary": params.canary_replicas,
            "shadow": 1,
        }[role]
        if stable is None or dep.target != "local":
            role, replicas = "stable", max(lo, 1)  # nothing to roll from: serve it at once
        rev = DeploymentRevision(
            id=new_id("rev"),
            organization_id=who.org,
            deployment_id=dep.id,
            version_id=version.id,
            version=version.version,
            role=role,
            weight=100 if role == "stable" else 0,
            replicas=replicas,
            status="starting",
            message="",
        )
        if role == "stable" and stable is not None:
            stable.status, stable.weight, stable.replicas = "retired", 0, 0
        await RevisionRepository(session, who.org).add(rev)
        revs.append(rev)
        dep.status = "deploying" if role == "stable" else "rolling_out"
        dep.message = "" if role == "stable" else f"rolling out version {version.version}"
        verb = "rollout_started"
    await _record(
        session,
        who.org,
        who.subject,
        "deployment.update",
        dep,
        before,
        revs,
        "deployment updated",
        before_serving=before_serving,
    )
    await emit(session, who.org, who.subject, verb, dep)
    return dep, revs


# -- traffic: weights, promote, rollback ------------------------------------------------------


def _need_incoming(
    dep: Deployment, revs: Sequence[DeploymentRevision], what: str
) -> DeploymentRevision:
    rev = incoming_of(revs)
    if rev is None:
        raise Conflict(
            f"Deployment {dep.id!r} has no version rolling out to {what}", code="NO_ROLLOUT"
        )
    return rev


async def set_weight(
    session: AsyncSession, org_id: str, actor: str, deployment_id: str, weight: int
) -> tuple[Deployment, list[DeploymentRevision]]:
    """Give the canary ``weight`` percent of the traffic, the stable version the rest."""
    dep, revs = await load(session, org_id, deployment_id)
    canary = _need_incoming(dep, revs, "weigh")
    if canary.role != "canary":
        raise Conflict(
            f"Deployment {dep.id!r} rolls out with {dep.strategy}; only a canary takes a weight",
            code="NOT_CANARY",
        )
    before, before_serving = snapshot(dep, revs), _serving(revs)
    stable = stable_of(revs)
    canary.weight = weight
    if stable is not None:
        stable.weight = 100 - weight
    await _record(
        session,
        org_id,
        actor,
        "deployment.traffic",
        dep,
        before,
        revs,
        f"canary weight {weight}%",
        before_serving=before_serving,
    )
    await emit(
        session, org_id, actor, "traffic_changed", dep, canary_version=canary.version, weight=weight
    )
    return dep, revs


async def switch(
    session: AsyncSession, org_id: str, actor: str, deployment_id: str
) -> tuple[Deployment, list[DeploymentRevision]]:
    """Blue/green: the ready green revision takes all the traffic at once; blue keeps its
    replicas for an instant rollback until promoted."""
    dep, revs = await load(session, org_id, deployment_id)
    green = _need_incoming(dep, revs, "switch to")
    blue = stable_of(revs)
    before, before_serving = snapshot(dep, revs), _serving(revs)
    green.weight, green.status = 100, "ready"
    if blue is not None:
        blue.role, blue.weight = "blue", 0
    dep.message = f"green (version {green.version}) serves all traffic; blue kept for rollback"
    await _record(
        session,
        org_id,
        actor,
        "deployment.switch",
        dep,
        before,
        revs,
        "blue/green switch",
        before_serving=before_serving,
    )
    await emit(session, org_id, actor, "switched", dep, version=green.version)
    return dep, revs


async def promote(
    session: AsyncSession, org_id: str, actor: str, deployment_id: str
) -> tuple[Deployment, list[DeploymentRevision]]:
    """The incoming revision becomes the stable one (all the traffic, the stable replica
    count); the previous one is retired and its replicas stop."""
    dep, revs = await load(session, org_id, deployment_id)
    new = _need_incoming(dep, revs, "promote")
    old = stable_of(revs)
    before, before_serving = snapshot(dep, revs), _serving(revs)
    keep = old.replicas if old is not None else 1
    if new.role == "rolling" and old is not None:
        keep = old.replicas + new.replicas
    new.role, new.weight = "stable", 100
    new.replicas = min(max(keep, new.replicas, dep.replicas_min, 1), max(dep.replicas_max, 1))
    if old is not None:
        old.status, old.weight, old.replicas = "retired", 0, 0
    dep.status, dep.message = "ready", f"version {new.version} promoted"
    await _record(
        session,
        org_id,
        actor,
        "deployment.promote",
        dep,
        before,
        revs,
        f"version {new.version} promoted",
        before_serving=before_serving,
    )
    await emit(session, org_id, actor, "rolled_out", dep, version=new.version)
    return dep, revs


async def rollback(
    session: AsyncSession, org_id: str, actor: str, deployment_id: str, reason: str
) -> tuple[Deployment, list[DeploymentRevision]]:
    """Drop the incoming revision (its replicas stop); the stable one takes all traffic."""
    dep, revs = await load(session, org_id, deployment_id)
    new = _need_incoming(dep, revs, "roll back")
    old = stable_of(revs)
    before, before_serving = snapshot(dep, revs), _serving(revs)
    if old is not None:
        if new.role == "rolling":
            old.replicas += new.replicas
        old.role, old.weight, old.status = "stable", 100, "ready"
    new.status, new.weight, new.replicas, new.message = "rolled_back", 0, 0, reason
    dep.status = "rolled_back" if old is not None else "failed"
    dep.message = reason
    await _record(
        session,
        org_id,
        actor,
        "deployment.rollback",
        dep,
        before,
        revs,
        reason,
        before_serving=before_serving,
    )
    await emit(
        session,
        org_id,
        actor,
        "rolled_back",
        dep,
        version=new.version,
        reason=reason,
        automatic=actor == SYSTEM_ACTOR,
    )
    return dep, revs


# -- the controller's own moves ------------------------------------------------------------


async def revision_state(
    session: AsyncSession,
    deployment_id: str,
    revision_id: str,
    *,
    status: str | None = None,
    replicas: int | None = None,
    weight: int | None = None,
    message: str | None = None,
    deployment_status: str | None = None,
    deployment_message: str | None = None,
    verb: str | None = None,
) -> tuple[Deployment, list[DeploymentRevision]]:
    """Record what the controller observed or did to one revision (ready, failed, scaled,
    a rollout step) with an audit entry by :data:`SYSTEM_ACTOR`."""
    dep, revs = await load(session, None, deployment_id)
    rev = next(r for r in revs if r.id == revision_id)
    before, before_serving = snapshot(dep, revs), _serving(revs)
    if status is not None:
        rev.status = status
    if replicas is not None:
        rev.replicas = replicas
    if weight is not None:
        rev.weight = weight
    if message is not None:
        rev.message = message
    if deployment_status is not None:
        dep.status = deployment_status
    if deployment_message is not None:
        dep.message = deployment_message
    org = dep.organization_id
    await _record(
        session,
        org,
        SYSTEM_ACTOR,
        f"deployment.{verb or 'reconcile'}",
        dep,
        before,
        revs,
        deployment_message or message or (verb or "reconciled"),
        before_serving=before_serving,
    )
    if verb is not None:
        await emit(
            session, org, SYSTEM_ACTOR, verb, dep, version=rev.version, replicas=rev.replicas
        )
    return dep, revs


async def delete(session: AsyncSession, who: Principal, deployment_id: str) -> Deployment:
    """Stop the deployment: every revision retired (the controller stops its replicas);
    the row stays, ``stopped``, for the record."""
    dep, revs = await load(session, who.org, deployment_id)
    before, before_serving = snapshot(dep, revs), _serving(revs)
    for r in active(revs):
        r.status, r.weight, r.replicas = "retired", 0, 0
    dep.status, dep.message = "stopped", "deleted"
    await _record(
        session,
        who.org,
        who.subject,
        "deployment.delete",
        dep,
        before,
        revs,
        "deployment deleted",
        before_serving=before_serving,
    )
    await emit(session, who.org, who.subject, "deleted", dep)
    return dep


async def list_deployments(
    session: AsyncSession, who: Principal, query: ListQuery, model: str | None
) -> tuple[Sequence[Deployment], int]:
    """One page of deployments (of one model, by id or name, when asked)."""
    repo = DeploymentRepository(session, who.org)
    stmt = repo.select()
    if model is not None:
        row = await registry.get_model(session, who, model)
        stmt = stmt.where(Deployment.model_id == row.id)
    return await repo.page(query, stmt)


async def live_generations(session: AsyncSession) -> dict[str, int]:
    """Generation of every deployment of the local target not stopped (all organizations)."""
    rows = await session.execute(
        select(Deployment.id, Deployment.generation).where(
            Deployment.target == "local", Deployment.status != "stopped"
        )
    )
    return {r[0]: r[1] for r in rows}


async def signature_of(
    session: AsyncSession, org_id: str, version_id: str
) -> tuple[str, dict[str, Any] | None]:
    """``(model id, signature)`` of a version."""
    row = await VersionRepository(session, org_id).find(ModelVersion.id == version_id)
    if row is None:
        raise NotFound(f"Model version {version_id!r} not found")
    return row.model_id, row.signature
