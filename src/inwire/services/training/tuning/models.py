"""Tuning jobs, their trials, and the Optuna journal each study is stored in.

A tuning job is one Optuna study. Optuna's own record of the study is the append-only
``tuning_journal`` (see ``tuning.storage``); ``tuning_trials`` and the summary columns of
``tuning_jobs`` are what the API reads, written by the job as trials finish.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TenantMixin, TimestampMixin
from inwire.services.training.db import TrainingBase


class TuningJob(TrainingBase, TenantMixin, TimestampMixin):
    """A hyperparameter search: its request, its study run, and the best trial so far."""

    __tablename__ = "tuning_jobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(250), default="")
    experiment_id: Mapped[str] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    #: The study's run; every trial is a run nested in it.
    run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), default=None, index=True
    )
    #: The durable job (``training.tune``) that runs the search.
    job_id: Mapped[str] = mapped_column(String(40), index=True)
    #: The validated request (space, objective, budget, sampler, pruner, trainer, data).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    metric: Mapped[str] = mapped_column(String(250))
    direction: Mapped[str] = mapped_column(String(10))
    sampler: Mapped[str] = mapped_column(String(20))
    pruner: Mapped[str] = mapped_column(String(30))
    #: When the first attempt began: the time budget counts from here across retries.
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    trials_complete: Mapped[int] = mapped_column(Integer, default=0)
    trials_pruned: Mapped[int] = mapped_column(Integer, default=0)
    trials_failed: Mapped[int] = mapped_column(Integer, default=0)
    best_trial_number: Mapped[int | None] = mapped_column(Integer, default=None)
    best_value: Mapped[float | None] = mapped_column(Float, default=None)
    best_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    best_run_id: Mapped[str | None] = mapped_column(String(40), default=None)
    #: Parameter importances (fANOVA) once two trials completed, stored when the job ends.
    importances: Mapped[dict[str, float] | None] = mapped_column(JSON, default=None)
    created_by: Mapped[str] = mapped_column(String(100))


class TuningTrial(TrainingBase):
    """One trial of a study: its sampled params, state, objective value and run."""

    __tablename__ = "tuning_trials"
    tuning_job_id: Mapped[str] = mapped_column(
        ForeignKey("tuning_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    run_id: Mapped[str | None] = mapped_column(String(40), default=None)
    #: ``running``, ``complete``, ``pruned`` or ``failed``.
    state: Mapped[str] = mapped_column(String(10), index=True)
    value: Mapped[float | None] = mapped_column(Float, default=None)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The last step reported to the pruner (boosting round, epoch), if any.
    last_step: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class TuningJournalEntry(TrainingBase):
    """One operation of Optuna's journal of a study, numbered 0, 1, 2… per tuning job."""

    __tablename__ = "tuning_journal"
    tuning_job_id: Mapped[str] = mapped_column(
        ForeignKey("tuning_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: The operation as ``json.dumps`` text (Optuna's journal format).
    entry: Mapped[str] = mapped_column(Text)
