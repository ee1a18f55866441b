"""The ``training.train`` job: fit a built-in trainer or run a user's script, as a run.

Each attempt opens Model Training's database and object store from ``ctx.settings``,
sets the job's run ``running`` and removes whatever model an earlier, interrupted attempt
left under ``model/``. A built-in job reads its Synthex version as the submitter
(``data.load_dataset``), logs the params, logs validation metrics live (every boosting
round, stage or epoch), the final metrics, and the fitted model as an MLflow model under
``model/``: every file first, ``MLmodel`` last, so a model folder with an ``MLmodel`` is
complete. A script job runs the user's file or package in a subprocess (see ``scripts``).
The run ends ``finished``, ``failed`` (the error is in the job's log) or ``killed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from inwire.kit.auth import Principal
from inwire.kit.db.engine import Database
from inwire.kit.errors import InwireError, NotFound, Unavailable, UpstreamTimeout
from inwire.kit.jobs.context import JobCancelled, JobContext, JobFailed
from inwire.kit.storage import ObjectStore, open_object_store
from inwire.services.training.artifacts import service as artifacts
from inwire.services.training.runs import service as runs
from inwire.services.training.runs.schemas import MetricIn, RunUpdate
from inwire.services.training.settings import TrainingSettings
from inwire.services.training.trainjobs.data import Submitter

#: Seconds between writes of the metrics a learner reported.
METRIC_FLUSH_SECONDS = 0.3


class JobRun:
    """What an attempt works with: settings, database, store and the run, as the submitter."""

    def __init__(
        self, ctx: JobContext, settings: TrainingSettings, db: Database, store: ObjectStore
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.db = db
        self.store = store
        self.input: dict[str, Any] = {}
        self.who = Principal(subject="", org=ctx.organization_id, roles=())
        self.run_id = ""
        self._pending: list[MetricIn] = []
        self._lock = threading.Lock()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, ctx: JobContext, job_input: dict[str, Any]) -> AsyncIterator[JobRun]:
        """Everything an attempt needs, closed when the block ends."""
        settings = TrainingSettings(**ctx.settings)
        db = Database(settings.database_url, schema=settings.database_schema)
        store = open_object_store(settings.storage_url)
        try:
            job = cls(ctx, settings, db, store)
            submitter = Submitter(**job_input["submitter"])
            job.input = job_input
            job.who = Principal(
                subject=submitter.subject, org=ctx.organization_id, roles=(submitter.role,)
            )
            job.run_id = job_input["run_id"]
            yield job
        finally:
            await store.close()
            await db.dispose()

    @property
    def submitter(self) -> Submitter:
        """Whom the job acts for."""
        return Submitter(**self.input["submitter"])

    async def start(self) -> None:
        """Set the run running and drop a model an interrupted attempt left behind."""
        async with self.db.session() as session:
            try:
                run = await runs.get(session, self.who, self.run_id)
            except NotFound as exc:
                raise JobFailed(f"run {self.run_id} no longer exists") from exc
            if run.status != "running":
                await runs.update(session, self.who, self.run_id, RunUpdate(status="running"))
            if self.ctx.attempt > 1:
                await runs.set_tags(
                    session, self.who, self.run_id, {"inwire.job_attempt": str(self.ctx.attempt)}
                )
        with contextlib.suppress(NotFound):
            removed = await artifacts.delete(self.store, self.who.org, self.run_id, "model")
            self.ctx.log(f"removed {removed} file(s) of an interrupted attempt's model")

    async def end(self, status: str) -> None:
        """End the run (``finished``, ``failed`` or ``killed``); a run gone is no error."""
        try:
            async with self.db.session() as session:
                run = await runs.get(session, self.who, self.run_id)
                if run.status == "running":
                    await runs.update(
                        session,
                        self.who,
                        self.run_id,
                        RunUpdate(status=status),
                    )
        except InwireError as exc:
            self.ctx.log(f"could not end run {self.run_id}: {exc.message}", level="warning")

    async def log_params(self, params: dict[str, Any]) -> None:
        """Log params (values as text, cut to the run API's limit)."""
        values = {str(k)[:250]: str(v)[:8000] for k, v in params.items()}
        async with self.db.session() as session:
            await runs.log_params(session, self.who, self.run_id, values)

    def report(self, step: int, metrics: dict[str, float]) -> None:
        """Queue metric values (any thread); ``flush`` writes them."""
        values = [MetricIn(key=k, value=v, step=step) for k, v in metrics.items()]
        with self._lock:
            self._pending.extend(values)

    async def flush(self) -> None:
        """Write the queued metric values."""
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        async with self.db.session() as session:
            await runs.log_metrics(
                session, self.who, self.run_id, pending, limit=self.settings.max_batch_values
            )

    @contextlib.asynccontextmanager
    async def flushing(self) -> AsyncIterator[None]:
        """Write reported metrics every ``METRIC_FLUSH_SECONDS`` while the block runs, and
        what is left when it ends.

        The loop is stopped by an event, not cancelled: a cancel landing while a flush is
        writing would roll that write back after the values had left the queue (a busy
        machine lost every per-round metric of a job that way)."""
        stop = asyncio.Event()

        async def loop() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), METRIC_FLUSH_SECONDS)
                await self.flush()

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            stop.set()
            await task

    async def upload_model(self, folder: Path) -> list[str]:
        """Upload a saved model under ``model/``: ``MLmodel`` last, so it marks completion."""
        files = await asyncio.to_thread(
            lambda: sorted((p for p in folder.rglob("*") if p.is_file()), key=_mlmodel_last)
        )
        names = []
        for path in files:
            name = path.relative_to(folder).as_posix()
            await artifacts.upload(
                self.store,
                self.who.org,
                self.run_id,
                f"model/{name}",
                _chunks(path),
                max_bytes=self.settings.max_artifact_bytes,
            )
            names.append(name)
        return names


