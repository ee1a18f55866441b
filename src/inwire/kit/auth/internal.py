"""Calls only the platform's own services may make: the internal secret.

A few endpoints hand out what no user may see, such as Core giving an integration's
decrypted credentials to the Synthex job that imports through it. Such a call carries the
installation's internal secret in ``X-Inwire-Internal``. The services share the secret
through ``INWIRE_INTERNAL_SECRET`` or, embedded, the file ``$INWIRE_HOME/internal-secret``
made on first use; the gateway strips the header from every incoming request, so it never
arrives from outside.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request

from inwire.kit.errors import Forbidden
from inwire.kit.settings import ServiceSettings, secret_in_home

#: The request header carrying the internal secret.
INTERNAL_HEADER = "X-Inwire-Internal"
#: Name of the file in ``$INWIRE_HOME`` holding the embedded installation's secret.
INTERNAL_SECRET_FILE = "internal-secret"


def internal_secret(settings: ServiceSettings) -> str:
    """The configured ``internal_secret``, or the one shared through the home folder."""
    if settings.internal_secret:
        return settings.internal_secret
    return secret_in_home(settings.home / INTERNAL_SECRET_FILE, lambda: secrets.token_urlsafe(32))


def internal_headers(settings: ServiceSettings) -> dict[str, str]:
    """Headers that mark a request as coming from a platform service."""
    return {INTERNAL_HEADER: internal_secret(settings)}


def is_internal(presented: str | None, settings: ServiceSettings) -> bool:
    """Whether ``presented`` is the internal secret (compared in constant time)."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode(), internal_secret(settings).encode())


def _require_internal(request: Request) -> None:
    settings: ServiceSettings = request.app.state.settings
    if not is_internal(request.headers.get(INTERNAL_HEADER), settings):
        raise Forbidden(
            "Only the platform's services may call this endpoint",
            code="INTERNAL_ONLY",
            details=[{"field": INTERNAL_HEADER, "message": "missing or wrong"}],
        )


#: A route dependency: 403 ``INTERNAL_ONLY`` unless the request carries the internal secret.
InternalCallDep = Annotated[None, Depends(_require_internal)]
