"""The embedded event bus: an append-only event log in a SQLite file (or in memory).

Three tables hold everything. ``inwire_events`` is the log, numbered by ``seq``. Each
consumer has a row in ``inwire_event_consumers`` with a cursor, the highest ``seq`` it has
looked at; events handed out but not yet acked sit in ``inwire_event_deliveries`` with the
time they become visible again. A fetch, in one ``BEGIN IMMEDIATE`` transaction, first
takes deliveries whose time has come (nacked, or not acked within ``ack_wait``), then moves
the cursor over new events, recording the matching ones as deliveries; an ack deletes the
delivery. Because SQLite serialises write transactions across processes (WAL mode, busy
timeout), processes sharing a consumer never receive the same event from one fetch, and a
consumer that dies leaves its deliveries to be taken again after ``ack_wait``.

Subscribers poll; a publish in the same process wakes them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from inwire.kit.events.bus import Delivery, EventBus, Start, Subscription, TypeFilter
from inwire.kit.events.cloudevent import CloudEvent

if TYPE_CHECKING:
    import aiosqlite

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 15_000
# How many log rows one fetch looks at when few of them match the consumer's filter.
_SCAN_LIMIT = 1_000
_PRUNE_EVERY = 3_600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inwire_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    published REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS inwire_event_consumers (
    name TEXT PRIMARY KEY,
    cursor INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS inwire_event_deliveries (
    consumer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    visible_at REAL NOT NULL,
    PRIMARY KEY (consumer, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_inwire_event_deliveries_due
    ON inwire_event_deliveries (consumer, visible_at);
"""


