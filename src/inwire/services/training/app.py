"""Model Training's app: experiment tracking, the MLflow-compatible API, training and tuning."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from inwire.kit.app import concept_routers, create_service_app
from inwire.kit.jobs import JobPolicy, JobRegistry, JobService, run_jobs
from inwire.services.training.db import JOB_TABLES
from inwire.services.training.mlflow.peers import open_peers
from inwire.services.training.models import CONCEPTS
from inwire.services.training.settings import TrainingSettings
from inwire.services.training.trainjobs import scripts as run_tokens

MIGRATIONS = Path(__file__).parent / "migrations"

#: Job types and the functions that run them, by import path: a worker process imports
#: only the one it runs. A type whose module does not exist yet is not offered.
JOB_TYPES: dict[str, str] = {
    "training.train": "inwire.services.training.trainjobs.jobs:train",
    "training.tune": "inwire.services.training.tuning.jobs:tune",
}

#: Routes whose request body is an artifact file: exempt from ``max_body_bytes``, they
#: stream to the object store and count against ``max_artifact_bytes`` instead.
UPLOAD_ROUTES = re.compile(
    r"/api/v1/runs/[^/]+/artifacts/.+|/api/v1/artifacts|/api/2\.0/mlflow-artifacts/artifacts/.+"
)


def job_registry() -> JobRegistry:
    """Every job type whose module exists in this installation."""
    return JobRegistry.installed(JOB_TYPES)


def create_app(
    settings: TrainingSettings | None = None,
    peers: Mapping[str, Any] | None = None,
    *,
    job_policy: JobPolicy | None = None,
) -> FastAPI:
    """Build Model Training. Nothing happens until the app starts.

    ``job_policy`` changes the job timings (tests shrink them); the default suits real work.
    ``peers`` names Core and ModelOps by URL or in-process ASGI app (``{"modelops": app}``);
    by default the MLflow API reaches them at ``core_url`` and ``modelops_url``.
    """
    settings = settings or TrainingSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with run_jobs(app, policy=job_policy), open_peers(app, peers):
            yield

    routers, root_routers = concept_routers("inwire.services.training", CONCEPTS)
    app = create_service_app(
        settings,
        title="Inwire Model Training",
        description=(
            "Experiment tracking (experiments, runs, metrics, artifacts), an MLflow-compatible "
            "API, training jobs and hyperparameter tuning."
        ),
        routers=routers,
        root_routers=root_routers,
        migrations=MIGRATIONS,
        lifespan=lifespan,
        storage=True,
        body_limit_exempt=[UPLOAD_ROUTES],
    )
    app.state.jobs = JobService(JOB_TABLES, job_registry())
    app.state.peers = peers
    # Platform JWTs, and the run tokens a script job's process logs with.
    app.state.authenticate = run_tokens.authenticate
    return app
