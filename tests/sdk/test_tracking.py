"""``inwire.start_run`` against a real Model Training served on a free port.

A gate in front of the app holds ``/batch`` requests while closed, so tests can show that
logging calls return before anything is sent, and count the batches that arrive.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from core_server import serve_in_thread

import inwire
from inwire.contracts.training import Run
from inwire.sdk import Client, TrackingError
from inwire.sdk.tracking import ActiveRun, active_run
from inwire.services.training.app import create_app
from inwire.services.training.settings import TrainingSettings


class Gate:
    """ASGI middleware holding metric batches while closed, and counting them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.open = threading.Event()
        self.open.set()
        self.waiting = 0
        self.passed = 0
        self.refuse = 0  # answer this many batches 503, as an overloaded server would

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/batch"):
            self.waiting += 1
            await asyncio.to_thread(self.open.wait)
            self.waiting -= 1
            if self.refuse > 0:
                self.refuse -= 1
                await _unavailable(send)
                return
            self.passed += 1
        await self.app(scope, receive, send)


async def _unavailable(send: Any) -> None:
    body = b'{"error": {"code": "SERVICE_UNAVAILABLE", "message": "busy", "details": []}}'
    headers = [(b"content-type", b"application/json"), (b"retry-after", b"0")]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Training:
    url: str
    gate: Gate
    token: str

    def client(self) -> Client:
        return Client(services={"training": self.url}, token=self.token)


@pytest.fixture
def training(
    inwire_settings: dict[str, Any], token_factory: Callable[..., str]
) -> Iterator[Training]:
    gate = Gate(create_app(TrainingSettings(**inwire_settings)))
    with serve_in_thread(gate) as (url, _loop):
        yield Training(url, gate, token_factory("member"))


@pytest.fixture
def client(training: Training) -> Iterator[Client]:
    with training.client() as c:
        yield c


def _run(client: Client, run_id: str) -> Run:
    return client.run(client.training_api.get_run(run_id))


def _history(client: Client, run_id: str, key: str) -> list[tuple[int, float]]:
    h = client.run(client.training_api.metric_history(run_id, key, per_page=100_000))
    return [(p.step, p.value) for p in h.points]


def test_values_logged_in_a_loop_arrive_in_order_with_steps(
    training: Training, client: Client
) -> None:
    with inwire.start_run(
        experiment="loop", run_name="r", params={"lr": 0.1}, tags={"k": "v"}, client=client
    ) as run:
        assert active_run() is run
        for i in range(3000):
            run.log_metric("loss", 1 / (i + 1))
        run.log_metrics({"acc": 0.5, "f1": 0.25}, step=7)
        run.log_params({"depth": 4})
        run.set_tag("stage", "dev")
    assert active_run() is None
    info = _run(client, run.id)
    assert info.status == "finished"
    assert info.end_time is not None
    assert info.params == {"lr": "0.1", "depth": "4"}
    assert info.tags["stage"] == "dev"
    assert info.tags["k"] == "v"
    assert _history(client, run.id, "loss") == [(i, 1 / (i + 1)) for i in range(3000)]
    assert _history(client, run.id, "acc") == [(7, 0.5)]
    # Batches of at most 1,000 values.
    assert training.gate.passed >= 3


def test_logging_returns_before_any_batch_is_sent(training: Training, client: Client) -> None:
    training.gate.open.clear()
    run = inwire.start_run(experiment="gated", client=client)
    try:
        for i in range(10_000):
            inwire.log_metric("x", float(i), step=i)
        # Every call returned while the server has not stored a single batch.
        assert training.gate.passed == 0
        assert _history(client, run.id, "x") == []
    finally:
        training.gate.open.set()
    run.flush()
    assert _history(client, run.id, "x") == [(i, float(i)) for i in range(10_000)]
    run.end()
    assert _run(client, run.id).status == "finished"


def test_values_are_sent_without_a_flush_within_the_interval(client: Client) -> None:
    with inwire.start_run(experiment="interval", client=client) as run:
        run.log_metric("x", 1.0)
        deadline = time.monotonic() + 30
        while not _history(client, run.id, "x"):
            assert time.monotonic() < deadline, "the value was never sent"
            time.sleep(0.05)


