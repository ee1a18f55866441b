"""MLflow's tracking calls translated onto tracking's experiments, runs, metrics and artifacts.

MLflow's entities map onto ours: an experiment is an experiment (MLflow's ``deleted`` is
our ``archived``), a run is a run (status in capitals, times in milliseconds, ``deleted``
is ``archived``), params, tags and metrics are the run's own rows, and a run's artifacts
are at ``mlflow-artifacts:/<experiment id>/<run id>/artifacts``. Only MLflow 3's logged
models and a run's declared inputs and outputs have tables of their own (``models``).
MLflow's experiment ``"0"`` is the organization's experiment called ``Default``, made
when first used.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal, ensure
from inwire.kit.db.base import utcnow
from inwire.kit.errors import NotFound
from inwire.services.training.experiments import service as experiments
from inwire.services.training.experiments.models import Experiment
from inwire.services.training.experiments.schemas import ExperimentCreate, ExperimentUpdate
from inwire.services.training.mlflow import schemas as m
from inwire.services.training.mlflow.errors import MlflowError, invalid, not_found
from inwire.services.training.mlflow.models import LoggedModel
from inwire.services.training.mlflow.repository import LoggedModelRepository, RunIORepository
from inwire.services.training.runs import service as runs
from inwire.services.training.runs.models import Run
from inwire.services.training.runs.repository import (
    MetricRepository,
    MetricRow,
    ParamRepository,
    RunRepository,
    TagRepository,
)
from inwire.services.training.runs.schemas import RunCreate, RunSource, RunUpdate, wire_float
from inwire.services.training.runs.search import (
    And,
    Comparison,
    Expr,
    Or,
    parse_filter,
    parse_order_by,
)

DEFAULT_EXPERIMENT = "Default"
RUN_NAME_TAG = "mlflow.runName"
_STATUS_IN = {"RUNNING": "running", "SCHEDULED": "scheduled", "FINISHED": "finished"}
_STATUS_IN |= {"FAILED": "failed", "KILLED": "killed"}
_STATUS_OUT = {v: k for k, v in _STATUS_IN.items()}
_LIFECYCLE = {"active": "active", "archived": "deleted"}
_VIEW = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "archived", "ALL": "all"}
_HEX = re.compile(r"^[0-9a-fA-F]{4,64}$")


# -- conversions -------------------------------------------------------------------------------


def ms(moment: datetime | None) -> int | None:
    """Milliseconds since the epoch, exact for times stored to the microsecond."""
    return None if moment is None else round(moment.timestamp() * 1000)


def from_ms(value: int | None) -> datetime | None:
    """The UTC time of ``value`` milliseconds since the epoch."""
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def pairs(values: Mapping[str, str]) -> list[dict[str, str]]:
    """A map as MLflow's ``[{"key", "value"}]``."""
    return [{"key": k, "value": v} for k, v in sorted(values.items())]


def page_token(offset: int) -> str:
    """An opaque token for the page starting at ``offset``."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def offset_of(token: str) -> int:
    """The offset a page token stands for (0 for none); INVALID_PARAMETER_VALUE if bad."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError) as exc:
        raise invalid(f"Invalid page token {token!r}") from exc
    if not isinstance(offset, int) or offset < 0:
        raise invalid(f"Invalid page token {token!r}")
    return offset


def experiment_out(e: Experiment) -> dict[str, Any]:
    """An experiment as MLflow's ``Experiment``."""
    return {
        "experiment_id": e.id,
        "name": e.name,
        "artifact_location": f"mlflow-artifacts:/{e.id}",
        "lifecycle_stage": _LIFECYCLE.get(e.lifecycle, "active"),
        "last_update_time": ms(e.updated_at),
        "creation_time": ms(e.created_at),
        "tags": pairs(e.tags or {}),
    }


def run_artifact_uri(run: Run) -> str:
    """Where the MLflow client reads and writes a run's artifacts."""
    return f"mlflow-artifacts:/{run.experiment_id}/{run.id}/artifacts"


