"""Every ModelOps table, imported so that its metadata is complete (migrations, tests).

A concept's ``models`` module (its ORM tables) joins here once it exists; the job tables
and the outbox are in ``db``. (The registry concept is itself called ``models``, so its
tables are ``inwire.services.modelops.models.models``.)
"""

from __future__ import annotations

from importlib import import_module

from inwire.services.modelops.db import JOB_TABLES, OUTBOX, ModelOpsBase

#: The concept folders of ModelOps, in dependency order.
CONCEPTS: tuple[str, ...] = ("models", "builds", "deployments", "monitoring", "governance")


def _import_models() -> None:
    for name in CONCEPTS:
        module = f"inwire.services.modelops.{name}.models"
        try:
            import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module and exc.name != module.rpartition(".")[0]:
                raise


_import_models()

metadata = ModelOpsBase.metadata

__all__ = ["CONCEPTS", "JOB_TABLES", "OUTBOX", "metadata"]
