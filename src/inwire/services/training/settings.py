"""Model Training's settings (``INWIRE_TRAINING_<NAME>``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from inwire.kit.settings import ServiceSettings


class TrainingSettings(ServiceSettings):
    """Experiments, runs, metrics, artifacts, training jobs and tuning.

    Run artifacts live in the object store (``storage_url``) under
    ``training/<organization>/<run id>/artifacts/``; training and tuning run as jobs
    (``jobs_url``).
    """

    service = "training"
    default_port = 18052
    model_config = SettingsConfigDict(env_prefix="INWIRE_TRAINING_")

    #: Largest artifact one upload may send (bytes). Uploads stream to the object store, so
    #: this bounds storage use, not memory; other request bodies keep ``max_body_bytes``.
    max_artifact_bytes: int = Field(default=50 * 1024**3, ge=1)
    #: Most metric values, params and tags one batch request may log.
    max_batch_values: int = Field(default=100_000, ge=1)
    #: Most points a metric history page returns (``per_page``) before downsampling is asked.
    max_history_points: int = Field(default=100_000, ge=100)
