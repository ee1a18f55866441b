"""Rules of the model registry: models, versions, aliases, stages, flavors and signatures.

A model is addressed by id (``mdl_…``) or by name; names never look like ids, so the two
cannot clash. Versions are numbered 1, 2, … per model and numbers are never reused.
Registering a version is three steps so that no database transaction stays open while
files are copied: check everything (the source's files, its MLmodel, the examples), reserve
the version (``PENDING_REGISTRATION``), copy, then mark it ``READY`` (or
``FAILED_REGISTRATION`` when the copy fails). Stage changes go through
:func:`transition_stage` alone, so that promotion can be gated (approvals) in one place.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.auth import Principal
from inwire.kit.db import Database
from inwire.kit.db.base import utcnow
from inwire.kit.errors import Conflict, Invalid, InwireError, NotFound
from inwire.kit.events import CloudEvent
from inwire.kit.ids import new_id
from inwire.kit.storage import ObjectStore
from inwire.services.modelops.db import OUTBOX
from inwire.services.modelops.governance import audit, history
from inwire.services.modelops.models import files, signatures
from inwire.services.modelops.models.files import StoredFile
from inwire.services.modelops.models.models import ModelAlias, ModelVersion, RegisteredModel
from inwire.services.modelops.models.repository import (
    AliasRepository,
    ModelRepository,
    NameFilter,
    VersionFilter,
    VersionRepository,
)
from inwire.services.modelops.models.schemas import (
    MODEL_ID,
    STAGES,
    ModelCreate,
    ModelVersionOut,
    RegisteredModelOut,
    VersionCreate,
    VersionOptions,
)

SOURCE = "/inwire/modelops"
#: Stages whose versions serve; only these may archive the versions already there.
ACTIVE_STAGES = ("Staging", "Production")


async def _emit(
    session: AsyncSession, kind: str, who: Principal, subject: str, data: dict[str, Any]
) -> None:
    """Add ``inwire.modelops.<kind>`` to the outbox of ``session``'s transaction."""
    await OUTBOX.add(
        session,
        CloudEvent(
            source=SOURCE,
            type=f"inwire.modelops.{kind}",
            subject=subject,
            data={**data, "actor": who.subject},
            inwireorg=who.org,
        ),
    )


def _model_state(model: RegisteredModel) -> dict[str, Any]:
    """What the audit trail keeps of a model."""
    return {
        "name": model.name,
        "description": model.description,
        "model_card": model.model_card,
        "tags": dict(model.tags),
    }


def _version_state(version: ModelVersion) -> dict[str, Any]:
    """What the audit trail keeps of a version."""
    return {
        "model_id": version.model_id,
        "version": version.version,
        "status": version.status,
        "status_message": version.status_message,
        "stage": version.stage,
        "description": version.description,
        "tags": dict(version.tags),
        "source": version.source,
        "flavor": version.flavor,
        "file_count": version.file_count,
        "size_bytes": version.size_bytes,
    }


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"A model named {name!r} already exists",
        code="NAME_TAKEN",
        details=[{"field": "name", "message": "already used by another model"}],
    )


def parse_tag_filters(tags: Sequence[str]) -> list[tuple[str, str | None]]:
    """``key`` or ``key=value`` from ``tag`` query parameters."""
    out: list[tuple[str, str | None]] = []
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not key:
            raise Invalid(
                "tag must be 'key' or 'key=value'",
                details=[{"field": "tag", "message": "expected key or key=value"}],
            )
        out.append((key, value if sep else None))
    return out


# -- registered models --------------------------------------------------------------------


async def resolve(repo: ModelRepository, ref: str) -> RegisteredModel:
    """The model ``ref`` names (an id or a name); 404 otherwise."""
    row = await (repo.find(RegisteredModel.id == ref) if MODEL_ID.match(ref) else repo.by_name(ref))
    if row is None:
        raise NotFound(f"Model {ref!r} not found")
    return row


async def get_model(session: AsyncSession, who: Principal, ref: str) -> RegisteredModel:
    """The model, or 404 (also for another organization's)."""
    return await resolve(ModelRepository(session, who.org), ref)


