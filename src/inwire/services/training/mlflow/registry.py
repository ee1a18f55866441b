"""MLflow's model registry calls, answered by ModelOps' registry (one registry, not two).

Every call goes through :class:`~inwire.contracts.modelops.ModelOpsClient` with the
caller's token, so ModelOps checks the organization and the role. A version is registered
from a run's artifacts (``runs:/<run>/<path>``, ``mlflow-artifacts:/…``, or a logged model
``models:/m-…``, whose files are in its run's artifacts): ModelOps copies the files, and
``get-download-uri`` points the client at that copy (``mlflow-artifacts:/registry/…``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.contracts.modelops import ModelOpsClient, ModelVersion, RegisteredModel
from inwire.kit.auth import Principal
from inwire.services.training.mlflow import schemas as m
from inwire.services.training.mlflow import service
from inwire.services.training.mlflow.artifacts import REGISTRY
from inwire.services.training.mlflow.errors import invalid
from inwire.services.training.runs.search import And, Comparison, Expr, parse_filter

#: ModelOps' largest page.
_PAGE = 100
_MODEL_URI = re.compile(r"^models:/(?P<id>m-[0-9a-f]{32})/?$")
_RUN_URI = re.compile(r"^runs:/(?P<run>[^/]+)/?(?P<path>.*)$")
_ARTIFACT_URI = re.compile(r"^mlflow-artifacts:(?://[^/]*)?/(?P<path>.+)$")


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def version_out(v: ModelVersion) -> dict[str, Any]:
    """A registry version as MLflow's ``ModelVersion``."""
    out: dict[str, Any] = {
        "name": v.name,
        "version": str(v.version),
        "creation_timestamp": _ms(v.created_at),
        "last_updated_timestamp": _ms(v.updated_at),
        "user_id": v.created_by,
        "current_stage": v.stage,
        "description": v.description,
        "source": v.source,
        "run_id": v.run_id or "",
        "status": v.status,
        "status_message": v.status_message,
        "tags": service.pairs(v.tags),
        "run_link": v.lineage.run_link or "",
        "aliases": list(v.aliases),
    }
    found = _MODEL_URI.match(v.source)
    if found:
        out["model_id"] = found.group("id")
    return out


def model_out(r: RegisteredModel) -> dict[str, Any]:
    """A registered model as MLflow's ``RegisteredModel``."""
    return {
        "name": r.name,
        "creation_timestamp": _ms(r.created_at),
        "last_updated_timestamp": _ms(r.updated_at),
        "user_id": r.created_by,
        "description": r.description,
        "latest_versions": [version_out(v) for v in r.latest_versions],
        "tags": service.pairs(r.tags),
        "aliases": [{"alias": a, "version": str(n)} for a, n in sorted(r.aliases.items())],
    }


def _version_number(text: str) -> int:
    if not text.strip().isdigit():
        raise invalid(f"Model version must be an integer, got {text!r}")
    return int(text)


# -- registered models -----------------------------------------------------------------------


async def create_model(client: ModelOpsClient, data: m.CreateRegisteredModel) -> dict[str, Any]:
    """Register a name; RESOURCE_ALREADY_EXISTS when it is taken."""
    created = await client.create_model(
        data.name, description=data.description, tags={t.key: t.value for t in data.tags}
    )
    return model_out(created)


def _comparisons(expr: Expr | None) -> list[Comparison]:
    if expr is None:
        return []
    if isinstance(expr, Comparison):
        return [expr]
    if isinstance(expr, And) and all(isinstance(p, Comparison) for p in expr.parts):
        return [p for p in expr.parts if isinstance(p, Comparison)]
    raise invalid("Registry filters combine comparisons with AND only")


def _registry_filter(text: str, *, versions: bool) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """ModelOps query arguments for an MLflow registry filter, and tag != conditions
    applied to each answer (ModelOps filters tags by equality only)."""
    args: dict[str, Any] = {}
    tags: dict[str, str | None] = {}
    excluded: list[tuple[str, str]] = []
    for c in _comparisons(parse_filter(text)):
        if c.kind == "attribute" and c.key == "name":
            if c.op == "=":
                args["name"] = c.value
            elif c.op == "LIKE":
                args["name_like"] = c.value
            elif c.op == "ILIKE":
                args["name_ilike"] = c.value
            else:
                raise invalid(f"name supports =, LIKE and ILIKE, not {c.op}")
        elif c.kind == "tag":
            if c.op == "=":
                tags[c.key] = str(c.value)
            elif c.op == "IS NOT NULL":
                tags[c.key] = None
            elif c.op == "!=":
                excluded.append((c.key, str(c.value)))
            else:
                raise invalid(f"tags support =, != and IS NOT NULL, not {c.op}")
        elif versions and c.kind == "attribute" and c.key == "id":
            if c.op == "=":
                args["run_ids"] = [str(c.value)]
            elif c.op == "IN":
                args["run_ids"] = list(c.value or ())  # type: ignore[arg-type]
            else:
                raise invalid(f"run_id supports = and IN, not {c.op}")
        else:
            what = "name, run_id or tags" if versions else "name or tags"
            raise invalid(f"Registry searches filter on {what}, not {c.key!r}")
    if tags:
        args["tags"] = tags
    return args, excluded


def _order(order_by: Sequence[str], *, versions: bool) -> dict[str, Any]:
    if not order_by:
        return {}
    term = order_by[0].strip().split()
    field = term[0].removeprefix("attributes.") if term else ""
    sorts = {
        "name": "name",
        "timestamp": "created_at",
        "creation_timestamp": "created_at",
        "last_updated_timestamp": "updated_at",
    }
    if versions:
        sorts = {"version_number": "version", **sorts}
        sorts.pop("name")
    if field not in sorts or len(term) > 2:
        raise invalid(f"Invalid order_by {order_by[0]!r}")
    desc = len(term) == 2 and term[1].upper() == "DESC"
    return {"sort": sorts[field], "order": "desc" if desc else "asc"}