def test_transient_errors_are_retried_and_nothing_is_lost(
    training: Training, client: Client
) -> None:
    # The client retries 503 three times itself; the batcher then sends the batch again.
    training.gate.refuse = 6
    with inwire.start_run(experiment="retry", client=client, backoff=0.01) as run:
        for i in range(100):
            run.log_metric("x", float(i))
    assert training.gate.refuse == 0
    assert _history(client, run.id, "x") == [(i, float(i)) for i in range(100)]


def test_an_exception_in_the_block_fails_the_run_and_still_flushes(client: Client) -> None:
    started: list[ActiveRun] = []

    def train() -> None:
        with inwire.start_run(experiment="boom", client=client) as run:
            started.append(run)
            for i in range(50):
                inwire.log_metric("loss", float(i))
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        train()
    r = started[0]
    assert _run(client, r.id).status == "failed"
    assert len(_history(client, r.id, "loss")) == 50


def test_nested_runs_link_to_their_parent(client: Client) -> None:
    with inwire.start_run(experiment="nest", client=client) as parent:
        with pytest.raises(RuntimeError, match="nested=True"):
            inwire.start_run(experiment="nest", client=client)
        with inwire.start_run(run_name="child", nested=True) as child:
            assert active_run() is child
            inwire.log_param("fold", 1)
        assert active_run() is parent
    info = _run(client, child.id)
    assert info.parent_run_id == parent.id
    assert info.experiment_id != ""
    assert info.params == {"fold": "1"}
    assert info.status == "finished"


def test_values_the_server_refuses_raise_at_flush(client: Client) -> None:
    run: ActiveRun = inwire.start_run(experiment="refused", params={"lr": "0.1"}, client=client)
    run.log_metric("ok", 1.0)
    run.log_param("lr", "0.2")  # params are immutable: the batch is refused
    with pytest.raises(TrackingError, match="not stored") as caught:
        run.flush()
    assert caught.value.failures[0][0] >= 1
    run.log_metric("after", 2.0)
    run.end()  # nothing else lost
    assert _history(client, run.id, "after") == [(0, 2.0)]


def test_artifacts_are_uploaded(client: Client, tmp_path: Any) -> None:
    (tmp_path / "out" / "sub").mkdir(parents=True)
    (tmp_path / "out" / "a.txt").write_text("a")
    (tmp_path / "out" / "sub" / "b.txt").write_text("bb")
    with inwire.start_run(experiment="files", client=client) as run:
        stored = inwire.log_artifact(tmp_path / "out" / "a.txt", "single")
        assert stored.path.endswith("single/a.txt")
        assert len(inwire.log_artifacts(tmp_path / "out", "all")) == 2
    entries = client.run(client.training_api.list_artifacts(run.id, "all/sub"))
    assert [(e.path.split("/")[-1], e.size) for e in entries] == [("b.txt", 2)]


SCRIPT = textwrap.dedent(
    """
    import sys
    import inwire
    from inwire.sdk import Client

    client = Client(services={"training": sys.argv[1]}, token=sys.argv[2])
    run = inwire.start_run(experiment="exit", client=client)
    print(run.id, flush=True)
    import time
    time.sleep(float(sys.argv[4]))  # past aiohttp's DNS cache: resolve again at exit
    for i in range(200):
        inwire.log_metric("loss", float(i))
    if sys.argv[3] == "crash":
        raise RuntimeError("crash")
    """
)


@pytest.mark.parametrize(
    ("how", "status", "pause"),
    [
        ("exit", "finished", 0),
        ("crash", "failed", 0),
        pytest.param("exit", "finished", 11, marks=pytest.mark.slow, id="exit-resolving"),
    ],
)
def test_atexit_flushes_and_ends_a_run_left_open(
    training: Training, client: Client, how: str, status: str, pause: float
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INWIRE_")}
    done = subprocess.run(
        # localhost: a name, resolved in a thread pool that interpreter shutdown closes.
        [
            sys.executable,
            "-c",
            SCRIPT,
            training.url.replace("127.0.0.1", "localhost"),
            training.token,
            how,
            str(pause),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == (0 if how == "exit" else 1), done.stderr
    run_id = done.stdout.split()[0]
    assert _run(client, run_id).status == status
    assert _history(client, run_id, "loss") == [(i, float(i)) for i in range(200)]
