"""The deployments controller: model-server replicas on the local target, the in-memory
routing table of the prediction path, rollouts by strategy, canary health, autoscaling.

The database holds the desired state (``service``); the controller reconciles to it: it
starts and stops replicas through the ``LocalRuntime`` until every active revision has
its replica count, and keeps a routing table (``Route``) per deployment so that a
prediction touches no database. At start it restores every deployment that was serving
(after a restart its replicas are started again) and then polls the deployments'
generations, so that changes made elsewhere (an approval, another process) are applied.

Rollouts run as one task per deployment and resume from the database's state:

- ``rolling``: one replica of the new version started (behind readiness), then one of the
  old stopped, until none is left; a replica that fails readiness rolls it all back;
- ``blue_green``: green started beside blue; once all are ready all traffic switches;
  blue keeps running until promote (or instant rollback);
- ``canary``: the canary starts at the first step (or the weight by hand) and climbs the
  steps every interval, promoted after the last; the control loop rolls it back when,
  over its window and with enough requests, its error rate or p99 latency crosses the
  thresholds;
- ``shadow``: the shadow gets a copy of every request, asynchronously; its answers are
  compared, never returned.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from inwire.kit.db import Database
from inwire.kit.errors import Conflict, Invalid, InwireError, NotFound, Unavailable
from inwire.kit.storage import ObjectStore
from inwire.services.modelops.deployments import service
from inwire.services.modelops.deployments.hop import Hop, HopError
from inwire.services.modelops.deployments.models import Deployment, DeploymentRevision
from inwire.services.modelops.deployments.schemas import Autoscaling, StrategyParams
from inwire.services.modelops.deployments.stats import ShadowRecord, Window, compare, shadow_summary
from inwire.services.modelops.serving.bundle import materialize
from inwire.services.modelops.serving.payload import rows_from_body
from inwire.services.modelops.serving.runtime import LocalRuntime, Replica, ReplicaFailed
from inwire.services.modelops.serving.validate import named_columns, validate_inputs
from inwire.services.modelops.settings import ModelOpsSettings

log = logging.getLogger(__name__)

#: Seconds between polls of the deployments' generations.
GENERATION_POLL = 2.0


class _Rerouted(Exception):
    """The revision a request was routed to stopped serving meanwhile: route it again."""


class ModelError(InwireError):
    """The model server failed the prediction (502)."""

    status = 502
    code = "MODEL_ERROR"


@dataclass
class RevisionRoute:
    """What the prediction path needs of one revision."""

    id: str
    version_id: str
    version: int
    role: str
    weight: int
    replicas: int
    signature: dict[str, Any] | None
    columns: list[str] | None
    window: Window


@dataclass
class Route:
    """The routing table of one deployment, rebuilt whenever it changes."""

    org_id: str
    deployment_id: str
    model_id: str
    strategy: str
    status: str
    params: StrategyParams
    autoscaling: Autoscaling | None
    replicas_min: int
    replicas_max: int
    revisions: list[RevisionRoute]
    serving: list[RevisionRoute] = field(default_factory=list)
    cumulative: list[int] = field(default_factory=list)
    shadow: RevisionRoute | None = None

    def pick(self, rng: random.Random) -> RevisionRoute:
        """A serving revision, at random by weight."""
        if not self.serving:
            raise Unavailable(f"Deployment {self.deployment_id!r} serves no version now")
        if len(self.serving) == 1:
            return self.serving[0]
        at = rng.random() * self.cumulative[-1]
        return self.serving[bisect.bisect_right(self.cumulative, at)]


def _weights(revisions: list[RevisionRoute], ready: Callable[[RevisionRoute], int]) -> list[int]:
    """Traffic weights: by replica during a rolling update, else the revisions' own."""
    if any(r.role == "rolling" for r in revisions):
        return [ready(r) if r.role in ("stable", "rolling") else 0 for r in revisions]
    return [r.weight if r.role != "shadow" else 0 for r in revisions]