def run_info(run: Run) -> dict[str, Any]:
    """A run as MLflow's ``RunInfo``."""
    info: dict[str, Any] = {
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": run.name,
        "experiment_id": run.experiment_id,
        "user_id": run.source_user or run.created_by,
        "status": _STATUS_OUT[run.status],
        "start_time": ms(run.start_time),
        "artifact_uri": run_artifact_uri(run),
        "lifecycle_stage": _LIFECYCLE.get(run.lifecycle, "active"),
    }
    if run.end_time is not None:
        info["end_time"] = ms(run.end_time)
    return info


def metric_out(row: MetricRow) -> dict[str, Any]:
    """A metric value as MLflow's ``Metric``."""
    return {
        "key": row.key,
        "value": wire_float(row.real_value),
        "timestamp": row.timestamp,
        "step": row.step,
    }


async def runs_out(session: AsyncSession, runs_: Sequence[Run]) -> list[dict[str, Any]]:
    """Runs as MLflow's ``Run`` (info, data, inputs, outputs): five queries in all."""
    ids = [r.id for r in runs_]
    params = await ParamRepository(session).of_runs(ids)
    tags = await TagRepository(session).of_runs(ids)
    latest = await MetricRepository(session).latest_of_runs(ids)
    io = RunIORepository(session)
    inputs = await io.inputs_of_runs(ids)
    outputs = await io.outputs_of_runs(ids)
    out = []
    for r in runs_:
        run_tags = dict(tags[r.id])
        run_tags.setdefault(RUN_NAME_TAG, r.name)
        out.append(
            {
                "info": run_info(r),
                "data": {
                    "metrics": [metric_out(x) for x in latest[r.id]],
                    "params": pairs(params[r.id]),
                    "tags": pairs(run_tags),
                },
                "inputs": {
                    "dataset_inputs": [
                        {
                            "tags": pairs(d.tags or {}),
                            "dataset": {
                                "name": d.name,
                                "digest": d.digest,
                                "source_type": d.source_type,
                                "source": d.source,
                                "schema": d.schema,
                                "profile": d.profile,
                            },
                        }
                        for d in inputs[r.id]
                    ]
                },
                "outputs": {
                    "model_outputs": [
                        {"model_id": model_id, "step": step} for model_id, step in outputs[r.id]
                    ]
                },
            }
        )
    return out


# -- experiments -------------------------------------------------------------------------------


async def experiment(
    session: AsyncSession, who: Principal, experiment_id: str, *, create: bool = False
) -> Experiment:
    """An experiment by id; ``"0"`` is the ``Default`` experiment (made when ``create``)."""
    if experiment_id == "0":
        found = await experiments.by_name(session, who, DEFAULT_EXPERIMENT)
        if found is not None:
            return found
        if not create:
            raise not_found("No experiment with id '0' (Default) exists yet")
        ensure(who, "experiments:create")
        return await experiments.create(session, who, ExperimentCreate(name=DEFAULT_EXPERIMENT))
    try:
        return await experiments.get(session, who, experiment_id)
    except NotFound as exc:
        raise not_found(f"No experiment with id {experiment_id!r}") from exc


async def create_experiment(
    session: AsyncSession, who: Principal, data: m.CreateExperiment
) -> Experiment:
    """A new experiment (RESOURCE_ALREADY_EXISTS for a name in use, even by a deleted one)."""
    tags = {t.key: t.value for t in data.tags}
    return await experiments.create(session, who, ExperimentCreate(name=data.name, tags=tags))


async def experiment_by_name(session: AsyncSession, who: Principal, name: str) -> Experiment:
    """The experiment called ``name``; RESOURCE_DOES_NOT_EXIST when there is none."""
    found = await experiments.by_name(session, who, name)
    if found is None:
        raise not_found(f"Could not find experiment with name {name!r}")
    return found


async def update_experiment(
    session: AsyncSession, who: Principal, experiment_id: str, changes: dict[str, Any]
) -> Experiment:
    """Rename or retag an experiment."""
    e = await experiment(session, who, experiment_id)
    return await experiments.update(session, who, e.id, ExperimentUpdate(**changes))


async def set_experiment_lifecycle(
    session: AsyncSession, who: Principal, experiment_id: str, lifecycle: str
) -> None:
    """MLflow's delete (archive) and restore."""
    e = await experiment(session, who, experiment_id)
    await experiments.set_lifecycle(session, who, e.id, lifecycle)


