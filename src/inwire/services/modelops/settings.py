"""ModelOps' settings (``INWIRE_MODELOPS_<NAME>``)."""

from __future__ import annotations

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
