"""Inwire: an open-source, self-hostable ML lifecycle platform.

``inwire.Client`` and ``inwire.AsyncClient`` (the SDK, :mod:`inwire.sdk`) and the tracking
functions (``inwire.start_run``, ``inwire.log_metric``, ...; :mod:`inwire.sdk.tracking`) are
imported on first use, so ``import inwire`` stays cheap for the command line and the services.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
    "__version__",
    "active_run",
    "end_run",
    "flush",
    "log_artifact",
    "log_artifacts",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "set_tag",
    "set_tags",
    "start_run",
]

#: Names of :mod:`inwire.sdk.tracking` offered here, like MLflow's ``mlflow.log_metric``.
_TRACKING = frozenset(__all__) - {"AsyncClient", "Client", "__version__"}

if TYPE_CHECKING:
    from inwire.sdk import AsyncClient, Client
    from inwire.sdk.tracking import (
        active_run,
        end_run,
        flush,
        log_artifact,
        log_artifacts,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        set_tag,
        set_tags,
        start_run,
    )


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        from inwire import sdk

        return getattr(sdk, name)
    if name in _TRACKING:
        from inwire.sdk import tracking

        return getattr(tracking, name)
    raise AttributeError(f"module 'inwire' has no attribute {name!r}")
