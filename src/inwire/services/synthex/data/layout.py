"""Object-store keys of Synthex's data.

``synthex/<org>/<dataset_id>/<version_id>/part-00000.parquet`` holds a version's data;
``synthex/<org>/uploads/<upload_id>/<file name>`` holds an uploaded file until its import
job has converted it. Keys are derived from ids only, so they are valid on every backend.
"""

from __future__ import annotations

import re

ROOT = "synthex"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def version_prefix(org_id: str, dataset_id: str, version_id: str) -> str:
    """Folder of one version's objects (ends with ``/``)."""
    return f"{ROOT}/{org_id}/{dataset_id}/{version_id}/"


def dataset_prefix(org_id: str, dataset_id: str) -> str:
    """Folder of every version of a dataset (ends with ``/``)."""
    return f"{ROOT}/{org_id}/{dataset_id}/"


def part_key(org_id: str, dataset_id: str, version_id: str, index: int = 0) -> str:
    """Key of a version's ``index``-th Parquet part."""
    return f"{version_prefix(org_id, dataset_id, version_id)}part-{index:05d}.parquet"


def safe_filename(filename: str) -> str:
    """A file name reduced to characters every store and file system accepts."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).strip("._") or "upload"
    return cleaned[-120:]


def upload_key(org_id: str, upload_id: str, filename: str) -> str:
    """Key of an uploaded file waiting for its import."""
    return f"{ROOT}/{org_id}/uploads/{upload_id}/{safe_filename(filename)}"


def derived_id(prefix: str, job_id: str, slot: str = "") -> str:
    """The id a job's output gets, the same on every attempt (``dsv_<job ulid>[_<slot>]``).

    Deriving it from the job id is what makes publishing idempotent: a retried attempt
    writes the same keys and finds the row the earlier attempt inserted.
    """
    ulid = job_id.partition("_")[2] or job_id
    return f"{prefix}_{ulid}{'_' + slot if slot else ''}"