async def set_experiment_tag(
    session: AsyncSession, who: Principal, experiment_id: str, key: str, value: str | None
) -> None:
    """Set (or, with None, remove) one experiment tag."""
    e = await experiment(session, who, experiment_id)
    tags = dict(e.tags or {})
    if value is None:
        if key not in tags:
            raise not_found(f"Experiment {e.id!r} has no tag {key!r}")
        del tags[key]
    else:
        tags[key] = value
    await experiments.update(session, who, e.id, ExperimentUpdate(tags=tags))


def _like(pattern: str, text: str, *, case: bool) -> bool:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, text, 0 if case else re.IGNORECASE | re.DOTALL) is not None


def _holds(c: Comparison, actual: str | float | None) -> bool:
    """One comparison evaluated on a value (None when the entity lacks it)."""
    if c.op == "IS NULL":
        return actual is None
    if c.op == "IS NOT NULL":
        return actual is not None
    if actual is None:
        return False
    value = c.value
    if isinstance(value, datetime) and isinstance(actual, int | float):
        value = float(ms(value) or 0)
    if c.op in ("IN", "NOT IN"):
        listed = value if isinstance(value, tuple) else ()
        return (str(actual) in listed) == (c.op == "IN")
    if c.op == "LIKE":
        return _like(str(value), str(actual), case=True)
    if c.op == "ILIKE":
        return _like(str(value), str(actual), case=False)
    if isinstance(value, float) and not isinstance(actual, float | int):
        try:
            actual = float(actual)
        except ValueError:
            return False
    pairs_ = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    try:
        return bool(pairs_[c.op](actual, value))
    except TypeError:
        return False


def evaluate(expr: Expr, lookup: Any) -> bool:
    """A filter tree evaluated in Python: ``lookup(comparison)`` gives the value compared."""
    if isinstance(expr, And):
        return all(evaluate(p, lookup) for p in expr.parts)
    if isinstance(expr, Or):
        return any(evaluate(p, lookup) for p in expr.parts)
    return _holds(expr, lookup(expr))


def _experiment_value(e: Experiment, c: Comparison) -> str | float | None:
    if c.kind == "tag":
        return (e.tags or {}).get(c.key)
    if c.kind == "attribute" and c.key == "name":
        return e.name
    if c.kind == "attribute" and c.key == "id":
        return e.id
    raise invalid(f"Experiments cannot be filtered on {c.kind} {c.key!r}")


async def search_experiments(
    session: AsyncSession, who: Principal, data: m.SearchExperiments
) -> dict[str, Any]:
    """MLflow's experiment search (name and tag filters, order by name or times)."""
    expr = parse_filter(data.filter)
    lifecycle = {"active": "active", "archived": "archived", "all": "all"}[_VIEW[data.view_type]]
    query = ListQuery(1, 100_000, "created_at", "asc", {"lifecycle": lifecycle})
    rows, _ = await experiments.list_page(session, who, query)
    found = [
        e for e in rows if expr is None or evaluate(expr, lambda c, e=e: _experiment_value(e, c))
    ]
    keys: list[tuple[str, bool]] = []
    for term in data.order_by:
        parts = term.strip().split()
        bad_direction = len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC")
        if not parts or len(parts) > 2 or bad_direction:
            raise invalid(f"Invalid order_by term {term!r}")
        field = parts[0].removeprefix("attributes.").removeprefix("attribute.")
        if field not in ("name", "creation_time", "last_update_time", "experiment_id"):
            raise invalid(f"Experiments cannot be ordered by {field!r}")
        keys.append((field, len(parts) == 2 and parts[1].upper() == "DESC"))
    if not keys:
        keys = [("creation_time", True), ("experiment_id", False)]
    attr = {"name": "name", "creation_time": "created_at", "last_update_time": "updated_at"}
    attr["experiment_id"] = "id"
    for field, descending in reversed(keys):

        def sort_key(e: Experiment, name: str = attr[field]) -> Any:
            return getattr(e, name)

        found.sort(key=sort_key, reverse=descending)
    start = offset_of(data.page_token)
    page = found[start : start + data.max_results]
    out: dict[str, Any] = {"experiments": [experiment_out(e) for e in page]}
    if start + data.max_results < len(found):
        out["next_page_token"] = page_token(start + data.max_results)
    return out


# -- runs --------------------------------------------------------------------------------------

