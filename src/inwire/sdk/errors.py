"""Typed errors of the SDK: the platform's own error classes, rebuilt from the envelope.

Every failed call raises an :class:`InwireError` subclass chosen by the envelope's ``code``
(``NOT_FOUND`` -> :class:`NotFound`, ``FORBIDDEN`` -> :class:`Forbidden`, ...), with the
server's ``message``, ``details`` and HTTP ``status``. These are the classes the services
raise, so code shared between a service and a script catches the same types.
"""

from __future__ import annotations

from inwire.kit.errors import (
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    InwireError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    UpstreamTimeout,
)

__all__ = [
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "InwireError",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "Unreachable",
    "UnsupportedMediaType",
    "UpstreamTimeout",
]


class Unreachable(Unavailable):
    """No answer at all: the address refuses connections, does not resolve, or drops them.

    A subclass of :class:`Unavailable` (503) so ``except Unavailable`` still catches it;
    ``url`` is the address that could not be reached.
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url
