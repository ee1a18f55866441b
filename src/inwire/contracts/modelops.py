"""ModelOps' contract: the model registry, for other services and the SDK.

Model Training's MLflow-compatible registry API translates MLflow's calls onto
:class:`ModelOpsClient` (one registry, not two): registered models (create, get, search,
rename and update, delete, tags), versions (register from a run's artifact, get, search
within a model or across models, update, delete, tags, files), aliases (set, delete,
resolve), stages (MLflow's transition with ``archive_existing_versions``) and the latest
version per stage. Models are addressed by id (``mdl_…``) or by name.

Errors arrive as the registry's ``InwireError`` subclasses: ``NotFound`` (no such model,
version, alias or tag in the caller's organization), ``Conflict`` (code ``NAME_TAKEN`` for
a duplicate model name, ``VERSION_NOT_READY`` for files or a promotion of a version that
is not ``READY``), ``Invalid`` (bad input, ``details`` naming the field) and ``Forbidden``.
A promotion to production (the Production stage, the ``production`` alias) that the
organization's policy makes wait for an approver raises :class:`ApprovalPending`.
The models mirror ModelOps' ``models/schemas.py`` and ignore fields they do not know.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, Field

from inwire.contracts.core import Page
from inwire.kit.errors import Conflict
from inwire.kit.peers import QueryParams, ServiceClient

#: Where ModelOps' API lives behind the gateway: ``http://gateway:8080/modelops/api/v1/...``.
GATEWAY_PREFIX = "/modelops"

#: A model version's framework; ``python`` is a custom Python model (MLflow pyfunc).
Flavor = Literal["sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "python"]
#: MLflow's stages. Transitions accept any case (``production``).
Stage = Literal["None", "Staging", "Production", "Archived"]
#: MLflow's registration statuses.
VersionStatus = Literal["PENDING_REGISTRATION", "READY", "FAILED_REGISTRATION"]
SourceKind = Literal["run", "upload"]
Order = Literal["asc", "desc"]
ModelSort = Literal["name", "created_at", "updated_at"]
VersionSort = Literal["version", "created_at", "updated_at"]

T = TypeVar("T", bound=BaseModel)


class Lineage(BaseModel):
    """What a version was made from, as its registering client said."""

    run_id: str | None = None
    experiment_id: str | None = None
    dataset_id: str | None = None
    dataset_version_id: str | None = None
    git_repo: str | None = None
    git_commit: str | None = None
    entry_point: str | None = None
    run_link: str | None = None


class ModelVersion(BaseModel):
    """One version of a registered model.

    ``signature`` is ``{"inputs": [...], "outputs": [...] | None, "params": [...] | None}``
    with MLflow's schema JSON (column or tensor specs), or None.
    """

    id: str
    model_id: str
    #: The registered model's name.
    name: str
    version: int
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    status: VersionStatus
    status_message: str = ""
    stage: Stage = "None"
    aliases: list[str] = Field(default_factory=list)
    source_kind: SourceKind
    #: ``runs:/<run id>/<path>``, the client's own URI when it gave one, or ``upload``.
    source: str
    run_id: str | None = None
    lineage: Lineage = Field(default_factory=Lineage)
    flavor: Flavor | None = None
    #: Every flavor the version's MLmodel file lists.
    flavors: list[str] = Field(default_factory=list)
    signature: dict[str, Any] | None = None
    signature_source: Literal["mlmodel", "example", "given"] | None = None
    input_example: Any = None
    file_count: int = 0
    size_bytes: int = 0
    created_by: str
    created_at: datetime
    updated_at: datetime


class RegisteredModel(BaseModel):
    """A registered model, its aliases and its newest version in each stage."""

    id: str
    name: str
    description: str = ""
    model_card: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    #: alias -> version number.
    aliases: dict[str, int] = Field(default_factory=dict)
    #: The highest version number given so far (0 before the first version).
    last_version: int = 0
    #: The newest version in each stage that has one (MLflow's ``latest_versions``).
    latest_versions: list[ModelVersion] = Field(default_factory=list)
    created_by: str
    created_at: datetime
    updated_at: datetime


class VersionFile(BaseModel):
    """A file or folder of a version's files."""

    path: str
    is_dir: bool
    size: int | None = None


