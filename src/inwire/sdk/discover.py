"""What answers at an address: a service itself, or the platform's front door.

``Client(url)`` assumes ``url`` is the gateway. Tools that take one address from a person
(``inwire login --url``) ask first: a service answers ``GET /health`` with its own name
(``{"service": "core"}``); the gateway and ``inwire up --one-process`` answer otherwise.
"""

from __future__ import annotations

from inwire.sdk.errors import Unreachable

__all__ = ["service_at"]


def service_at(url: str, *, timeout: float = 5.0) -> str | None:
    """The service named by ``url``'s ``/health`` (``"core"``), or ``None`` for a front door.

    Raises :class:`~inwire.sdk.errors.Unreachable` when nothing answers there.
    """
    import httpx

    health = f"{url.rstrip('/')}/health"
    try:
        response = httpx.get(health, timeout=timeout, trust_env=False)
    except httpx.HTTPError as exc:
        raise Unreachable(f"Cannot reach {url}: {exc or type(exc).__name__}", url=url) from exc
    try:
        body = response.json()
    except ValueError:
        return None
    name = body.get("service") if isinstance(body, dict) else None
    if response.status_code != 200 or not isinstance(name, str) or name == "gateway":
        return None
    return name
