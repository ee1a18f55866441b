"""Calls only the platform's own services may make: the internal secret.

A few endpoints hand out what no user may see, such as Core giving an integration's
decrypted credentials to the Synthex job that imports through it. Such a call carries the
installation's internal secret in ``X-Inwire-Internal``. The services share the secret
through ``INWIRE_INTERNAL_SECRET`` or, embedded, the file ``$INWIRE_HOME/internal-secret``
made on first use; the gateway strips the header from every incoming request, so it never
arrives from outside.

A platform job acting for a user who is not there (a training job reading the dataset its
submitter named) sends the secret with ``X-Inwire-On-Behalf-Of-Org``, ``-Subject`` and
``-Role``: any service's principal resolution (``kit.auth.deps.get_principal``) then acts
as that user, with that role, in that organization. Without the right secret those headers
are refused (403), never ignored.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request

from inwire.kit.auth.permissions import ORG_ROLES
from inwire.kit.auth.principal import Principal
from inwire.kit.errors import Forbidden
from inwire.kit.settings import ServiceSettings, secret_in_home

#: The request header carrying the internal secret.
INTERNAL_HEADER = "X-Inwire-Internal"
#: Headers naming whom an internal call acts for.
ON_BEHALF_ORG = "X-Inwire-On-Behalf-Of-Org"
ON_BEHALF_SUBJECT = "X-Inwire-On-Behalf-Of-Subject"
ON_BEHALF_ROLE = "X-Inwire-On-Behalf-Of-Role"
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


def on_behalf_headers(
    settings: ServiceSettings, org: str, subject: str, role: str
) -> dict[str, str]:
    """Headers of an internal call acting as ``subject`` with ``role`` in ``org``."""
    return {
        **internal_headers(settings),
        ON_BEHALF_ORG: org,
        ON_BEHALF_SUBJECT: subject,
        ON_BEHALF_ROLE: role,
    }


def on_behalf_principal(request: Request) -> Principal | None:
    """The principal an internal call acts for; None when the request names nobody.

    403 when it names someone without the right internal secret, or names them badly.
    """
    org = request.headers.get(ON_BEHALF_ORG)
    subject = request.headers.get(ON_BEHALF_SUBJECT)
    role = request.headers.get(ON_BEHALF_ROLE)
    if org is None and subject is None and role is None:
        return None
    settings: ServiceSettings = request.app.state.settings
    if not is_internal(request.headers.get(INTERNAL_HEADER), settings):
        raise Forbidden(
            "Only the platform's services may act on behalf of a user",
            code="INTERNAL_ONLY",
            details=[{"field": INTERNAL_HEADER, "message": "missing or wrong"}],
        )
    missing = [
        name for name, value in ((ON_BEHALF_ORG, org), (ON_BEHALF_SUBJECT, subject)) if not value
    ]
    if role not in ORG_ROLES:
        missing.append(ON_BEHALF_ROLE)
    if missing or org is None or subject is None or role is None:
        raise Forbidden(
            "An on-behalf call must name an organization, a subject and a role",
            code="INTERNAL_ONLY",
            details=[{"field": name, "message": "missing or invalid"} for name in missing],
        )
    return Principal(subject=subject, org=org, roles=(role,), name="on behalf (internal)")


def is_internal(presented: str | None, settings: ServiceSettings) -> bool:
    """Whether ``presented`` is the internal secret (compared in constant time)."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode(), internal_secret(settings).encode())


async def _require_internal(request: Request) -> None:
    settings: ServiceSettings = request.app.state.settings
    if not is_internal(request.headers.get(INTERNAL_HEADER), settings):
        raise Forbidden(
            "Only the platform's services may call this endpoint",
            code="INTERNAL_ONLY",
            details=[{"field": INTERNAL_HEADER, "message": "missing or wrong"}],
        )


#: A route dependency: 403 ``INTERNAL_ONLY`` unless the request carries the internal secret.
InternalCallDep = Annotated[None, Depends(_require_internal)]
