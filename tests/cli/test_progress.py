"""``inwire.cli.progress``: following a job to its end, and counting steps."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from rich.console import Console

from inwire.cli.progress import follow, steps


@dataclass(frozen=True)
class State:
    """A job as a service reports it."""

    status: str
    progress: float


def recording_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=100, force_terminal=False), out


def test_follow_polls_until_a_final_status_and_returns_it() -> None:
    states = iter([State("queued", 0), State("running", 0.4), State("succeeded", 0.9)])
    waits: list[float] = []
    console, out = recording_console()

    final = follow(
        lambda: next(states),
        description="Generating",
        interval=0.25,
        console=console,
        sleep=waits.append,
    )

    assert final == State("succeeded", 0.9)
    assert waits == [0.25, 0.25]
    shown = out.getvalue()
    assert "Generating" in shown
    assert "succeeded" in shown
    assert "100%" in shown


def test_follow_stops_at_failure_with_the_progress_reached() -> None:
    states = iter([State("running", 0.3), State("failed", 0.3)])
    console, out = recording_console()

    final = follow(lambda: next(states), console=console, sleep=lambda _: None)

    assert final.status == "failed"
    assert "30%" in out.getvalue()


def test_follow_gives_up_after_the_timeout() -> None:
    console, _ = recording_console()

    with pytest.raises(TimeoutError, match="still running"):
        follow(lambda: State("running", 0.1), timeout=0, console=console, sleep=lambda _: None)


def test_follow_refuses_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        follow(lambda: State("running", 0), interval=0)


def test_steps_counts_to_the_total() -> None:
    console, out = recording_console()

    with steps(4, description="Uploading", console=console) as advance:
        for _ in range(4):
            advance()

    assert "Uploading" in out.getvalue()
    assert "100%" in out.getvalue()
