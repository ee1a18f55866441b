"""A training job's dataset: a Synthex version read through its contract client.

The job's worker holds no user token, so it calls Synthex as a platform service acting for
the user who submitted the job: the internal secret (``X-Inwire-Internal``) with the
on-behalf-of headers naming the organization, the submitter and the role they had when
they submitted (``kit.auth.internal``). Synthex then applies that user's permissions and
organization as for any request: another organization's dataset is not found.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel

from inwire.contracts.synthex import DatasetVersion, SynthexClient
from inwire.kit.auth.internal import on_behalf_headers
from inwire.kit.jobs.context import JobContext
from inwire.services.training.settings import TrainingSettings


class Submitter(BaseModel):
    """Who submitted a job, as stored in its input: the job acts as them."""

    subject: str
    role: str


class DelegatedSynthexClient(SynthexClient):
    """A :class:`SynthexClient` whose every call acts for one user of one organization."""

    def __init__(
        self, settings: TrainingSettings, org_id: str, submitter: Submitter, timeout: float = 60
    ) -> None:
        super().__init__(settings.synthex_url, timeout=timeout)
        self._on_behalf = on_behalf_headers(settings, org_id, submitter.subject, submitter.role)

    async def _headers(self, extra: Mapping[str, str] | None, *, has_body: bool) -> dict[str, str]:
        return await super()._headers({**self._on_behalf, **(extra or {})}, has_body=has_body)


def lineage_of(version: DatasetVersion) -> dict[str, Any]:
    """What a run records of the version it trained on."""
    return {
        "dataset_id": version.dataset_id,
        "dataset_version_id": version.id,
        "dataset_version": version.number,
        "rows": version.rows,
        "columns": version.columns,
    }


async def load_dataset(
    ctx: JobContext,
    org_id: str,
    on_behalf_of: Submitter | Mapping[str, str],
    dataset_id: str,
    version: str | int = "latest",
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The version's rows and its lineage (dataset id, version id and number, size).

    Raises the contract's errors: ``NotFound`` for a dataset or version the submitter
    cannot see, ``Unavailable`` when Synthex cannot be reached (the attempt is retried).
    """
    settings = TrainingSettings(**ctx.settings)
    submitter = on_behalf_of if isinstance(on_behalf_of, Submitter) else Submitter(**on_behalf_of)
    folder = Path(tempfile.mkdtemp(prefix="inwire-trainjob-"))
    try:
        async with DelegatedSynthexClient(settings, org_id, submitter) as synthex:
            found = await synthex.get_version(dataset_id, version)
            ctx.log(
                f"reading dataset {found.dataset_id} version {found.number} "
                f"({found.rows:,} rows, {found.columns} columns)"
            )
            target = folder / "data.parquet"
            # By id: "latest" must not move between reading the schema and the rows.
            await synthex.download_version(found.dataset_id, target, found.id)
        frame = await asyncio.to_thread(pl.read_parquet, target)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)
    return frame, lineage_of(found)
