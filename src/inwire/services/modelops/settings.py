"""ModelOps' settings (``INWIRE_MODELOPS_<NAME>``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from inwire.kit.settings import ServiceSettings


class ModelOpsSettings(ServiceSettings):
    """The model registry (and, later, builds and deployments).

    A model version's files live in the object store (``storage_url``) under
    ``modelops/<organization>/<model id>/<version id>/files/``; versions registered from a
    training run are copied there from Model Training's artifacts.
    """

    service = "modelops"
    default_port = 18087
    model_config = SettingsConfigDict(env_prefix="INWIRE_MODELOPS_")

    #: Largest upload of a model version's files, all parts together (bytes). Uploads
    #: stream to the object store, so this bounds storage use, not memory; other request
    #: bodies keep ``max_body_bytes``.
    max_upload_bytes: int = Field(default=20 * 1024**3, ge=1)
    #: Most files one model version may hold (an upload, or a run's artifact folder).
    max_version_files: int = Field(default=10_000, ge=1)
    #: The object store holding Model Training's run artifacts
    #: (``training/<organization>/<run id>/artifacts/``); empty means ``storage_url``, where
    #: Model Training keeps them when both services share a store (the embedded default).
    training_storage_url: str = ""

    @property
    def training_store_url(self) -> str:
        """Where run artifacts are read from when a version is registered from a run."""
        return self.training_storage_url or self.storage_url

    # -- builds and monitoring (H7) -----------------------------------------------------
    #: Seconds between the prediction recorder's writes of its per-minute windows.
    monitoring_flush_interval: float = Field(default=1.0, gt=0)
    #: Input rows (and numeric predictions) sampled per deployment version and minute.
    monitoring_sample_rows: int = Field(default=1000, ge=1, le=100_000)
    #: Seconds between periodic drift checks of deployments with traffic; 0 turns them off.
    monitoring_drift_interval: float = Field(default=300.0, ge=0)
    #: Days per-minute traffic windows are kept (older ones are deleted hourly); 0 keeps
    #: them forever.
    monitoring_retention_days: float = Field(default=30.0, ge=0)
    #: Rows of an uploaded drift reference kept (a uniform sample beyond).
    monitoring_reference_rows: int = Field(default=10_000, ge=10, le=1_000_000)
    #: A feature drifts when its population stability index reaches this.
    drift_psi_threshold: float = Field(default=0.2, gt=0)
    #: A feature drifts when its KS / chi-square test's p-value is below this.
    drift_p_value: float = Field(default=0.01, gt=0, lt=1)
    #: Fewest rows (recent and reference) a drift check compares; fewer: no verdict.
    drift_min_rows: int = Field(default=50, ge=2)
    #: An error rate above this over a checked period raises an ``error_rate`` alert.
    alert_error_rate: float = Field(default=0.05, ge=0, le=1)
    #: The container builder: a Docker Engine API endpoint (``http://host:2375``,
    #: ``unix:///var/run/docker.sock``; BuildKit behind dockerd). Empty: builds produce the
    #: bundle and the build context, and no image.
    build_docker_url: str = ""
    #: The Core integration (id) of the container registry images are pushed to; its
    #: credentials are read from Core at push time. Empty: images are built, not pushed.
    build_registry_integration: str = ""
    #: Repository of images built without a registry integration (kept by the builder,
    #: not pushed): ``<repository>/<model name>:v<version>``; empty means ``inwire``.
    build_image_repository: str = ""
    #: The base image of the generated Dockerfile.
    build_base_image: str = "python:3.11-slim"
    #: How a bundle's requirements name Inwire (the model server), for images built
    #: where this version is not on the package index: a requirement line such as
    #: ``inwire @ https://wheels.example.com/inwire-0.1.0-py3-none-any.whl``. Empty:
    #: ``inwire==<the installed version>``.
    build_inwire_requirement: str = ""
    #: Synthex's API, read for a version's training data (the drift reference) on behalf
    #: of the user who asks.
    synthex_url: str = "http://127.0.0.1:18090"

    # -- deployments, clusters and autoscaling (H5) -------------------------------------
    #: Where the local target keeps model files and replica logs; empty means
    #: ``$INWIRE_HOME/modelops/serving``.
    deployment_workdir: str = ""
    #: Most model-server processes the local target runs at once (all deployments).
    deployment_max_local_replicas: int = Field(default=16, ge=1, le=1000)
    #: Whether deployments on the local target need approval (governance).
    deployment_local_protected: bool = False
    #: Kubernetes targets: JSON list of ``{"name", "api_url", "namespace", "token",
    #: "protected", "verify_tls", "max_replicas"}``; without ``api_url`` manifests are
    #: rendered and validated, never applied.
    deployment_clusters: list[dict[str, Any]] = Field(default_factory=list)
    #: Seconds between the controller's passes (canary health, autoscaling, restore).
    deployment_control_interval: float = Field(default=0.5, gt=0, le=60)
    #: Seconds a model server may take to become ready.
    deployment_ready_timeout: float = Field(default=60.0, gt=0, le=3600)
    #: Seconds a prediction waits for a ready replica (a replacement, a scale from zero).
    deployment_replica_wait: float = Field(default=60.0, gt=0, le=3600)
    #: Seconds one proxied prediction may take.
    deployment_predict_timeout: float = Field(default=60.0, gt=0, le=3600)
    #: Requests micro-batched by one model server into a single model call, and how long
    #: it waits for a batch to fill (ms).
    deployment_max_batch: int = Field(default=64, ge=1, le=10_000)
    deployment_batch_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    #: Mirrored requests whose comparison a shadow deployment keeps (in memory).
    deployment_shadow_keep: int = Field(default=10_000, ge=10, le=1_000_000)