class SqliteEventBus(EventBus):
    """Event log in the SQLite file ``path``, safe to share between processes.

    ``poll_interval`` is how often an idle subscriber looks for events published by other
    processes. Events older than ``retention`` seconds are pruned (None keeps them all).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        poll_interval: float = 0.2,
        retention: float | None = 7 * 24 * 3600.0,
    ) -> None:
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).expanduser())
        self.poll_interval = poll_interval
        self.retention = retention
        self._conn: aiosqlite.Connection | None = None
        # One connection per bus: the lock keeps one coroutine's transaction from
        # swallowing another coroutine's statements.
        self._lock = asyncio.Lock()
        self._waiters: set[asyncio.Event] = set()
        self._last_prune = time.monotonic()

    @property
    def in_memory(self) -> bool:
        """Whether the log lives in this process's memory only."""
        return self.path == ":memory:"

    async def _db(self) -> aiosqlite.Connection:
        # Call with self._lock held.
        if self._conn is None:
            import aiosqlite

            if not self.in_memory:
                parent = Path(self.path).parent
                await asyncio.to_thread(parent.mkdir, parents=True, exist_ok=True)
            conn = await aiosqlite.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # autocommit; transactions are explicit below
            )
            try:
                await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                if not self.in_memory:
                    await conn.execute("PRAGMA journal_mode=WAL")
                    await conn.execute("PRAGMA synchronous=NORMAL")
                await conn.executescript(_SCHEMA)
            except BaseException:
                await conn.close()
                raise
            self._conn = conn
        return self._conn

    async def publish(self, event: CloudEvent) -> None:
        """Append ``event`` to the log; an id already in the log is ignored."""
        body = event.to_json()
        async with self._lock:
            db = await self._db()
            await db.execute(
                "INSERT OR IGNORE INTO inwire_events (id, type, published, body) "
                "VALUES (?, ?, ?, ?)",
                (event.id, event.type, time.time(), body),
            )
            if self.retention is not None and time.monotonic() - self._last_prune > _PRUNE_EVERY:
                await self._prune(db, time.time() - self.retention)
        self._wake()

    async def prune(self, older_than: float) -> None:
        """Delete events published more than ``older_than`` seconds ago."""
        async with self._lock:
            await self._prune(await self._db(), time.time() - older_than)

    async def _prune(self, db: aiosqlite.Connection, before: float) -> None:
        self._last_prune = time.monotonic()
        await db.execute("DELETE FROM inwire_events WHERE published < ?", (before,))
        await db.execute(
            "DELETE FROM inwire_event_deliveries WHERE NOT EXISTS "
            "(SELECT 1 FROM inwire_events e WHERE e.seq = inwire_event_deliveries.seq)"
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
        """A subscription of ``consumer`` to the log (see :meth:`EventBus.subscribe`)."""
        return _SqliteSubscription(
            self, consumer, TypeFilter(types), start=start, ack_wait=ack_wait, batch=batch
        )

    async def ping(self) -> None:
        """Raise if the log file cannot be opened and read."""
        async with self._lock:
            db = await self._db()
            await db.execute("SELECT 1 FROM inwire_events LIMIT 1")

    async def close(self) -> None:
        """Close the connection (an in-memory log is gone afterwards)."""
        async with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                await conn.close()

    # -- used by subscriptions -------------------------------------------------------------

    def _wake(self) -> None:
        for waiter in self._waiters:
            waiter.set()

    async def _wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``, returning early when this process publishes."""
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter.wait(), seconds)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)

    async def _join(self, consumer: str, start: Start) -> None:
        async with self._lock:
            db = await self._db()
            await db.execute(
                "INSERT OR IGNORE INTO inwire_event_consumers (name, cursor, created) "
                "VALUES (?, CASE WHEN ? = 'new' THEN "
                "(SELECT COALESCE(MAX(seq), 0) FROM inwire_events) ELSE 0 END, ?)",
                (consumer, start, time.time()),
            )

    async def _claim(
        self, consumer: str, types: TypeFilter, limit: int, ack_wait: float
    ) -> list[tuple[int, int, str]]:
        """(seq, attempt, body) of up to ``limit`` events now owed to ``consumer``."""
        async with self._lock:
            db = await self._db()
            try:
                await db.execute("BEGIN IMMEDIATE")
                claimed = await self._claim_in_tx(db, consumer, types, limit, ack_wait)
                await db.execute("COMMIT")
            except BaseException:
                # Also on cancellation: statements already handed to the connection's
                # thread run regardless, so end whatever transaction they began.
                await asyncio.shield(_rollback(db))
                raise
        return claimed

    async def _claim_in_tx(
        self,
        db: aiosqlite.Connection,
        consumer: str,
        types: TypeFilter,
        limit: int,
        ack_wait: float,
    ) -> list[tuple[int, int, str]]:
        now = time.time()
        visible_at = now + ack_wait
        out: list[tuple[int, int, str]] = []
        # 1. Deliveries that are due again: nacked, or not acked in time.
        async with db.execute(
            "SELECT d.seq, d.attempts + 1, e.body FROM inwire_event_deliveries d "
            "JOIN inwire_events e ON e.seq = d.seq "
            "WHERE d.consumer = ? AND d.visible_at <= ? ORDER BY d.seq LIMIT ?",
            (consumer, now, limit),
        ) as cur:
            out.extend((int(r[0]), int(r[1]), str(r[2])) for r in await cur.fetchall())
        if out:
            await db.executemany(
                "UPDATE inwire_event_deliveries SET attempts = ?, visible_at = ? "
                "WHERE consumer = ? AND seq = ?",
                [(attempt, visible_at, consumer, seq) for seq, attempt, _ in out],
            )
        room = limit - len(out)
        if room <= 0:
            return out
        # 2. New events past the cursor; the cursor moves over non-matching ones too.
        async with db.execute(
            "SELECT cursor FROM inwire_event_consumers WHERE name = ?", (consumer,)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return out
        cursor = int(row[0])
        async with db.execute(
            "SELECT seq, type, body FROM inwire_events WHERE seq > ? ORDER BY seq LIMIT ?",
            (cursor, _SCAN_LIMIT),
        ) as cur:
            scanned = await cur.fetchall()
        fresh: list[tuple[int, int, str]] = []
        for seq, event_type, body in scanned:
            if len(fresh) == room:
                break
            cursor = int(seq)
            if types.matches(str(event_type)):
                fresh.append((int(seq), 1, str(body)))
        if fresh:
            await db.executemany(
                "INSERT OR REPLACE INTO inwire_event_deliveries "
                "(consumer, seq, attempts, visible_at) VALUES (?, ?, 1, ?)",
                [(consumer, seq, visible_at) for seq, _, _ in fresh],
            )
        if cursor != int(row[0]):
            await db.execute(
                "UPDATE inwire_event_consumers SET cursor = ? WHERE name = ?", (cursor, consumer)
            )
        return out + fresh

    async def _settle(self, consumer: str, seq: int, delay: float | None) -> None:
        async with self._lock:
            db = await self._db()
            if delay is None:
                await db.execute(
                    "DELETE FROM inwire_event_deliveries WHERE consumer = ? AND seq = ?",
                    (consumer, seq),
                )
            else:
                await db.execute(
                    "UPDATE inwire_event_deliveries SET visible_at = ? "
                    "WHERE consumer = ? AND seq = ?",
                    (time.time() + delay, consumer, seq),
                )
        if delay is not None and delay <= 0:
            self._wake()


async def _rollback(db: aiosqlite.Connection) -> None:
    import sqlite3

    with contextlib.suppress(sqlite3.OperationalError):  # no transaction was active
        await db.execute("ROLLBACK")


class MemoryEventBus(SqliteEventBus):
    """The SQLite event log kept in this process's memory: same behaviour, no file.

    Every instance is its own bus; use one instance for publishers and subscribers.
    """

    def __init__(self, *, poll_interval: float = 0.2) -> None:
        super().__init__(":memory:", poll_interval=poll_interval, retention=None)


class _SqliteSubscription(Subscription):
    def __init__(
        self,
        bus: SqliteEventBus,
        consumer: str,
        types: TypeFilter,
        *,
        start: Start,
        ack_wait: float,
        batch: int,
    ) -> None:
        super().__init__(consumer, types, start=start, ack_wait=ack_wait, batch=batch)
        self._bus = bus

    async def _open(self) -> None:
        await self._bus._join(self.consumer, self.start)

    async def _fetch(self, max_events: int, wait: float) -> list[Delivery]:
        deadline = time.monotonic() + wait
        while True:
            claimed = await self._bus._claim(self.consumer, self.types, max_events, self.ack_wait)
            deliveries: list[Delivery] = []
            for seq, attempt, body in claimed:
                try:
                    event = CloudEvent.from_json(body)
                except ValueError:
                    # Publish validates events, so only a foreign writer gets here; a row
                    # no one can read would otherwise come back forever.
                    log.exception("dropping an unreadable event", extra={"seq": seq})
                    await self._bus._settle(self.consumer, seq, None)
                    continue
                deliveries.append(Delivery(event, attempt, self._settler(seq)))
            if deliveries:
                return deliveries
            if claimed:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            await self._bus._wait(min(left, self._bus.poll_interval))

    def _settler(self, seq: int) -> Callable[[float | None], Awaitable[None]]:
        async def settle(delay: float | None) -> None:
            await self._bus._settle(self.consumer, seq, delay)

        return settle
