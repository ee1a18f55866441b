"""ModelOps' app: the model registry (and, as they arrive, builds and deployments)."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware

from inwire.kit.app import concept_routers, create_service_app
from inwire.kit.events import OutboxRelay, open_event_bus
from inwire.kit.jobs import JobPolicy, JobRegistry, JobService, run_jobs
from inwire.kit.storage import open_object_store
from inwire.services.modelops.db import JOB_TABLES, OUTBOX
from inwire.services.modelops.deployments.fastpath import PredictFastPath
from inwire.services.modelops.settings import ModelOpsSettings
from inwire.services.modelops.tables import CONCEPTS

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"

#: Job types and the functions that run them, by import path: a worker process imports
#: only the one it runs. A type whose module does not exist yet is not offered.
JOB_TYPES: dict[str, str] = {
    "modelops.build": "inwire.services.modelops.builds.jobs:build",
}

#: Routes whose request body is a model's files: exempt from ``max_body_bytes``, they
#: stream to the object store and count against ``max_upload_bytes`` instead.
UPLOAD_ROUTES = re.compile(r"/api/v1/models/[^/]+/versions/upload")


def job_registry() -> JobRegistry:
    """Every job type whose module exists in this installation."""
    return JobRegistry.installed(JOB_TYPES)


def create_app(
    settings: ModelOpsSettings | None = None,
    peers: Any = None,
    *,
    job_policy: JobPolicy | None = None,
) -> FastAPI:
    """Build ModelOps. Nothing happens until the app starts.

    ``job_policy`` changes the job timings (tests shrink them); the default suits real work.
    """
    settings = settings or ModelOpsSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Run artifacts are read from Model Training's store; the same store object when
        # the URLs match (a memory:// store is private to the object that opened it).
        shared = settings.training_store_url == settings.storage_url
        training_store = (
            app.state.storage if shared else open_object_store(settings.training_store_url)
        )
        app.state.training_store = training_store
        bus = open_event_bus(settings.events_url)
        relay = OutboxRelay(app.state.db, bus, OUTBOX)
        relay.start()
        serving = await _start_serving(app, settings)
        try:
            async with run_jobs(app, policy=job_policy):
                yield
        finally:
            await _stop_serving(app, serving)
            await relay.stop()
            await bus.close()
            if not shared:
                await training_store.close()

    app = create_service_app(
        settings,
        title="Inwire ModelOps",
        description=(
            "The model registry: registered models and their versions (from training runs "
            "or uploaded), flavors, signatures, aliases, stages, tags, model cards and lineage."
        ),
        routers=concept_routers("inwire.services.modelops", CONCEPTS)[0],
        migrations=MIGRATIONS,
        lifespan=lifespan,
        storage=True,
        body_limit_exempt=[UPLOAD_ROUTES],
        middleware=[Middleware(PredictFastPath)],
    )
    app.state.jobs = JobService(JOB_TABLES, job_registry())
    app.state.peers = peers
    return app


async def _start_serving(app: FastAPI, settings: ModelOpsSettings) -> list[Any]:
    """The prediction recorder (``app.state.monitor``) and the deployments controller
    (``app.state.deployments``), which restores what was serving; what to stop after."""
    from inwire.services.modelops.deployments import actions
    from inwire.services.modelops.deployments.controller import DeploymentController
    from inwire.services.modelops.monitoring.recorder import recorder_from_settings
    from inwire.services.modelops.serving.runtime import LocalRuntime

    monitor = recorder_from_settings(app.state.db, settings)
    await monitor.start()
    app.state.monitor = monitor
    workdir = Path(settings.deployment_workdir or settings.home / "modelops" / "serving")
    runtime = LocalRuntime(
        workdir,
        max_batch=settings.deployment_max_batch,
        batch_wait_ms=settings.deployment_batch_wait_ms,
    )
    controller = DeploymentController(
        app.state.db, app.state.storage, settings, runtime, workdir=workdir, monitor=monitor
    )
    app.state.deployments = controller
    actions.configure(actions.Context(settings, controller))
    await controller.start()
    return [controller, monitor]


async def _stop_serving(app: FastAPI, serving: list[Any]) -> None:
    """Close each part even when another one fails (a failure here must not leave the
    relay, the event bus or the stores of the app open)."""
    app.state.deployments = None
    for part in serving:
        try:
            await part.close()
        except Exception:
            log.exception("stopping %s failed", type(part).__name__)
