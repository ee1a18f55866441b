"""The registry's tables: registered models, their versions and their aliases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TenantMixin, TimestampMixin
from inwire.services.modelops.db import ModelOpsBase


class RegisteredModel(ModelOpsBase, TenantMixin, TimestampMixin):
    """A named model in one organization; its versions hold the files."""

    __tablename__ = "registered_models"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(250))
    description: Mapped[str] = mapped_column(Text, default="")
    #: The model card: Markdown written by people (intended use, data, metrics, limits).
    model_card: Mapped[str] = mapped_column(Text, default="")
    #: Key-value tags, serialised by ``json.dumps``.
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: The highest version number ever given: numbers are never reused, even after a
    #: version is deleted, so a number always names the same files.
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(100))


class ModelVersion(ModelOpsBase, TenantMixin, TimestampMixin):
    """One version of a registered model: its files, flavor, signature, stage and lineage."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        Index("ix_model_versions_model_id_stage", "model_id", "stage"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("registered_models.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: ``PENDING_REGISTRATION`` while files are copied, then ``READY`` or
    #: ``FAILED_REGISTRATION`` (with ``status_message``), as in MLflow.
    status: Mapped[str] = mapped_column(String(24), default="PENDING_REGISTRATION", index=True)
    status_message: Mapped[str] = mapped_column(Text, default="")
    #: ``None``, ``Staging``, ``Production`` or ``Archived`` (MLflow's stages).
    stage: Mapped[str] = mapped_column(String(16), default="None")
    #: ``run`` (copied from a training run's artifacts) or ``upload``.
    source_kind: Mapped[str] = mapped_column(String(10))
    #: Where the files came from: ``runs:/<run id>/<artifact path>`` or ``upload``.
    source: Mapped[str] = mapped_column(String(1100))
    run_id: Mapped[str | None] = mapped_column(String(100), default=None, index=True)
    #: What the version was made from, as the registering client said: experiment,
    #: dataset and dataset version, git repository and commit, entry point.
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The main framework flavor (``sklearn``, ``xgboost``, ``lightgbm``, ``onnx``,
    #: ``pytorch``, ``python``) or None when neither given nor detected.
    flavor: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    #: Every flavor the MLmodel file lists (``python_function``, ``sklearn``, …).
    flavors: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: ``{"inputs": [...], "outputs": [...] | None, "params": [...] | None}`` in MLflow's
    #: schema form, or None.
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    #: ``mlmodel``, ``example`` or ``given``: where the signature came from.
    signature_source: Mapped[str | None] = mapped_column(String(10), default=None)
    input_example: Mapped[Any] = mapped_column(JSON, default=None)
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Object-store prefix of the version's files (ends with ``/``).
    storage_prefix: Mapped[str] = mapped_column(String(400))
    created_by: Mapped[str] = mapped_column(String(100))


class ModelAlias(ModelOpsBase, TenantMixin, TimestampMixin):
    """A name for one version of a model (``champion``); unique per model, it moves."""

    __tablename__ = "model_aliases"
    __table_args__ = (PrimaryKeyConstraint("model_id", "alias"),)
    model_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("registered_models.id", ondelete="CASCADE")
    )
    alias: Mapped[str] = mapped_column(String(255))
    version_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[str] = mapped_column(String(100))
