"""The scaled-out event bus on Redis Streams.

All events go to one stream, ``{<namespace>}:events`` (the braces keep every key of a
namespace in one Redis Cluster slot), appended by a Lua script that first sets a dedupe key
per event id, so a re-publish within ``dedupe_window`` seconds is dropped. Each consumer is
a consumer group reading with ``XREADGROUP`` and acking with ``XACK``; every subscription
joins the group as its own member, so subscriptions share the group's events. Entries a
member has not acked within ``ack_wait`` are taken over with ``XAUTOCLAIM``; a nack with a
delay re-stamps the entry's idle time (``XCLAIM … IDLE``) so that it becomes claimable
after the delay. Type filters are applied here: non-matching entries are acked and skipped.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from inwire.kit.events.bus import (
    Delivery,
    EventBus,
    Start,
    Subscription,
    TypeFilter,
    check_cancelled,
)
from inwire.kit.events.cloudevent import CloudEvent

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

# Longest single XREADGROUP block, in seconds.
_BLOCK_STEP = 1.0

# KEYS: stream, dedupe key. ARGV: dedupe seconds, maxlen (0 = unbounded), id, type, body.
# Returns the entry id, or false when the event id was seen within the window.
_PUBLISH_LUA = """
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return false
end
if ARGV[2] ~= '0' then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*',
                    'id', ARGV[3], 'type', ARGV[4], 'event', ARGV[5])
end
return redis.call('XADD', KEYS[1], '*', 'id', ARGV[3], 'type', ARGV[4], 'event', ARGV[5])
"""


class RedisEventBus(EventBus):
    """Events in one Redis stream, consumers as consumer groups.

    ``maxlen`` caps the stream approximately (oldest entries are trimmed; None keeps all).
    """

    def __init__(
        self,
        client: Redis,
        *,
        namespace: str = "inwire",
        maxlen: int | None = 1_000_000,
        dedupe_window: int = 120,
    ) -> None:
        self._client = client
        self.namespace = namespace
        self.stream = f"{{{namespace}}}:events"
        self.maxlen = maxlen
        self.dedupe_window = dedupe_window
        self._publish_script = client.register_script(_PUBLISH_LUA)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisEventBus:
        """A bus on the Redis at ``url``; connects on first use."""
        import redis.asyncio as redis_asyncio

        return cls(redis_asyncio.from_url(url), **kwargs)

    @property
    def client(self) -> Redis:
        """The Redis client (tests use it to clean up)."""
        return self._client

    async def publish(self, event: CloudEvent) -> None:
        """``XADD`` the event unless its id was published within the dedupe window."""
        await self._publish_script(
            keys=[self.stream, f"{{{self.namespace}}}:events:seen:{event.id}"],
            args=[self.dedupe_window, self.maxlen or 0, event.id, event.type, event.to_json()],
        )

    def subscribe(
        self,
        consumer: str,
        types: str | Sequence[str] = "*",
        *,
        start: Start = "all",
        ack_wait: float = 30.0,
        batch: int = 10,
    ) -> Subscription:
        """A member of consumer group ``consumer`` (see :meth:`EventBus.subscribe`)."""
        return _RedisSubscription(
            self, consumer, TypeFilter(types), start=start, ack_wait=ack_wait, batch=batch
        )

    async def ping(self) -> None:
        """Raise unless Redis answers."""
        await self._client.ping()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


class _RedisSubscription(Subscription):
    def __init__(
        self,
        bus: RedisEventBus,
        consumer: str,
        types: TypeFilter,
        *,
        start: Start,
        ack_wait: float,
        batch: int,
    ) -> None:
        super().__init__(consumer, types, start=start, ack_wait=ack_wait, batch=batch)
        self._bus = bus
        self._redis = bus.client
        self._member = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._ack_wait_ms = max(1, int(self.ack_wait * 1000))

    async def _open(self) -> None:
        from redis.exceptions import ResponseError

        try:
            await self._redis.xgroup_create(
                self._bus.stream,
                self.consumer,
                id="$" if self.start == "new" else "0",
                mkstream=True,
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _fetch(self, max_events: int, wait: float) -> list[Delivery]:
        deadline = time.monotonic() + wait
        while True:
            check_cancelled()
            out = await self._reclaim(max_events)
            if out:
                return out
            # Block in short steps: the client's socket timeout (5 s by default) must not
            # fire first, and a nacked entry falls due between steps.
            left = deadline - time.monotonic()
            block = int(min(left, _BLOCK_STEP) * 1000)
            response: Any = await self._redis.xreadgroup(
                self.consumer,
                self._member,
                {self._bus.stream: ">"},
                count=max_events,
                block=block if block > 0 else None,
            )
            for _stream, entries in response or []:
                for entry_id, fields in entries:
                    await self._take(entry_id, fields, 1, out)
            if out or time.monotonic() >= deadline:
                return out

    async def _reclaim(self, max_events: int) -> list[Delivery]:
        """Entries of the group not acked within ack_wait (by any member), or nacked."""
        out: list[Delivery] = []
        claimed = await self._redis.xautoclaim(
            self._bus.stream,
            self.consumer,
            self._member,
            self._ack_wait_ms,
            "0-0",
            count=max_events,
        )
        for entry_id, fields in claimed[1]:
            if fields:
                attempt = await self._attempts(entry_id)
                await self._take(entry_id, fields, attempt, out)
        return out

    async def _attempts(self, entry_id: bytes) -> int:
        pending = await self._redis.xpending_range(
            self._bus.stream, self.consumer, min=entry_id, max=entry_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 1

    async def _take(
        self, entry_id: bytes, fields: dict[bytes, bytes], attempt: int, out: list[Delivery]
    ) -> None:
        event_type = fields.get(b"type", b"").decode()
        if not self.types.matches(event_type):
            await self._redis.xack(self._bus.stream, self.consumer, entry_id)
            return
        try:
            event = CloudEvent.from_json(fields[b"event"])
        except (KeyError, ValueError):
            log.exception("dropping an unreadable event", extra={"entry": entry_id.decode()})
            await self._redis.xack(self._bus.stream, self.consumer, entry_id)
            return
        out.append(Delivery(event, attempt, self._settler(entry_id)))

    def _settler(self, entry_id: bytes) -> Callable[[float | None], Awaitable[None]]:
        async def settle(delay: float | None) -> None:
            if delay is None:
                await self._redis.xack(self._bus.stream, self.consumer, entry_id)
                return
            # XAUTOCLAIM takes entries idle for ack_wait; pretend this one has been idle
            # for ack_wait - delay, so it is taken again after delay.
            idle = max(0, self._ack_wait_ms - int(delay * 1000))
            await self._redis.xclaim(
                self._bus.stream,
                self.consumer,
                self._member,
                0,
                [entry_id],
                idle=idle,
                justid=True,
            )

        return settle

    async def _close(self) -> None:
        # A member with nothing pending can go; one with pending entries stays so that
        # XAUTOCLAIM can hand them to another member (deleting it would drop them).
        try:
            mine = await self._redis.xpending_range(
                self._bus.stream,
                self.consumer,
                min="-",
                max="+",
                count=1,
                consumername=self._member,
            )
            if not mine:
                await self._redis.xgroup_delconsumer(self._bus.stream, self.consumer, self._member)
        except Exception:
            log.debug("could not remove the Redis consumer group member", exc_info=True)
