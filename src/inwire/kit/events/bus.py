"""The event bus interface, chosen by URL, and what subscribers receive.

Every backend gives the same guarantees:

- ``publish`` is durable once it returns; publishing the same event id twice within the
  backend's dedupe window stores it once (SQLite/memory: while the event is retained; NATS:
  the stream's duplicate window; Redis: ``dedupe_window`` seconds).
- A *consumer* is a durable, named subscriber (``"flowforge-triggers"``). Every consumer
  gets every event whose type matches its filter; processes subscribing with the same
  consumer name share that consumer's events (each event goes to one of them).
- Delivery is at least once. An event is redelivered when it is nacked, and when it is not
  acked within ``ack_wait`` seconds (the subscriber crashed or is stuck). Consumers must
  therefore be idempotent, deduplicating on ``event.id`` where a repeat would matter.
- Order follows publication for first deliveries; a redelivered event can arrive after
  later ones.

A consumer name stands for one logical subscriber: subscribe it with the same types every
time (the filter is applied where the consumer reads, so a changed filter can skip events).
"""

from __future__ import annotations

import asyncio
import logging
import re
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Literal, Self
from urllib.parse import parse_qs, urlsplit, urlunsplit

from inwire.kit.events.cloudevent import TYPE_PATTERN, CloudEvent

log = logging.getLogger(__name__)

#: Where a consumer starts the first time its name is seen: the oldest retained event
#: (``"all"``) or the next event published (``"new"``). Later subscriptions resume.
Start = Literal["all", "new"]

Handler = Callable[[CloudEvent], Awaitable[None]]

_CONSUMER_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PATTERN_RE = re.compile(rf"^{TYPE_PATTERN}\.?$")
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_-]{0,48}$")


