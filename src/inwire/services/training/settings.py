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
    # -- MLflow compatibility ----------------------------------------------------------------
    # ``core_url`` (every service's setting) is where an Inwire API key sent to the MLflow
    # API (``MLFLOW_TRACKING_TOKEN=iwk_…``) is exchanged for an access token when the call
    # did not come through the gateway.
    #: ModelOps, whose registry the MLflow registry endpoints (registered models, versions,
    #: aliases, stages) use: one registry, not two.
    modelops_url: str = "http://127.0.0.1:18087"
    #: How long an API key's exchange is reused before Core is asked again (seconds).
    api_key_cache_seconds: float = Field(default=60.0, ge=0)
    # -- hyperparameter tuning (tuning/) -----------------------------------------------------
    #: Most trials one tuning job may run at the same time (``n_parallel``, threads of the
    #: job's worker process); a request asking for more is a 400.
    tuning_max_parallel: int = Field(default=4, ge=1, le=64)
    # -- Training jobs -----------------------------------------------------------------------
    #: Synthex, from which a training job reads its dataset version (Parquet) on behalf of
    #: the user who submitted it (``X-Inwire-Internal`` with on-behalf-of headers).
    synthex_url: str = "http://127.0.0.1:18090"
    #: Longest a script job's process may run before it is stopped and the job fails (s).
    script_timeout_seconds: float = Field(default=24 * 3600.0, gt=0)
    #: Largest script or package (``.py``, ``.zip``, ``.tar.gz``) a script job may upload.
    max_script_bytes: int = Field(default=100 * 1024**2, ge=1)
    #: Where a script job's process reaches Model Training to log its run (the SDK's and
    #: MLflow's tracking URL); empty means ``http://<host>:<port>`` of this service.
    tracking_url: str = ""
