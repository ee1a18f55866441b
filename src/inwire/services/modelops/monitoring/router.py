"""HTTP endpoints of monitoring, below a deployment: statistics, reference, thresholds,
drift checks and alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response

from inwire.kit.api import APIRouter, Item, ListQuery, Page, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db import SessionDep
from inwire.kit.errors import NotFound
from inwire.services.modelops.models.router import DatabaseDep, SettingsDep
from inwire.services.modelops.monitoring import drift, service
from inwire.services.modelops.monitoring.models import DriftReport, MonitoringAlert
from inwire.services.modelops.monitoring.recorder import thresholds_from
from inwire.services.modelops.monitoring.reference import MEDIA_TYPES, parse_reference
from inwire.services.modelops.monitoring.repository import AlertRepository, ReportRepository
from inwire.services.modelops.monitoring.schemas import (
    AlertOut,
    DriftIn,
    DriftReportOut,
    MonitoringOut,
    ReferenceOut,
    ThresholdsIn,
    ThresholdsOut,
    TrainingDataIn,
)
from inwire.services.modelops.monitoring.training_data import training_reference

router = APIRouter(prefix="/deployments/{deployment_id}/monitoring", tags=["monitoring"])

Reader = Annotated[Principal, require("deployments:read")]
Updater = Annotated[Principal, require("deployments:update")]
Executor = Annotated[Principal, require("deployments:execute")]
SinceQ = Annotated[datetime | None, Query(description="From (ISO 8601); default an hour ago")]
UntilQ = Annotated[datetime | None, Query(description="Until (ISO 8601); default now")]
VersionQ = Annotated[str | None, Query(max_length=40, description="Only this version (id)")]

_reports_query = list_params(("created_at",), filters={"version_id": str, "drifted": bool})
_alerts_query = list_params(("created_at",), filters={"version_id": str, "kind": str})

_REFERENCE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The reference rows (the training data, or a sample of it).",
        "content": {
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            "text/csv": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        },
    }
}


def _thresholds_out(base: drift.Thresholds, overrides: dict[str, float]) -> ThresholdsOut:
    effective = base.with_overrides(overrides)
    return ThresholdsOut(**vars(effective), overrides=overrides)


def _reference_out(row: Any) -> ReferenceOut:
    columns = row.reference or {}
    return ReferenceOut(
        source=row.reference_source,
        rows=row.reference_rows,
        detail=dict(row.reference_detail or {}),
        columns={k: drift.feature_kind(v) for k, v in columns.items()},
        updated_at=row.updated_at,
        updated_by=row.updated_by or None,
    )


@router.get("", response_model=Item[MonitoringOut])
async def get_monitoring(
    deployment_id: str,
    session: SessionDep,
    who: Reader,
    since: SinceQ = None,
    until: UntilQ = None,
    version: VersionQ = None,
) -> dict[str, Any]:
    """Requests, error rate, latency percentiles and predictions of a deployment in a
    period (default the last hour), overall and per version, with a timeline."""
    start, end = service.period(since, until)
    return {"data": await service.statistics(session, who, deployment_id, start, end, version)}


@router.get("/reference", response_model=Item[ReferenceOut])
async def get_reference(deployment_id: str, session: SessionDep, who: Reader) -> dict[str, Any]:
    """The drift reference: uploaded rows, or (source null) each version's input example."""
    await service.check_deployment(session, who, deployment_id)
    row = await service.config_of(session, who.org, deployment_id)
    return {"data": _reference_out(row)}


@router.put("/reference", response_model=Item[ReferenceOut], openapi_extra=_REFERENCE_BODY)
async def put_reference(
    deployment_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    who: Updater,
) -> dict[str, Any]:
    """Upload the drift reference (the training data): Parquet, CSV or JSON rows. Beyond
    `monitoring_reference_rows` rows a uniform sample is kept."""
    await service.check_deployment(session, who, deployment_id)
    columns, rows = parse_reference(
        await request.body(),
        request.headers.get("content-type", ""),
        max_rows=settings.monitoring_reference_rows,
    )
    row = await service.set_reference(session, who, deployment_id, columns, rows)
    return {"data": _reference_out(row)}


