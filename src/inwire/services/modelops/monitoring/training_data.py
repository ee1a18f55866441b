"""A model version's training data, read from Synthex, as a drift reference.

A version registered from a training run names the Synthex dataset version it was trained
on (``lineage.dataset_id`` / ``lineage.dataset_version_id``). ModelOps reads it with the
platform's internal secret on behalf of the user who asked (``kit.auth.internal``), so
Synthex applies that user's access, and keeps a uniform sample of its rows.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from inwire.contracts.synthex import SynthexClient
from inwire.kit.auth.internal import on_behalf_headers
from inwire.kit.peers import ASGIApp
from inwire.services.modelops.monitoring.reference import frame_columns
from inwire.services.modelops.settings import ModelOpsSettings


class DelegatedSynthex(SynthexClient):
    """A Synthex client whose every call acts for one user of one organization."""

    def __init__(
        self,
        settings: ModelOpsSettings,
        org_id: str,
        subject: str,
        role: str,
        *,
        app: ASGIApp | None = None,
        timeout: float = 120,
    ) -> None:
        super().__init__(settings.synthex_url, app=app, timeout=timeout)
        self._on_behalf = on_behalf_headers(settings, org_id, subject, role)

    async def _headers(self, extra: Mapping[str, str] | None, *, has_body: bool) -> dict[str, str]:
        return await super()._headers({**self._on_behalf, **(extra or {})}, has_body=has_body)


def dataset_of(lineage: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(dataset id, dataset version id) the lineage names, if it names both."""
    lineage = lineage or {}
    dataset, version = lineage.get("dataset_id"), lineage.get("dataset_version_id")
    if isinstance(dataset, str) and dataset and isinstance(version, str) and version:
        return dataset, version
    return None


def sample_columns(path: Path, max_rows: int) -> tuple[dict[str, list[Any]], int]:
    """Columns of at most ``max_rows`` rows of a Parquet file (a uniform sample beyond),
    and its row count."""
    total = pl.scan_parquet(path).select(pl.len()).collect().item()
    frame = pl.read_parquet(path)
    if total > max_rows:
        frame = frame[sorted(random.Random(0).sample(range(total), max_rows))]
    columns = frame_columns(frame)
    return columns, int(total)


async def training_reference(
    settings: ModelOpsSettings,
    org_id: str,
    subject: str,
    role: str,
    dataset: tuple[str, str],
    *,
    max_rows: int,
    app: ASGIApp | None = None,
) -> tuple[dict[str, list[Any]], int]:
    """The dataset version's rows as reference columns (at most ``max_rows``) and its row
    count; raises the contract's errors (NotFound, Unavailable, …)."""
    with tempfile.TemporaryDirectory(prefix="inwire-reference-") as folder:
        target = Path(folder) / "data.parquet"
        async with DelegatedSynthex(settings, org_id, subject, role, app=app) as synthex:
            await synthex.download_version(dataset[0], target, dataset[1], format="parquet")
        return sample_columns(target, max_rows)
