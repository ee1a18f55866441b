"""Progress bars for long work, on stderr: ``follow`` a job until it ends, or count steps.

Jobs (``kit.jobs``) report ``status`` (queued, running, succeeded, failed, cancelled) and
``progress`` from 0 to 1; a command that starts one polls it with :func:`follow`::

    job = follow(lambda: client.synthex.jobs.get(job_id), description="Generating")
    if job.status != "succeeded": fail(job.error)

For work the command does itself, :func:`steps` gives a bar and a function to advance it.
Bars draw on stderr so that ``-o json`` output stays clean; where stderr is not a terminal
Rich draws nothing until the end (no control characters in logs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["FINAL_STATUSES", "JobState", "follow", "steps"]

#: Statuses after which a job never changes again (as ``kit.jobs.JobStatus``).
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class JobState(Protocol):
    """What :func:`follow` reads from a job: its status and progress (0-1)."""

    @property
    def status(self) -> str: ...

    @property
    def progress(self) -> float: ...


S = TypeVar("S", bound=JobState)


def _progress(console: Console | None, *, transient: bool) -> Progress:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=transient,
    )


def follow(
    poll: Callable[[], S],
    *,
    description: str = "Working",
    interval: float = 1.0,
    timeout: float | None = None,
    console: Console | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> S:
    """Poll ``poll()`` every ``interval`` seconds, drawing its progress, until a final status.

    Returns the last state read. Raises ``TimeoutError`` after ``timeout`` seconds (the job
    keeps running; follow it again or cancel it).
    """
    if interval <= 0:
        raise ValueError("interval must be positive")
    deadline = None if timeout is None else time.monotonic() + timeout
    with _progress(console, transient=False) as bar:
        task = bar.add_task(description, total=1.0, status="")
        while True:
            state = poll()
            done = state.status in FINAL_STATUSES
            shown = 1.0 if state.status == "succeeded" else min(max(state.progress, 0.0), 1.0)
            bar.update(task, completed=shown, status=state.status)
            if done:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{description}: still {state.status} after {timeout:g} s")
            sleep(interval)


@contextmanager
def steps(
    total: float | None, *, description: str = "Working", console: Console | None = None
) -> Iterator[Callable[[float], None]]:
    """A bar of ``total`` steps (``None``: unknown); yields ``advance(n=1)``."""
    with _progress(console, transient=False) as bar:
        task = bar.add_task(description, total=total, status="")

        def advance(amount: float = 1.0) -> None:
            bar.advance(task, amount)

        yield advance