async def create_model(session: AsyncSession, who: Principal, data: ModelCreate) -> RegisteredModel:
    """A new model without versions; its name must be new in the organization."""
    repo = ModelRepository(session, who.org)
    if await repo.by_name(data.name) is not None:
        raise _name_taken(data.name)
    model = RegisteredModel(
        id=new_id("mdl"),
        name=data.name,
        description=data.description,
        model_card=data.model_card,
        tags=dict(data.tags),
        last_version=0,
        created_by=who.subject,
    )
    try:
        await repo.add(model)
    except Conflict as exc:  # a concurrent create took the name first
        raise _name_taken(data.name) from exc
    await _emit(session, "model.created", who, model.id, {"name": model.name})
    await audit.record_by(
        session, who, "model.create", "model", model.id, after=_model_state(model)
    )
    return model


async def list_models(
    session: AsyncSession,
    who: Principal,
    query: ListQuery,
    *,
    names: NameFilter,
    tags: Sequence[str] = (),
) -> tuple[Sequence[RegisteredModel], int]:
    """One page of models matching the name filter and every tag."""
    return await ModelRepository(session, who.org).search(
        query, names=names, tags=parse_tag_filters(tags)
    )


async def update_model(
    session: AsyncSession, who: Principal, ref: str, changes: dict[str, Any]
) -> RegisteredModel:
    """Rename a model, or change its description, model card or tags."""
    repo = ModelRepository(session, who.org)
    model = await resolve(repo, ref)
    name = changes.get("name")
    if name is not None and name != model.name and await repo.by_name(name) is not None:
        raise _name_taken(name)
    before = _model_state(model)
    for key, value in changes.items():
        setattr(model, key, value)
    model.updated_at = utcnow()
    try:
        await repo.flush()
    except Conflict as exc:
        raise _name_taken(str(name)) from exc
    if name is not None:
        await _emit(session, "model.renamed", who, model.id, {"name": model.name})
    await audit.record_by(
        session, who, "model.update", "model", model.id, before=before, after=_model_state(model)
    )
    return model


async def set_model_tag(
    session: AsyncSession, who: Principal, ref: str, key: str, value: str
) -> RegisteredModel:
    """Set one tag of a model."""
    repo = ModelRepository(session, who.org)
    model = await resolve(repo, ref)
    _check_tag_room(model.tags, key)
    before = {"tags": dict(model.tags)}
    model.tags = {**model.tags, key: value}
    model.updated_at = utcnow()
    await repo.flush()
    await audit.record_by(
        session, who, "model.tag.set", "model", model.id, before=before, after={"tags": model.tags}
    )
    return model


async def delete_model_tag(
    session: AsyncSession, who: Principal, ref: str, key: str
) -> RegisteredModel:
    """Remove one tag of a model; 404 when it has none by that key."""
    repo = ModelRepository(session, who.org)
    model = await resolve(repo, ref)
    if key not in model.tags:
        raise NotFound(f"Model {model.name!r} has no tag {key!r}")
    before = {"tags": dict(model.tags)}
    model.tags = {k: v for k, v in model.tags.items() if k != key}
    model.updated_at = utcnow()
    await repo.flush()
    await audit.record_by(
        session,
        who,
        "model.tag.delete",
        "model",
        model.id,
        before=before,
        after={"tags": model.tags},
    )
    return model


def _check_tag_room(tags: dict[str, str], key: str) -> None:
    if key not in tags and len(tags) >= 100:
        raise Invalid("At most 100 tags", details=[{"field": "key", "message": "too many tags"}])


async def delete_model(session: AsyncSession, who: Principal, ref: str) -> str:
    """Delete a model with its versions and aliases; the object-store prefix to purge."""
    repo = ModelRepository(session, who.org)
    model = await resolve(repo, ref)
    versions = await VersionRepository(session, who.org).all(ModelVersion.model_id == model.id)
    await history.left(
        session,
        who.org,
        [v.id for v in versions],
        source=None,
        actor=who.subject,
        reason="model deleted",
    )
    before = _model_state(model)
    await repo.remove(model)
    await _emit(session, "model.deleted", who, model.id, {"name": model.name})
    await audit.record_by(session, who, "model.delete", "model", model.id, before=before)
    return files.model_prefix(who.org, model.id)


