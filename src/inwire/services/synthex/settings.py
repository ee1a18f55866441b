"""Synthex's settings (``INWIRE_SYNTHEX_<NAME>``)."""

from __future__ import annotations

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
