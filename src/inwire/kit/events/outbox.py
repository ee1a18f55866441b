"""Transactional outbox: events commit with the change that caused them, a relay sends them.

A service declares ``outbox = Outbox(metadata)`` next to its models, which adds an
``event_outbox`` table to the service's own metadata (and so to its migrations). Code that
changes data calls ``await outbox.add(session, event)`` in the same session: the event row
commits or rolls back with the change, so no event is lost and none is sent for a
rolled-back change. An :class:`OutboxRelay` running in the service publishes committed rows
to the bus in ``seq`` order and marks them published.

Relays claim rows before publishing them: in one short write transaction they stamp a
batch of due, unclaimed rows with a claim token and a lease (on PostgreSQL the candidate
rows are picked with ``SELECT … FOR UPDATE SKIP LOCKED``, so relays never wait on each
other; on SQLite the transaction's write lock serialises claims). Several relays, in one
process or many, therefore never publish the same row in the normal course. Delivery is
still *at least once*: a relay that dies after publishing and before marking the row, or
that overruns its lease, leaves the row to be published again. Consumers must deduplicate
on the event id (the buses drop a re-publish of the same id within their dedupe window,
which covers the common case).

When the bus refuses an event, the row keeps its place, its ``attempts`` grows and it is
retried after an exponential backoff; the rows after it in that batch are released for the
next round. A retried event may thus reach the bus after events that were committed later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from opentelemetry import trace
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from inwire.kit.db.base import UTCDateTime, utcnow
from inwire.kit.db.engine import Database
from inwire.kit.events.bus import EventBus, retry_delay
from inwire.kit.events.cloudevent import CloudEvent

log = logging.getLogger(__name__)

_PENDING = "inwire.events.outbox_pending"
_HOOKED = "inwire.events.outbox_hooked"


def outbox_table(metadata: MetaData, name: str = "event_outbox") -> Table:
    """Add the outbox table ``name`` to a service's ``metadata`` and return it.

    One row per event: ``seq`` orders them, ``payload`` is the structured-mode JSON,
    ``attempts`` / ``next_attempt_at`` / ``last_error`` track failed publishes,
    ``claimed_by`` / ``claimed_until`` are a relay's lease, ``published_at`` marks a sent
    row (deleted after the relay's retention).
    """
    seq_type = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PK = rowid on SQLite
    table = Table(
        name,
        metadata,
        Column("seq", seq_type, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("type", String(255), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("attempts", Integer, nullable=False, default=0, server_default="0"),
        Column("next_attempt_at", UTCDateTime(), nullable=False),
        Column("claimed_by", String(64)),
        Column("claimed_until", UTCDateTime()),
        Column("last_error", Text),
        Column("published_at", UTCDateTime()),
    )
    # Relays look only at unsent rows; a partial index keeps that cheap while published
    # rows wait to be pruned.
    unsent = table.c.published_at.is_(None)
    Index(
        f"ix_{name}_unsent",
        table.c.next_attempt_at,
        table.c.seq,
        sqlite_where=unsent,
        postgresql_where=unsent,
    )
    return table


class Outbox:
    """A service's outbox table and the one way to put events in it.

    ``Outbox(metadata)`` defines the table in the service's metadata (call it once, at
    module level next to the models, like any table definition).
    """

    def __init__(self, metadata: MetaData, *, name: str = "event_outbox") -> None:
        self.table = outbox_table(metadata, name)
        self._listeners: list[Callable[[], None]] = []

    async def add(self, session: AsyncSession, event: CloudEvent) -> None:
        """Insert ``event`` in the caller's transaction; it is sent only if that commits.

        The current trace context is stored with the event (``traceparent``) unless it has
        one. Raises ``TypeError`` if ``event.data`` is not JSON-serialisable, so the
        request fails rather than the relay.
        """
        if event.traceparent is None:
            traceparent = _current_traceparent()
            if traceparent:
                event = event.model_copy(update={"traceparent": traceparent})
        now = utcnow()
        await session.execute(
            insert(self.table).values(
                event_id=event.id,
                type=event.type,
                payload=event.to_json(),
                created_at=now,
                attempts=0,
                next_attempt_at=now,
            )
        )
        self._hook(session.sync_session)

    def on_commit(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after each commit that added events; returns an unsubscriber.

        Relays use it to publish at once instead of at their next poll.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _hook(self, session: Session) -> None:
        session.info[_PENDING] = True
        if session.info.get(_HOOKED):
            return
        session.info[_HOOKED] = True

        def committed(sess: Session) -> None:
            if sess.info.pop(_PENDING, False):
                for listener in list(self._listeners):
                    listener()

        def rolled_back(sess: Session) -> None:
            sess.info.pop(_PENDING, None)

        event.listen(session, "after_commit", committed)
        event.listen(session, "after_rollback", rolled_back)


def _current_traceparent() -> str | None:
    # W3C Trace Context §3.2: version 00, trace id, parent (span) id, flags.
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


class OutboxRelay:
    """Publishes committed outbox rows of ``db`` to ``bus``; see the module docstring.

    Run it in the service's lifespan with :meth:`start` / :meth:`stop`, or call
    :meth:`relay_once` (tests, cron-like use). ``lease`` must comfortably exceed the time
    to publish a batch (each publish is cut off after ``publish_timeout``). Published rows
    are deleted after ``retention``.
    """

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        outbox: Outbox,
        *,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        lease: float = 60.0,
        publish_timeout: float = 10.0,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
        retention: timedelta | None = timedelta(days=1),
    ) -> None:
        if publish_timeout * 2 > lease:
            raise ValueError("lease must be at least twice publish_timeout")
        self.db = db
        self.bus = bus
        self.outbox = outbox
        self.table = outbox.table
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.lease = lease
        self.publish_timeout = publish_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retention = retention
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._unlisten: Callable[[], None] | None = None
        self._failures = 0
        self._last_prune: datetime | None = None

    # -- one round --------------------------------------------------------------------------

    async def relay_once(self) -> int:
        """Claim one batch of due rows, publish them in order, mark them; return how many.

        Stops at the first event the bus refuses: that row is scheduled for a retry and the
        rest of the batch is released.
        """
        token = uuid.uuid4().hex
        claimed_at = time.monotonic()
        rows = await self._claim(token)
        if not rows:
            return 0
        published: list[int] = []
        failed: tuple[int, int, str] | None = None
        for seq, payload, attempts in rows:
            if time.monotonic() - claimed_at + self.publish_timeout > self.lease:
                # A slow bus: stop before the lease could run out under this publish, or
                # another relay might take the rows and send them a second time.
                break
            try:
                event_ = CloudEvent.from_json(payload)
                await asyncio.wait_for(self.bus.publish(event_), self.publish_timeout)
            except Exception as exc:
                failed = (seq, attempts + 1, f"{type(exc).__name__}: {exc}"[:2000])
                log.warning(
                    "outbox relay could not publish an event; will retry",
                    extra={"outbox_seq": seq, "attempts": attempts + 1, "error": failed[2]},
                )
                break
            published.append(seq)
        await self._settle(token, published, failed, [r[0] for r in rows])
        self._failures = self._failures + 1 if failed else 0
        return len(published)

    async def _claim(self, token: str) -> list[tuple[int, str, int]]:
        t = self.table
        now = utcnow()
        due = (
            select(t.c.seq)
            .where(
                t.c.published_at.is_(None),
                t.c.next_attempt_at <= now,
                (t.c.claimed_until.is_(None)) | (t.c.claimed_until < now),
            )
            .order_by(t.c.seq)
            .limit(self.batch_size)
            # PostgreSQL: skip rows another relay is claiming right now. SQLite ignores
            # it; there the UPDATE's write lock makes the claim exclusive.
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(t)
            .where(t.c.seq.in_(due.scalar_subquery()))
            .values(claimed_by=token, claimed_until=now + timedelta(seconds=self.lease))
            .returning(t.c.seq, t.c.payload, t.c.attempts)
        )
        async with self.db.session() as session:
            result = await session.execute(claim)
            rows = [(int(r[0]), str(r[1]), int(r[2])) for r in result.all()]
        rows.sort()
        return rows

    async def _settle(
        self,
        token: str,
        published: list[int],
        failed: tuple[int, int, str] | None,
        claimed: list[int],
    ) -> None:
        t = self.table
        now = utcnow()
        released = [s for s in claimed if s not in published and (failed is None or s != failed[0])]
        async with self.db.session() as session:
            if published:
                await session.execute(
                    update(t)
                    .where(t.c.seq.in_(published), t.c.claimed_by == token)
                    .values(published_at=now, claimed_by=None, claimed_until=None)
                )
            if failed is not None:
                seq, attempts, error = failed
                delay = retry_delay(attempts, base=self.backoff_base, cap=self.backoff_max)
                await session.execute(
                    update(t)
                    .where(t.c.seq == seq, t.c.claimed_by == token)
                    .values(
                        attempts=attempts,
                        next_attempt_at=now + timedelta(seconds=delay),
                        last_error=error,
                        claimed_by=None,
                        claimed_until=None,
                    )
                )
            if released:
                await session.execute(
                    update(t)
                    .where(t.c.seq.in_(released), t.c.claimed_by == token)
                    .values(claimed_by=None, claimed_until=None)
                )

    async def prune(self, older_than: timedelta | None = None) -> int:
        """Delete rows published more than ``older_than`` (default ``retention``) ago."""
        keep = older_than if older_than is not None else self.retention
        if keep is None:
            return 0
        t = self.table
        async with self.db.session() as session:
            result: Any = await session.execute(
                delete(t).where(t.c.published_at.is_not(None), t.c.published_at < utcnow() - keep)
            )
        return int(result.rowcount or 0)

    async def pending(self) -> int:
        """How many rows wait to be published (a readiness or metrics figure)."""
        from sqlalchemy import func

        t = self.table
        async with self.db.session() as session:
            count = await session.scalar(
                select(func.count()).select_from(t).where(t.c.published_at.is_(None))
            )
        return int(count or 0)

    # -- background task --------------------------------------------------------------------

    def notify(self) -> None:
        """Ask the running relay to look for rows now rather than at its next poll."""
        self._wake.set()

    def start(self) -> None:
        """Run the relay as a background task of the running event loop."""
        if self._task is not None and not self._task.done():
            return
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        wake = self._wake

        def from_commit() -> None:
            # Commit hooks run on the loop's thread (the async session's greenlet), but may
            # come from another loop's thread in mixed setups: hand over safely.
            loop.call_soon_threadsafe(wake.set)

        self._unlisten = self.outbox.on_commit(from_commit)
        self._task = loop.create_task(self._run(), name="inwire-outbox-relay")

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the current batch (up to ``grace`` seconds), then stop the task."""
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        """Whether the background task is alive."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                sent = await self.relay_once()
            except Exception:
                # The database is unreachable or similar: same backoff as a bus failure.
                self._failures += 1
                sent = 0
                log.exception("outbox relay round failed")
            try:
                await self._maybe_prune()
            except Exception:
                log.exception("outbox prune failed")
            if self._failures:
                delay = retry_delay(self._failures, base=self.backoff_base, cap=self.backoff_max)
                await self._sleep(delay, wake_on_commit=False)
            elif sent < self.batch_size:
                await self._sleep(self.poll_interval, wake_on_commit=True)

    async def _sleep(self, seconds: float, *, wake_on_commit: bool) -> None:
        waits = [asyncio.ensure_future(self._stopping.wait())]
        if wake_on_commit:
            waits.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _maybe_prune(self) -> None:
        if self.retention is None:
            return
        now = utcnow()
        if self._last_prune is None or now - self._last_prune > timedelta(minutes=10):
            self._last_prune = now
            await self.prune()