_ADJECTIVES = ("amber", "brave", "calm", "deft", "eager", "fair", "glad", "keen", "lucid", "merry")
_NOUNS = ("otter", "heron", "lynx", "finch", "maple", "cedar", "comet", "delta", "ember", "fjord")


def random_run_name() -> str:
    """A readable name for a run created without one (MLflow names runs ``word-word-n``)."""
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randint(1, 999)}"


async def run(session: AsyncSession, who: Principal, run_id: str) -> Run:
    """A run of the caller's organization; RESOURCE_DOES_NOT_EXIST otherwise."""
    try:
        return await runs.get(session, who, run_id)
    except NotFound as exc:
        raise not_found(f"Run {run_id!r} not found") from exc


async def _active_run(session: AsyncSession, who: Principal, run_id: str) -> Run:
    found = await run(session, who, run_id)
    if found.lifecycle != "active":
        raise invalid(f"The run {run_id} must be in the 'active' state. Current state is deleted.")
    return found


async def create_run(session: AsyncSession, who: Principal, data: m.CreateRun) -> Run:
    """A running run; source fields are read from MLflow's ``mlflow.source.*`` tags."""
    e = await experiment(session, who, data.experiment_id, create=True)
    tags = {t.key: t.value for t in data.tags}
    name = data.run_name or tags.get(RUN_NAME_TAG) or random_run_name()
    tags[RUN_NAME_TAG] = name
    commit = tags.get("mlflow.source.git.commit")
    source = RunSource(
        git_commit=commit if commit and _HEX.match(commit) else None,
        entry_point=(tags.get("mlflow.source.name") or None),
        user=data.user_id or tags.get("mlflow.user") or None,
    )
    parent = tags.get("mlflow.parentRunId") or None
    if parent is not None:
        await run(session, who, parent)
    created = await runs.create(
        session,
        who,
        RunCreate(
            experiment_id=e.id,
            name=name[:250],
            status="running",
            start_time=from_ms(data.start_time) if data.start_time else None,
            parent_run_id=parent,
            tags=tags,
            source=source,
        ),
    )
    return created


async def update_run(session: AsyncSession, who: Principal, data: m.UpdateRun) -> Run:
    """Status, end time and name, as MLflow's ``update_run`` sets them."""
    current = await run(session, who, data.run_id)
    changes: dict[str, Any] = {}
    if data.status is not None:
        changes["status"] = _STATUS_IN[data.status]
    if data.end_time is not None and (data.status or "") not in ("RUNNING", "SCHEDULED"):
        changes["end_time"] = from_ms(data.end_time)
    if data.run_name:
        changes["name"] = data.run_name
    updated = await runs.update(session, who, current.id, RunUpdate(**changes))
    if data.run_name:
        await TagRepository(session).upsert(current.id, {RUN_NAME_TAG: data.run_name})
    return updated


async def set_run_lifecycle(
    session: AsyncSession, who: Principal, run_id: str, lifecycle: str
) -> None:
    """MLflow's run delete (archive) and restore."""
    await run(session, who, run_id)
    await runs.set_lifecycle(session, who, run_id, lifecycle)


def _rows(metrics: Sequence[m.MetricIn]) -> list[MetricRow]:
    now = ms(utcnow()) or 0
    return [MetricRow.of(x.key, x.value, x.step, x.timestamp or now) for x in metrics]


