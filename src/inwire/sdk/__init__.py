"""The public Python client of Inwire: :class:`Client` (blocking) and :class:`AsyncClient`.

    import inwire

    with inwire.Client("http://127.0.0.1:8080", api_key="iwk_...") as client:
        team = client.core.teams.create("forecasting")
        for key in client.core.api_keys.iter():
            print(key.name, key.status)

Errors are :mod:`inwire.sdk.errors` classes; models are in :mod:`inwire.sdk.models`.
See ``docs/sdk.md``.
"""

from __future__ import annotations

from inwire.sdk import errors, models
from inwire.sdk.client import DEFAULT_URL, AsyncClient, Client
from inwire.sdk.discover import service_at
from inwire.sdk.retry import RetryPolicy
from inwire.sdk.session import Tokens
from inwire.sdk.tracking import ActiveRun, TrackingError, start_run

__all__ = [
    "DEFAULT_URL",
    "ActiveRun",
    "AsyncClient",
    "Client",
    "RetryPolicy",
    "Tokens",
    "TrackingError",
    "errors",
    "models",
    "service_at",
    "start_run",
]