async def model_views(
    session: AsyncSession, who: Principal, models: Sequence[RegisteredModel]
) -> list[RegisteredModelOut]:
    """The wire form of models: their aliases and latest version per stage, in batches."""
    ids = [m.id for m in models]
    aliases = await AliasRepository(session, who.org).of_models(ids)
    latest = await VersionRepository(session, who.org).latest_per_stage(ids)
    names = {m.id: m.name for m in models}
    views = await version_views(session, who, latest, names)
    per_model: dict[str, list[ModelVersionOut]] = {m: [] for m in ids}
    for view in views:
        per_model[view.model_id].append(view)
    return [
        RegisteredModelOut(
            id=m.id,
            name=m.name,
            description=m.description,
            model_card=m.model_card,
            tags=m.tags,
            aliases=aliases[m.id],
            last_version=m.last_version,
            latest_versions=per_model[m.id],
            created_by=m.created_by,
            created_at=m.created_at,
            updated_at=m.updated_at,
        )
        for m in models
    ]


async def version_views(
    session: AsyncSession,
    who: Principal,
    versions: Sequence[ModelVersion],
    names: dict[str, str] | None = None,
) -> list[ModelVersionOut]:
    """The wire form of versions: with their model's name and their aliases."""
    names = dict(names or {})
    missing = {v.model_id for v in versions} - set(names)
    if missing:
        names.update(await ModelRepository(session, who.org).names_of(missing))
    aliases = await AliasRepository(session, who.org).of_versions([v.id for v in versions])
    return [
        ModelVersionOut.model_validate(
            {
                **{k: getattr(v, k) for k in ModelVersionOut.model_fields if hasattr(v, k)},
                "name": names[v.model_id],
                "aliases": aliases[v.id],
            }
        )
        for v in versions
    ]


# -- versions ---------------------------------------------------------------------------------


async def get_version(
    session: AsyncSession, who: Principal, ref: str, number: int
) -> tuple[RegisteredModel, ModelVersion]:
    """A model and its version ``number``; 404 for either."""
    model = await get_model(session, who, ref)
    version = await VersionRepository(session, who.org).by_number(model.id, number)
    if version is None:
        raise NotFound(f"Model {model.name!r} has no version {number}")
    return model, version


async def list_versions(
    session: AsyncSession,
    who: Principal,
    query: ListQuery,
    *,
    ref: str | None = None,
    where: VersionFilter = VersionFilter(),
) -> tuple[Sequence[ModelVersion], int, dict[str, str]]:
    """One page of versions of one model (``ref``) or of every model; with the model
    names known so far."""
    names: dict[str, str] = {}
    model_id = None
    if ref is not None:
        model = await get_model(session, who, ref)
        model_id, names = model.id, {model.id: model.name}
    rows, total = await VersionRepository(session, who.org).search(
        query, model_id=model_id, where=where
    )
    return rows, total, names


async def update_version(
    session: AsyncSession, who: Principal, ref: str, number: int, changes: dict[str, Any]
) -> tuple[RegisteredModel, ModelVersion]:
    """Change a version's description or tags."""
    model, version = await get_version(session, who, ref, number)
    before = _version_state(version)
    for key, value in changes.items():
        setattr(version, key, value)
    version.updated_at = utcnow()
    await VersionRepository(session, who.org).flush()
    await _audit_version(session, who, "model.version.update", version, before)
    return model, version


async def set_version_tag(
    session: AsyncSession, who: Principal, ref: str, number: int, key: str, value: str
) -> tuple[RegisteredModel, ModelVersion]:
    """Set one tag of a version."""
    model, version = await get_version(session, who, ref, number)
    _check_tag_room(version.tags, key)
    before = _version_state(version)
    version.tags = {**version.tags, key: value}
    version.updated_at = utcnow()
    await VersionRepository(session, who.org).flush()
    await _audit_version(session, who, "model.version.tag.set", version, before)
    return model, version


async def delete_version_tag(
    session: AsyncSession, who: Principal, ref: str, number: int, key: str
) -> tuple[RegisteredModel, ModelVersion]:
    """Remove one tag of a version; 404 when it has none by that key."""
    model, version = await get_version(session, who, ref, number)
    if key not in version.tags:
        raise NotFound(f"Version {number} of {model.name!r} has no tag {key!r}")
    before = _version_state(version)
    version.tags = {k: v for k, v in version.tags.items() if k != key}
    version.updated_at = utcnow()
    await VersionRepository(session, who.org).flush()
    await _audit_version(session, who, "model.version.tag.delete", version, before)
    return model, version


async def _audit_version(
    session: AsyncSession,
    who: Principal,
    action: str,
    version: ModelVersion,
    before: dict[str, Any] | None,
) -> None:
    await audit.record_by(
        session,
        who,
        action,
        "model_version",
        version.id,
        before=before,
        after=_version_state(version),
    )


