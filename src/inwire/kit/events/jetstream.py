"""The scaled-out event bus on NATS JetStream.

Events go to one stream (``INWIRE``, subjects ``inwire.>``; created if missing) on the
subject equal to their type, with ``Nats-Msg-Id`` set to the event id so that JetStream
drops a re-publish within the stream's duplicate window. Each consumer is a durable pull
consumer with explicit acks; processes pulling from the same durable share its events.
A nack with a delay is JetStream's ``NAK`` with delay; an event not acked within
``ack_wait`` is redelivered by the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from inwire.kit.events.bus import Delivery, EventBus, Start, Subscription, TypeFilter
from inwire.kit.events.cloudevent import CloudEvent

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

log = logging.getLogger(__name__)

ROOT = "inwire."


class JetStreamEventBus(EventBus):
    """Events in the JetStream stream ``stream`` on the NATS server(s) at ``url``.

    ``subject_prefix`` is put before every subject (the stream captures
    ``<subject_prefix>inwire.>``), which lets several installations share a server.
    Events are kept ``max_age`` seconds; ``duplicate_window`` is how long a re-published
    event id is recognised and dropped.
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str = "INWIRE",
        subject_prefix: str = "",
        max_age: float = 7 * 24 * 3600.0,
        duplicate_window: float = 120.0,
        connect_timeout: float = 2.0,
        request_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.max_age = max_age
        self.duplicate_window = duplicate_window
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()

    @property
    def stream_subject(self) -> str:
        """The subject wildcard the stream captures."""
        return f"{self.subject_prefix}{ROOT}>"

    def subject(self, event_type: str) -> str:
        """The NATS subject of events of ``event_type``."""
        if not event_type.startswith(ROOT):
            raise ValueError(f"JetStream carries only '{ROOT}*' event types, not {event_type!r}")
        return f"{self.subject_prefix}{event_type}"

    async def jetstream(self) -> JetStreamContext:
        """The JetStream context, connecting and creating the stream on first use.

        The client rides out short outages by reconnecting; once it gives up, the next
        call connects afresh. An unreachable server raises ``ConnectionError`` after about
        ``connect_timeout`` seconds.
        """
        async with self._lock:
            if self._nc is not None and self._nc.is_closed:
                self._nc = self._js = None
            if self._js is None:
                import nats

                try:
                    # nats-py keeps retrying a first connect as long as it would reconnect;
                    # the deadline makes an unreachable server fail fast instead.
                    nc = await asyncio.wait_for(
                        nats.connect(
                            self.url,
                            connect_timeout=self.connect_timeout,
                            reconnect_time_wait=self.connect_timeout,
                            max_reconnect_attempts=60,
                            error_cb=_log_error,
                            name="inwire-events",
                        ),
                        self.connect_timeout,
                    )
                except (TimeoutError, OSError) as exc:
                    raise ConnectionError(f"NATS at {self.url} is unreachable") from exc
                try:
                    js = nc.jetstream(timeout=self.request_timeout)
                    await self._ensure_stream(js)
                except BaseException:
                    await nc.close()
                    raise
                self._nc, self._js = nc, js
            return self._js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        from nats.js.api import StreamConfig
        from nats.js.errors import BadRequestError, NotFoundError

        try:
            await js.stream_info(self.stream)
            return
        except NotFoundError:
            pass
        config = StreamConfig(
            name=self.stream,
            subjects=[self.stream_subject],
            max_age=self.max_age,
            duplicate_window=self.duplicate_window,
        )
        try:
            await js.add_stream(config)
        except BadRequestError:
            # Another process created it between our two calls; anything else re-raises.
            await js.stream_info(self.stream)

    async def publish(self, event: CloudEvent) -> None:
        """Publish ``event`` and wait for JetStream to store it."""
        subject = self.subject(event.type)
        js = await self.jetstream()
        await js.publish(
            subject,
            event.to_json().encode(),
            stream=self.stream,
            headers={"Nats-Msg-Id": event.id},
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
        """A pull subscription on the durable ``consumer`` (see :meth:`EventBus.subscribe`)."""
        return _JetStreamSubscription(
            self, consumer, TypeFilter(types), start=start, ack_wait=ack_wait, batch=batch
        )

    def filter_subject(self, types: TypeFilter) -> str:
        """The consumer's server-side filter: one pattern as a subject, else the stream's."""
        if types.everything or len(types.patterns) > 1:
            # Several filter subjects need nats-server 2.10; the rest is filtered here.
            return self.stream_subject
        pattern = types.patterns[0]
        return self.subject(pattern) + (">" if pattern.endswith(".") else "")

    async def ping(self) -> None:
        """Raise unless the server answers and the stream exists."""
        js = await self.jetstream()
        await js.stream_info(self.stream)

    async def close(self) -> None:
        """Flush pending acks and close the connection."""
        async with self._lock:
            nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.flush(timeout=max(1, round(self.request_timeout)))
            except Exception:
                log.warning("could not flush NATS before closing", exc_info=True)
            await nc.close()

    async def delete_stream(self) -> None:
        """Delete the stream and every consumer on it (tests, uninstall)."""
        js = await self.jetstream()
        await js.delete_stream(self.stream)


class _JetStreamSubscription(Subscription):
    def __init__(
        self,
        bus: JetStreamEventBus,
        consumer: str,
        types: TypeFilter,
        *,
        start: Start,
        ack_wait: float,
        batch: int,
    ) -> None:
        super().__init__(consumer, types, start=start, ack_wait=ack_wait, batch=batch)
        self._bus = bus
        self._psub: Any = None

    async def _open(self) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        js = await self._bus.jetstream()
        stream = self._bus.stream
        wanted = self._bus.filter_subject(self.types)
        try:
            info = await js.consumer_info(stream, self.consumer)
        except NotFoundError:
            config = ConsumerConfig(
                durable_name=self.consumer,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.ack_wait,
                deliver_policy=DeliverPolicy.NEW if self.start == "new" else DeliverPolicy.ALL,
                filter_subject=wanted,
                max_ack_pending=10_000,
            )
            await js.add_consumer(stream, config)
        else:
            if (info.config.filter_subject or self._bus.stream_subject) != wanted:
                log.warning(
                    "JetStream consumer %s exists with filter %s, not %s; delete it to change",
                    self.consumer,
                    info.config.filter_subject,
                    wanted,
                )
        self._psub = await js.pull_subscribe_bind(durable=self.consumer, stream=stream)

    async def _fetch(self, max_events: int, wait: float) -> list[Delivery]:
        import nats.errors

        try:
            # JetStream needs a positive expiry for the pull request.
            msgs: list[Msg] = await self._psub.fetch(max_events, timeout=max(wait, 0.05))
        except (nats.errors.TimeoutError, TimeoutError):  # nats-py raises either
            return []
        out: list[Delivery] = []
        for msg in msgs:
            try:
                event = CloudEvent.from_json(msg.data)
            except ValueError:
                log.exception("dropping an unreadable event", extra={"subject": msg.subject})
                await msg.term()
                continue
            if not self.types.matches(event.type):
                await msg.ack()
                continue
            out.append(Delivery(event, int(msg.metadata.num_delivered or 1), _settler(msg)))
        return out

    async def _close(self) -> None:
        if self._psub is not None:
            psub, self._psub = self._psub, None
            try:
                await psub.unsubscribe()
            except Exception:
                log.debug("pull subscription already gone", exc_info=True)


async def _log_error(exc: Exception) -> None:
    log.warning("NATS connection error: %s", exc or type(exc).__name__)


def _settler(msg: Msg) -> Callable[[float | None], Awaitable[None]]:
    async def settle(delay: float | None) -> None:
        if delay is None:
            await msg.ack()
        else:
            await msg.nak(delay=delay if delay > 0 else None)

    return settle
