"""The builds table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TenantMixin, TimestampMixin
from inwire.services.modelops.db import ModelOpsBase


class Build(ModelOpsBase, TenantMixin, TimestampMixin):
    """One packaging of a model version; the ``modelops.build`` job does the work."""

    __tablename__ = "builds"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("registered_models.id", ondelete="CASCADE"), index=True
    )
    version_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    model_name: Mapped[str] = mapped_column(String(250))
    version: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str] = mapped_column(String(40), index=True)
    #: ``queued``, ``running``, ``succeeded``, ``failed`` or ``cancelled`` (the job's, as
    #: last written; reads reconcile it with the job).
    status: Mapped[str] = mapped_column(String(12), default="queued", index=True)
    #: What happened, in words: "no container builder is configured: no image was built".
    message: Mapped[str] = mapped_column(Text, default="")
    #: The Core integration (container registry) the image is pushed to, if any.
    registry_integration: Mapped[str | None] = mapped_column(String(40), default=None)
    #: The image reference (``registry/namespace/name:tag``) once built; None otherwise.
    image: Mapped[str | None] = mapped_column(String(500), default=None)
    image_digest: Mapped[str | None] = mapped_column(String(100), default=None)
    pushed: Mapped[bool] = mapped_column(default=False)
    #: Object keys and sizes of the artifacts: ``bundle`` and ``context`` (tar.gz).
    bundle_key: Mapped[str | None] = mapped_column(String(400), default=None)
    bundle_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    bundle_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    context_key: Mapped[str | None] = mapped_column(String(400), default=None)
    context_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    #: The pinned requirements and where they came from (``version``, ``mlmodel``, ``flavor``).
    requirements: Mapped[list[str]] = mapped_column(JSON, default=list)
    requirements_source: Mapped[str | None] = mapped_column(String(20), default=None)
    #: The bundle's manifest (entry point, flavor, files).
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    created_by: Mapped[str] = mapped_column(String(100))
