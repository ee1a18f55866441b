"""Synthex's settings (``INWIRE_SYNTHEX_<NAME>``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from inwire.kit.settings import ServiceSettings


class SynthexSettings(ServiceSettings):
    """Datasets, profiles, recipes, generators and evaluations.

    Datasets live in the object store (``storage_url``) as Parquet; long work (imports,
    profiles, recipes, generation, evaluation) runs as jobs (``jobs_url``).
    """

    service = "synthex"
    default_port = 18090
    model_config = SettingsConfigDict(env_prefix="INWIRE_SYNTHEX_")

    #: Largest file one upload may send (bytes). Uploads stream to the object store, so
    #: this bounds storage use, not memory; other request bodies keep ``max_body_bytes``.
    max_upload_bytes: int = Field(default=10 * 1024**3, ge=1)
    #: Bytes of a text file the import parses per block. The CSV reader keeps many blocks
    #: in flight, so memory grows with this (about 100 MB at 1 MiB); larger is not faster.
    import_block_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)
    #: Rows read to infer types, detect semantics and date formats.
    infer_sample_rows: int = Field(default=20_000, ge=100)
    #: Folder for jobs' temporary files (conversions, downloads); default ``<home>/tmp/synthex``.
    work_dir: str = ""
    #: Local copies of versions read from a remote object store (S3) are kept up to this size.
    cache_max_bytes: int = Field(default=20 * 1024**3, ge=0)
    #: Most rows one preview page returns.
    preview_max_rows: int = Field(default=500, ge=1, le=10_000)
    #: Longest a query of a SQL import may run per fetch (PostgreSQL ``statement_timeout``).
    sql_statement_timeout_seconds: float = Field(default=600.0, gt=0)
    #: Rows a SQL import fetches from its server-side cursor at a time (one Parquet row group).
    sql_batch_rows: int = Field(default=50_000, ge=100, le=1_000_000)

    @property
    def work_path(self) -> Path:
        """Where jobs write temporary files."""
        return Path(self.work_dir).expanduser() if self.work_dir else self.home / "tmp" / "synthex"

    @property
    def cache_path(self) -> Path:
        """Where local copies of remote versions are kept."""
        return self.home / "cache" / "synthex"
