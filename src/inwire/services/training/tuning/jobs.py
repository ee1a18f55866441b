"""The ``training.tune`` job: an Optuna study whose trials train a built-in trainer.

Each trial is a run nested in the study's run: its sampled params, the intermediate
validation metrics the learner reports (boosting rounds, epochs) as metric steps, the final
validation metrics, and its state (``inwire.trial_state``: complete, pruned, failed) with
the run's status (finished, killed, failed). Optuna's record of the study is a journal in
the service's database (``tuning.storage``), so a retried attempt resumes the study: trials
the dead attempt left running are marked failed (``inwire:stale``, not counted against the
budget) and enqueued again with the same params, waiting trials run first, and the budget
counts what already finished.

Optuna runs in threads (``n_parallel`` of them); every database write those threads need is
handed to the job's event loop, which owns the database connections.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from inwire.kit.auth import Principal
from inwire.kit.db import Database
from inwire.kit.db.base import utcnow
from inwire.kit.jobs import JobCancelled, JobContext, JobFailed
from inwire.services.training.runs import service as runs
from inwire.services.training.runs.schemas import MetricIn, RunCreate, RunUpdate
from inwire.services.training.settings import TrainingSettings
from inwire.services.training.trainjobs import trainers
from inwire.services.training.tuning import study as studies
from inwire.services.training.tuning.models import TuningJob
from inwire.services.training.tuning.repository import TrialRepository, TuningRepository
from inwire.services.training.tuning.schemas import TuningCreate
from inwire.services.training.tuning.service import TAG_TRIAL, TAG_TRIAL_STATE, TAG_TUNING_JOB

if TYPE_CHECKING:
    import optuna
    import polars as pl

T = TypeVar("T")

#: Set on a trial that a dead attempt left running; it does not count against the budget.
STALE = "inwire:stale"
#: The run status of each final trial state.
RUN_STATUS = {"complete": "finished", "pruned": "killed", "failed": "failed"}


class TrialFailed(Exception):
    """The trainer raised: the trial fails, the study goes on."""


def _metric_items(metrics: dict[str, float], step: int) -> list[MetricIn]:
    return [
        MetricIn(key=k, value=v, step=step)
        for k, v in metrics.items()
        if isinstance(v, float | int) and not isinstance(v, bool)
    ]


class Search:
    """One attempt of one tuning job: the study, its trials' runs and the summary row."""

    def __init__(
        self,
        ctx: JobContext,
        db: Database,
        row: TuningJob,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.ctx = ctx
        self.db = db
        self.row = row
        self.request = TuningCreate.model_validate(row.spec)
        self.loop = loop
        self.who = Principal(subject=row.created_by, org=row.organization_id, roles=("member",))
        self.lock = threading.Lock()
        #: Per running trial: reported metric steps and the final metrics, for its run.
        self.pending: dict[int, dict[str, Any]] = {}
        self.frame: pl.DataFrame | None = None
        #: The Synthex dataset version the trials train on (each trial run's source).
        self.version_id: str | None = None

    # -- plumbing ----------------------------------------------------------------------------

    def wait(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the job's loop from an Optuna thread and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    # -- the study ---------------------------------------------------------------------------

    def open_study(self) -> optuna.Study:
        """Create or load the study in the journal (call from a thread, not the loop)."""
        import optuna
        from optuna.storages import JournalStorage

        from inwire.services.training.tuning.storage import DatabaseJournal

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = JournalStorage(DatabaseJournal(self.db, self.row.id, self.loop))
        return optuna.create_study(
            storage=storage,
            study_name=self.row.id,
            direction=studies.direction(self.request),
            sampler=studies.sampler(self.request),
            pruner=studies.pruner(self.request),
            load_if_exists=True,
        )

    def recover(self, study: optuna.Study) -> None:
        """Fail and re-enqueue trials a dead attempt left running; bring rows up to date."""
        from optuna.trial import TrialState

        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            storage = study._storage
            storage.set_trial_system_attr(trial._trial_id, STALE, True)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            study.enqueue_trial(
                trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False
            )
            self.ctx.log(f"trial {trial.number} was running when the last attempt died; retried")
        self.reconcile(study, error="the attempt running it died")

    def reconcile(self, study: optuna.Study, *, error: str) -> None:
        """Record finished trials whose rows still say running (their attempt ended first)."""
        numbers = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        running = self.wait(self._running_rows())
        for trial in study.get_trials(deepcopy=False):
            if trial.number in running and trial.number in numbers:
                self.record(study, trial, error=error)

    async def _running_rows(self) -> set[int]:
        async with self.db.session(write=False) as session:
            rows, _ = await TrialRepository(session, self.row.id).page(
                state="running", offset=0, limit=100_000, descending=False
            )
        return {r.number for r in rows}

    def counted(self, study: optuna.Study) -> int:
        """Finished trials that count against ``n_trials`` (stale ones do not)."""
        return sum(
            1
            for t in study.get_trials(deepcopy=False)
            if t.state.is_finished() and not t.system_attrs.get(STALE)
        )

    def optimize(self, study: optuna.Study) -> None:
        """Run the trials the budget still allows."""
        budget = self.request.budget
        n_trials = None
        if budget.n_trials is not None:
            n_trials = budget.n_trials - self.counted(study)
            if n_trials <= 0:
                return
        timeout = None
        if budget.timeout_seconds is not None:
            started = self.row.started_at or utcnow()
            timeout = budget.timeout_seconds - (utcnow() - started).total_seconds()
            if timeout <= 0:
                return
        settings_cap = int(self.ctx.settings.get("tuning_max_parallel", 4))
        study.optimize(
            self.objective,
            n_trials=n_trials,
            timeout=timeout,
            n_jobs=max(1, min(self.request.n_parallel, settings_cap)),
            catch=(TrialFailed,),
            callbacks=[self.finished],
            gc_after_trial=False,
            show_progress_bar=False,
        )

    # -- one trial ---------------------------------------------------------------------------

    def objective(self, trial: optuna.Trial) -> float:
        """Train with the trial's params; report intermediate values to the pruner."""
        import optuna

        self.ctx.raise_if_cancelled()
        params = studies.suggest(trial, self.request.space)
        run_id = self.wait(self._start_trial(trial.number, params))
        trial.set_user_attr("run_id", run_id)
        steps: list[tuple[int, dict[str, float]]] = []
        with self.lock:
            self.pending[trial.number] = {"steps": steps, "metrics": {}}
        metric = self.request.objective.metric

        def report(step: int, metrics: dict[str, float]) -> bool:
            steps.append((step, dict(metrics)))
            if self.ctx.cancelled():
                raise JobCancelled(f"job {self.ctx.job_id} was cancelled")
            value = metrics.get(metric)
            if value is None or not math.isfinite(value):
                return False
            trial.report(float(value), step)
            return trial.should_prune()

        assert self.frame is not None
        try:
            result = trainers.fit(self.request.trainer, self.frame, params=params, report=report)
        except trainers.Pruned as exc:
            raise optuna.TrialPruned(str(exc)) from exc
        except JobCancelled:
            raise
        except trainers.InvalidSpec as exc:
            raise self._failed(trial.number, f"{exc.field}: {exc.message}") from exc
        except Exception as exc:
            raise self._failed(trial.number, f"{type(exc).__name__}: {exc}") from exc
        with self.lock:
            self.pending[trial.number]["metrics"] = dict(result.metrics)
            self.pending[trial.number]["final_step"] = result.steps
        value = result.metrics.get(metric)
        if value is None or not math.isfinite(value):
            raise self._failed(trial.number, f"the trainer gave no finite {metric!r}")
        return float(value)

    def _failed(self, number: int, error: str) -> TrialFailed:
        with self.lock:
            self.pending.setdefault(number, {})["error"] = error
        return TrialFailed(error)

    async def _start_trial(self, number: int, params: dict[str, Any]) -> str:
        async with self.db.session() as session:
            run = await runs.create(
                session,
                self.who,
                RunCreate(
                    experiment_id=self.row.experiment_id,
                    name=f"trial {number}",
                    parent_run_id=self.row.run_id,
                    params={k: str(v) for k, v in params.items()},
                    tags={
                        TAG_TUNING_JOB: self.row.id,
                        TAG_TRIAL: str(number),
                        TAG_TRIAL_STATE: "running",
                    },
                    source={"dataset_version_id": self.version_id},
                ),
            )
            await TrialRepository(session, self.row.id).save(
                number, run_id=run.id, state="running", params=params, started_at=utcnow()
            )
            return run.id

    def finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """After each trial: record it, update the best, stop when cancelled."""
        self.record(study, trial)
        if self.ctx.cancelled():
            study.stop()

    def record(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, *, error: str | None = None
    ) -> None:
        """Write a finished trial to its row and run, and the study's best to the summary."""
        with self.lock:
            pending = self.pending.pop(trial.number, {})
        self.wait(self._record(trial, self.best(study), pending, error))
        counted = self.counted(study)
        budget = self.request.budget
        fraction = counted / budget.n_trials if budget.n_trials else 0.0
        if budget.timeout_seconds and self.row.started_at is not None:
            elapsed = (utcnow() - self.row.started_at).total_seconds()
            fraction = max(fraction, elapsed / budget.timeout_seconds)
        self.ctx.progress(fraction, f"{counted} trials finished")
        state = studies.STATES.get(trial.state.name, "failed")
        value = "" if trial.value is None else f" {self.request.objective.metric}={trial.value:.6g}"
        self.ctx.log(f"trial {trial.number} {state}{value} {trial.params}")

    async def _record(
        self,
        trial: optuna.trial.FrozenTrial,
        best: dict[str, Any],
        pending: dict[str, Any],
        error: str | None,
    ) -> None:
        state = studies.STATES.get(trial.state.name, "failed")
        run_id = trial.user_attrs.get("run_id")
        last_step = max(trial.intermediate_values) if trial.intermediate_values else None
        error = (error or pending.get("error")) if state == "failed" else None
        async with self.db.session() as session:
            await TrialRepository(session, self.row.id).save(
                trial.number,
                state=state,
                value=trial.value,
                params=dict(trial.params),
                run_id=run_id,
                last_step=last_step,
                error=error,
                started_at=_utc(trial.datetime_start),
                finished_at=_utc(trial.datetime_complete) or utcnow(),
            )
            if run_id:
                await self._finish_run(session, run_id, state, pending)
            await TuningRepository(session, self.row.organization_id).set_values(
                self.row.id, updated_at=utcnow(), **best
            )
            if best and self.row.run_id:
                await runs.log_metrics(
                    session,
                    self.who,
                    self.row.run_id,
                    [MetricIn(key=self.row.metric, value=best["best_value"], step=trial.number)],
                    limit=1,
                )

    async def _finish_run(
        self, session: Any, run_id: str, state: str, pending: dict[str, Any]
    ) -> None:
        items: list[MetricIn] = []
        for step, metrics in pending.get("steps", []):
            items.extend(_metric_items(metrics, step))
        if pending.get("metrics"):
            items.extend(_metric_items(pending["metrics"], int(pending.get("final_step", 0))))
        if items:
            await runs.log_metrics(session, self.who, run_id, items, limit=len(items))
        await runs.set_tags(session, self.who, run_id, {TAG_TRIAL_STATE: state})
        run = await runs.get(session, self.who, run_id)
        if run.status not in ("finished", "failed", "killed"):
            await runs.update(session, self.who, run_id, RunUpdate(status=RUN_STATUS[state]))

    def best(self, study: optuna.Study) -> dict[str, Any]:
        """The best complete trial's summary columns ({} before one completed)."""
        from optuna.trial import TrialState

        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            return {}
        best = study.best_trial
        return {
            "best_trial_number": best.number,
            "best_value": best.value,
            "best_params": dict(best.params),
            "best_run_id": best.user_attrs.get("run_id"),
        }


def _utc(moment: datetime | None) -> datetime | None:
    # Optuna's trial times are naive local times.
    return None if moment is None else moment.astimezone(UTC)


async def _set_run_status(search: Search, status: str) -> None:
    if search.row.run_id is None:
        return
    async with search.db.session() as session:
        run = await runs.get(session, search.who, search.row.run_id)
        if run.status != status:
            await runs.update(session, search.who, search.row.run_id, RunUpdate(status=status))


async def _load(db: Database, ctx: JobContext, tuning_job_id: str) -> TuningJob:
    async with db.session() as session:
        repo = TuningRepository(session, ctx.organization_id)
        row = await repo.get(tuning_job_id)
        if row.started_at is None:
            row.started_at = utcnow()
            await repo.flush()
        return row


async def tune(ctx: JobContext, job_input: dict[str, Any]) -> dict[str, Any]:
    """Run (or resume) the tuning job ``job_input["tuning_job_id"]``."""
    from inwire.services.training.trainjobs.data import Submitter, load_dataset

    settings = TrainingSettings(**ctx.settings)
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        row = await _load(db, ctx, str(job_input["tuning_job_id"]))
        search = Search(ctx, db, row, asyncio.get_running_loop())
        await _set_run_status(search, "running")
        lineage = job_input["dataset"]
        try:
            search.frame, _ = await load_dataset(
                ctx,
                row.organization_id,
                Submitter(**job_input["submitter"]),
                lineage["dataset_id"],
                lineage["dataset_version_id"],
            )
            search.version_id = lineage["dataset_version_id"]
            return await _search(search)
        except JobCancelled:
            await _set_run_status(search, "killed")
            raise
        except JobFailed:
            await _set_run_status(search, "failed")
            raise
        except Exception:
            if ctx.attempt >= ctx.max_attempts:
                await _set_run_status(search, "failed")
            raise
    finally:
        await db.dispose()


async def _search(search: Search) -> dict[str, Any]:
    """Open the study, recover, optimise, and store the outcome."""
    ctx = search.ctx

    def run() -> tuple[dict[str, Any], dict[str, float] | None, dict[str, int]]:
        # Everything that reads the study runs here: its storage waits on the event loop.
        study = search.open_study()
        search.recover(study)
        try:
            search.optimize(study)
        finally:
            search.reconcile(study, error="cancelled")
        ctx.raise_if_cancelled()
        counts = {
            state: sum(1 for t in study.trials if studies.STATES.get(t.state.name) == state)
            for state in ("complete", "pruned", "failed")
        }
        return search.best(study), studies.importances(study, search.request.seed), counts

    best, importances, counts = await asyncio.to_thread(run)
    row = search.row
    async with search.db.session() as session:
        await TuningRepository(session, row.organization_id).set_values(
            row.id, importances=importances, finished_at=utcnow(), updated_at=utcnow(), **best
        )
        if row.run_id and best:
            await runs.set_tags(
                session,
                search.who,
                row.run_id,
                {
                    "inwire.best_trial": str(best["best_trial_number"]),
                    "inwire.best_run_id": str(best["best_run_id"]),
                },
            )
    if not best:
        await _set_run_status(search, "failed")
        raise JobFailed("no trial completed; see the trials' errors")
    await _set_run_status(search, "finished")
    return {
        "tuning_job_id": row.id,
        "run_id": row.run_id,
        "best_trial": best["best_trial_number"],
        "best_value": best["best_value"],
        "best_params": best["best_params"],
        "best_run_id": best["best_run_id"],
        "importances": importances,
        "trials": counts,
    }