class DeploymentController:
    """Replicas, routes and rollouts of the local target's deployments."""

    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        settings: ModelOpsSettings,
        runtime: LocalRuntime,
        *,
        workdir: Path,
        monitor: Any = None,
        seed: int | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.settings = settings
        self.runtime = runtime
        self.workdir = workdir
        self.monitor = monitor
        self.routes: dict[str, Route] = {}
        self.windows: dict[str, Window] = {}
        self.shadow_logs: dict[str, deque[ShadowRecord]] = {}
        self.in_flight: dict[str, int] = {}
        self.rng = random.Random(seed)
        self._rr = itertools.count()
        self._locks: dict[str, asyncio.Lock] = {}
        self._rollouts: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._observed: dict[str, int] = {}
        self._last_scale: dict[str, float] = {}
        self._inflight_samples: dict[str, deque[tuple[float, int]]] = {}
        self._waking: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.Task[None] | None = None
        #: The pooled client of the prediction path.
        self.hop = Hop(timeout=settings.deployment_predict_timeout)
        #: Tests swap in a fake Kubernetes API here (``httpx.MockTransport``).
        self.kube_transport: httpx.AsyncBaseTransport | None = None

    # -- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Supervise replicas, restore what was serving, and run the control loop."""
        await self.runtime.start()
        async with self.db.session(write=False) as session:
            generations = await service.live_generations(session)
        for deployment_id in generations:
            self.kick(deployment_id)
        self._loop = asyncio.create_task(self._control(), name="deployments-controller")

    async def close(self) -> None:
        """Stop the loop, the rollouts and every replica."""
        tasks = [t for t in [self._loop, *self._rollouts.values(), *self._background] if t]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.runtime.close()
        await self.hop.close()

    def _spawn(self, coro: Any, name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _lock(self, deployment_id: str) -> asyncio.Lock:
        return self._locks.setdefault(deployment_id, asyncio.Lock())

    def kick(self, deployment_id: str, *, restart_rollout: bool = True) -> None:
        """The desired state changed: reconcile in the background (a running rollout is
        stopped first and resumed from the new state)."""
        if restart_rollout:
            task = self._rollouts.pop(deployment_id, None)
            if task is not None:
                task.cancel()
        self._spawn(self._reconcile_logged(deployment_id), f"reconcile-{deployment_id}")

    async def refresh(self, deployment_id: str) -> None:
        """Rebuild a deployment's route from the database now (traffic changes take effect
        before the response), then reconcile in the background."""
        task = self._rollouts.pop(deployment_id, None)
        if task is not None:
            task.cancel()
        async with self.db.session(write=False) as session:
            found = await self._load(session, deployment_id)
        if found is not None:
            await self._route(*found)
        self.kick(deployment_id, restart_rollout=False)

    # -- reconciling -----------------------------------------------------------------------

    async def _load(
        self, session: Any, deployment_id: str
    ) -> tuple[Deployment, list[DeploymentRevision]] | None:
        try:
            return await service.load(session, None, deployment_id)
        except NotFound:
            return None

    async def _reconcile_logged(self, deployment_id: str) -> None:
        try:
            await self.reconcile(deployment_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reconciling deployment %s failed", deployment_id)

    async def reconcile(self, deployment_id: str) -> None:
        """Make the replicas and the route of one deployment match the database."""
        async with self._lock(deployment_id):
            async with self.db.session(write=False) as session:
                found = await self._load(session, deployment_id)
            if found is None or found[0].status == "stopped" or found[0].target != "local":
                await self._drop(deployment_id)
                return
            dep, revs = found
            self._observed[dep.id] = dep.generation
            live = service.active(revs)
            versions = {r.version_id for r in live}
            for replica in self.runtime.replicas(dep.id):
                if replica.version_id not in versions:
                    await self._stop(replica)
            await self._route(dep, revs)
            for rev in sorted(live, key=lambda r: r.role not in ("stable", "blue")):
                error = await self._ensure(dep, rev)
                if error is not None:
                    await self._failed(dep, rev, error)
                    return
            await self._settle(dep, revs)

    async def _settle(self, dep: Deployment, revs: list[DeploymentRevision]) -> None:
        """Revisions whose replicas all started are ready; a deployment being deployed is
        ready then; a rollout continues in its task."""
        changed = False
        async with self.db.session() as session:
            for rev in service.active(revs):
                if rev.status == "starting" and rev.role in ("stable", "blue"):
                    await service.revision_state(
                        session,
                        dep.id,
                        rev.id,
                        status="ready",
                        deployment_status="ready" if dep.status == "deploying" else None,
                        deployment_message="" if dep.status == "deploying" else None,
                        verb="ready" if dep.status == "deploying" else None,
                    )
                    changed = True
            found = await self._load(session, dep.id)
        if found is not None:
            dep, revs = found
            self._observed[dep.id] = dep.generation
            await self._route(dep, revs)
            if dep.status == "rolling_out" and dep.id not in self._rollouts:
                self._rollouts[dep.id] = asyncio.create_task(
                    self._rollout(dep.id), name=f"rollout-{dep.id}"
                )
        del changed

    async def _drop(self, deployment_id: str) -> None:
        self.routes.pop(deployment_id, None)
        task = self._rollouts.pop(deployment_id, None)
        if task is not None:
            task.cancel()
        for replica in self.runtime.replicas(deployment_id):
            await self._stop(replica)

    async def _stop(self, replica: Replica) -> None:
        await self.runtime.stop_replica(replica.id, grace=2.0)
        self.in_flight.pop(replica.id, None)

    def _replicas_of(self, deployment_id: str, version_id: str) -> list[Replica]:
        return [
            r
            for r in self.runtime.replicas(deployment_id)
            if r.version_id == version_id and r.state == "ready"
        ]

    async def _model_dir(
        self, dep: Deployment, rev: DeploymentRevision
    ) -> tuple[Path, dict[str, Any] | None]:
        async with self.db.session(write=False) as session:
            model_id, signature = await service.signature_of(
                session, dep.organization_id, rev.version_id
            )
        dest = self.workdir / "models" / dep.organization_id / rev.version_id
        folder = await materialize(self.store, dep.organization_id, model_id, rev.version_id, dest)
        return folder, signature

    async def _ensure(self, dep: Deployment, rev: DeploymentRevision) -> str | None:
        """Start or stop replicas of ``rev`` until it has ``rev.replicas``; the error of a
        replica that would not start (None when all is well)."""
        have = [r for r in self.runtime.replicas(dep.id) if r.version_id == rev.version_id]
        extra = len(have) - rev.replicas
        leaving = sorted(have, key=lambda r: self.in_flight.get(r.id, 0))[: max(0, extra)]
        if leaving:
            await self._route_from_memory(dep.id, without={r.id for r in leaving})
        for replica in leaving:
            await self._stop(replica)
        missing = rev.replicas - len(have)
        if missing <= 0:
            return None
        try:
            folder, signature = await self._model_dir(dep, rev)
        except (InwireError, OSError, ValueError) as exc:
            return f"the model files of version {rev.version} could not be read: {exc}"
        params = StrategyParams.model_validate(dep.strategy_params or {})
        timeout = min(params.ready_timeout_seconds, self.settings.deployment_ready_timeout)
        for _ in range(missing):
            if len(self.runtime.replicas()) >= self.settings.deployment_max_local_replicas:
                return (
                    f"the local target runs its maximum of "
                    f"{self.settings.deployment_max_local_replicas} replicas"
                )
            try:
                await self.runtime.start_replica(
                    dep.id, rev.version_id, folder, signature, timeout=timeout
                )
            except ReplicaFailed as exc:
                return f"a replica of version {rev.version} failed readiness: {exc}"[:2000]
            await self._route_from_memory(dep.id)
        return None

    async def _failed(self, dep: Deployment, rev: DeploymentRevision, error: str) -> None:
        """A revision's replica would not start: an incoming one is rolled back, a stable
        one marks the deployment failed (the next reconcile tries again)."""
        async with self.db.session() as session:
            if rev.role in service.INCOMING:
                await service.rollback(
                    session,
                    dep.organization_id,
                    service.SYSTEM_ACTOR,
                    dep.id,
                    f"rolled back: {error}",
                )
            else:
                await service.revision_state(
                    session,
                    dep.id,
                    rev.id,
                    status="failed" if dep.status == "deploying" else None,
                    message=error,
                    deployment_status="failed",
                    deployment_message=error,
                    verb="failed",
                )
            found = await self._load(session, dep.id)
        if found is not None:
            self._observed[dep.id] = found[0].generation
            for replica in self.runtime.replicas(dep.id):
                if replica.version_id == rev.version_id and rev.role in service.INCOMING:
                    await self._stop(replica)
            await self._route(*found)

    # -- routes ----------------------------------------------------------------------------

    async def _route(self, dep: Deployment, revs: list[DeploymentRevision]) -> None:
        """Rebuild the deployment's routing table (signatures read once per version)."""
        if dep.status == "stopped" or dep.target != "local":
            self.routes.pop(dep.id, None)
            return
        old = self.routes.get(dep.id)
        known = {r.version_id: r for r in old.revisions} if old else {}
        entries: list[RevisionRoute] = []
        for rev in service.active(revs):
            if rev.version_id in known:
                signature = known[rev.version_id].signature
            else:
                async with self.db.session(write=False) as session:
                    _, signature = await service.signature_of(
                        session, dep.organization_id, rev.version_id
                    )
            columns = named_columns(signature)
            entries.append(
                RevisionRoute(
                    id=rev.id,
                    version_id=rev.version_id,
                    version=rev.version,
                    role=rev.role,
                    weight=rev.weight,
                    replicas=rev.replicas,
                    signature=signature,
                    columns=[c["name"] for c in columns] if columns else None,
                    window=self.windows.setdefault(rev.id, Window()),
                )
            )
        auto = Autoscaling.model_validate(dep.autoscaling) if dep.autoscaling else None
        route = Route(
            org_id=dep.organization_id,
            deployment_id=dep.id,
            model_id=dep.model_id,
            strategy=dep.strategy,
            status=dep.status,
            params=StrategyParams.model_validate(dep.strategy_params or {}),
            autoscaling=auto,
            replicas_min=dep.replicas_min,
            replicas_max=dep.replicas_max,
            revisions=entries,
        )
        self._weigh(route)
        self.routes[dep.id] = route

    def _weigh(self, route: Route, without: set[str] | frozenset[str] = frozenset()) -> None:
        def ready(r: RevisionRoute) -> int:
            found = self._replicas_of(route.deployment_id, r.version_id)
            return sum(1 for x in found if x.id not in without)

        weights = _weights(route.revisions, ready)
        serving = [(r, w) for r, w in zip(route.revisions, weights, strict=True) if w > 0]
        if not serving:  # nothing weighted (a rolling update's first moment): the stable one
            serving = [(r, 1) for r in route.revisions if r.role in ("stable", "blue")][:1]
        route.serving = [r for r, _ in serving]
        route.cumulative = list(itertools.accumulate(w for _, w in serving))
        route.shadow = next((r for r in route.revisions if r.role == "shadow"), None)

    async def _route_from_memory(self, deployment_id: str, without: set[str] | None = None) -> None:
        """Reweigh a route from the replicas running (``without`` those about to stop)."""
        route = self.routes.get(deployment_id)
        if route is not None:
            self._weigh(route, without or set())

    # -- rollouts --------------------------------------------------------------------------

    async def _rollout(self, deployment_id: str) -> None:
        try:
            while await self._rollout_step(deployment_id):
                pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("rollout of deployment %s failed", deployment_id)
        finally:
            if self._rollouts.get(deployment_id) is asyncio.current_task():
                del self._rollouts[deployment_id]

    async def _rollout_step(self, deployment_id: str) -> bool:
        """One step of the deployment's rollout; False when there is nothing more to do
        on its own (done, rolled back, or waiting for a hand)."""
        async with self.db.session(write=False) as session:
            found = await self._load(session, deployment_id)
        if found is None or found[0].status != "rolling_out":
            return False
        dep, revs = found
        new, old = service.incoming_of(revs), service.stable_of(revs)
        if new is None:
            return False
        params = StrategyParams.model_validate(dep.strategy_params or {})
        if new.role == "rolling":
            return await self._rolling_step(dep, new, old)
        async with self._lock(deployment_id):
            error = await self._ensure(dep, new)
            if error is not None:
                await self._failed(dep, new, error)
                return False
        if new.status == "starting":
            weight = None
            if new.role == "canary":
                weight = params.steps[0] if params.steps else params.weight
            await self._write(
                deployment_id,
                new.id,
                status="ready",
                verb="revision_ready",
                message=f"version {new.version} ready",
            )
            if weight is not None:
                await self._canary_weight(dep, weight)
            if new.role == "green":
                async with self.db.session() as session:
                    await service.switch(session, dep.organization_id, service.SYSTEM_ACTOR, dep.id)
                await self._reload(dep.id)
                return False
            return new.role == "canary" and bool(params.steps)
        if new.role != "canary" or not params.steps:
            return False
        await asyncio.sleep(params.interval_seconds)
        nxt = next((s for s in params.steps if s > new.weight), None)
        if nxt is None:
            async with self.db.session() as session:
                await service.promote(session, dep.organization_id, service.SYSTEM_ACTOR, dep.id)
            await self._reload(dep.id)
            return False
        await self._canary_weight(dep, nxt)
        return True

    async def _canary_weight(self, dep: Deployment, weight: int) -> None:
        async with self.db.session() as session:
            await service.set_weight(
                session, dep.organization_id, service.SYSTEM_ACTOR, dep.id, weight
            )
        await self._reload(dep.id)

    async def _rolling_step(
        self, dep: Deployment, new: DeploymentRevision, old: DeploymentRevision | None
    ) -> bool:
        if old is None or old.replicas <= 0:
            async with self.db.session() as session:
                await service.promote(session, dep.organization_id, service.SYSTEM_ACTOR, dep.id)
            await self._reload(dep.id)
            return False
        async with self._lock(dep.id):
            new.replicas += 1
            await self._write(dep.id, new.id, replicas=new.replicas)
            error = await self._ensure(dep, new)
            if error is not None:
                await self._failed(dep, new, error)
                return False
            old.replicas -= 1
            await self._write(
                dep.id,
                old.id,
                replicas=old.replicas,
                verb="rolling_step",
                message=f"{new.replicas} replica(s) of version {new.version} ready",
            )
            await self._ensure(dep, old)
        await self._reload(dep.id)
        return True

    async def _write(self, deployment_id: str, revision_id: str, **changes: Any) -> None:
        async with self.db.session() as session:
            dep, _ = await service.revision_state(session, deployment_id, revision_id, **changes)
        self._observed[deployment_id] = dep.generation

    async def _reload(self, deployment_id: str) -> None:
        async with self.db.session(write=False) as session:
            found = await self._load(session, deployment_id)
        if found is None:
            return
        self._observed[deployment_id] = found[0].generation
        await self._route(*found)
        if any(r.status in ("retired", "rolled_back") for r in found[1]):
            self.kick(deployment_id, restart_rollout=False)

    # -- the control loop: generations, canary health, autoscaling -----------------------------

    async def _control(self) -> None:
        last_poll = 0.0
        while True:
            await asyncio.sleep(self.settings.deployment_control_interval)
            try:
                now = time.monotonic()
                if now - last_poll >= GENERATION_POLL:
                    last_poll = now
                    await self._poll_generations()
                for route in list(self.routes.values()):
                    self._sample(route)
                    await self._check_canary(route)
                    await self._autoscale(route)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("deployments control loop")

    async def _poll_generations(self) -> None:
        async with self.db.session(write=False) as session:
            generations = await service.live_generations(session)
        for deployment_id, generation in generations.items():
            if self._observed.get(deployment_id) != generation:
                self._observed[deployment_id] = generation
                self.kick(deployment_id)
        for deployment_id in list(self.routes):
            if deployment_id not in generations:
                self.kick(deployment_id)

    async def _check_canary(self, route: Route) -> None:
        canary = next((r for r in route.revisions if r.role == "canary"), None)
        if canary is None or route.status != "rolling_out":
            return
        p = route.params
        count, error_rate, _, p99 = canary.window.summary(p.window_seconds)
        if count < p.min_requests:
            return
        reason = None
        if error_rate > p.max_error_rate:
            reason = (
                f"canary version {canary.version}: error rate {error_rate:.1%} over the last "
                f"{count} requests exceeds {p.max_error_rate:.1%}"
            )
        elif p.max_p99_ms is not None and p99 is not None and p99 > p.max_p99_ms:
            reason = (
                f"canary version {canary.version}: p99 latency {p99:.1f} ms over the last "
                f"{count} requests exceeds {p.max_p99_ms:g} ms"
            )
        if reason is None:
            return
        route.status = "rolled_back"
        kept = [
            (r, c - p)
            for r, p, c in zip(
                route.serving, [0, *route.cumulative], route.cumulative, strict=False
            )
            if r is not canary
        ]
        if kept:
            # The failing version stops taking traffic now, before the record says it was
            # rolled back: no request goes to it meanwhile, and no reader sees the
            # deployment rolled back while it still serves.
            route.serving = [r for r, _ in kept]
            route.cumulative = list(itertools.accumulate(w for _, w in kept))
        try:
            async with self.db.session() as session:
                await service.rollback(
                    session,
                    route.org_id,
                    service.SYSTEM_ACTOR,
                    route.deployment_id,
                    f"automatic rollback: {reason}",
                )
        except Conflict:
            pass  # changed meanwhile (by hand): the route is rebuilt from what it is now
        await self.refresh(route.deployment_id)

    def _sample(self, route: Route) -> None:
        samples = self._inflight_samples.setdefault(route.deployment_id, deque(maxlen=64))
        total = sum(self.in_flight.get(r.id, 0) for r in self.runtime.replicas(route.deployment_id))
        samples.append((time.monotonic(), total))

    def _desired(self, route: Route, stable: RevisionRoute, auto: Autoscaling) -> int:
        now = time.monotonic()
        window = max(auto.scale_up_cooldown_seconds, 5.0)
        current = max(stable.replicas, 1)
        samples = [
            v for t, v in self._inflight_samples.get(route.deployment_id, ()) if t >= now - 5.0
        ]
        count, _, p50, _ = stable.window.summary(window)
        if auto.metric == "in_flight":
            value = sum(samples) / len(samples) if samples else 0.0
            desired = math.ceil(value / auto.target) if value else 0
        elif auto.metric == "rps":
            desired = math.ceil(count / window / auto.target) if count else 0
        else:
            desired = math.ceil(current * (p50 or 0.0) / auto.target) if p50 else 0
        idle = now - stable.window.last_request
        floor = route.replicas_min
        busy = bool(samples and samples[-1])
        if floor == 0 and (busy or idle < auto.scale_to_zero_after_seconds):
            floor = 1
        return min(max(desired, floor), max(route.replicas_max, 1))

    async def _autoscale(self, route: Route) -> None:
        auto = route.autoscaling
        if auto is None or route.status != "ready" or route.deployment_id in self._rollouts:
            return
        stable = next((r for r in route.revisions if r.role == "stable"), None)
        if stable is None or self._lock(route.deployment_id).locked():
            return
        desired = self._desired(route, stable, auto)
        if desired == stable.replicas:
            return
        now = time.monotonic()
        since = now - self._last_scale.get(route.deployment_id, 0.0)
        cooldown = (
            auto.scale_up_cooldown_seconds
            if desired > stable.replicas
            else auto.scale_down_cooldown_seconds
        )
        if since < cooldown:
            return
        self._last_scale[route.deployment_id] = now
        await self._scale(route.deployment_id, stable, desired)

    async def _scale(self, deployment_id: str, stable: RevisionRoute, replicas: int) -> None:
        message = f"scaled version {stable.version} from {stable.replicas} to {replicas} replica(s)"
        stable.replicas = replicas
        await self._write(
            deployment_id, stable.id, replicas=replicas, verb="scaled", message=message
        )
        self._spawn(self._reconcile_logged(deployment_id), f"scale-{deployment_id}")

    async def _wake(self, route: Route, rev: RevisionRoute) -> None:
        """Scale from zero: one replica, started now (requests wait for it)."""
        task = self._waking.get(route.deployment_id)
        if task is None or task.done():
            self._last_scale[route.deployment_id] = time.monotonic()
            rev.window.last_request = time.monotonic()  # waking is activity: no scale-down

            async def wake() -> None:
                await self._scale(route.deployment_id, rev, max(1, route.replicas_min))
                await self.reconcile(route.deployment_id)
                rev.window.last_request = time.monotonic()  # idle from now on, not before

            task = asyncio.create_task(wake())
            self._waking[route.deployment_id] = task
        await asyncio.shield(task)

    # -- the prediction path ---------------------------------------------------------------

    async def predict(self, org_id: str, deployment_id: str, body: Any) -> dict[str, Any]:
        """Validate, route by the strategy's weights, proxy to a ready replica, mirror to
        a shadow; ``{"predictions", "version", "deployment"}``."""
        route = self.routes.get(deployment_id)
        if route is None or route.org_id != org_id:
            await self._not_routed(org_id, deployment_id)
            route = self.routes.get(deployment_id)
            if route is None or route.org_id != org_id:
                raise Unavailable(f"Deployment {deployment_id!r} is not being served yet")
        started = time.perf_counter()
        for attempt in range(3):
            rev = route.pick(self.rng)
            rows = validate_inputs(rev.signature, rows_from_body(body, rev.columns))
            payload = json.dumps({"inputs": rows}).encode()
            try:
                predictions = await self._forward(route, rev, payload)
                break
            except _Rerouted:
                route = self.routes.get(deployment_id) or route
                if attempt == 2:
                    raise Unavailable(
                        f"Deployment {deployment_id!r} has no ready replica now"
                    ) from None
            except ModelError:
                latency = time.perf_counter() - started
                rev.window.add(True, latency)
                self._observe(route, rev, rows, None, latency, True)
                raise
        else:  # pragma: no cover - the loop ends by break or raise
            raise AssertionError("unreachable")
        latency = time.perf_counter() - started
        rev.window.add(False, latency)
        self._observe(route, rev, rows, predictions, latency, False)
        shadow = route.shadow
        if shadow is not None:
            self._spawn(self._mirror(route, shadow, payload, rows, predictions, latency))
        return {"predictions": predictions, "version": rev.version, "deployment": deployment_id}

    async def _not_routed(self, org_id: str, deployment_id: str) -> None:
        """Why a deployment has no route: 404, 409 (stopped, failed, another target), or
        a route being built (a restart): then it is built now."""
        async with self.db.session(write=False) as session:
            try:
                dep, revs = await service.load(session, org_id, deployment_id)
            except NotFound:
                raise NotFound(f"Deployment {deployment_id!r} not found") from None
        if dep.status == "stopped":
            raise Conflict(f"Deployment {dep.id!r} is stopped", code="DEPLOYMENT_STOPPED")
        if dep.target != "local":
            raise Conflict(
                f"Deployment {dep.id!r} runs on the Kubernetes target {dep.target!r}; "
                "send predictions to its Service there",
                code="NOT_SERVED_HERE",
            )
        if dep.status == "failed" and not self._replicas_any(dep.id):
            raise Conflict(f"Deployment {dep.id!r} failed: {dep.message}", code="DEPLOYMENT_FAILED")
        await self._route(dep, revs)

    def _replicas_any(self, deployment_id: str) -> bool:
        return bool(self.runtime.replicas(deployment_id))

    def _observe(
        self,
        route: Route,
        rev: RevisionRoute,
        rows: list[dict[str, Any]],
        outputs: list[Any] | None,
        latency: float,
        error: bool,
    ) -> None:
        if self.monitor is None:
            return
        try:
            self.monitor.observe(
                route.org_id, route.deployment_id, rev.version_id, rows, outputs, latency, error
            )
        except Exception:  # the recorder must never fail a prediction
            log.exception("prediction recorder failed")

    async def _replica(self, route: Route, rev: RevisionRoute, exclude: set[str]) -> Replica:
        """The ready replica of ``rev`` with the fewest requests in flight (round robin
        among equals); waits for one (a replacement, a start from zero)."""
        deadline = time.monotonic() + self.settings.deployment_replica_wait
        while True:
            ready = [
                r
                for r in self._replicas_of(route.deployment_id, rev.version_id)
                if r.id not in exclude
            ]
            if ready:
                if len(ready) == 1:
                    return ready[0]
                start = next(self._rr) % len(ready)
                ordered = ready[start:] + ready[:start]
                return min(ordered, key=lambda r: self.in_flight.get(r.id, 0))
            if rev.replicas == 0 and rev.role == "stable":
                await self._wake(route, rev)
                continue
            current = self.routes.get(route.deployment_id)
            if current is None or all(r.id != rev.id for r in current.serving):
                raise _Rerouted
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"No replica of version {rev.version} of deployment "
                    f"{route.deployment_id!r} is ready"
                )
            await asyncio.sleep(0.02)

    async def _forward(self, route: Route, rev: RevisionRoute, payload: bytes) -> list[Any]:
        tried: set[str] = set()
        for attempt in (1, 2):
            replica = await self._replica(route, rev, tried)
            tried.add(replica.id)
            self.in_flight[replica.id] = self.in_flight.get(replica.id, 0) + 1
            try:
                status, raw = await self.hop.post(replica.url, "/predict", payload)
            except HopError as exc:
                if attempt == 1:
                    continue
                raise ModelError(
                    f"Version {rev.version}'s model server is unreachable: {exc}"
                ) from exc
            except TimeoutError as exc:
                raise ModelError(f"Version {rev.version}'s model server timed out") from exc
            finally:
                self.in_flight[replica.id] = self.in_flight.get(replica.id, 1) - 1
            return self._answer(status, raw, rev)
        raise AssertionError("unreachable")

    @staticmethod
    def _answer(status: int, raw: bytes, rev: RevisionRoute) -> list[Any]:
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if status == 200 and isinstance(body.get("predictions"), list):
            predictions: list[Any] = body["predictions"]
            return predictions
        error = body.get("error") if isinstance(body, dict) else None
        message = (
            error.get("message")
            if isinstance(error, dict)
            else raw[:500].decode("utf-8", "replace")
        )
        if status == 400 and isinstance(error, dict):
            raise Invalid(
                message or "Invalid input",
                details=error.get("details") or [],
                code=error.get("code"),
            )
        raise ModelError(f"Version {rev.version}'s model failed: {message}")

    async def _mirror(
        self,
        route: Route,
        shadow: RevisionRoute,
        payload: bytes,
        rows: list[dict[str, Any]],
        primary: list[Any],
        primary_latency: float,
    ) -> None:
        started = time.perf_counter()
        out: list[Any] | None = None
        try:
            out = await self._forward(route, shadow, payload)
        except (InwireError, HopError, TimeoutError):
            out = None
        latency = time.perf_counter() - started
        shadow.window.add(out is None, latency)
        self._observe(route, shadow, rows, out, latency, out is None)
        n, agree, diffs = compare(primary, out or [])
        log_ = self.shadow_logs.setdefault(
            route.deployment_id, deque(maxlen=self.settings.deployment_shadow_keep)
        )
        log_.append(
            ShadowRecord(
                rows=n,
                agree=agree,
                diffs=diffs,
                primary_ms=primary_latency * 1000,
                shadow_ms=latency * 1000 if out is not None else None,
                error=out is None,
            )
        )

    def shadow_report(self, deployment_id: str) -> dict[str, Any]:
        """The shadow comparison of a deployment over the mirrored requests kept."""
        route = self.routes.get(deployment_id)
        shadow = route.shadow if route else None
        return {
            "shadow_version": shadow.version if shadow else None,
            **shadow_summary(list(self.shadow_logs.get(deployment_id, ()))),
        }

    def instances(self, deployment_id: str, version_id: str) -> list[dict[str, Any]]:
        """The replicas of one revision as the API shows them."""
        return [
            {
                "id": r.id,
                "url": r.url,
                "port": r.port,
                "pid": r.pid,
                "state": r.state,
                "in_flight": self.in_flight.get(r.id, 0),
            }
            for r in self.runtime.replicas(deployment_id)
            if r.version_id == version_id
        ]