async def delete_version(session: AsyncSession, who: Principal, ref: str, number: int) -> str:
    """Delete a version (its aliases go with it); the object-store prefix to purge."""
    model, version = await get_version(session, who, ref, number)
    await history.left(
        session, who.org, [version.id], source=None, actor=who.subject, reason="version deleted"
    )
    before = _version_state(version)
    await VersionRepository(session, who.org).remove(version)
    await audit.record_by(
        session, who, "model.version.delete", "model_version", version.id, before=before
    )
    await _emit(
        session,
        "model.version.deleted",
        who,
        version.id,
        {"model_id": model.id, "name": model.name, "version": number},
    )
    return version.storage_prefix


async def latest_versions(
    session: AsyncSession, who: Principal, ref: str, stages: Sequence[str] = ()
) -> tuple[RegisteredModel, list[ModelVersion]]:
    """The newest version in each stage (of ``stages`` only, when given), as MLflow's
    ``get_latest_versions``."""
    model = await get_model(session, who, ref)
    wanted = [canonical_stage(s) for s in stages]
    rows = await VersionRepository(session, who.org).latest_per_stage([model.id], wanted)
    return model, rows


# -- registration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Described:
    """What a version's files and the request say about it, checked."""

    flavor: str | None
    flavors: list[str]
    signature: dict[str, Any] | None
    signature_source: str | None


def describe(
    options: VersionOptions, mlmodel: dict[str, Any] | None, paths: Sequence[str]
) -> Described:
    """Flavor and signature from the request, the MLmodel file and the examples.

    The flavor given must be one the MLmodel lists; else it comes from the MLmodel, else
    ``onnx`` when the files hold exactly one ``*.onnx`` model, else it stays unknown. The
    signature given wins over the MLmodel's, which wins over one inferred from the
    examples.
    """
    listed = signatures.mlmodel_flavors(mlmodel) if mlmodel else []
    detected = signatures.flavor_of(mlmodel) if mlmodel else None
    if options.flavor is not None and mlmodel is not None:
        offered = signatures.registry_flavors(mlmodel)
        if options.flavor not in offered:
            raise Invalid(
                f"The MLmodel file lists flavors {listed}, not {options.flavor!r}",
                details=[{"field": "flavor", "message": "not a flavor of the MLmodel"}],
            )
    flavor = options.flavor or detected
    if flavor is None and mlmodel is None:
        onnx = [p for p in paths if p.lower().endswith(".onnx")]
        flavor = "onnx" if len(onnx) == 1 else None
    inferred = None
    if options.input_example is not None:
        inferred = signatures.infer_signature(options.input_example, options.output_example)
    elif options.output_example is not None:
        raise Invalid(
            "An output example needs an input example",
            details=[{"field": "output_example", "message": "give input_example too"}],
        )
    from_file = signatures.mlmodel_signature(mlmodel) if mlmodel else None
    if options.signature is not None:
        signature, source = options.signature.model_dump(), "given"
    elif from_file is not None:
        signature, source = from_file, "mlmodel"
    elif inferred is not None:
        signature, source = inferred, "example"
    else:
        signature, source = None, None
    return Described(flavor, listed, signature, source)


def _source_uri(run_id: str, path: str) -> str:
    return f"runs:/{run_id}/{path.strip('/')}" if path.strip("/") else f"runs:/{run_id}"


async def _reserve(
    db: Database,
    who: Principal,
    ref: str,
    *,
    version_id: str,
    options: VersionOptions,
    described: Described,
    source_kind: str,
    source: str,
    status: str,
    stored: Sequence[StoredFile],
) -> tuple[str, int]:
    """Create the version row (its number taken under the model's lock); emits
    ``model.version.created`` when it is already READY."""
    lineage = options.lineage.model_dump(exclude_none=True)
    async with db.session() as session:
        repo = ModelRepository(session, who.org)
        model = await repo.locked((await resolve(repo, ref)).id)
        number = await repo.next_version(model.id)
        version = ModelVersion(
            id=version_id,
            model_id=model.id,
            version=number,
            description=options.description,
            tags=dict(options.tags),
            status=status,
            status_message="",
            stage="None",
            source_kind=source_kind,
            source=source,
            run_id=lineage.get("run_id"),
            lineage=lineage,
            flavor=described.flavor,
            flavors=described.flavors,
            signature=described.signature,
            signature_source=described.signature_source,
            input_example=options.input_example,
            file_count=len(stored),
            size_bytes=sum(f.size for f in stored),
            storage_prefix=files.version_prefix(who.org, model.id, version_id),
            created_by=who.subject,
        )
        await VersionRepository(session, who.org).add(version)
        model.updated_at = utcnow()
        await _audit_version(session, who, "model.version.create", version, None)
        if status == "READY":
            await _emit_created(session, who, model, version)
        return model.id, number


