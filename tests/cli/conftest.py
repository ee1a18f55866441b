"""Core on a real port for the CLI's platform commands, and a clean CLI home per test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The running-Core helpers live with the SDK tests; the CLI reaches the same Core.
sys.path.insert(0, str(Path(__file__).parents[1] / "sdk"))

from core_server import RunningCore, served

CLI_ENV = ("INWIRE_URL", "INWIRE_API_KEY", "INWIRE_TOKEN", "INWIRE_OUTPUT", "INWIRE_PASSWORD")


@pytest.fixture
def cli_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The CLI's own INWIRE_HOME (Core keeps its data elsewhere) and no CLI settings."""
    home = tmp_path / "cli-home"
    monkeypatch.setenv("INWIRE_HOME", str(home))
    for name in CLI_ENV:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def served_core(tmp_path: Path) -> Iterator[RunningCore]:
    """Core served by uvicorn on a free port, with its first-start admin."""
    with served(tmp_path / "core-home") as running:
        yield running