def _mlmodel_last(path: Path) -> tuple[bool, str]:
    return (path.name == "MLmodel", path.as_posix())


async def _chunks(path: Path, size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, size):
            yield chunk


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A private temporary folder, removed after."""
    folder = Path(tempfile.mkdtemp(prefix="inwire-trainjob-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def train(ctx: JobContext, job_input: dict[str, Any]) -> dict[str, Any]:
    """Run one attempt of a training job; see the module docstring."""
    async with JobRun.open(ctx, job_input) as job:
        await job.start()
        try:
            if job_input["kind"] == "script":
                from inwire.services.training.trainjobs.scripts import run_script

                result = await run_script(job)
            else:
                result = await _builtin(job)
        except JobCancelled:
            await job.end("killed")
            raise
        except (Unavailable, UpstreamTimeout) as exc:
            # Synthex or the store could not be reached: worth another attempt.
            ctx.log(f"error: {exc.message}", level="error")
            await job.end("failed")
            raise
        except InwireError as exc:
            ctx.log(f"error: {exc.message}", level="error")
            await job.end("failed")
            raise JobFailed(exc.message) from exc
        except JobFailed as exc:
            ctx.log(f"error: {exc}", level="error")
            await job.end("failed")
            raise
        except BaseException as exc:
            ctx.log(f"error: {type(exc).__name__}: {exc}", level="error")
            await job.end("failed")
            raise
        await job.end("finished")
        return result


def _reporter(job: JobRun, total: int | None) -> Callable[[int, dict[str, float]], bool]:
    ctx = job.ctx

    def report(step: int, metrics: dict[str, float]) -> bool:
        ctx.raise_if_cancelled()
        job.report(step, metrics)
        if total:
            ctx.progress(0.1 + 0.8 * min(1.0, (step + 1) / total), f"step {step + 1}")
        return False

    return report


async def _builtin(job: JobRun) -> dict[str, Any]:
    from inwire.services.training.trainjobs import trainers
    from inwire.services.training.trainjobs.data import load_dataset

    ctx = job.ctx
    spec = trainers.TrainerSpec.model_validate(job.input["trainer"])
    lineage = job.input["dataset"]
    ctx.progress(0.02, "reading the dataset")
    frame, lineage = await load_dataset(
        ctx,
        ctx.organization_id,
        job.submitter,
        lineage["dataset_id"],
        lineage["dataset_version_id"],
    )
    ctx.raise_if_cancelled()
    await job.log_params(
        {
            "framework": spec.framework,
            "task": spec.task,
            "estimator": spec.estimator or "",
            "target": spec.target,
            "features": ",".join(spec.features) if spec.features else "*",
            "validation_split": spec.validation_split,
            "seed": spec.seed,
            "dataset_id": lineage["dataset_id"],
            "dataset_version": lineage["dataset_version"],
            **spec.params,
        }
    )
    ctx.log(f"training {spec.framework} {spec.task} on {frame.height:,} rows")
    ctx.progress(0.1, "training")
    async with job.flushing():
        try:
            result = await asyncio.to_thread(
                trainers.fit,
                spec,
                frame,
                report=_reporter(job, trainers.expected_steps(spec)),
            )
        except trainers.InvalidSpec as exc:
            raise JobFailed(f"{exc.field}: {exc.message}") from exc
        job.report(result.steps, result.metrics)
    ctx.raise_if_cancelled()
    summary = ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items())
    ctx.log(f"trained in {result.steps} step(s) on {result.rows[0]:,} rows; validation: {summary}")
    ctx.progress(0.92, "saving the model")
    with workdir() as folder:
        await asyncio.to_thread(trainers.save_model, result, folder / "model")
        files = await job.upload_model(folder / "model")
    ctx.log(f"logged the model under model/ ({len(files)} files)")
    return {
        "run_id": job.run_id,
        "metrics": result.metrics,
        "model_artifact_path": "model",
        "model_uri": f"runs:/{job.run_id}/model",
        "flavor": result.framework,
        "dataset": lineage,
        "rows": {"train": result.rows[0], "validation": result.rows[1]},
    }
