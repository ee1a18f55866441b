"""Regenerate a service's initial migration from its models (before the first release only).

Usage: uv run python tools/regen_initial_migration.py core
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from importlib import import_module
from pathlib import Path

from inwire.kit.db.migrations import autogenerate


def main(service: str) -> None:
    """Delete ``0001_initial`` and write it again against an empty SQLite database."""
    app_module = import_module(f"inwire.services.{service}.app")
    location: Path = app_module.MIGRATIONS
    for old in (location / "versions").glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        autogenerate(
            location,
            f"sqlite+aiosqlite:///{tmp}/x.db",
            service=service,
            message="initial",
            rev_id="0001",
        )
    target = location / "versions" / "0001_initial.py"
    for new in (location / "versions").glob("0001_*.py"):
        new.rename(target)
    subprocess.run(["ruff", "check", "--fix", "-q", str(target)], check=False)
    subprocess.run(["ruff", "format", "-q", str(target)], check=True)


if __name__ == "__main__":
    main(sys.argv[1])
