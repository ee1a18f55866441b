"""Local Parquet files of a version, for polars and pyarrow, which read paths.

A ``file://`` store already keeps each object as a plain file at ``<root>/<key>``, so its
parts are read in place. Any other store (S3) is downloaded once into a cache folder:
versions are immutable, so a cached copy never goes stale; the oldest copies are evicted
when the cache outgrows its limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from inwire.kit.storage import FileObjectStore, ObjectStore

_CHUNK = 4 * 1024 * 1024


def store_path(store: ObjectStore, key: str) -> Path | None:
    """The file that holds ``key`` when the store is a local folder, else None."""
    if isinstance(store, FileObjectStore):
        return Path(store.root).joinpath(*key.split("/"))
    return None


async def stream_file(path: Path, chunk_size: int = _CHUNK) -> AsyncIterator[bytes]:
    """A local file as an async stream of chunks (for ``ObjectStore.put``)."""
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, chunk_size):
            yield chunk


async def download(store: ObjectStore, key: str, target: Path) -> Path:
    """Copy one object to ``target`` chunk by chunk (never whole in memory)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    try:
        with tmp.open("wb") as f:
            async for chunk in store.get_stream(key, _CHUNK):
                await asyncio.to_thread(f.write, chunk)
        tmp.replace(target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return target


async def local_parts(
    store: ObjectStore, keys: Sequence[str], cache_dir: Path, *, cache_max_bytes: int
) -> list[Path]:
    """Local paths of the objects ``keys`` (a version's parts), downloading when needed."""
    direct = [store_path(store, key) for key in keys]
    if all(p is not None for p in direct):
        return [p for p in direct if p is not None]
    paths: list[Path] = []
    for key in keys:
        target = cache_dir.joinpath(*key.split("/"))
        if target.exists():
            os.utime(target)  # marks it recently used for eviction
        else:
            await download(store, key, target)
        paths.append(target)
    await asyncio.to_thread(_evict, cache_dir, cache_max_bytes, set(paths))
    return paths


def _evict(cache_dir: Path, max_bytes: int, keep: set[Path]) -> None:
    """Delete least recently used cached files until the cache fits ``max_bytes``."""
    files = [(p.stat().st_mtime, p.stat().st_size, p) for p in cache_dir.rglob("*.parquet")]
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):
        if total <= max_bytes:
            break
        if path in keep:
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        total -= size


#: A work folder untouched this long belongs to a worker that was killed: it is removed.
STALE_WORKDIR_SECONDS = 2 * 24 * 3600


def new_workdir(base: Path) -> Path:
    """A fresh private folder for one job's temporary files.

    Folders left by killed workers (nothing removed them) are swept away here once stale.
    """
    base.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - STALE_WORKDIR_SECONDS
    for old in base.iterdir():
        with contextlib.suppress(OSError):
            if old.is_dir() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
    path = base / f"{time.strftime('%Y%m%d')}-{uuid.uuid4().hex}"
    path.mkdir(exist_ok=False)
    return path


def remove_tree(path: Path) -> None:
    """Delete a work folder and everything in it; a missing one is fine."""
    shutil.rmtree(path, ignore_errors=True)
