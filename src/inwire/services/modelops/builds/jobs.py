"""The ``modelops.build`` job: bundle, build context and (with a builder) image of a version."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from inwire.kit.db import Database
from inwire.kit.db.base import utcnow
from inwire.kit.jobs import JobCancelled, JobContext, JobFailed
from inwire.kit.storage import ObjectStore, open_object_store
from inwire.services.modelops.builds import bundle
from inwire.services.modelops.builds.engine import BuilderError, DockerEngine, registry_auth
from inwire.services.modelops.builds.models import Build
from inwire.services.modelops.models.models import ModelVersion
from inwire.services.modelops.serving.bundle import COMPLETE_MARKER, materialize
from inwire.services.modelops.settings import ModelOpsSettings

NO_BUILDER = (
    "No container builder is configured (build_docker_url): no image was built. "
    "The serving bundle and the container build context are ready to download."
)


def build_prefix(org_id: str, build_id: str) -> str:
    """Object-store prefix of a build's artifacts."""
    return f"modelops/{org_id}/builds/{build_id}/"


def image_name(repository: str, model_name: str, version: int) -> str:
    """``repository/<model name as an image name>:v<version>``."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-._") or "model"
    return f"{repository.rstrip('/')}/{slug}:v{version}"


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, 1024 * 1024):
            yield chunk


async def _update(db: Database, build_id: str, **values: Any) -> None:
    async with db.session() as session:
        row = await session.get(Build, build_id)
        if row is not None:
            for key, value in values.items():
                setattr(row, key, value)


async def build(ctx: JobContext, job_input: dict[str, Any]) -> dict[str, Any]:
    """Package the build's version; the build row records the artifacts and the outcome."""
    settings = ModelOpsSettings(**ctx.settings)
    db = Database(settings.database_url, schema=settings.database_schema)
    store = open_object_store(settings.storage_url)
    workdir = Path(tempfile.mkdtemp(prefix="inwire-build-"))
    build_id = str(job_input.get("build_id", ""))
    try:
        return await _build(ctx, build_id, settings, db, store, workdir)
    except JobCancelled:
        await _update(db, build_id, status="cancelled", finished_at=utcnow())
        raise
    except (JobFailed, BuilderError) as exc:
        await _update(db, build_id, status="failed", error=str(exc), finished_at=utcnow())
        ctx.log(f"build failed: {exc}", level="error")
        raise JobFailed(str(exc)) from exc
    except Exception as exc:
        await _update(db, build_id, status="failed", error=str(exc), finished_at=utcnow())
        raise
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)
        await store.close()
        await db.dispose()


async def _load(db: Database, org_id: str, build_id: str) -> tuple[Build, ModelVersion]:
    async with db.session() as session:
        row = await session.get(Build, build_id)
        if row is None or row.organization_id != org_id:
            raise JobFailed(f"Build {build_id!r} does not exist")
        version = await session.get(ModelVersion, row.version_id)
        if version is None or version.organization_id != org_id:
            raise JobFailed("The model version was deleted")
        row.status = "running"
        row.error = None
        session.expunge_all()
        return row, version


