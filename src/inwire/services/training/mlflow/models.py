"""What MLflow logs that tracking has no table for: logged models, run inputs and outputs.

Experiments, runs, params, tags, metrics and artifacts are tracking's own tables; these
hold only MLflow 3's logged models (a model with its own id, params, tags and artifact
folder, produced by a run) and the datasets and models a run declares as its inputs and
outputs.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TenantMixin, TimestampMixin
from inwire.services.training.db import TrainingBase


class LoggedModel(TrainingBase, TenantMixin, TimestampMixin):
    """An MLflow logged model: a model's files, params and tags, usually from a run.

    Its files live in its source run's artifacts under ``models/<id>/`` (so ModelOps can
    register it from the run), or under ``training/<org>/logged-models/<id>/`` without one.
    """

    __tablename__ = "logged_models"
    #: ``m-`` and 32 hex digits, as MLflow makes them (its clients parse ``models:/m-…``).
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(250))
    source_run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), default=None, index=True
    )
    #: The run whose artifacts hold the files (kept if that run's row goes).
    artifact_run_id: Mapped[str | None] = mapped_column(String(40), default=None)
    model_type: Mapped[str] = mapped_column(String(200), default="")
    #: ``LOGGED_MODEL_PENDING``, ``LOGGED_MODEL_READY`` or ``LOGGED_MODEL_UPLOAD_FAILED``.
    status: Mapped[str] = mapped_column(String(40), default="LOGGED_MODEL_PENDING")
    status_message: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    params: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: ``active`` or ``deleted``.
    lifecycle: Mapped[str] = mapped_column(String(10), default="active", index=True)
    created_by: Mapped[str] = mapped_column(String(100))


class RunDatasetInput(TrainingBase):
    """A dataset a run used (MLflow's ``log_inputs``), once per name and digest."""

    __tablename__ = "run_dataset_inputs"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_type: Mapped[str] = mapped_column(String(100), default="")
    source: Mapped[str] = mapped_column(Text, default="")
    schema: Mapped[str] = mapped_column(Text, default="")
    profile: Mapped[str] = mapped_column(Text, default="")
    #: The input's tags (``mlflow.data.context``: train, eval…).
    tags: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


class RunModelOutput(TrainingBase):
    """A logged model a run produced (MLflow's ``runs/outputs``)."""

    __tablename__ = "run_model_outputs"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[str] = mapped_column(
        ForeignKey("logged_models.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(BigInteger, default=0)