@router.post("/reference/training-data", response_model=Item[ReferenceOut])
async def reference_from_training_data(
    deployment_id: str,
    data: TrainingDataIn,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    who: Updater,
) -> dict[str, Any]:
    """Make a model version's training data the reference: the Synthex dataset version its
    lineage names, read on your behalf (your access applies), sampled to
    `monitoring_reference_rows` rows."""
    async with db.session(write=False) as session:
        await service.check_deployment(session, who, deployment_id)
        dataset = await service.training_dataset_of(session, who, data.version_id)
    peers = getattr(request.app.state, "peers", None)
    synthex_app = peers.get("synthex") if isinstance(peers, dict) else None
    try:
        columns, rows = await training_reference(
            settings,
            who.org,
            who.subject,
            who.role,
            dataset,
            max_rows=settings.monitoring_reference_rows,
            app=synthex_app,
        )
    except NotFound as exc:
        raise NotFound(
            f"Training dataset {dataset[0]!r} version {dataset[1]!r}: {exc.message}"
        ) from exc
    detail = {"version_id": data.version_id, "dataset_id": dataset[0]}
    detail["dataset_version_id"] = dataset[1]
    async with db.session() as session:
        row = await service.set_reference(
            session, who, deployment_id, columns, rows, source="dataset", detail=detail
        )
        return {"data": _reference_out(row)}


@router.delete("/reference", status_code=204)
async def delete_reference(deployment_id: str, session: SessionDep, who: Updater) -> Response:
    """Forget the uploaded reference."""
    await service.check_deployment(session, who, deployment_id)
    await service.delete_reference(session, who, deployment_id)
    return Response(status_code=204)


@router.get("/thresholds", response_model=Item[ThresholdsOut])
async def get_thresholds(
    deployment_id: str, session: SessionDep, settings: SettingsDep, who: Reader
) -> dict[str, Any]:
    """The drift and alert thresholds in force for the deployment."""
    await service.check_deployment(session, who, deployment_id)
    row = await service.config_of(session, who.org, deployment_id)
    return {"data": _thresholds_out(thresholds_from(settings), dict(row.thresholds or {}))}


@router.put("/thresholds", response_model=Item[ThresholdsOut])
async def put_thresholds(
    deployment_id: str,
    data: ThresholdsIn,
    session: SessionDep,
    settings: SettingsDep,
    who: Updater,
) -> dict[str, Any]:
    """Replace the deployment's overrides (a null or absent field: the setting's)."""
    await service.check_deployment(session, who, deployment_id)
    row = await service.set_thresholds(session, who, deployment_id, data.model_dump())
    return {"data": _thresholds_out(thresholds_from(settings), dict(row.thresholds))}


@router.post("/drift", response_model=Item[list[DriftReportOut]])
async def run_drift(
    deployment_id: str,
    session: SessionDep,
    settings: SettingsDep,
    who: Executor,
    data: DriftIn | None = None,
) -> dict[str, Any]:
    """Check input drift now, per version, against the reference; alerts are raised and
    published (`inwire.modelops.deployment.drift_detected`, `…alert_raised`)."""
    data = data or DriftIn()
    await service.check_deployment(session, who, deployment_id)
    start, end = service.period(data.since, data.until)
    reports = await service.check_drift(
        session,
        who.org,
        deployment_id,
        start,
        end,
        base=thresholds_from(settings),
        version_id=data.version_id,
    )
    return {"data": [DriftReportOut.model_validate(r) for r in reports]}


@router.get("/drift", response_model=Page[DriftReportOut])
async def list_drift_reports(
    deployment_id: str,
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_reports_query)],
    who: Reader,
) -> dict[str, Any]:
    """The deployment's drift reports, newest first."""
    await service.check_deployment(session, who, deployment_id)
    repo = ReportRepository(session, who.org)
    rows, total = await repo.page(query, repo.select(DriftReport.deployment_id == deployment_id))
    return query.page_of([DriftReportOut.model_validate(r) for r in rows], total)


@router.get("/alerts", response_model=Page[AlertOut])
async def list_alerts(
    deployment_id: str,
    session: SessionDep,
    query: Annotated[ListQuery, Depends(_alerts_query)],
    who: Reader,
) -> dict[str, Any]:
    """The deployment's alerts (drift, error rate), newest first."""
    await service.check_deployment(session, who, deployment_id)
    repo = AlertRepository(session, who.org)
    rows, total = await repo.page(
        query, repo.select(MonitoringAlert.deployment_id == deployment_id)
    )
    return query.page_of([AlertOut.model_validate(r) for r in rows], total)


__all__ = ["MEDIA_TYPES", "router"]