class ApprovalPending(Conflict):
    """ModelOps accepted a promotion to production but it waits for an approver (202).

    ``approval`` is the approval request (``id``, ``kind``, ``status``, ``summary``, …);
    an approver who is not the requester decides it with
    ``POST /api/v1/approvals/{id}/approve`` (or ``/reject``). A 409 to callers that map
    errors to statuses (Model Training's MLflow API answers ``RESOURCE_CONFLICT``).
    """

    code = "APPROVAL_PENDING"
    approval: dict[str, Any]

    def __init__(self, approval: dict[str, Any]) -> None:
        ident = str(approval.get("id", ""))
        what = str(approval.get("summary") or "This promotion to production")
        super().__init__(
            f"{what}: waits for approval (request {ident} is pending; an approver other "
            f"than the requester approves it with POST /api/v1/approvals/{ident}/approve)",
            details=[{"message": "approval pending", "approval_id": ident}],
        )
        self.approval = approval


def _version_or_pending(data: Any, meta: dict[str, Any]) -> ModelVersion:
    """The version a stage or alias call answered, or :class:`ApprovalPending`."""
    if meta.get("approval_required"):
        raise ApprovalPending(data)
    return ModelVersion.model_validate(data)


def _segment(value: str) -> str:
    """A model name, alias or key as one URL path segment."""
    return quote(value, safe="")


def _tag_params(tags: Mapping[str, str | None] | Sequence[str] | None) -> list[str] | None:
    """``tag`` query values: ``key`` (has the key) or ``key=value``."""
    if tags is None:
        return None
    if isinstance(tags, Mapping):
        return [k if v is None else f"{k}={v}" for k, v in tags.items()]
    return list(tags)


