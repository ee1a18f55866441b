"""Every Synthex table, imported so that Synthex's metadata is complete (migrations, tests).

A concept's ``models`` module joins here once it exists; the job tables are in ``db``.
"""

from __future__ import annotations

from importlib import import_module

from inwire.services.synthex.db import JOB_TABLES, SynthexBase

#: The concept folders of Synthex, in dependency order.
CONCEPTS: tuple[str, ...] = ("datasets", "profiles", "recipes", "generators", "evaluations")


def _import_models() -> None:
    for name in CONCEPTS:
        module = f"inwire.services.synthex.{name}.models"
        try:
            import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module and exc.name != module.rpartition(".")[0]:
                raise


_import_models()

metadata = SynthexBase.metadata

__all__ = ["CONCEPTS", "JOB_TABLES", "metadata"]