async def _build(
    ctx: JobContext,
    build_id: str,
    settings: ModelOpsSettings,
    db: Database,
    store: ObjectStore,
    workdir: Path,
) -> dict[str, Any]:
    org = ctx.organization_id
    row, version = await _load(db, org, build_id)
    ctx.log(f"build {build_id}: {row.model_name} version {row.version} ({version.id})")
    ctx.progress(0.05, "downloading the model files")
    folder = workdir / "bundle"
    model_root = await materialize(store, org, row.model_id, version.id, folder / "model")
    (folder / "model" / COMPLETE_MARKER).unlink(missing_ok=True)
    model_dir = model_root.relative_to(folder).as_posix()
    files = bundle.files_under(folder / "model")
    ctx.log(f"{len(files)} file(s) of the version in {model_dir}/")
    ctx.raise_if_cancelled()

    requirement_file = next(
        (
            p
            for p in (model_root / "requirements.txt", folder / "model" / "requirements.txt")
            if p.is_file()
        ),
        None,
    )
    text = requirement_file.read_text(errors="replace") if requirement_file else None
    reqs = bundle.requirements_for(version.flavor, text, server=settings.build_inwire_requirement)
    origin = "the version" if text is not None else f"the flavor {version.flavor!r}"
    ctx.log(f"requirements from {origin}: " + ", ".join(reqs.lines))
    for note in reqs.notes:
        ctx.log(note, level="warning")
    (folder / "requirements.txt").write_text("\n".join(reqs.lines) + "\n")
    if version.signature:
        (folder / "signature.json").write_text(json.dumps(version.signature))
    command = bundle.server_command(model_dir, bool(version.signature))
    manifest = bundle.manifest(
        model_name=row.model_name,
        model_id=row.model_id,
        version=row.version,
        version_id=version.id,
        flavor=version.flavor,
        command=command,
        requirements=reqs,
        files=files,
    )
    (folder / "inwire-bundle.json").write_text(json.dumps(manifest, indent=2))
    ctx.log("entry point: " + " ".join(command))

    ctx.progress(0.3, "packing the bundle")
    prefix = build_prefix(org, build_id)
    bundle_path = workdir / "bundle.tar.gz"
    bundle_sha = await asyncio.to_thread(bundle.write_tar_gz, [(folder, "")], bundle_path)
    await store.put(prefix + "bundle.tar.gz", _chunks(bundle_path), "application/gzip")
    ctx.log(f"bundle: {bundle_path.stat().st_size} bytes, sha256 {bundle_sha}")

    ctx.progress(0.5, "writing the build context")
    context_dir = workdir / "context"
    context_dir.mkdir()
    text_dockerfile = bundle.dockerfile(settings.build_base_image, command)
    (context_dir / "Dockerfile").write_text(text_dockerfile)
    context_files = ["Dockerfile", *(f"bundle/{f}" for f in bundle.files_under(folder))]
    problems = bundle.validate_dockerfile(text_dockerfile, context_files)
    if problems:
        raise JobFailed("The generated Dockerfile is invalid: " + "; ".join(problems))
    context_path = workdir / "context.tar.gz"
    await asyncio.to_thread(
        bundle.write_tar_gz, [(context_dir, ""), (folder, "bundle/")], context_path
    )
    await store.put(prefix + "context.tar.gz", _chunks(context_path), "application/gzip")
    ctx.log(f"build context: Dockerfile + bundle/, {context_path.stat().st_size} bytes")
    ctx.raise_if_cancelled()

    image: str | None = None
    digest: str | None = None
    pushed = False
    if not settings.build_docker_url:
        message = NO_BUILDER
        ctx.log(message)
    else:
        image, digest, pushed, message = await _image(ctx, settings, row, context_path)
    await _update(
        db,
        build_id,
        status="succeeded",
        message=message,
        image=image,
        image_digest=digest,
        pushed=pushed,
        bundle_key=prefix + "bundle.tar.gz",
        bundle_size=bundle_path.stat().st_size,
        bundle_sha256=bundle_sha,
        context_key=prefix + "context.tar.gz",
        context_size=context_path.stat().st_size,
        requirements=reqs.lines,
        requirements_source=reqs.source,
        manifest=manifest,
        finished_at=utcnow(),
    )
    ctx.progress(1.0, message)
    return {"build_id": build_id, "image": image, "pushed": pushed, "message": message}


async def _image(
    ctx: JobContext, settings: ModelOpsSettings, row: Build, context: Path
) -> tuple[str, str | None, bool, str]:
    """Build (and push) the image; (image, digest, pushed, message)."""
    auth: str | None = None
    repository = settings.build_image_repository or "inwire"
    if row.registry_integration:
        registry = await _registry(ctx, settings, row.registry_integration)
        config = registry.config
        repository = f"{config['registry']}/{config['namespace']}"
        auth = registry_auth(
            str(registry.credentials.get("username", "")),
            str(registry.credentials.get("password", "")),
            str(config["registry"]),
        )
    image = image_name(repository, row.model_name, row.version)
    engine = DockerEngine(settings.build_docker_url, ctx.log)
    try:
        ctx.progress(0.6, f"building {image}")
        ctx.log(f"building image {image} with {settings.build_docker_url}")
        image_id = await engine.build(context, image)
        ctx.log(f"built {image} ({image_id})")
        if auth is None:
            return (
                image,
                None,
                False,
                (f"Image {image} built ({image_id}); not pushed: no registry integration"),
            )
        ctx.progress(0.85, f"pushing {image}")
        digest = await engine.push(image, auth)
        ctx.log(f"pushed {image}" + (f" ({digest})" if digest else ""))
        return image, digest, True, f"Image {image} built and pushed"
    finally:
        await engine.close()


async def _registry(ctx: JobContext, settings: ModelOpsSettings, integration_id: str) -> Any:
    """The registry integration, with credentials, from Core (for the build's creator)."""
    from inwire.contracts.core import CoreClient
    from inwire.kit.auth.internal import internal_secret
    from inwire.kit.errors import InwireError

    try:
        async with CoreClient(settings.core_url, timeout=30) as core:
            found = await core.resolve_integration(
                integration_id,
                organization_id=ctx.organization_id,
                on_behalf_of=ctx.created_by,
                internal_secret=internal_secret(settings),
            )
    except InwireError as exc:
        raise JobFailed(f"Registry integration {integration_id!r}: {exc.message}") from exc
    if found.kind != "container_registry":
        raise JobFailed(f"Integration {integration_id!r} is {found.kind}, not a container_registry")
    return found