async def _emit_created(
    session: AsyncSession, who: Principal, model: RegisteredModel, version: ModelVersion
) -> None:
    await _emit(
        session,
        "model.version.created",
        who,
        version.id,
        {
            "model_id": model.id,
            "name": model.name,
            "version": version.version,
            "source": version.source,
            "run_id": version.run_id,
            "flavor": version.flavor,
        },
    )


async def register_from_run(
    db: Database,
    store: ObjectStore,
    training_store: ObjectStore,
    who: Principal,
    ref: str,
    data: VersionCreate,
    *,
    max_files: int,
) -> tuple[str, int]:
    """Register a version from a training run's artifact (a folder or a file), copying
    its files into the registry; returns the model id and the new version's number.

    Bad input is a 4xx before any version exists. A copy that fails leaves the version
    ``FAILED_REGISTRATION`` with the reason, and none of its files.
    """
    async with db.session(write=False) as session:
        await get_model(session, who, ref)
    run_id, path = data.source.run_id, data.source.artifact_path
    source_prefix, stored = await files.run_artifact_files(
        training_store, who.org, run_id, path, max_files=max_files
    )
    mlmodel = None
    if any(f.path == "MLmodel" for f in stored):
        text = await files.read_small(training_store, source_prefix + "MLmodel")
        mlmodel = signatures.parse_mlmodel(text)
    described = describe(data, mlmodel, [f.path for f in stored])
    lineage = data.lineage.model_copy(update={"run_id": run_id})
    options = data.model_copy(update={"lineage": lineage})
    version_id = new_id("mv")
    model_id, number = await _reserve(
        db,
        who,
        ref,
        version_id=version_id,
        options=options,
        described=described,
        source_kind="run",
        source=data.source.uri or _source_uri(run_id, files.clean_path(path, folder=True)),
        status="PENDING_REGISTRATION",
        stored=stored,
    )
    target = files.version_prefix(who.org, model_id, version_id)
    failure = ""
    try:
        await files.copy_files(training_store, store, source_prefix, stored, target)
    except (InwireError, OSError) as exc:
        failure = f"Copying the run's files failed: {exc}"
        await files.purge(store, target)
    async with db.session() as session:
        repo = VersionRepository(session, who.org)
        version = await repo.find(ModelVersion.id == version_id)
        if version is None:  # deleted while its files were copied
            await files.purge(store, target)
            raise NotFound(f"Version {number} was deleted while it was registered")
        before = _version_state(version)
        version.status = "FAILED_REGISTRATION" if failure else "READY"
        version.status_message = failure
        version.updated_at = utcnow()
        await repo.flush()
        await _audit_version(session, who, "model.version.register", version, before)
        if not failure:
            model = await ModelRepository(session, who.org).get(model_id)
            await _emit_created(session, who, model, version)
    return model_id, number


def _form_json(fields: dict[str, str], name: str) -> Any:
    raw = fields.get(name)
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise Invalid(
            f"Form field {name!r} is not JSON: {exc.msg}",
            details=[{"field": name, "message": "not JSON"}],
        ) from exc


def upload_options(fields: dict[str, str]) -> VersionOptions:
    """A version's options from an upload's form fields (JSON for the structured ones)."""
    unknown = sorted(set(fields) - set(VersionOptions.model_fields))
    if unknown:
        raise Invalid(
            f"Unknown form fields: {', '.join(unknown)}",
            details=[{"field": u, "message": "unknown field"} for u in unknown],
        )
    raw: dict[str, Any] = {}
    for name in ("description", "flavor"):
        if fields.get(name):
            raw[name] = fields[name]
    for name in ("tags", "signature", "input_example", "output_example", "lineage"):
        value = _form_json(fields, name)
        if value is not None:
            raw[name] = value
    try:
        return VersionOptions.model_validate(raw)
    except ValidationError as exc:
        raise Invalid(
            "The upload's fields are invalid",
            details=[
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors()
            ],
        ) from exc


