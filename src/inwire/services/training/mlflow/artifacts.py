"""``mlflow-artifacts:/`` paths mapped onto run artifacts, logged models and the registry.

The MLflow client resolves ``mlflow-artifacts:/<path>`` to
``<tracking URI>/api/2.0/mlflow-artifacts/artifacts/<path>``. Paths are:

- ``<experiment id>/<run id>/artifacts/<file>``: a run's artifacts
  (``training/<org>/<run id>/artifacts/<file>``);
- ``<experiment id>/models/<model id>/artifacts/<file>``: a logged model's files, kept in
  its run's artifacts under ``models/<model id>/``;
- ``registry/<model id>/<version>/<file>``: a registered version's files, read from
  ModelOps (read-only), which is what ``models:/<name>/<version>`` downloads.

The organization is always the caller's, so another organization's run is not found.
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.auth import Principal
from inwire.services.training.artifacts import service as artifacts
from inwire.services.training.mlflow import service
from inwire.services.training.mlflow.errors import invalid, not_found
from inwire.services.training.mlflow.peers import MlflowPeers

REGISTRY = "registry"


@dataclass(frozen=True)
class Location:
    """What an ``mlflow-artifacts`` path names."""

    #: Run id (or ``logged-models/<id>``) whose artifact folder holds the files.
    folder: str = ""
    #: The path inside that folder.
    path: str = ""
    #: (registered model id, version) for a registry path.
    registry: tuple[str, int] | None = None

    def join(self, *more: str) -> Location:
        """This location with ``more`` appended to its path."""
        path = posixpath.join(self.path, *[p for p in more if p]) if any(more) else self.path
        return Location(self.folder, path.strip("/"), self.registry)


async def resolve(session: AsyncSession, who: Principal, raw: str) -> Location:
    """The location of an ``mlflow-artifacts`` path; RESOURCE_DOES_NOT_EXIST for a run or
    model the caller's organization does not have, INVALID_PARAMETER_VALUE for others."""
    try:
        clean = artifacts.clean_path(raw, folder=True)
    except Exception as exc:
        raise invalid(f"Invalid artifact path {raw!r}") from exc
    parts = clean.split("/") if clean else []
    if len(parts) >= 3 and parts[0] == REGISTRY:
        if not parts[2].isdigit():
            raise invalid(f"Invalid model version in {raw!r}")
        return Location(registry=(parts[1], int(parts[2])), path="/".join(parts[3:]))
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        model = await service.logged_model(session, who, parts[2])
        if model.experiment_id != parts[0]:
            raise not_found(f"Logged model {parts[2]!r} is not in experiment {parts[0]!r}")
        folder, base = service.model_files(model)
        return Location(folder, base).join("/".join(parts[4:]))
    if len(parts) >= 3 and parts[2] == "artifacts":
        run = await service.run(session, who, parts[1])
        if run.experiment_id != parts[0]:
            raise not_found(f"Run {parts[1]!r} is not in experiment {parts[0]!r}")
        return Location(run.id, "/".join(parts[3:]))
    raise invalid(
        f"{raw!r} is not an artifact path: expected <experiment>/<run>/artifacts/…, "
        "<experiment>/models/<model>/artifacts/… or registry/<model>/<version>/…"
    )


async def list_files(
    peers: MlflowPeers, store: object, who: Principal, at: Location
) -> list[dict[str, object]]:
    """Files and folders directly in a location, as MLflow's ``FileInfo`` (base names)."""
    files: list[dict[str, object]] = []
    if at.registry is not None:
        model, version = at.registry
        for f in await peers.modelops.list_files(model, version, at.path):
            files.append(_file_info(posixpath.basename(f.path.rstrip("/")), f.is_dir, f.size))
        return files
    for e in await artifacts.list_folder(store, who.org, at.folder, at.path):  # type: ignore[arg-type]
        files.append(_file_info(posixpath.basename(e.path), e.is_dir, e.size))
    return files


def _file_info(path: str, is_dir: bool, size: int | None) -> dict[str, object]:
    info: dict[str, object] = {"path": path, "is_dir": is_dir}
    if not is_dir and size is not None:
        info["file_size"] = size
    return info


async def open_registry_file(
    peers: MlflowPeers, at: Location, chunk_size: int = 1024 * 1024
) -> AsyncIterator[bytes]:
    """A registered version's file, opened now (so a missing file is an error here, not a
    cut stream) and streamed from ModelOps as it is read."""
    assert at.registry is not None
    model, version = at.registry
    stack = AsyncExitStack()
    body = await stack.enter_async_context(
        peers.modelops.stream_file(model, version, at.path, chunk_size=chunk_size)
    )

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in body:
                yield chunk
        finally:
            await stack.aclose()

    return chunks()
