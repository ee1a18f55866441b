"""The async engine of one service and the session each request gets."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 15_000

#: Whether the current task's next SQLite transaction will write. In WAL mode a deferred
#: transaction that read before another connection committed cannot start writing: SQLite
#: answers SQLITE_BUSY_SNAPSHOT at once, without waiting for busy_timeout. Transactions that
#: may write therefore start with BEGIN IMMEDIATE, which takes the write lock up front (and
#: does wait for busy_timeout); read-only requests keep plain, concurrent BEGIN.
_sqlite_write_intent: ContextVar[bool] = ContextVar("inwire_sqlite_write_intent", default=True)


AfterTransaction = Callable[[], Awaitable[None]]
_AFTER_KEY = "inwire_after_transaction"


def after_transaction(session: AsyncSession, callback: AfterTransaction) -> None:
    """Run ``callback`` once the session's transaction has ended, committed or rolled back.

    For writes that must outlive a failing request, such as a failed login in the audit
    log: the callback opens a session of its own. Writing from a second session while the
    first still holds SQLite's write lock would wait on itself.
    """
    session.info.setdefault(_AFTER_KEY, []).append(callback)


def writing() -> bool:
    """Whether the current task's database session was opened to write."""
    return _sqlite_write_intent.get()


WRITES_KEY = "x-inwire-writes"
#: ``openapi_extra`` of a GET route that writes to the database.
WRITES: dict[str, Any] = {WRITES_KEY: True}

#: HTTP methods whose requests only read.
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Database:
    """One service's database: SQLite (WAL, foreign keys, busy timeout) or PostgreSQL.

    On PostgreSQL the service's tables live in their own schema (``schema``), so several
    services can share one database without name clashes.
    """

    def __init__(self, url: str, *, schema: str = "", echo: bool = False) -> None:
        self.url = url
        self.schema = schema
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        elif self.dialect == "postgresql":
            kwargs["pool_pre_ping"] = True
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 10
            if schema:
                kwargs["connect_args"] = {"server_settings": {"search_path": schema}}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    async def prepare(self) -> None:
        """Create the service's schema on PostgreSQL if it does not exist yet."""
        if self.dialect == "postgresql" and self.schema:
            async with self.engine.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))

    async def ping(self) -> None:
        """Raise if the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    @asynccontextmanager
    async def session(self, *, write: bool = True) -> AsyncIterator[AsyncSession]:
        """A session that commits when the block succeeds and rolls back when it raises.

        ``write=False`` promises the block only reads, which lets SQLite run it alongside
        other readers and a writer.
        """
        token = _sqlite_write_intent.set(write)
        callbacks: list[AfterTransaction] = []
        try:
            async with self.sessionmaker() as session:
                try:
                    yield session
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    raise
                finally:
                    callbacks = session.info.pop(_AFTER_KEY, [])
        finally:
            _sqlite_write_intent.reset(token)
            for callback in callbacks:
                try:
                    await callback()
                except Exception:
                    log.exception("after-transaction callback failed")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # The driver's own transaction handling is turned off so that BEGIN is ours (below);
    # otherwise pysqlite defers BEGIN and SAVEPOINTs misbehave (SQLAlchemy docs, "Serializable
    # isolation / Savepoints / Transactional DDL" for pysqlite).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # Opening a WAL database while another connection recovers or removes the WAL can
    # answer "database is locked" at once: SQLite skips the busy handler where waiting
    # could deadlock (sqlite.org/c3ref/busy_handler.html). Seen when a job's own engine
    # opened the file during a test run; a short retry is what the documentation advises.
    for pause in (*_OPEN_RETRY_PAUSES, None):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if pause is None or "locked" not in str(exc):
                raise
            time.sleep(pause)
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


#: Pauses between attempts to open a SQLite database that answered "locked" (2.5 s in all).
_OPEN_RETRY_PAUSES = (0.01, 0.04, 0.15, 0.3, 0.5, 0.5, 1.0)


def _sqlite_begin(conn: Any) -> None:
    write = _sqlite_write_intent.get()
    # A read-only transaction that writes would work on a quiet machine and fail under load
    # ("database is locked": it cannot take the write lock once another connection wrote).
    # query_only makes that mistake fail every time, so tests find it. The pragma is set
    # only when it changes; `conn.info` lives as long as the pooled connection.
    if conn.info.get(_QUERY_ONLY_KEY, False) == write:
        conn.exec_driver_sql(f"PRAGMA query_only={0 if write else 1}")
        conn.info[_QUERY_ONLY_KEY] = not write
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


_QUERY_ONLY_KEY = "inwire_query_only"


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: committed on success, rolled back on error.

    GET, HEAD and OPTIONS requests get a read-only transaction, the others a writing one; a
    GET that writes (an OAuth callback, say) declares ``openapi_extra=WRITES``.
    """
    db: Database = request.app.state.db
    route = request.scope.get("route")
    declared = (getattr(route, "openapi_extra", None) or {}).get(WRITES_KEY, False)
    write = bool(declared) or request.method not in READ_ONLY_METHODS
    async with db.session(write=write) as session:
        yield session


# scope="function": commit before the response is sent, so a failed commit is never a 2xx.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