async def _collect(fetch: Any, offset: int, limit: int, keep: Any) -> tuple[list[Any], bool]:
    """Items ``offset`` .. ``offset + limit`` of the kept answers, fetched page by page;
    and whether more follow."""
    kept: list[Any] = []
    page = 1
    seen = 0
    while True:
        result = await fetch(page=page, per_page=_PAGE)
        for item in result.items:
            if not keep(item):
                continue
            if seen >= offset:
                if len(kept) == limit:
                    return kept, True
                kept.append(item)
            seen += 1
        if page * _PAGE >= result.total or not result.items:
            return kept, False
        page += 1


def _keep(excluded: list[tuple[str, str]]) -> Any:
    return lambda item: all(item.tags.get(k) != v for k, v in excluded)


async def search_models(client: ModelOpsClient, data: m.SearchRegistry) -> dict[str, Any]:
    """MLflow's registered-model search on ModelOps' model list."""
    args, excluded = _registry_filter(data.filter, versions=False)
    args.update(_order(data.order_by, versions=False))
    offset = service.offset_of(data.page_token)

    async def fetch(**page: Any) -> Any:
        return await client.search_models(**args, **page)

    found, more = await _collect(fetch, offset, data.max_results, _keep(excluded))
    out: dict[str, Any] = {"registered_models": [model_out(r) for r in found]}
    if more:
        out["next_page_token"] = service.page_token(offset + len(found))
    return out


async def search_versions(client: ModelOpsClient, data: m.SearchRegistry) -> dict[str, Any]:
    """MLflow's model-version search on ModelOps' version list."""
    args, excluded = _registry_filter(data.filter, versions=True)
    args.update(_order(data.order_by, versions=True))
    name = args.pop("name", None)
    offset = service.offset_of(data.page_token)

    async def fetch(**page: Any) -> Any:
        if name is not None and not any(k.startswith("name_") for k in args):
            return await client.search_versions(model=name, **args, **page)
        return await client.search_versions(**args, **page)

    found, more = await _collect(fetch, offset, data.max_results, _keep(excluded))
    out: dict[str, Any] = {"model_versions": [version_out(v) for v in found]}
    if more:
        out["next_page_token"] = service.page_token(offset + len(found))
    return out


# -- versions --------------------------------------------------------------------------------


async def _source(
    session: AsyncSession, who: Principal, data: m.CreateModelVersion
) -> tuple[str, str]:
    """(run id, artifact path) of the files a version is registered from."""
    found = _MODEL_URI.match(data.source)
    model_id = data.model_id or (found.group("id") if found else "")
    if model_id:
        model = await service.logged_model(session, who, model_id)
        if not model.artifact_run_id:
            raise invalid(
                f"Logged model {model_id!r} has no source run; only models logged in a run "
                "can be registered"
            )
        return service.model_files(model)
    run_uri = _RUN_URI.match(data.source)
    if run_uri:
        run = await service.run(session, who, run_uri.group("run"))
        return run.id, run_uri.group("path").strip("/")
    artifact_uri = _ARTIFACT_URI.match(data.source)
    if artifact_uri:
        from inwire.services.training.mlflow.artifacts import resolve

        at = await resolve(session, who, artifact_uri.group("path"))
        if at.registry is None and not at.folder.startswith("logged-models/"):
            return at.folder, at.path
    raise invalid(
        f"Cannot register from source {data.source!r}: use models:/<model id>, "
        "runs:/<run id>/<path> or an mlflow-artifacts URI of a run"
    )


async def create_version(
    session: AsyncSession, who: Principal, client: ModelOpsClient, data: m.CreateModelVersion
) -> dict[str, Any]:
    """Register a version from a run's artifacts; ModelOps copies the files."""
    run_id, path = await _source(session, who, data)
    run = await service.run(session, who, run_id)
    version = await client.create_version(
        data.name,
        run_id=run.id,
        artifact_path=path,
        source_uri=data.source or f"runs:/{run.id}/{path}",
        description=data.description,
        tags={t.key: t.value for t in data.tags},
        lineage={
            "run_id": run.id,
            "experiment_id": run.experiment_id,
            "dataset_version_id": run.dataset_version_id,
            "git_commit": run.git_commit,
            "entry_point": run.entry_point,
            "run_link": data.run_link or None,
        },
    )
    return version_out(version)


async def get_version(client: ModelOpsClient, name: str, version: str) -> dict[str, Any]:
    """One version."""
    return version_out(await client.get_version(name, _version_number(version)))


async def download_uri(client: ModelOpsClient, name: str, version: str) -> str:
    """Where the client downloads a version's files: ModelOps' copy, through this API."""
    found = await client.get_version(name, _version_number(version))
    if found.status != "READY":
        raise invalid(f"Version {version} of {name!r} is {found.status}, not READY")
    return f"mlflow-artifacts:/{REGISTRY}/{found.model_id}/{found.version}"


async def latest_versions(
    client: ModelOpsClient, name: str, stages: Sequence[str]
) -> dict[str, Any]:
    """The newest version in each stage (or in ``stages``)."""
    found = await client.latest_versions(name, list(stages) or None)
    return {"model_versions": [version_out(v) for v in found]}


async def set_alias(client: ModelOpsClient, data: m.AliasSet) -> None:
    """Point an alias at a version."""
    await client.set_alias(data.name, data.alias, _version_number(data.version))


async def by_alias(client: ModelOpsClient, name: str, alias: str) -> dict[str, Any]:
    """The version an alias points at."""
    return version_out(await client.get_by_alias(name, alias))