async def register_upload(
    db: Database,
    store: ObjectStore,
    who: Principal,
    ref: str,
    receive: Callable[[str], Awaitable[files.ReceivedFiles]],
) -> tuple[str, int]:
    """Register a version from uploaded files: ``receive(prefix)`` streams them to the
    store; then the fields are checked and the version is created ``READY``. On any
    error nothing stays stored."""
    async with db.session(write=False) as session:
        model = await get_model(session, who, ref)
    version_id = new_id("mv")
    prefix = files.version_prefix(who.org, model.id, version_id)
    try:
        received = await receive(prefix)
        options = upload_options(received.fields)
        mlmodel = None
        if any(f.path == "MLmodel" for f in received.files):
            mlmodel = signatures.parse_mlmodel(await files.read_small(store, prefix + "MLmodel"))
        described = describe(options, mlmodel, [f.path for f in received.files])
        return await _reserve(
            db,
            who,
            model.id,
            version_id=version_id,
            options=options,
            described=described,
            source_kind="upload",
            source="upload",
            status="READY",
            stored=received.files,
        )
    except BaseException:
        await files.purge(store, prefix)
        raise


async def version_files(
    session: AsyncSession, who: Principal, ref: str, number: int
) -> tuple[ModelVersion, str]:
    """A version whose files can be read (READY), and its prefix; 409 otherwise."""
    _, version = await get_version(session, who, ref, number)
    if version.status != "READY":
        raise Conflict(
            f"Version {number} is {version.status}: it has no files to read",
            code="VERSION_NOT_READY",
        )
    return version, version.storage_prefix


# -- stages and aliases -----------------------------------------------------------------------


def canonical_stage(stage: str) -> str:
    """``None``, ``Staging``, ``Production`` or ``Archived`` from any case; 400 otherwise."""
    for known in STAGES:
        if stage.lower() == known.lower():
            return known
    raise Invalid(
        f"Unknown stage {stage!r}; use one of {', '.join(STAGES)}",
        details=[{"field": "stage", "message": f"one of {', '.join(STAGES)}"}],
    )


async def transition_stage(
    session: AsyncSession,
    who: Principal,
    ref: str,
    number: int,
    stage: str,
    *,
    archive_existing_versions: bool = False,
    reason: str = "",
) -> tuple[RegisteredModel, ModelVersion, list[int]]:
    """Move a version to ``stage`` (MLflow's rules); the only way a stage changes.

    ``archive_existing_versions`` archives the other versions in the target stage, and
    only Staging and Production may ask it (400 otherwise). Only a READY version may go
    to Staging or Production (409). Returns the versions archived on the way. Audited,
    and a move into or out of Production is written to the production history (with
    ``reason``). Promotion to Production is gated before this call (``governance``).
    """
    target = canonical_stage(stage)
    if archive_existing_versions and target not in ACTIVE_STAGES:
        raise Invalid(
            f"Only a transition to {' or '.join(ACTIVE_STAGES)} can archive existing "
            f"versions, not one to {target}",
            details=[{"field": "archive_existing_versions", "message": "not an active stage"}],
        )
    repo = ModelRepository(session, who.org)
    model = await repo.locked((await resolve(repo, ref)).id)
    versions = VersionRepository(session, who.org)
    version = await versions.by_number(model.id, number)
    if version is None:
        raise NotFound(f"Model {model.name!r} has no version {number}")
    if target in ACTIVE_STAGES and version.status != "READY":
        raise Conflict(
            f"Version {number} is {version.status}; only READY versions go to {target}",
            code="VERSION_NOT_READY",
        )
    archived: list[int] = []
    left_production: list[str] = []
    if archive_existing_versions:
        others = [v for v in await versions.in_stage(model.id, target) if v.id != version.id]
        await versions.set_stage([v.id for v in others], "Archived")
        archived = sorted(v.version for v in others)
        if target == history.PRODUCTION_STAGE:
            left_production = [v.id for v in others]
    before = version.stage
    version.stage = target
    version.updated_at = utcnow()
    await versions.flush()
    why = reason or f"stage {before} -> {target}"
    await history.left(
        session,
        who.org,
        left_production,
        source="stage",
        actor=who.subject,
        reason=f"archived: version {number} went to {target}" + (f" ({reason})" if reason else ""),
    )
    if before == history.PRODUCTION_STAGE and target != before:
        await history.left(
            session, who.org, [version.id], source="stage", actor=who.subject, reason=why
        )
    if target == history.PRODUCTION_STAGE:
        await history.entered(
            session,
            who.org,
            model_id=model.id,
            version_id=version.id,
            source="stage",
            actor=who.subject,
            reason=why,
        )
    await audit.record_by(
        session,
        who,
        "model.version.stage",
        "model_version",
        version.id,
        before={"stage": before},
        after={"stage": target, "archived_versions": archived},
    )
    await _emit(
        session,
        "model.version.stage_changed",
        who,
        version.id,
        {
            "model_id": model.id,
            "name": model.name,
            "version": number,
            "from": before,
            "to": target,
            "archived_versions": archived,
        },
    )
    return model, version, archived