def check_cancelled() -> None:
    """Raise ``CancelledError`` if the current task is being cancelled.

    Some clients (redis-py's retry on timeout) turn a cancellation into their own error,
    or retry through it; loops that call them check this so that cancelling still stops.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def check_consumer(name: str) -> str:
    """Return ``name`` if it is a valid consumer name (1-64 of letters, digits, ``_``, ``-``)."""
    if not _CONSUMER_RE.match(name):
        raise ValueError(f"consumer name {name!r} must be 1-64 of [A-Za-z0-9_-]")
    return name


class TypeFilter:
    """Which event types a consumer wants.

    ``"*"`` matches every type; a pattern ending in ``.`` matches every type it prefixes
    (``"inwire.core."`` matches ``inwire.core.user.created``); any other pattern matches
    that one type. Prefixes end on a token boundary so that brokers can filter on them.
    """

    def __init__(self, types: str | Sequence[str] = "*") -> None:
        patterns = (types,) if isinstance(types, str) else tuple(types)
        if not patterns:
            raise ValueError("give at least one type pattern, or '*' for every type")
        for pattern in patterns:
            if pattern != "*" and not _PATTERN_RE.match(pattern):
                raise ValueError(
                    f"type pattern {pattern!r} must be '*', a type, or a prefix ending in '.'"
                )
        self.everything = "*" in patterns
        self.patterns: tuple[str, ...] = ("*",) if self.everything else patterns

    def matches(self, event_type: str) -> bool:
        """Whether an event of ``event_type`` passes the filter."""
        if self.everything:
            return True
        return any(
            event_type.startswith(p) if p.endswith(".") else event_type == p for p in self.patterns
        )

    def __repr__(self) -> str:
        return f"TypeFilter({list(self.patterns)!r})"


class Delivery:
    """One event handed to a subscriber, to be acked once handled or nacked to retry.

    ``attempt`` is 1 on first delivery and grows with each redelivery. Settling twice is a
    no-op; a delivery left unsettled is redelivered after the subscription's ``ack_wait``.
    """

    __slots__ = ("_settle", "_settled", "attempt", "event")

    def __init__(
        self,
        event: CloudEvent,
        attempt: int,
        settle: Callable[[float | None], Awaitable[None]],
    ) -> None:
        self.event = event
        self.attempt = attempt
        self._settle = settle
        self._settled = False

    @property
    def settled(self) -> bool:
        """Whether ``ack`` or ``nack`` was called."""
        return self._settled

    async def ack(self) -> None:
        """The event is handled: never deliver it to this consumer again."""
        if not self._settled:
            self._settled = True
            await self._settle(None)

    async def nack(self, delay: float = 0.0) -> None:
        """Handling failed: deliver the event to this consumer again after ``delay`` seconds."""
        if not self._settled:
            self._settled = True
            await self._settle(max(0.0, delay))

    def __repr__(self) -> str:
        return f"Delivery({self.event.type!r}, id={self.event.id!r}, attempt={self.attempt})"


class Subscription(ABC):
    """A consumer's open subscription: an async iterator of :class:`Delivery`.

    Use it as ``async with bus.subscribe("name", "inwire.core.") as sub: async for d in sub``;
    or call :meth:`fetch` for explicit batches. Leaving the block nacks deliveries fetched
    but not yet handed out, so they go to another subscriber straight away.
    """

    def __init__(
        self, consumer: str, types: TypeFilter, *, start: Start, ack_wait: float, batch: int
    ) -> None:
        if ack_wait <= 0:
            raise ValueError("ack_wait must be positive")
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.consumer = check_consumer(consumer)
        self.types = types
        self.start = start
        self.ack_wait = ack_wait
        self.batch = batch
        self._opened = False
        self._closed = False
        self._buffer: deque[Delivery] = deque()

    @abstractmethod
    async def _open(self) -> None:
        """Create the durable consumer if it does not exist yet."""

    @abstractmethod
    async def _fetch(self, max_events: int, wait: float) -> list[Delivery]:
        """Up to ``max_events`` deliveries, waiting at most ``wait`` seconds for the first."""

    async def _close(self) -> None:
        """Release backend resources of this subscription (the consumer stays)."""
        return None

    async def open(self) -> None:
        """Create or join the durable consumer; called by ``async with`` and ``fetch``."""
        if self._closed:
            raise RuntimeError("subscription is closed")
        if not self._opened:
            await self._open()
            self._opened = True

    async def fetch(self, max_events: int = 64, wait: float = 1.0) -> list[Delivery]:
        """Up to ``max_events`` deliveries; waits at most ``wait`` seconds for the first.

        Returns an empty list when nothing arrives in time.
        """
        await self.open()
        try:
            deliveries = await self._fetch(max_events, max(wait, 0.0))
        except Exception:
            check_cancelled()
            raise
        check_cancelled()
        return deliveries

    async def close(self) -> None:
        """Nack buffered deliveries and release the subscription; the consumer stays."""
        if self._closed:
            return
        self._closed = True
        while self._buffer:
            try:
                await self._buffer.popleft().nack()
            except Exception:
                log.warning("could not nack a buffered delivery", exc_info=True)
        if self._opened:
            await self._close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Delivery:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._buffer.extend(await self.fetch(self.batch, wait=5.0))
        return self._buffer.popleft()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def retry_delay(attempt: int, *, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff: ``base * 2**(attempt-1)`` seconds, at most ``cap``."""
    return float(min(cap, base * 2 ** max(0, min(attempt - 1, 30))))


