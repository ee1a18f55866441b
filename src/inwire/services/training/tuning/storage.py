"""Optuna's storage in the service's own database: a journal backend over ``tuning_journal``.

Optuna offers two ways to keep a study in a database of ours, and this module takes the
second:

* ``optuna.storages.RDBStorage`` needs a *synchronous* SQLAlchemy driver. The service talks
  to its database through async drivers (aiosqlite, asyncpg) and ships no synchronous
  PostgreSQL driver (neither psycopg nor psycopg2 is a dependency), so on PostgreSQL it
  cannot run at all. It also creates a dozen tables of its own and migrates them with its
  own Alembic history, whose ``alembic_version`` table would clash with the service's in
  the same schema, and none of its tables would be in our migration.
* ``optuna.storages.JournalStorage`` with a backend of our own. The backend is two
  methods: append operations to a log, read the log from a position. Optuna replays the log
  into its in-memory study, so every sampler, pruner and ``enqueue_trial`` works unchanged.
  The log here is ``tuning_journal``: one row per operation, numbered 0, 1, 2… per tuning
  job, in the service's schema and its Alembic migration, written and read through the
  service's async ``Database`` on SQLite and PostgreSQL alike.

A retried attempt builds a new ``JournalStorage`` over the same rows and sees the study as
the dead attempt left it: its trials, their params and intermediate values.

Optuna calls the backend from its optimisation threads while the job's event loop owns the
database; each call is handed to that loop (``run_coroutine_threadsafe``) and waited for.
Never call the backend from the loop's own thread.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from optuna.storages.journal import BaseJournalBackend
from sqlalchemy.exc import IntegrityError

from inwire.kit.db import Database
from inwire.services.training.tuning.repository import JournalRepository

T = TypeVar("T")

#: Tries of an append that raced another writer for the same sequence numbers.
APPEND_TRIES = 5


class DatabaseJournal(BaseJournalBackend):
    """The journal of one tuning job's study in ``tuning_journal``.

    Process-safe as Optuna requires: entries are numbered by the primary key
    ``(tuning_job_id, seq)``, so two writers cannot both take a number; the loser
    re-reads the end of the log and tries again.
    """

    def __init__(self, db: Database, tuning_job_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.db = db
        self.tuning_job_id = tuning_job_id
        self.loop = loop

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        """Entries from number ``log_number_from`` on, in order."""
        return self._wait(self._read(log_number_from))

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append entries after the last one, atomically."""
        self._wait(self._append([json.dumps(entry) for entry in logs]))

    async def _read(self, start: int) -> list[dict[str, Any]]:
        async with self.db.session(write=False) as session:
            texts = await JournalRepository(session).read(self.tuning_job_id, start)
        return [json.loads(text) for text in texts]

    async def _append(self, texts: list[str]) -> None:
        for attempt in range(APPEND_TRIES):
            try:
                async with self.db.session() as session:
                    await JournalRepository(session).append(self.tuning_job_id, texts)
                return
            except IntegrityError:
                if attempt == APPEND_TRIES - 1:
                    raise


class ReplayJournal(BaseJournalBackend):
    """A journal already read into memory, for reading a study outside its job (read-only)."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.logs = [json.loads(text) for text in texts]

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        """Entries from number ``log_number_from`` on."""
        return self.logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Refused: a replayed study is only read."""
        raise RuntimeError("a replayed tuning journal is read-only")
