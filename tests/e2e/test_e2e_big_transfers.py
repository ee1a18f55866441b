"""200 MiB up and down through a real ``inwire up`` while the gateway's and Synthex's
memory stays flat.

A 200 MiB CSV is generated block by block as it is sent (never whole in this process),
uploaded through the gateway as a new Synthex dataset (streamed on to the object store),
imported by Synthex's job, and downloaded again through the gateway as CSV (streamed from
the version's Parquet, record batch by record batch). The resident memory of the gateway's
and Synthex's server processes is sampled all along; neither may grow by more than a small
fraction of what passes through it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import Platform, running_platform

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
SIZE = 200 * MiB
#: Allowed growth of a server process's resident memory while 200 MiB pass through it.
GROWTH_LIMIT = 48 * MiB
HEADER = b"id,city,amount,active\n"
CITIES = (b"Lyon", b"Porto", b"Tallinn", b"Kyoto", b"Quito", b"Accra", b"Oslo")


def memory(pid: int) -> dict[str, int]:
    """Resident memory of a process in bytes (Linux, proc(5)): ``VmRSS`` in all, and its
    ``RssAnon`` (heap and stacks) and ``RssFile`` (pages of mapped files) parts."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            found[name] = int(value.split()[0]) * 1024
    return found


class PeakMemory:
    """Samples the resident memory of some processes every 20 ms in a thread."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.baseline = {name: memory(pid) for name, pid in pids.items()}
        self.peak = {name: dict(values) for name, values in self.baseline.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for name, pid in self.pids.items():
                for kind, value in memory(pid).items():
                    self.peak[name][kind] = max(self.peak[name][kind], value)

    def growth(self, kind: str = "VmRSS") -> dict[str, int]:
        """Peak minus baseline of one measure, per process."""
        return {name: self.peak[name][kind] - self.baseline[name][kind] for name in self.pids}

    def report(self) -> str:
        """Every measure's growth in MiB."""
        return ", ".join(
            f"{name} "
            + " ".join(
                f"{kind} +{(self.peak[name][kind] - self.baseline[name][kind]) / MiB:.1f}"
                for kind in self.baseline[name]
            )
            for name in self.pids
        )


class GeneratedCSV:
    """A CSV of at least ``size`` bytes, made in ~1 MiB blocks as it is read (never whole
    in memory); counts the rows and bytes it gave out."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rows = 0
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        block = HEADER
        while True:
            self.sent += len(block)
            yield block
            if self.sent >= self.size:
                return
            block = b"".join(self._row() for _ in range(20_000))

    def _row(self) -> bytes:
        n = self.rows
        self.rows += 1
        city = CITIES[n % len(CITIES)]
        active = b"true" if n % 3 else b"false"
        return b"%d,%s,%d.%02d,%s\n" % (n, city, (n * 37) % 100_000, n % 100, active)


def wait_job(client: httpx.Client, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    """The job once it is over; fails with its log if it did not succeed in 15 minutes."""
    deadline = time.monotonic() + 900
    while True:
        job: dict[str, Any] = client.get(f"/synthex/api/v1/jobs/{job_id}", headers=headers).json()[
            "data"
        ]
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
        time.sleep(1)
    if job["status"] != "succeeded":
        logs = client.get(f"/synthex/api/v1/jobs/{job_id}/logs", headers=headers)
        raise AssertionError(f"import {job['status']}: {job}\n{logs.text}")
    return job


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("big")) as running:
        yield running


def upload(client: httpx.Client, headers: dict[str, str], name: str, body: Any) -> dict[str, Any]:
    response = client.post(
        "/synthex/api/v1/datasets",
        params={"filename": f"{name}.csv", "name": name},
        content=body,
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert response.status_code == 202, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def download(
    client: httpx.Client, headers: dict[str, str], dataset_id: str
) -> tuple[int, int, bytes]:
    """Stream a dataset's latest version as CSV: (bytes, lines, first data line)."""
    received = lines = 0
    head = bytearray()
    with client.stream(
        "GET",
        f"/synthex/api/v1/datasets/{dataset_id}/versions/latest/download",
        params={"format": "csv"},
        headers=headers,
    ) as response:
        assert response.status_code == 200, response.read()
        for chunk in response.iter_raw():
            if len(head) < 4096:
                head += chunk[: 4096 - len(head)]
            received += len(chunk)
            lines += chunk.count(b"\n")
    return received, lines, bytes(head).split(b"\n")[1]


def test_200_mib_up_and_down_through_the_gateway_keep_memory_flat(platform: Platform) -> None:
    with platform.client(timeout=httpx.Timeout(120, connect=10)) as client:
        owner = platform.login(client)
        # Warm up both processes on an 8 MiB file (several row groups): imports, pools and
        # the working set of one download; what follows must not grow with the size.
        warm = GeneratedCSV(8 * MiB)
        small = upload(client, owner, "warm-up", iter(warm))
        wait_job(client, owner, small["job"]["id"])
        assert download(client, owner, small["dataset"]["id"])[1] == warm.rows + 1

        pids = {"gateway": platform.pid_of("gateway"), "synthex": platform.pid_of("synthex")}
        csv = GeneratedCSV(SIZE)
        with PeakMemory(pids) as up:
            started = upload(client, owner, "two-hundred-mib", iter(csv))
        assert csv.sent >= SIZE
        job = wait_job(client, owner, started["job"]["id"])
        assert job["result"]["rows"] == csv.rows
        assert job["result"]["columns"] == 4

        with PeakMemory(pids) as down:
            received, lines, first = download(client, owner, started["dataset"]["id"])
        assert lines == csv.rows + 1
        assert received >= SIZE * 0.9, received
        cells = [cell.strip(b'"') for cell in first.split(b",")]
        assert cells[:2] == [b"0", b"Lyon"]
        assert float(cells[2]) == 0
        assert cells[3] == b"false"

    print(  # noqa: T201 - the numbers are the point of this test
        f"\nsent {csv.sent / MiB:.0f} MiB ({csv.rows} rows), received {received / MiB:.0f} MiB"
        f"\nupload: {up.report()}\ndownload: {down.report()}"
    )
    for name, grown in up.growth().items():
        assert grown < GROWTH_LIMIT, f"{name} grew {grown / MiB:.1f} MiB during the upload"
    for name, grown in down.growth().items():
        assert grown < GROWTH_LIMIT, f"{name} grew {grown / MiB:.1f} MiB during the download"
