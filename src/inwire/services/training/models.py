"""Every Model Training table, imported so that its metadata is complete (migrations, tests).

A concept's ``models`` module joins here once it exists; the job tables are in ``db``.
"""

from __future__ import annotations

from importlib import import_module

from inwire.services.training.db import JOB_TABLES, TrainingBase

#: The concept folders of Model Training, in dependency order.
CONCEPTS: tuple[str, ...] = (
    "experiments",
    "runs",
    "artifacts",
    "mlflow",
    "trainjobs",
    "tuning",
)


def _import_models() -> None:
    for name in CONCEPTS:
        module = f"inwire.services.training.{name}.models"
        try:
            import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module and exc.name != module.rpartition(".")[0]:
                raise


_import_models()

metadata = TrainingBase.metadata

__all__ = ["CONCEPTS", "JOB_TABLES", "metadata"]
