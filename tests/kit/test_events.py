"""kit.events: CloudEvents, every bus backend against its real server, the outbox and relay."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import Column, MetaData, String, Table, func, insert, select

from inwire.kit.db import Database
from inwire.kit.db.base import new_metadata
from inwire.kit.events import (
    CloudEvent,
    Delivery,
    EventBus,
    Outbox,
    OutboxRelay,
    Start,
    Subscription,
    TypeFilter,
    open_event_bus,
)
from inwire.kit.events.jetstream import JetStreamEventBus
from inwire.kit.events.redis_streams import RedisEventBus
from inwire.kit.events.sqlite import MemoryEventBus

NATS_URL = os.environ.get("INWIRE_TEST_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("INWIRE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# One namespace per test run, and one per test below it, so parallel runs never meet.
RUN = uuid.uuid4().hex[:10]


def event(type_: str = "inwire.core.user.created", data: object = None, **kw: object) -> CloudEvent:
    """A test event from Core."""
    return CloudEvent.model_validate(
        {"source": "/inwire/core", "type": type_, "data": data or {"n": 1}, **kw}
    )


def _unreachable(what: str, exc: BaseException) -> None:
    reason = f"{what} is unreachable ({type(exc).__name__}: {exc})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires it")
    pytest.skip(f"{reason}; start it or point INWIRE_TEST_*_URL at one to run these tests")


# -- CloudEvent -----------------------------------------------------------------------------


def test_cloudevent_fills_id_time_and_json_content_type() -> None:
    e = event(subject="usr_1", inwireorg="org_1")
    assert e.specversion == "1.0"
    assert e.id.startswith("evt_")
    assert e.time.tzinfo is not None
    assert e.datacontenttype == "application/json"
    assert event().id != e.id


def test_cloudevent_structured_json_round_trips_with_rfc3339_utc_time() -> None:
    when = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    e = event(subject="usr_1", inwireorg="org_1", time=when, data={"email": "a@b.c"})
    wire = json.loads(e.to_json())
    assert wire == {
        "specversion": "1.0",
        "id": e.id,
        "source": "/inwire/core",
        "type": "inwire.core.user.created",
        "subject": "usr_1",
        "time": "2024-05-01T12:00:00.123456Z",
        "datacontenttype": "application/json",
        "inwireorg": "org_1",
        "data": {"email": "a@b.c"},
    }
    assert CloudEvent.from_json(e.to_json()) == e


def test_cloudevent_reads_a_foreign_event_keeping_unknown_extensions() -> None:
    text = json.dumps(
        {
            "specversion": "1.0",
            "id": "A234-1234-1234",
            "source": "https://github.com/cloudevents/spec/pull",
            "type": "com.github.pull_request.opened",
            "time": "2018-04-05T19:31:00+02:00",
            "comexampleextension1": "value",
            "data": '<much wow="xml"/>',
            "datacontenttype": "text/xml",
        }
    )
    e = CloudEvent.from_json(text)
    assert e.time == datetime(2018, 4, 5, 17, 31, tzinfo=UTC)
    assert e.extensions == {"comexampleextension1": "value"}
    assert json.loads(e.to_json())["comexampleextension1"] == "value"


def test_cloudevent_bytes_travel_as_data_base64() -> None:
    e = event(data=b"\x00\x01binary", datacontenttype="application/octet-stream")
    wire = json.loads(e.to_json())
    assert "data" not in wire
    assert base64.b64decode(wire["data_base64"]) == b"\x00\x01binary"
    assert CloudEvent.from_json(e.to_json()).data == b"\x00\x01binary"


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "has space"},
        {"type": "inwire..double"},
        {"type": "inwire.core.>"},
        {"time": datetime(2024, 1, 1)},  # naive
        {"source": ""},
        {"BadExt": "x"},
    ],
)
def test_cloudevent_rejects_invalid_attributes(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        event(**bad)


def test_cloudevent_rejects_other_spec_versions() -> None:
    body = event().to_dict() | {"specversion": "0.3"}
    with pytest.raises(ValueError, match="specversion"):
        CloudEvent.from_dict(body)


def test_type_filter_matches_prefixes_on_token_boundaries_and_exact_types() -> None:
    core = TypeFilter("inwire.core.")
    assert core.matches("inwire.core.user.created")
    assert not core.matches("inwire.corex.user.created")
    assert not core.matches("inwire.synthex.dataset.created")
    assert TypeFilter("*").matches("anything.at.all")
    exact = TypeFilter(["inwire.core.user.created", "inwire.rag."])
    assert exact.matches("inwire.core.user.created")
    assert exact.matches("inwire.rag.index.built")
    assert not exact.matches("inwire.core.user.deleted")
    with pytest.raises(ValueError, match="pattern"):
        TypeFilter("inwire.*")


def test_open_event_bus_picks_the_backend_by_url(tmp_path: Path) -> None:
    assert isinstance(open_event_bus("memory://"), MemoryEventBus)
    sqlite_bus = open_event_bus(f"sqlite:///{tmp_path / 'e.db'}")
    assert sqlite_bus.path == str(tmp_path / "e.db")  # type: ignore[attr-defined]
    nats_bus = open_event_bus("nats://127.0.0.1:4222?namespace=abc")
    assert isinstance(nats_bus, JetStreamEventBus)
    assert (nats_bus.stream, nats_bus.stream_subject) == ("INWIRE_ABC", "abc.inwire.>")
    redis_bus = open_event_bus("redis://127.0.0.1:6379/0", namespace="abc")
    assert isinstance(redis_bus, RedisEventBus)
    assert redis_bus.stream == "{abc}:events"
    with pytest.raises(ValueError, match="scheme"):
        open_event_bus("kafka://x")
    with pytest.raises(ValueError, match="namespace"):
        open_event_bus("memory://", namespace="a.b")


# -- every bus backend ------------------------------------------------------------------------

BACKENDS = ["memory", "sqlite", "nats", "redis"]


@pytest.fixture(params=BACKENDS)
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventBus]:
    """Each backend on its real server, isolated to this test."""
    kind = request.param
    namespace = f"t{RUN}{uuid.uuid4().hex[:6]}"
    if kind == "memory":
        url = "memory://"
    elif kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'events.db'}"
    elif kind == "nats":
        url = NATS_URL
    else:
        url = REDIS_URL
    b = open_event_bus(url, namespace=namespace if kind in {"nats", "redis"} else "")
    try:
        await asyncio.wait_for(b.ping(), 5)
    except Exception as exc:
        await b.close()
        _unreachable(f"{kind} at {url}", exc)
    yield b
    if isinstance(b, JetStreamEventBus):
        await b.delete_stream()
    elif isinstance(b, RedisEventBus):
        keys = [k async for k in b.client.scan_iter(match=f"{{{namespace}}}*")]
        if keys:
            await b.client.delete(*keys)
    await b.close()


async def drain(sub: Subscription, want: int, *, wait: float = 5.0) -> list[Delivery]:
    """Fetch until ``want`` deliveries arrived or ``wait`` seconds passed."""
    got: list[Delivery] = []
    deadline = asyncio.get_running_loop().time() + wait
    while len(got) < want:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        got += await sub.fetch(want - len(got), wait=min(left, 1.0))
    return got


async def ack_all(deliveries: Sequence[Delivery]) -> None:
    for d in deliveries:
        await d.ack()


def sub(
    bus: EventBus,
    consumer: str,
    types: str | list[str] = "*",
    *,
    start: Start = "all",
    ack_wait: float = 30.0,
) -> Subscription:
    return bus.subscribe(consumer, types, start=start, ack_wait=ack_wait)


async def test_bus_delivers_published_events_in_order_and_intact(bus: EventBus) -> None:
    sent = [event(data={"i": i}, subject=f"usr_{i}", inwireorg="org_a") for i in range(5)]
    for e in sent:
        await bus.publish(e)
    async with sub(bus, "reader") as s:
        got = await drain(s, 5)
        await ack_all(got)
    assert [d.event for d in got] == sent
    assert all(d.attempt == 1 for d in got)


async def test_bus_filters_by_type_prefix_and_exact_type(bus: EventBus) -> None:
    core = [event("inwire.core.user.created"), event("inwire.core.org.deleted")]
    other = [event("inwire.synthex.dataset.created")]
    for e in [core[0], other[0], core[1]]:
        await bus.publish(e)
    async with sub(bus, "core-only", "inwire.core.") as s:
        got = await drain(s, 2)
        await ack_all(got)
        assert await s.fetch(10, wait=0.15) == []
    assert [d.event.id for d in got] == [e.id for e in core]
    async with sub(bus, "exact", ["inwire.synthex.dataset.created"]) as s:
        got = await drain(s, 1)
        await ack_all(got)
    assert [d.event.id for d in got] == [other[0].id]


async def test_each_consumer_gets_every_event_and_subscribers_of_one_consumer_share(
    bus: EventBus,
) -> None:
    sent = [event(data={"i": i}) for i in range(12)]
    for e in sent:
        await bus.publish(e)
    async with sub(bus, "audit") as audit:
        everything = await drain(audit, 12)
        await ack_all(everything)
    assert sorted(d.event.id for d in everything) == sorted(e.id for e in sent)

    async with sub(bus, "workers") as one, sub(bus, "workers") as two:
        first = await one.fetch(5, wait=2.0)
        second = await drain(two, 12 - len(first))
        rest = await one.fetch(12, wait=0.15)
        await ack_all(first + second + rest)
    ids = [d.event.id for d in first + second + rest]
    assert Counter(ids) == Counter(e.id for e in sent)  # every event once in the group
    assert first
    assert second


async def test_acked_events_stay_acked_and_the_consumer_resumes(bus: EventBus) -> None:
    sent = [event(data={"i": i}) for i in range(3)]
    for e in sent:
        await bus.publish(e)
    async with sub(bus, "resumer") as s:
        got = await drain(s, 3)
        await ack_all(got[:2])
        await got[2].nack()
    async with sub(bus, "resumer") as s:
        again = await drain(s, 1)
        await ack_all(again)
        assert await s.fetch(10, wait=0.15) == []
    assert [d.event.id for d in again] == [sent[2].id]
    assert again[0].attempt == 2


async def test_unacked_event_is_redelivered_after_ack_wait(bus: EventBus) -> None:
    e = event()
    await bus.publish(e)
    async with sub(bus, "slow", ack_wait=0.5) as s:
        (first,) = await drain(s, 1)
        assert await s.fetch(1, wait=0.1) == []  # still within ack_wait
        (second,) = await drain(s, 1, wait=4.0)  # never acked: comes back
        await second.ack()
    assert first.event.id == second.event.id == e.id
    assert second.attempt == 2


async def test_nack_with_delay_holds_the_event_back_without_blocking_others(
    bus: EventBus,
) -> None:
    a, b = event(data={"n": "a"}), event(data={"n": "b"})
    await bus.publish(a)
    async with sub(bus, "retrier") as s:
        (da,) = await drain(s, 1)
        await da.nack(delay=0.4)
        await bus.publish(b)
        (db,) = await drain(s, 1)
        await db.ack()
        (again,) = await drain(s, 1, wait=4.0)
        await again.ack()
    assert (db.event.id, again.event.id, again.attempt) == (b.id, a.id, 2)


async def test_new_consumer_can_start_at_new_events_only(bus: EventBus) -> None:
    old, new = event(data={"n": "old"}), event(data={"n": "new"})
    await bus.publish(old)
    async with sub(bus, "latecomer", start="new") as s:
        assert await s.fetch(1, wait=0.15) == []
        await bus.publish(new)
        got = await drain(s, 1)
        await ack_all(got)
    assert [d.event.id for d in got] == [new.id]


async def test_republishing_an_event_id_is_delivered_once(bus: EventBus) -> None:
    e = event()
    await bus.publish(e)
    await bus.publish(e)
    async with sub(bus, "deduper") as s:
        got = await drain(s, 2, wait=0.3)
        await ack_all(got)
    assert [d.event.id for d in got] == [e.id]


async def test_consume_acks_handled_events_and_retries_failed_ones(bus: EventBus) -> None:
    e1, e2 = event(data={"n": 1}), event(data={"n": 2})
    await bus.publish(e1)
    await bus.publish(e2)
    seen: list[str] = []
    done = asyncio.Event()

    async def handler(ev: CloudEvent) -> None:
        seen.append(ev.id)
        if ev.id == e1.id and seen.count(e1.id) == 1:
            raise RuntimeError("transient failure")
        if set(seen) == {e1.id, e2.id} and seen.count(e1.id) == 2:
            done.set()

    task = asyncio.create_task(bus.consume("handler", handler, retry_base=0.05))
    try:
        await asyncio.wait_for(done.wait(), 8)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert Counter(seen) == {e1.id: 2, e2.id: 1}
    async with sub(bus, "handler") as s:
        assert await s.fetch(10, wait=0.2) == []  # everything was acked


async def test_nats_only_carries_inwire_event_types() -> None:
    bus = JetStreamEventBus("nats://127.0.0.1:1")  # refused before any connection is tried
    with pytest.raises(ValueError, match="inwire"):
        await bus.publish(event("com.example.thing"))


@pytest.mark.parametrize(
    "url", ["nats://127.0.0.1:1", "redis://127.0.0.1:1/0", "sqlite:////proc/no/such/dir/e.db"]
)
async def test_ping_raises_when_the_bus_is_unreachable(url: str) -> None:
    bus = (
        JetStreamEventBus(url, connect_timeout=0.5)
        if url.startswith("nats")
        else open_event_bus(url)
    )
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011 - each driver raises its own
            await asyncio.wait_for(bus.ping(), 10)
    finally:
        await bus.close()


# -- SQLite log across processes --------------------------------------------------------------

PUBLISHER = textwrap.dedent(
    """
    import asyncio, sys
    from inwire.kit.events import CloudEvent, open_event_bus

    async def main() -> None:
        bus = open_event_bus(sys.argv[1])
        for i in range(int(sys.argv[2])):
            await bus.publish(CloudEvent(source="/inwire/test", type="inwire.test.tick",
                                         data={"i": i}))
            await asyncio.sleep(0.001)
        await bus.close()

    asyncio.run(main())
    """
)


async def test_sqlite_bus_is_shared_safely_between_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared' / 'events.db'}"
    count = 40
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PUBLISHER, url, str(count), stderr=subprocess.PIPE
    )
    # Two bus instances (two connections, as two processes would have) share one consumer.
    first, second = open_event_bus(url), open_event_bus(url)
    got: list[CloudEvent] = []
    try:
        async with first.subscribe("tally") as s1, second.subscribe("tally") as s2:
            deadline = asyncio.get_running_loop().time() + 20
            while len(got) < count and asyncio.get_running_loop().time() < deadline:
                for s in (s1, s2):
                    batch = await s.fetch(7, wait=0.1)
                    await ack_all(batch)
                    got += [d.event for d in batch]
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
    finally:
        await first.close()
        await second.close()
    assert len(got) == count
    assert sorted(e.data["i"] for e in got) == list(range(count))


# -- outbox and relay ---------------------------------------------------------------------------

METADATA: MetaData = new_metadata()
WIDGETS = Table("evt_test_widgets", METADATA, Column("id", String(40), primary_key=True))
OUTBOX = Outbox(METADATA, name="evt_test_outbox")


class RecordingBus(EventBus):
    """A memory bus that records each successful publish and can refuse the first few."""

    def __init__(self, *, fail_first: int = 0, delay: float = 0.0) -> None:
        self.inner = MemoryEventBus()
        self.published: list[str] = []
        self.fail_first = fail_first
        self.delay = delay

    async def publish(self, event: CloudEvent) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_first > 0:
            self.fail_first -= 1
            raise ConnectionError("bus is down")
        await self.inner.publish(event)
        self.published.append(event.id)

    def subscribe(
        self,
        consumer: str,
        types: str | Sequence[str] = "*",
        *,
        start: Start = "all",
        ack_wait: float = 30.0,
        batch: int = 10,
    ) -> Subscription:
        return self.inner.subscribe(consumer, types, start=start, ack_wait=ack_wait, batch=batch)

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
async def database(db_url: tuple[str, str]) -> AsyncIterator[Database]:
    """The test database with the widget and outbox tables."""
    url, schema = db_url
    db = Database(url, schema=schema)
    await db.prepare()
    async with db.engine.begin() as conn:
        await conn.run_sync(METADATA.create_all)
    yield db
    await db.dispose()


async def create_widget(db: Database, *, fail: bool = False) -> CloudEvent:
    """A domain change and its event in one transaction; ``fail`` rolls both back."""
    widget_id = uuid.uuid4().hex
    e = event("inwire.test.widget.created", subject=widget_id, inwireorg="org_a")
    with pytest.raises(RuntimeError) if fail else contextlib.nullcontext():
        async with db.session() as session:
            await session.execute(insert(WIDGETS).values(id=widget_id))
            await OUTBOX.add(session, e)
            if fail:
                raise RuntimeError("the request failed after the change")
    return e


async def outbox_rows(db: Database) -> list[dict[str, object]]:
    t = OUTBOX.table
    async with db.session() as session:
        rows = (await session.execute(select(t).order_by(t.c.seq))).mappings().all()
    return [dict(r) for r in rows]


async def test_committed_change_publishes_its_event_once(database: Database) -> None:
    bus = RecordingBus()
    relay = OutboxRelay(database, bus, OUTBOX)
    e = await create_widget(database)
    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 0
    assert bus.published == [e.id]
    (row,) = await outbox_rows(database)
    assert row["published_at"] is not None
    assert row["claimed_by"] is None
    async with bus.subscribe("check") as s:
        (d,) = await drain(s, 1)
    assert d.event.id == e.id
    assert d.event.subject is not None
    assert d.event.inwireorg == "org_a"


async def test_rolled_back_change_publishes_nothing(database: Database) -> None:
    bus = RecordingBus()
    relay = OutboxRelay(database, bus, OUTBOX)
    await create_widget(database, fail=True)
    assert await relay.relay_once() == 0
    assert bus.published == []
    assert await outbox_rows(database) == []
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(WIDGETS)) == 0


async def test_events_are_relayed_in_commit_order(database: Database) -> None:
    bus = RecordingBus()
    sent = [await create_widget(database) for _ in range(5)]
    relay = OutboxRelay(database, bus, OUTBOX, batch_size=2)
    while await relay.relay_once():
        pass
    assert bus.published == [e.id for e in sent]


async def test_bus_failure_is_retried_after_backoff_and_published_once(
    database: Database,
) -> None:
    bus = RecordingBus(fail_first=1)
    relay = OutboxRelay(database, bus, OUTBOX, backoff_base=0.3)
    e1 = await create_widget(database)
    e2 = await create_widget(database)
    assert await relay.relay_once() == 0
    first, second = await outbox_rows(database)
    assert (first["attempts"], first["published_at"]) == (1, None)
    assert "bus is down" in str(first["last_error"])
    assert second["attempts"] == 0  # released untouched, not blamed for the outage
    assert second["claimed_by"] is None
    assert await relay.relay_once() == 1  # the second is due; the first waits its backoff
    assert bus.published == [e2.id]
    await asyncio.sleep(0.35)
    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 0
    assert bus.published == [e2.id, e1.id]
    assert await relay.pending() == 0


async def test_two_relays_at_once_publish_each_event_once(
    database: Database, db_url: tuple[str, str]
) -> None:
    sent = []
    async with database.session() as session:
        for _ in range(60):
            e = event("inwire.test.widget.created")
            await OUTBOX.add(session, e)
            sent.append(e)
    other_db = Database(db_url[0], schema=db_url[1])  # a second process would have its own
    bus = RecordingBus(delay=0.001)
    relays = [
        OutboxRelay(database, bus, OUTBOX, batch_size=7),
        OutboxRelay(other_db, bus, OUTBOX, batch_size=7),
    ]
    try:
        for _ in range(40):
            counts = await asyncio.gather(*(r.relay_once() for r in relays))
            if not any(counts) and await relays[0].pending() == 0:
                break
    finally:
        await other_db.dispose()
    assert Counter(bus.published) == Counter(e.id for e in sent)
    assert max(Counter(bus.published).values()) == 1


async def test_background_relay_publishes_soon_after_commit_and_stops(
    database: Database,
) -> None:
    bus = RecordingBus()
    relay = OutboxRelay(database, bus, OUTBOX, poll_interval=30.0)
    relay.start()
    try:
        assert relay.running
        e = await create_widget(database)
        # poll_interval is 30 s: only the commit hook can make this quick.
        async with bus.subscribe("watcher") as s:
            (d,) = await drain(s, 1, wait=5.0)
        assert d.event.id == e.id
        assert bus.published == [e.id]
    finally:
        await relay.stop()
    assert not relay.running


async def test_prune_deletes_old_published_rows_only(database: Database) -> None:
    bus = RecordingBus()
    relay = OutboxRelay(database, bus, OUTBOX)
    await create_widget(database)
    await relay.relay_once()
    await create_widget(database)  # unsent: must survive any prune
    assert await relay.prune(timedelta(hours=1)) == 0
    assert await relay.prune(timedelta(seconds=-1)) == 1
    rows = await outbox_rows(database)
    assert len(rows) == 1
    assert rows[0]["published_at"] is None