class ModelOpsClient(ServiceClient):
    """Typed calls to ModelOps' registry (``http://host:18087``,
    ``http://gateway:8080/modelops`` or its app), as the caller's principal."""

    # -- registered models -------------------------------------------------------------

    async def create_model(
        self,
        name: str,
        *,
        description: str = "",
        model_card: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        """Register a model name; ``Conflict`` (``NAME_TAKEN``) when it exists."""
        body = {
            "name": name,
            "description": description,
            "model_card": model_card,
            "tags": dict(tags or {}),
        }
        return RegisteredModel.model_validate(await self.post("/api/v1/models", json=body))

    async def get_model(self, model: str) -> RegisteredModel:
        """A model by id or name."""
        return RegisteredModel.model_validate(await self.get(f"/api/v1/models/{_segment(model)}"))

    async def search_models(
        self,
        *,
        page: int = 1,
        per_page: int = 20,
        q: str | None = None,
        name: str | None = None,
        name_like: str | None = None,
        name_ilike: str | None = None,
        tags: Mapping[str, str | None] | Sequence[str] | None = None,
        created_by: str | None = None,
        sort: ModelSort | None = None,
        order: Order | None = None,
    ) -> Page[RegisteredModel]:
        """One page of models. ``q``: name contains (any case); ``name``: exactly;
        ``name_like`` / ``name_ilike``: SQL LIKE patterns (``%``, ``_``), with and without
        case; ``tags``: all of them (a value of None: the key only). Default order: name."""
        params: dict[str, Any] = {
            "page": page,
            "per_page": per_page,
            "q": q,
            "name": name,
            "name_like": name_like,
            "name_ilike": name_ilike,
            "tag": _tag_params(tags),
            "created_by": created_by,
            "sort": sort,
            "order": order,
        }
        return await self._page("/api/v1/models", RegisteredModel, params)

    async def update_model(
        self,
        model: str,
        *,
        name: str | None = None,
        description: str | None = None,
        model_card: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        """Rename a model or change its description, model card or tags (replacing
        them); arguments left None stay as they are."""
        body: dict[str, Any] = {
            k: v
            for k, v in {
                "name": name,
                "description": description,
                "model_card": model_card,
                "tags": dict(tags) if tags is not None else None,
            }.items()
            if v is not None
        }
        data = await self.patch(f"/api/v1/models/{_segment(model)}", json=body)
        return RegisteredModel.model_validate(data)

    async def delete_model(self, model: str) -> None:
        """Delete a model with its versions, aliases and files."""
        await self.delete(f"/api/v1/models/{_segment(model)}")

    async def set_model_tag(self, model: str, key: str, value: str) -> RegisteredModel:
        """Set one tag of a model."""
        path = f"/api/v1/models/{_segment(model)}/tags/{_segment(key)}"
        return RegisteredModel.model_validate(await self.put(path, json={"value": value}))

    async def delete_model_tag(self, model: str, key: str) -> RegisteredModel:
        """Remove one tag of a model; ``NotFound`` when there is none by that key."""
        path = f"/api/v1/models/{_segment(model)}/tags/{_segment(key)}"
        return RegisteredModel.model_validate(await self.delete(path))

    # -- versions ----------------------------------------------------------------------

    async def create_version(
        self,
        model: str,
        *,
        run_id: str,
        artifact_path: str = "",
        source_uri: str | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        flavor: Flavor | None = None,
        signature: Mapping[str, Any] | None = None,
        input_example: Any = None,
        output_example: Any = None,
        lineage: Lineage | Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Register a version from a training run's artifact (a folder or a file, ``""``
        for all of the run's artifacts), copied into the registry.

        ``source_uri`` is recorded as the version's ``source`` (MLflow clients expect
        theirs back). The answer's ``status`` is ``READY``, or ``FAILED_REGISTRATION``
        (with ``status_message``) when copying failed.
        """
        source: dict[str, Any] = {"run_id": run_id, "artifact_path": artifact_path}
        if source_uri is not None:
            source["uri"] = source_uri
        if isinstance(lineage, Lineage):
            lineage = lineage.model_dump(exclude_none=True)
        body: dict[str, Any] = {
            "source": source,
            "description": description,
            "tags": dict(tags or {}),
            "lineage": {k: v for k, v in dict(lineage or {}).items() if v is not None},
        }
        for key, value in (
            ("flavor", flavor),
            ("signature", signature),
            ("input_example", input_example),
            ("output_example", output_example),
        ):
            if value is not None:
                body[key] = value
        data = await self.post(f"/api/v1/models/{_segment(model)}/versions", json=body)
        return ModelVersion.model_validate(data)

    async def get_version(self, model: str, version: int) -> ModelVersion:
        """Version ``version`` of a model."""
        data = await self.get(f"/api/v1/models/{_segment(model)}/versions/{int(version)}")
        return ModelVersion.model_validate(data)

    async def search_versions(
        self,
        *,
        model: str | None = None,
        page: int = 1,
        per_page: int = 20,
        q: str | None = None,
        name: str | None = None,
        name_like: str | None = None,
        name_ilike: str | None = None,
        run_ids: Sequence[str] | None = None,
        stages: Sequence[str] | None = None,
        status: VersionStatus | None = None,
        flavor: Flavor | None = None,
        source_kind: SourceKind | None = None,
        tags: Mapping[str, str | None] | Sequence[str] | None = None,
        created_by: str | None = None,
        sort: VersionSort | None = None,
        order: Order | None = None,
    ) -> Page[ModelVersion]:
        """One page of versions: of ``model`` (newest first), or of every model matching
        the name filters (newest created first). ``run_ids`` and ``stages``: any of them;
        ``tags``: all of them."""
        params: dict[str, Any] = {
            "page": page,
            "per_page": per_page,
            "run_id": list(run_ids) if run_ids is not None else None,
            "stage": list(stages) if stages is not None else None,
            "status": status,
            "flavor": flavor,
            "source_kind": source_kind,
            "tag": _tag_params(tags),
            "created_by": created_by,
            "sort": sort,
            "order": order,
        }
        if model is not None:
            return await self._page(
                f"/api/v1/models/{_segment(model)}/versions", ModelVersion, params
            )
        names = {"q": q, "name": name, "name_like": name_like, "name_ilike": name_ilike}
        return await self._page("/api/v1/model-versions", ModelVersion, {**params, **names})

    async def update_version(
        self,
        model: str,
        version: int,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Change a version's description or tags (replacing them)."""
        body: dict[str, Any] = {}
        if description is not None:
            body["description"] = description
        if tags is not None:
            body["tags"] = dict(tags)
        path = f"/api/v1/models/{_segment(model)}/versions/{int(version)}"
        return ModelVersion.model_validate(await self.patch(path, json=body))

    async def delete_version(self, model: str, version: int) -> None:
        """Delete a version, its aliases and its files."""
        await self.delete(f"/api/v1/models/{_segment(model)}/versions/{int(version)}")

    async def set_version_tag(self, model: str, version: int, key: str, value: str) -> ModelVersion:
        """Set one tag of a version."""
        path = f"/api/v1/models/{_segment(model)}/versions/{int(version)}/tags/{_segment(key)}"
        return ModelVersion.model_validate(await self.put(path, json={"value": value}))

    async def delete_version_tag(self, model: str, version: int, key: str) -> ModelVersion:
        """Remove one tag of a version; ``NotFound`` when there is none by that key."""
        path = f"/api/v1/models/{_segment(model)}/versions/{int(version)}/tags/{_segment(key)}"
        return ModelVersion.model_validate(await self.delete(path))

    async def latest_versions(
        self, model: str, stages: Sequence[str] | None = None
    ) -> list[ModelVersion]:
        """The newest version in each stage (in ``stages`` only, when given)."""
        data = await self.get(
            f"/api/v1/models/{_segment(model)}/latest-versions",
            params={"stage": list(stages) if stages else None},
        )
        return [ModelVersion.model_validate(row) for row in data]

    # -- stages and aliases ------------------------------------------------------------

    async def transition_stage(
        self,
        model: str,
        version: int,
        stage: str,
        *,
        archive_existing_versions: bool = False,
    ) -> ModelVersion:
        """Move a version to ``stage`` (None, Staging, Production, Archived; any case).

        ``archive_existing_versions`` archives the versions already in the target stage
        (Staging and Production only: ``Invalid`` otherwise); a version that is not
        ``READY`` cannot go to Staging or Production (``Conflict``); a move to Production
        that waits for approval raises :class:`ApprovalPending`.
        """
        path = f"/api/v1/models/{_segment(model)}/versions/{int(version)}/stage"
        body = {"stage": stage, "archive_existing_versions": archive_existing_versions}
        return _version_or_pending(*await self.request("POST", path, json=body))

    async def set_alias(self, model: str, alias: str, version: int) -> ModelVersion:
        """Point ``alias`` at ``version``, moving it from the version that had it
        (:class:`ApprovalPending` when the ``production`` alias waits for approval)."""
        path = f"/api/v1/models/{_segment(model)}/aliases/{_segment(alias)}"
        return _version_or_pending(*await self.request("PUT", path, json={"version": int(version)}))

    async def delete_alias(self, model: str, alias: str) -> None:
        """Remove an alias; ``NotFound`` when the model has none by that name."""
        await self.delete(f"/api/v1/models/{_segment(model)}/aliases/{_segment(alias)}")

    async def get_by_alias(self, model: str, alias: str) -> ModelVersion:
        """The version an alias points at."""
        data = await self.get(f"/api/v1/models/{_segment(model)}/aliases/{_segment(alias)}")
        return ModelVersion.model_validate(data)

    # -- files -------------------------------------------------------------------------

    async def list_files(
        self, model: str, version: int, path: str = "", *, recursive: bool = False
    ) -> list[VersionFile]:
        """The files and folders directly in ``path`` of a version (every file below it
        when ``recursive``); ``Conflict`` when the version is not ``READY``."""
        data = await self.get(
            f"/api/v1/models/{_segment(model)}/versions/{int(version)}/files",
            params={"path": path, "recursive": recursive},
        )
        return [VersionFile.model_validate(row) for row in data]

    @asynccontextmanager
    async def stream_file(
        self, model: str, version: int, path: str, *, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """One file of a version as a stream of chunks."""
        url = f"/api/v1/models/{_segment(model)}/versions/{int(version)}/files/" + "/".join(
            quote(part, safe="") for part in path.strip("/").split("/")
        )
        async with self.stream(url, chunk_size=chunk_size) as body:
            yield body

    @asynccontextmanager
    async def stream_archive(
        self, model: str, version: int, *, chunk_size: int = 1024 * 1024
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """All of a version's files as one tar archive, streamed."""
        url = f"/api/v1/models/{_segment(model)}/versions/{int(version)}/download"
        async with self.stream(url, chunk_size=chunk_size) as body:
            yield body

    # -- helpers -----------------------------------------------------------------------

    async def _page(self, path: str, model: type[T], params: Mapping[str, Any]) -> Page[T]:
        query: QueryParams = {k: v for k, v in params.items() if v is not None}
        data, meta = await self.get_page(path, params=query)
        return Page[model](  # type: ignore[valid-type]
            items=[model.model_validate(row) for row in data],
            page=int(meta.get("page", params.get("page") or 1)),
            per_page=int(meta.get("per_page", params.get("per_page") or len(data))),
            total=int(meta.get("total", len(data))),
        )
