"""ModelOps test fixtures: the service on a fresh database and object store.

``service_app`` builds ModelOps from the plugin's settings, with the local executor running
worker subprocesses under a fast job policy (timings in fractions of a second).
``training_store`` is the object store Model Training's run artifacts are read from (the
same folder as ModelOps' own store, as in the embedded setup), so a test can lay out a
run's artifacts exactly where Model Training writes them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI

from inwire.kit.jobs.policy import JobPolicy
from inwire.kit.storage import ObjectStore, open_object_store
from inwire.services.modelops.app import create_app
from inwire.services.modelops.settings import ModelOpsSettings

#: Heartbeats, retries and grace periods in fractions of a second.
FAST_POLICY = JobPolicy(
    heartbeat_interval=0.2,
    heartbeat_timeout=3.0,
    start_timeout=60.0,
    poll_interval=0.1,
    flush_interval=0.1,
    retry_base_delay=0.2,
    retry_max_delay=1.0,
    cancel_grace=2.0,
    stop_grace=1.0,
    metrics_interval=0.5,
)


@pytest.fixture
def modelops_settings(inwire_settings: dict[str, Any]) -> ModelOpsSettings:
    """ModelOps' settings on the test database, object store and keys."""
    return ModelOpsSettings(**inwire_settings, jobs_concurrency=1)


@pytest.fixture
def service_app(modelops_settings: ModelOpsSettings) -> FastAPI:
    """ModelOps, built from test settings, running its jobs with a fast policy."""
    return create_app(modelops_settings, job_policy=FAST_POLICY)


@pytest.fixture
async def training_store(modelops_settings: ModelOpsSettings) -> AsyncIterator[ObjectStore]:
    """The object store holding Model Training's run artifacts in these tests."""
    store = open_object_store(modelops_settings.training_store_url)
    try:
        yield store
    finally:
        await store.close()
