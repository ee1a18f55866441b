"""A model version's files, copied from the object store to a local folder for serving.

A model server reads its model from a folder on disk. ``materialize`` downloads every file
of a version (``modelops/<org>/<model>/<version>/files/…``) into ``dest`` once: the files are
written to a temporary sibling folder which is renamed into place when complete, so a
folder that exists is whole, and later calls for the same version return at once.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path, PurePosixPath

from inwire.kit.errors import NotFound
from inwire.kit.storage import ObjectStore
from inwire.services.modelops.models.files import version_prefix

#: Written last in a materialized folder; its presence means every file is there.
COMPLETE_MARKER = ".inwire-complete"

_locks: dict[Path, asyncio.Lock] = {}


def _local_path(root: Path, relative: str) -> Path:
    """``root / relative``, refusing anything that would land outside ``root``."""
    parts = PurePosixPath(relative).parts
    if not parts or any(p in ("", ".", "..") or "\\" in p for p in parts) or relative[0] == "/":
        raise ValueError(f"unsafe path in a model version: {relative!r}")
    return root.joinpath(*parts)


def model_root(folder: Path) -> Path:
    """The folder a model server loads: ``folder`` itself, or the one folder under it that
    holds an ``MLmodel`` file when the version's files are an MLflow model one level down
    (``model/MLmodel``)."""
    if (folder / "MLmodel").is_file():
        return folder
    found = [p.parent for p in folder.glob("*/MLmodel") if p.is_file()]
    return found[0] if len(found) == 1 else folder


async def _download(store: ObjectStore, key: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as f:
        async with await store.open(key) as reader:
            async for chunk in reader:
                await asyncio.to_thread(f.write, chunk)


async def materialize(
    store: ObjectStore, org_id: str, model_id: str, version_id: str, dest: Path
) -> Path:
    """Download a version's files from the object store into dest (once; cached by version).

    Returns the folder to serve (see ``model_root``). Raises ``NotFound`` when the version
    has no files.
    """
    dest = Path(dest)
    lock = _locks.setdefault(dest.resolve(), asyncio.Lock())
    async with lock:
        if (dest / COMPLETE_MARKER).is_file():
            return model_root(dest)
        prefix = version_prefix(org_id, model_id, version_id)
        infos = await store.list(prefix)
        if not infos:
            raise NotFound(f"Model version {version_id!r} has no files")
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
        try:
            for info in infos:
                await _download(store, info.key, _local_path(partial, info.key[len(prefix) :]))
            (partial / COMPLETE_MARKER).write_text(version_id)
            if dest.exists():
                # An earlier, interrupted attempt: the marker is missing, so it is not whole.
                await asyncio.to_thread(shutil.rmtree, dest)
            partial.rename(dest)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, partial, True)
            raise
        return model_root(dest)