async def set_alias(
    session: AsyncSession, who: Principal, ref: str, alias: str, number: int, *, reason: str = ""
) -> tuple[RegisteredModel, ModelVersion]:
    """Point ``alias`` at version ``number``, moving it from another version in the same
    transaction (the model's row is locked, so concurrent moves queue). Audited; a move
    of the ``production`` alias is written to the production history (with ``reason``)."""
    repo = ModelRepository(session, who.org)
    model = await repo.locked((await resolve(repo, ref)).id)
    version = await VersionRepository(session, who.org).by_number(model.id, number)
    if version is None:
        raise NotFound(f"Model {model.name!r} has no version {number}")
    aliases = AliasRepository(session, who.org)
    row = await aliases.named(model.id, alias)
    before = None
    if row is None:
        await aliases.add(
            ModelAlias(
                model_id=model.id, alias=alias, version_id=version.id, created_by=who.subject
            )
        )
    else:
        before = row.version_id
        row.version_id = version.id
        row.created_by = who.subject
        row.updated_at = utcnow()
        await aliases.flush()
    await _alias_history(
        session, who, model.id, alias, before, version.id, reason or f"alias {alias} set"
    )
    await audit.record_by(
        session,
        who,
        "model.alias.set",
        "model",
        model.id,
        before={"alias": alias, "version_id": before},
        after={"alias": alias, "version_id": version.id, "version": number},
    )
    await _emit(
        session,
        "model.alias.set",
        who,
        model.id,
        {"name": model.name, "alias": alias, "version": number, "from_version_id": before},
    )
    return model, version


async def delete_alias(session: AsyncSession, who: Principal, ref: str, alias: str) -> None:
    """Remove an alias; 404 when the model has none by that name."""
    repo = ModelRepository(session, who.org)
    model = await repo.locked((await resolve(repo, ref)).id)
    aliases = AliasRepository(session, who.org)
    row = await aliases.named(model.id, alias)
    if row is None:
        raise NotFound(f"Model {model.name!r} has no alias {alias!r}")
    await aliases.remove(row)
    await _emit(session, "model.alias.deleted", who, model.id, {"name": model.name, "alias": alias})
    await _alias_history(session, who, model.id, alias, row.version_id, None, "alias removed")
    await audit.record_by(
        session,
        who,
        "model.alias.delete",
        "model",
        model.id,
        before={"alias": alias, "version_id": row.version_id},
    )


async def _alias_history(
    session: AsyncSession,
    who: Principal,
    model_id: str,
    alias: str,
    old: str | None,
    new: str | None,
    reason: str,
) -> None:
    """The production history of a move of the ``production`` alias (any case)."""
    if alias.lower() != history.PRODUCTION_ALIAS or old == new:
        return
    if old is not None:
        await history.left(
            session, who.org, [old], source="alias", actor=who.subject, reason=reason
        )
    if new is not None:
        await history.entered(
            session,
            who.org,
            model_id=model_id,
            version_id=new,
            source="alias",
            actor=who.subject,
            reason=reason,
        )


async def by_alias(
    session: AsyncSession, who: Principal, ref: str, alias: str
) -> tuple[RegisteredModel, ModelVersion]:
    """The version an alias points at; 404 when there is no such alias."""
    model = await get_model(session, who, ref)
    row = await AliasRepository(session, who.org).named(model.id, alias)
    if row is None:
        raise NotFound(f"Model {model.name!r} has no alias {alias!r}")
    version = await VersionRepository(session, who.org).get(row.version_id)
    return model, version
