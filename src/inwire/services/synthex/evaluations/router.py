"""HTTP endpoints of evaluations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Response
from fastapi.responses import HTMLResponse

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.kit.jobs import Job, JobOut, JobsDep
from inwire.kit.jobs.router import IdempotencyKeyDep
from inwire.services.synthex.evaluations import service
from inwire.services.synthex.evaluations.models import Evaluation
from inwire.services.synthex.evaluations.schemas import (
    EvaluationCreate,
    EvaluationOut,
    EvaluationSource,
    EvaluationStarted,
    EvaluationStatus,
    EvaluationSummary,
)

router = APIRouter(prefix="/evaluations", tags=["evaluations"])

Reader = Annotated[Principal, require("evaluations:read")]
Creator = Annotated[Principal, require("evaluations:create")]
Deleter = Annotated[Principal, require("evaluations:delete")]

_query = list_params(
    ("created_at", "completed_at", "quality"),
    filters={
        "dataset_id": str,
        "version_id": str,
        "real_version_id": str,
        "synthetic_version_id": str,
        "holdout_version_id": str,
        "generator_id": str,
        "source": EvaluationSource,
        "status": EvaluationStatus,
    },
)


def _out(row: Evaluation, job: Job | None, *, full: bool = False) -> EvaluationOut:
    done = row.report is not None
    return EvaluationOut(
        id=row.id,
        source=row.source,
        status="succeeded" if done else (job.status.value if job else "queued"),
        progress=1.0 if done else float(job.progress if job else 0.0),
        progress_message=None if done or job is None else job.progress_message,
        error=None if done or job is None else job.error,
        real_dataset_id=row.real_dataset_id,
        real_version_id=row.real_version_id,
        synthetic_dataset_id=row.synthetic_dataset_id,
        synthetic_version_id=row.synthetic_version_id,
        holdout_version_id=row.holdout_version_id,
        holdout_share=row.holdout_share,
        target=row.target,
        seed=row.seed,
        generator_id=row.generator_id,
        job_id=row.job_id,
        summary=EvaluationSummary(
            quality=row.quality,
            detection=row.detection,
            ml_utility_ratio=row.ml_utility_ratio,
            exact_copy_rate=row.exact_copy_rate,
            dcr_close_share=row.dcr_close_share,
            membership_risk=row.membership_risk,
        )
        if done
        else None,
        created_by=row.created_by,
        created_at=row.created_at,
        completed_at=row.completed_at,
        report=row.report if full else None,
    )


@router.post("", status_code=202, response_model=Item[EvaluationStarted])
async def start_evaluation(
    body: EvaluationCreate,
    session: SessionDep,
    jobs: JobsDep,
    key: IdempotencyKeyDep,
    who: Creator,
) -> dict[str, Any]:
    """Compare a synthetic version with a real one (and a holdout) in a `synthex.evaluate` job."""
    row, job = await service.start(session, jobs, who, body, key)
    return {"data": {"evaluation": _out(row, job), "job": JobOut.model_validate(job)}}


@router.get("", response_model=Page[EvaluationOut])
async def list_evaluations(
    session: SessionDep, query: Annotated[ListQuery, Depends(_query)], who: Reader
) -> dict[str, Any]:
    """Evaluations of your organization, newest first; filter by dataset, version, status."""
    rows, total, jobs = await service.list_evaluations(session, who, query)
    return query.page_of([_out(r, jobs.get(r.job_id)) for r in rows], total)


@router.get("/{evaluation_id}", response_model=Item[EvaluationOut])
async def get_evaluation(evaluation_id: str, session: SessionDep, who: Reader) -> dict[str, Any]:
    """An evaluation: its status while computing, the full JSON report once succeeded."""
    row, job = await service.get_evaluation(session, who, evaluation_id)
    return {"data": _out(row, job, full=True)}


@router.get(
    "/{evaluation_id}/report",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "The HTML report"}},
)
async def evaluation_report(evaluation_id: str, session: SessionDep, who: Reader) -> HTMLResponse:
    """The evaluation as a self-contained HTML page with charts; 409 until it is computed."""
    from inwire.services.synthex.evaluations.report import render_html

    row = await service.finished_evaluation(session, who, evaluation_id)
    assert row.report is not None
    real = row.real_version_id or "a deleted version"
    subtitle = (
        f"Synthetic version {row.synthetic_version_id} of dataset {row.synthetic_dataset_id} "
        f"against real version {real} of dataset {row.real_dataset_id}"
    )
    return HTMLResponse(render_html(row.report, subtitle=subtitle))


@router.delete("/{evaluation_id}", status_code=204)
async def delete_evaluation(
    evaluation_id: str, session: SessionDep, jobs: JobsDep, who: Deleter
) -> Response:
    """Delete an evaluation (its job, if still computing it, is cancelled)."""
    await service.delete_evaluation(session, jobs, who, evaluation_id)
    return Response(status_code=204)