async def log_batch(
    session: AsyncSession,
    who: Principal,
    run_id: str,
    *,
    metrics: Sequence[m.MetricIn] = (),
    params: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Metrics, params and tags of one request; the request's transaction makes it all or
    nothing. A param logged again must keep its value (INVALID_PARAMETER_VALUE)."""
    found = await _active_run(session, who, run_id)
    if params:
        await runs.log_params(session, who, found.id, params)
    if tags:
        await TagRepository(session).upsert(found.id, tags)
        name = tags.get(RUN_NAME_TAG)
        if name and name != found.name:
            await runs.update(session, who, found.id, RunUpdate(name=name[:250]))
    if metrics:
        await MetricRepository(session).insert(found.id, _rows(metrics))


async def delete_tag(session: AsyncSession, who: Principal, run_id: str, key: str) -> None:
    """Remove a run tag; RESOURCE_DOES_NOT_EXIST when the run has none by that key."""
    await _active_run(session, who, run_id)
    try:
        await runs.delete_tag(session, who, run_id, key)
    except NotFound as exc:
        raise not_found(f"No tag with name: {key} in run with id {run_id}") from exc


async def log_inputs(session: AsyncSession, who: Principal, data: m.LogInputs) -> None:
    """Record the datasets a run used."""
    found = await _active_run(session, who, data.run_id)
    await RunIORepository(session).add_inputs(
        found.id,
        [
            {
                "name": d.dataset.name,
                "digest": d.dataset.digest,
                "source_type": d.dataset.source_type,
                "source": d.dataset.source,
                "schema": d.dataset.schema_,
                "profile": d.dataset.profile,
                "tags": {t.key: t.value for t in d.tags},
            }
            for d in data.datasets
        ],
    )


async def log_outputs(session: AsyncSession, who: Principal, data: m.LogOutputs) -> None:
    """Record the logged models a run produced."""
    found = await _active_run(session, who, data.run_id)
    models = LoggedModelRepository(session, who.org)
    for out in data.models:
        await logged_model(session, who, out.model_id, repo=models)
    await RunIORepository(session).add_outputs(
        found.id, [(out.model_id, out.step) for out in data.models]
    )


async def metric_history(
    session: AsyncSession, who: Principal, data: m.GetMetricHistory
) -> dict[str, Any]:
    """One page of a metric's values by step then timestamp."""
    found = await run(session, who, data.run_id)
    offset = offset_of(data.page_token)
    repo = MetricRepository(session)
    rows = await repo.history_page(
        found.id, data.metric_key, offset=offset, limit=data.max_results + 1
    )
    more = len(rows) > data.max_results
    out: dict[str, Any] = {
        "metrics": [
            {
                "key": data.metric_key,
                "value": wire_float(math.nan if is_nan else value),
                "timestamp": timestamp,
                "step": step,
            }
            for step, value, timestamp, is_nan in rows[: data.max_results]
        ]
    }
    if more:
        out["next_page_token"] = page_token(offset + data.max_results)
    return out


async def search_runs(session: AsyncSession, who: Principal, data: m.SearchRuns) -> dict[str, Any]:
    """MLflow's run search, on tracking's filter grammar and search compiler."""
    expr = parse_filter(data.filter)
    order = parse_order_by(data.order_by)
    ids: list[str] = []
    for experiment_id in data.experiment_ids:
        try:
            ids.append((await experiment(session, who, experiment_id)).id)
        except MlflowError:
            if experiment_id != "0":
                raise
    if data.experiment_ids and not ids:
        return {"runs": []}
    offset = offset_of(data.page_token)
    found, total = await RunRepository(session, who.org).search(
        experiment_ids=ids,
        expr=expr,
        order=order,
        lifecycle=_VIEW[data.run_view_type],
        offset=offset,
        limit=data.max_results,
    )
    out: dict[str, Any] = {"runs": await runs_out(session, found)}
    if offset + len(found) < total:
        out["next_page_token"] = page_token(offset + len(found))
    return out


# -- logged models -----------------------------------------------------------------------------


def new_model_id() -> str:
    """``m-`` and 32 hex digits, the form MLflow's clients recognise in ``models:/…``."""
    return f"m-{uuid.uuid4().hex}"


def model_artifact_uri(model: LoggedModel) -> str:
    """Where the MLflow client reads and writes a logged model's files."""
    return f"mlflow-artifacts:/{model.experiment_id}/models/{model.id}/artifacts"


def model_files(model: LoggedModel) -> tuple[str, str]:
    """(folder id, path) of a logged model's files among artifacts: its run and
    ``models/<id>``, or ``logged-models/<id>`` (a run id never holds ``/``) without one."""
    if model.artifact_run_id:
        return model.artifact_run_id, f"models/{model.id}"
    return f"logged-models/{model.id}", ""


def logged_model_out(model: LoggedModel) -> dict[str, Any]:
    """A logged model as MLflow's ``LoggedModel``."""
    info: dict[str, Any] = {
        "model_id": model.id,
        "experiment_id": model.experiment_id,
        "name": model.name,
        "creation_timestamp_ms": ms(model.created_at),
        "last_updated_timestamp_ms": ms(model.updated_at),
        "artifact_uri": model_artifact_uri(model),
        "status": model.status,
        "model_type": model.model_type,
        "tags": pairs(model.tags or {}),
    }
    if model.source_run_id:
        info["source_run_id"] = model.source_run_id
    if model.status_message:
        info["status_message"] = model.status_message
    return {"info": info, "data": {"params": pairs(model.params or {}), "metrics": []}}


async def logged_model(
    session: AsyncSession,
    who: Principal,
    model_id: str,
    *,
    repo: LoggedModelRepository | None = None,
    allow_deleted: bool = False,
) -> LoggedModel:
    """A logged model of the caller's organization; RESOURCE_DOES_NOT_EXIST otherwise."""
    try:
        found = await (repo or LoggedModelRepository(session, who.org)).get(model_id)
    except NotFound as exc:
        raise not_found(f"Logged model with ID '{model_id}' not found") from exc
    if found.lifecycle != "active" and not allow_deleted:
        raise not_found(f"Logged model with ID '{model_id}' not found")
    return found


async def create_logged_model(
    session: AsyncSession, who: Principal, data: m.CreateLoggedModel
) -> LoggedModel:
    """A pending logged model in an experiment, from a run of that organization."""
    e = await experiment(session, who, data.experiment_id, create=True)
    if data.source_run_id:
        await _active_run(session, who, data.source_run_id)
    model = LoggedModel(
        id=new_model_id(),
        experiment_id=e.id,
        name=data.name or random_run_name(),
        source_run_id=data.source_run_id or None,
        artifact_run_id=data.source_run_id or None,
        model_type=data.model_type,
        status="LOGGED_MODEL_PENDING",
        tags={t.key: t.value for t in data.tags},
        params={p.key: p.value for p in data.params},
        lifecycle="active",
        created_by=who.subject,
    )
    await LoggedModelRepository(session, who.org).add(model)
    return model


async def change_logged_model(
    session: AsyncSession,
    who: Principal,
    model_id: str,
    *,
    status: str | None = None,
    tags: Mapping[str, str] | None = None,
    delete_tag: str | None = None,
    params: Mapping[str, str] | None = None,
    lifecycle: str | None = None,
) -> LoggedModel:
    """Finalize, retag, add params to or delete a logged model."""
    repo = LoggedModelRepository(session, who.org)
    model = await logged_model(session, who, model_id, repo=repo)
    if status is not None:
        model.status = status
    if tags:
        model.tags = {**(model.tags or {}), **tags}
    if delete_tag is not None:
        current = dict(model.tags or {})
        if delete_tag not in current:
            raise not_found(f"Logged model {model_id!r} has no tag {delete_tag!r}")
        del current[delete_tag]
        model.tags = current
    if params:
        model.params = {**(model.params or {}), **params}
    if lifecycle is not None:
        model.lifecycle = lifecycle
    model.updated_at = utcnow()
    await repo.flush()
    return model


def _model_value(model: LoggedModel, c: Comparison) -> str | float | None:
    if c.kind == "tag":
        return (model.tags or {}).get(c.key)
    if c.kind == "param":
        return (model.params or {}).get(c.key)
    if c.kind == "attribute" and c.key == "name":
        return model.name
    if c.kind == "attribute" and c.key == "id":
        return model.id
    raise invalid(f"Logged models cannot be filtered on {c.kind} {c.key!r}")


async def search_logged_models(
    session: AsyncSession, who: Principal, data: m.SearchLoggedModels
) -> dict[str, Any]:
    """Logged models of experiments, newest first, filtered on name, tags and params."""
    ids = [(await experiment(session, who, x)).id for x in data.experiment_ids]
    expr = parse_filter(data.filter)
    offset = offset_of(data.page_token)
    repo = LoggedModelRepository(session, who.org)
    if expr is None:
        found, total = await repo.search(experiment_ids=ids, offset=offset, limit=data.max_results)
    else:
        every, _ = await repo.search(experiment_ids=ids, limit=100_000)
        matching = [x for x in every if evaluate(expr, lambda c, x=x: _model_value(x, c))]
        total = len(matching)
        found = matching[offset : offset + data.max_results]
    out: dict[str, Any] = {"models": [logged_model_out(x) for x in found]}
    if offset + len(found) < total:
        out["next_page_token"] = page_token(offset + len(found))
    return out