class EventBus(ABC):
    """Publishes CloudEvents and hands them to durable, named consumers (see module doc)."""

    @abstractmethod
    async def publish(self, event: CloudEvent) -> None:
        """Store ``event`` durably; raises if the bus cannot take it (the caller retries)."""

    @abstractmethod
    def subscribe(
        self,
        consumer: str,
        types: str | Sequence[str] = "*",
        *,
        start: Start = "all",
        ack_wait: float = 30.0,
        batch: int = 10,
    ) -> Subscription:
        """A subscription of the durable consumer ``consumer`` to events matching ``types``.

        Nothing is contacted until it is opened (``async with``, ``fetch`` or iteration).
        ``batch`` is how many events iteration fetches at a time; keep it small enough that
        a batch is handled within ``ack_wait``.
        """

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the bus is unreachable (readiness checks)."""

    async def close(self) -> None:
        """Release connections; the bus must not be used afterwards."""
        return None

    async def consume(
        self,
        consumer: str,
        handler: Handler,
        types: str | Sequence[str] = "*",
        *,
        start: Start = "all",
        ack_wait: float = 30.0,
        retry_base: float = 1.0,
        retry_cap: float = 300.0,
    ) -> None:
        """Call ``handler`` for each event until cancelled; ack on success, nack on error.

        A failing event is retried with exponential backoff (:func:`retry_delay`) without
        holding up the events after it. If the bus itself fails (server down), the loop
        logs, waits and subscribes again. Run it as a task and cancel the task to stop.
        """
        outages = 0
        while True:
            try:
                async with self.subscribe(consumer, types, start=start, ack_wait=ack_wait) as sub:
                    async for delivery in sub:
                        outages = 0
                        await self._handle(consumer, handler, delivery, retry_base, retry_cap)
            except Exception:
                check_cancelled()
                outages += 1
                delay = retry_delay(outages, base=retry_base, cap=min(retry_cap, 30.0))
                log.exception(
                    "event subscription failed; subscribing again",
                    extra={"consumer": consumer, "retry_in": delay},
                )
                await asyncio.sleep(delay)

    @staticmethod
    async def _handle(
        consumer: str, handler: Handler, delivery: Delivery, retry_base: float, retry_cap: float
    ) -> None:
        try:
            await handler(delivery.event)
        except Exception:
            delay = retry_delay(delivery.attempt, base=retry_base, cap=retry_cap)
            log.exception(
                "event handler failed; retrying later",
                extra={
                    "consumer": consumer,
                    "event_id": delivery.event.id,
                    "event_type": delivery.event.type,
                    "attempt": delivery.attempt,
                    "retry_in": delay,
                },
            )
            await delivery.nack(delay)
        else:
            await delivery.ack()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def open_event_bus(url: str, *, namespace: str = "") -> EventBus:
    """The event bus for ``url``; nothing connects until first use.

    - ``sqlite:///path/events.db`` (the embedded default): an event log in a SQLite file,
      shared by every process on the machine.
    - ``memory://``: the same log in this process's memory, for unit tests.
    - ``nats://host:4222`` (also ``tls://``): NATS JetStream, stream ``INWIRE`` on
      subjects ``inwire.>``; event types must therefore start with ``inwire.``.
    - ``redis://host:6379/0`` (also ``rediss://``, ``unix://``): one Redis stream with a
      consumer group per consumer.

    ``namespace`` (or ``?namespace=`` in the URL) keeps several installations or test runs
    apart on one NATS or Redis server: it names the stream ``INWIRE_<NAMESPACE>`` with
    subjects ``<namespace>.inwire.>`` on NATS and the key prefix on Redis. The file path
    already isolates SQLite.
    """
    parts = urlsplit(url)
    scheme = parts.scheme
    query = parse_qs(parts.query)
    namespace = namespace or query.pop("namespace", [""])[0]
    if not _NAMESPACE_RE.match(namespace):
        raise ValueError(f"namespace {namespace!r} must be at most 48 of [A-Za-z0-9_-]")
    if scheme == "memory":
        from inwire.kit.events.sqlite import MemoryEventBus

        return MemoryEventBus()
    if scheme in {"sqlite", "sqlite+aiosqlite"}:
        from sqlalchemy.engine import make_url

        from inwire.kit.events.sqlite import SqliteEventBus

        path = make_url(url).database
        if not path or path == ":memory:":
            raise ValueError(f"{url!r} names no file; use memory:// for an in-process bus")
        return SqliteEventBus(path)
    if scheme in {"nats", "tls"}:
        from inwire.kit.events.jetstream import JetStreamEventBus

        server = urlunsplit((scheme, parts.netloc, "", "", ""))
        if namespace:
            return JetStreamEventBus(
                server, stream=f"INWIRE_{namespace.upper()}", subject_prefix=f"{namespace}."
            )
        return JetStreamEventBus(server)
    if scheme in {"redis", "rediss", "unix"}:
        from inwire.kit.events.redis_streams import RedisEventBus

        remaining = "&".join(f"{k}={v}" for k, vs in query.items() for v in vs)
        server = urlunsplit((scheme, parts.netloc, parts.path, remaining, ""))
        return RedisEventBus.from_url(server, namespace=namespace or "inwire")
    raise ValueError(f"unsupported event bus URL scheme {scheme!r} in {url!r}")


__all__ = [
    "Delivery",
    "EventBus",
    "Handler",
    "Start",
    "Subscription",
    "TypeFilter",
    "check_cancelled",
    "check_consumer",
    "open_event_bus",
    "retry_delay",
]
