"""Inwire: an open-source, self-hostable ML lifecycle platform.

``inwire.Client`` and ``inwire.AsyncClient`` (the SDK, :mod:`inwire.sdk`) are imported on
first use, so ``import inwire`` stays cheap for the command line and the services.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["AsyncClient", "Client", "__version__"]

if TYPE_CHECKING:
    from inwire.sdk import AsyncClient, Client


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        from inwire import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'inwire' has no attribute {name!r}")
