"""Synthex's app: datasets, profiles, recipes, synthetic data generation and evaluation."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from inwire.kit.app import concept_routers, create_service_app
from inwire.kit.events import OutboxRelay, open_event_bus
from inwire.kit.jobs import JobPolicy, JobRegistry, JobService, run_jobs
from inwire.services.synthex.db import JOB_TABLES, OUTBOX
from inwire.services.synthex.models import CONCEPTS
from inwire.services.synthex.settings import SynthexSettings

MIGRATIONS = Path(__file__).parent / "migrations"

#: Job types and the functions that run them, by import path: a worker process imports
#: only the one it runs. A type whose module does not exist yet is not offered.
JOB_TYPES: dict[str, str] = {
    "synthex.import": "inwire.services.synthex.datasets.jobs:import_dataset",
    "synthex.profile": "inwire.services.synthex.profiles.jobs:profile_version",
    "synthex.recipe": "inwire.services.synthex.recipes.jobs:apply_recipe",
    "synthex.generate": "inwire.services.synthex.generators.jobs:generate",
    "synthex.evaluate": "inwire.services.synthex.evaluations.jobs:evaluate_versions",
}

#: Routes whose request body is a data file: exempt from ``max_body_bytes``, they stream to
#: the object store and count against ``max_upload_bytes`` instead.
UPLOAD_ROUTES = re.compile(r"/api/v1/datasets(/[^/]+/versions)?")


def job_registry() -> JobRegistry:
    """Every job type whose module exists in this installation."""
    return JobRegistry.installed(JOB_TYPES)


def create_app(
    settings: SynthexSettings | None = None,
    peers: Any = None,
    *,
    job_policy: JobPolicy | None = None,
) -> FastAPI:
    """Build Synthex. Nothing happens until the app starts.

    ``job_policy`` changes the job timings (tests shrink them); the default suits real work.
    """
    settings = settings or SynthexSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bus = open_event_bus(settings.events_url)
        relay = OutboxRelay(app.state.db, bus, OUTBOX)
        relay.start()
        try:
            async with run_jobs(app, policy=job_policy):
                yield
        finally:
            await relay.stop()
            await bus.close()

    app = create_service_app(
        settings,
        title="Inwire Synthex",
        description=(
            "Datasets, profiles, recipes, synthetic data generation and quality and "
            "privacy evaluation."
        ),
        routers=concept_routers("inwire.services.synthex", CONCEPTS)[0],
        migrations=MIGRATIONS,
        lifespan=lifespan,
        storage=True,
        body_limit_exempt=[UPLOAD_ROUTES],
    )
    app.state.jobs = JobService(JOB_TABLES, job_registry())
    app.state.peers = peers
    return app
