"""ObjectStore behaviour, pinned identically on the file, memory and S3 backends.

S3 runs against a real S3-protocol server (moto in server mode) over HTTP, not a mock.
"""

from __future__ import annotations

import hashlib
import os
import random
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from inwire.kit.errors import Conflict, Invalid, NotFound, Unavailable
from inwire.kit.storage import (
    FileObjectStore,
    MemoryObjectStore,
    ObjectStore,
    PresignUnsupported,
    S3ObjectStore,
    open_object_store,
    validate_key,
)

MiB = 1024 * 1024
PART = 5 * MiB  # S3's minimum part size, so 12 MiB is three parts
BUCKET = "inwire-test"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class Boom(Exception):
    """Raised by a source stream midway through an upload."""


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free local port, with one bucket, for the whole session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hermetic credentials for boto3's normal chain; no profile or metadata lookups."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@dataclass
class Backend:
    """A store under test plus a way to see what a failed write left behind."""

    name: str
    store: ObjectStore
    leftovers: Callable[[], Awaitable[list[str]]]


def _raw_s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(params=["file", "memory", "s3"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each backend, built from its URL; S3 gets a fresh prefix in the shared bucket."""
    if request.param == "file":
        root = tmp_path / "objects"
        store = open_object_store(root.as_uri())

        async def leftovers() -> list[str]:
            tmp = root / ".tmp"
            return sorted(os.listdir(tmp)) if tmp.exists() else []

    elif request.param == "memory":
        store = open_object_store("memory://")

        async def leftovers() -> list[str]:
            return []

    else:
        request.getfixturevalue("aws_env")
        endpoint = request.getfixturevalue("s3_endpoint")
        prefix = f"t-{uuid.uuid4().hex}"
        store = open_object_store(
            f"s3://{BUCKET}/{prefix}?endpoint_url={endpoint}&region=us-east-1&part_size={PART}"
        )

        async def leftovers() -> list[str]:
            def pending() -> list[str]:
                resp = _raw_s3(endpoint).list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
                return [u["Key"] for u in resp.get("Uploads", [])]

            return await anyio.to_thread.run_sync(pending)

    async with store:
        yield Backend(request.param, store, leftovers)


def _blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def _stream(
    total: int, chunk: int = 256 * 1024, *, fail_after: int | None = None, digest: Any = None
) -> AsyncIterator[bytes]:
    """Generate ``total`` pseudo-random bytes chunk by chunk, never holding them all."""
    rng = random.Random(total)
    sent = 0
    while sent < total:
        if fail_after is not None and sent >= fail_after:
            raise Boom("source failed midway")
        piece = rng.randbytes(min(chunk, total - sent))
        if digest is not None:
            digest.update(piece)
        sent += len(piece)
        yield piece


# ----------------------------------------------------------------------------- basics


async def test_put_then_get_bytes_roundtrips_content_and_metadata(backend: Backend) -> None:
    store = backend.store
    data = _blob(1000)
    info = await store.put("docs/a.bin", data, content_type="application/x-test")

    assert info.key == "docs/a.bin"
    assert info.size == 1000
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.content_type == "application/x-test"
    assert info.last_modified.tzinfo is not None
    assert await store.get_bytes("docs/a.bin") == data

    head = await store.head("docs/a.bin")
    assert (head.size, head.etag, head.content_type, head.sha256) == (
        1000,
        info.etag,
        "application/x-test",
        info.sha256,
    )


async def test_put_without_content_type_stores_octet_stream(backend: Backend) -> None:
    await backend.store.put("x", b"1")
    assert (await backend.store.head("x")).content_type == "application/octet-stream"


async def test_empty_object_roundtrips(backend: Backend) -> None:
    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""

    info = await backend.store.put("empty", nothing())
    assert info.size == 0
    assert await backend.store.get_bytes("empty") == b""


async def test_streaming_upload_of_multipart_size_and_streaming_download(
    backend: Backend,
) -> None:
    store = backend.store
    total = 12 * MiB
    sent = hashlib.sha256()
    info = await store.put("big/blob", _stream(total, digest=sent))

    assert info.size == total
    assert info.sha256 == sent.hexdigest()
    if backend.name == "s3":
        assert info.etag.endswith("-3")  # three 5 MiB-or-less parts: a real multipart upload

    received = hashlib.sha256()
    size = 0
    async for chunk in store.get_stream("big/blob", chunk_size=MiB):
        assert 0 < len(chunk) <= MiB
        received.update(chunk)
        size += len(chunk)
    assert (size, received.hexdigest()) == (total, sent.hexdigest())
    assert (await store.head("big/blob")).size == total


async def test_open_exposes_info_before_reading_and_closes_early(backend: Backend) -> None:
    await backend.store.put("r", _blob(3 * MiB), content_type="text/plain")
    reader = await backend.store.open("r", chunk_size=MiB)
    assert (reader.info.size, reader.info.content_type) == (3 * MiB, "text/plain")
    first = await reader.__anext__()
    assert len(first) == MiB
    await reader.aclose()
    await reader.aclose()
    assert [c async for c in reader] == []


async def test_file_streaming_upload_keeps_memory_bounded(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path)
    total = 24 * MiB
    tracemalloc.start()
    try:
        await store.put("big", _stream(total))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB
    assert (await store.head("big")).size == total


async def test_exists_head_and_list_follow_prefixes(backend: Backend) -> None:
    store = backend.store
    for key in ["a/1", "a/2", "a/b/3", "ab", "b/1"]:
        await store.put(key, key.encode())

    assert await store.exists("a/1")
    assert not await store.exists("a")
    assert not await store.exists("a/b")
    assert [i.key for i in await store.list()] == ["a/1", "a/2", "a/b/3", "ab", "b/1"]
    assert [i.key for i in await store.list("a/")] == ["a/1", "a/2", "a/b/3"]
    assert [i.key for i in await store.list("a")] == ["a/1", "a/2", "a/b/3", "ab"]
    assert [i.key for i in await store.list("a/b/")] == ["a/b/3"]
    assert await store.list("zzz/") == []
    listed = {i.key: i for i in await store.list("a/")}
    assert listed["a/b/3"].size == 5
    assert listed["a/b/3"].etag == (await store.head("a/b/3")).etag


async def test_keys_with_spaces_unicode_and_url_characters_roundtrip(backend: Backend) -> None:
    keys = ["sp ace/a b.txt", "uni/é ü 日本.txt", "url/a+b%20c?d=e&f#g.txt", ".hidden/x"]
    for key in keys:
        await backend.store.put(key, key.encode())
    for key in keys:
        assert await backend.store.get_bytes(key) == key.encode()
    assert [i.key for i in await backend.store.list()] == sorted(keys)
    assert [i.key for i in await backend.store.list("uni/é")] == ["uni/é ü 日本.txt"]


async def test_delete_removes_and_is_idempotent(backend: Backend) -> None:
    store = backend.store
    await store.put("d/x", b"x")
    await store.delete("d/x")
    assert not await store.exists("d/x")
    await store.delete("d/x")
    await store.delete("never/was")
    assert await store.list() == []


async def test_deleted_folder_key_can_become_an_object(backend: Backend) -> None:
    await backend.store.put("p/q", b"1")
    await backend.store.delete("p/q")
    await backend.store.put("p", b"2")
    assert await backend.store.get_bytes("p") == b"2"


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get_bytes("missing"),
        lambda s: s.head("missing"),
        lambda s: s.open("missing"),
        lambda s: s.copy("missing", "dst"),
        lambda s: s.get_stream("no/such").__anext__(),
    ],
    ids=["get_bytes", "head", "open", "copy", "get_stream"],
)
async def test_missing_key_raises_not_found(backend: Backend, call: Any) -> None:
    with pytest.raises(NotFound):
        await call(backend.store)


BAD_KEYS = [
    "",
    "/abs/path",
    "..",
    "a/../b",
    "../x",
    "a/./b",
    "a//b",
    "a/",
    "a\x00b",
    "a\nb",
    "a\\b",
    ".tmp/x",
    ".meta/x",
    "x" * 1025,
    "y" * 256 + "/z",
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_invalid_keys_are_rejected_everywhere(backend: Backend, key: str) -> None:
    store = backend.store
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.put(key, b"x"),
        lambda: store.get_bytes(key),
        lambda: store.head(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.copy(key, "ok"),
        lambda: store.copy("ok", key),
    ]
    for call in calls:
        with pytest.raises(Invalid):
            await call()
    assert await backend.leftovers() == []


def test_validate_key_accepts_ordinary_keys() -> None:
    for key in ["a", "a/b/c.parquet", "ds_01J/v1/part-0001.csv", "é/ü", ".hidden", "a..b"]:
        assert validate_key(key) == key


@pytest.mark.parametrize("prefix", ["/", "../", "a//", "a/../", ".tmp/", "\x00"])
async def test_invalid_list_prefixes_are_rejected(backend: Backend, prefix: str) -> None:
    with pytest.raises(Invalid):
        await backend.store.list(prefix)


# ----------------------------------------------------------------------------- atomicity


async def test_failed_stream_upload_leaves_no_object_and_no_temp(backend: Backend) -> None:
    store = backend.store
    # Fails after 7 MiB: on S3 one 5 MiB part is already uploaded and must be aborted.
    with pytest.raises(Boom):
        await store.put("fail/blob", _stream(12 * MiB, fail_after=7 * MiB))

    assert not await store.exists("fail/blob")
    assert await store.list() == []
    assert await backend.leftovers() == []


async def test_failed_overwrite_keeps_previous_content(backend: Backend) -> None:
    store = backend.store
    before = await store.put("k", b"version 1", content_type="text/plain")
    with pytest.raises(Boom):
        await store.put("k", _stream(6 * MiB, fail_after=MiB))

    assert await store.get_bytes("k") == b"version 1"
    after = await store.head("k")
    assert (after.etag, after.size, after.content_type) == (before.etag, 9, "text/plain")
    assert await backend.leftovers() == []


async def test_cancelled_upload_leaves_nothing(backend: Backend) -> None:
    store = backend.store
    started = anyio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield _blob(6 * MiB)
        started.set()
        await anyio.sleep_forever()
        yield b""

    async with anyio.create_task_group() as tg:
        tg.start_soon(store.put, "cancelled", stalls())
        await started.wait()  # by now the first part (S3) or chunks (file) are written
        tg.cancel_scope.cancel()

    assert not await store.exists("cancelled")
    assert await backend.leftovers() == []


async def test_overwrite_replaces_content_and_metadata(backend: Backend) -> None:
    store = backend.store
    first = await store.put("o", b"one", content_type="text/plain")
    second = await store.put("o", _stream(2 * MiB), content_type="application/x-two")

    assert second.etag != first.etag
    assert await store.get_bytes("o") == b"".join([c async for c in _stream(2 * MiB)])
    head = await store.head("o")
    assert (head.size, head.etag, head.content_type, head.sha256) == (
        2 * MiB,
        second.etag,
        "application/x-two",
        second.sha256,
    )
    assert [i.key for i in await store.list()] == ["o"]


async def test_reader_opened_before_overwrite_sees_whole_old_version(backend: Backend) -> None:
    store = backend.store
    old = _blob(2 * MiB, seed=1)
    await store.put("v", old)
    async with await store.open("v", chunk_size=256 * 1024) as reader:
        first = await reader.__anext__()
        await store.put("v", _blob(3 * MiB, seed=2))
        rest = b"".join([c async for c in reader])
    assert first + rest == old
    assert await store.get_bytes("v") == _blob(3 * MiB, seed=2)


async def test_concurrent_writers_leave_one_whole_version(backend: Backend) -> None:
    store = backend.store
    versions = [_blob(300 * 1024, seed=n) for n in range(6)]

    async def write(body: bytes) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 64 * 1024):
                await anyio.lowlevel.checkpoint()
                yield body[start : start + 64 * 1024]

        await store.put("race", chunks())

    async with anyio.create_task_group() as tg:
        for body in versions:
            tg.start_soon(write, body)

    final = await store.get_bytes("race")
    assert final in versions
    head = await store.head("race")
    assert head.size == len(final)
    # A hash may be missing after a race (file sidecars), but never belongs to another version.
    assert head.sha256 in (None, hashlib.sha256(final).hexdigest())
    assert await backend.leftovers() == []


# ----------------------------------------------------------------------------- copy


async def test_copy_duplicates_content_and_content_type(backend: Backend) -> None:
    store = backend.store
    src = await store.put("src/a.csv", b"x,y\n1,2\n", content_type="text/csv")
    dst = await store.copy("src/a.csv", "dst/a.csv")

    assert dst.key == "dst/a.csv"
    assert await store.get_bytes("dst/a.csv") == b"x,y\n1,2\n"
    head = await store.head("dst/a.csv")
    assert (head.size, head.content_type, head.sha256) == (src.size, "text/csv", src.sha256)
    await store.delete("src/a.csv")
    assert await store.get_bytes("dst/a.csv") == b"x,y\n1,2\n"


async def test_copy_onto_itself_and_over_existing(backend: Backend) -> None:
    store = backend.store
    await store.put("s", b"source")
    await store.put("d", b"old destination")
    assert (await store.copy("s", "s")).size == 6
    await store.copy("s", "d")
    assert await store.get_bytes("d") == b"source"


async def test_s3_copy_beyond_single_request_limit_uses_part_copy(
    aws_env: None, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(S3ObjectStore, "_max_single_copy", MiB)
    prefix = f"t-{uuid.uuid4().hex}"
    url = f"s3://{BUCKET}/{prefix}?endpoint_url={s3_endpoint}&region=us-east-1&part_size={PART}"
    async with open_object_store(url) as store:
        data = _blob(11 * MiB)
        src = await store.put("big", data, content_type="application/x-model")
        dst = await store.copy("big", "copy")
        assert dst.etag.endswith("-3")  # copied in parts
        assert (dst.size, dst.content_type, dst.sha256) == (
            src.size,
            "application/x-model",
            src.sha256,
        )
        assert await store.get_bytes("copy") == data


# ----------------------------------------------------------------------------- presign, ping


async def test_presigned_urls_work_on_s3_and_fail_clearly_elsewhere(backend: Backend) -> None:
    store = backend.store
    if backend.name != "s3":
        assert not store.can_presign
        with pytest.raises(PresignUnsupported):
            await store.presigned_url("k")
        return

    put_url = await store.presigned_url("shared/k", 60, method="PUT")
    async with httpx.AsyncClient() as http:
        assert (await http.put(put_url, content=b"via presigned put")).status_code == 200
        get_url = await store.presigned_url("shared/k", 60)
        response = await http.get(get_url)
    assert response.content == b"via presigned put"
    with pytest.raises(Invalid):
        await store.presigned_url("shared/k", 8 * 24 * 3600)


async def test_ping_succeeds_on_a_usable_store(backend: Backend) -> None:
    await backend.store.ping()


async def test_s3_ping_reports_missing_bucket_as_unavailable(
    aws_env: None, s3_endpoint: str
) -> None:
    async with open_object_store(f"s3://no-such-bucket?endpoint_url={s3_endpoint}") as store:
        with pytest.raises(Unavailable):
            await store.ping()


async def test_s3_unreachable_endpoint_is_unavailable(aws_env: None) -> None:
    with anyio.fail_after(10):
        async with open_object_store(f"s3://{BUCKET}?endpoint_url=http://127.0.0.1:9") as store:
            with pytest.raises(Unavailable):
                await store.get_bytes("k")


async def test_file_ping_reports_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(Unavailable):
        await FileObjectStore(blocker / "objects").ping()


# ----------------------------------------------------------------------------- file specifics


async def test_file_store_lays_objects_out_as_plain_files(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path)
    await store.put("datasets/ds_1/data.csv", b"a,b\n")
    assert (tmp_path / "datasets" / "ds_1" / "data.csv").read_bytes() == b"a,b\n"


async def test_file_store_reports_hand_placed_files_without_hash(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path)
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "notes.txt").write_bytes(b"hello")
    info = await store.head("manual/notes.txt")
    assert (info.size, info.sha256, info.content_type) == (5, None, "text/plain")
    assert [i.key for i in await store.list()] == ["manual/notes.txt"]


async def test_file_store_ignores_a_sidecar_of_another_version(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path)
    first = await store.put("k", b"first", content_type="text/plain")
    (tmp_path / "k").unlink()
    (tmp_path / "k").write_bytes(b"edited by hand")
    info = await store.head("k")
    assert info.sha256 is None
    assert info.etag != first.etag


async def test_file_store_cannot_hold_an_object_and_a_folder_of_the_same_name(
    tmp_path: Path,
) -> None:
    store = FileObjectStore(tmp_path)
    await store.put("a", b"1")
    with pytest.raises(Conflict):
        await store.put("a/b", b"2")
    await store.put("c/d", b"3")
    with pytest.raises(Conflict):
        await store.put("c", b"4")
    assert sorted(os.listdir(tmp_path / ".tmp")) == []


# ----------------------------------------------------------------------------- factory


def test_factory_picks_backend_by_scheme(tmp_path: Path) -> None:
    file_store = open_object_store(tmp_path.as_uri())
    assert isinstance(file_store, FileObjectStore)
    assert file_store.root == str(tmp_path)
    assert isinstance(open_object_store("memory://"), MemoryObjectStore)
    s3 = open_object_store("s3://bucket/some/prefix?region=eu-west-1&addressing_style=path")
    assert isinstance(s3, S3ObjectStore)
    assert s3.bucket == "bucket"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/x",
        "relative/path",
        "file://otherhost/x",
        "file:///tmp/x?opt=1",
        "s3://key:secret@bucket",
        "s3://bucket?unknown=1",
        "s3://bucket?region=a&region=b",
        "s3://bucket?part_size=1024",
        "s3://bucket?endpoint_url=ftp://x",
        "s3://bucket/../up",
        "s3://",
        "memory://something",
    ],
)
def test_factory_rejects_bad_urls(url: str) -> None:
    with pytest.raises(Invalid):
        open_object_store(url)
