"""Errors that carry their own HTTP status and wire code.

Services raise these and never ``HTTPException``; the app turns them into the spec's error
envelope ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class InwireError(Exception):
    """Base error: a stable machine code, a human message, an HTTP status and details."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers or {}
        if code is not None:
            self.code = code  # type: ignore[misc]

    def body(self) -> dict[str, Any]:
        """The error envelope for this error."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class Invalid(InwireError):
    """The request is well-formed but its content breaks a rule (400)."""

    status = 400
    code = "VALIDATION_ERROR"


class Unauthorized(InwireError):
    """Missing, expired or otherwise unacceptable credentials (401)."""

    status = 401
    code = "UNAUTHORIZED"

    def __init__(self, message: str = "Authentication required", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kw)


class Forbidden(InwireError):
    """The principal is known but lacks the permission (403)."""

    status = 403
    code = "FORBIDDEN"


class NotFound(InwireError):
    """No such resource in the caller's organization (404); never reveals other tenants."""

    status = 404
    code = "NOT_FOUND"


class MethodNotAllowed(InwireError):
    """The route exists but not for this HTTP method (405)."""

    status = 405
    code = "METHOD_NOT_ALLOWED"


class Conflict(InwireError):
    """The change collides with existing state, e.g. a duplicate name (409)."""

    status = 409
    code = "CONFLICT"


class Gone(InwireError):
    """The resource existed but is no longer usable, e.g. a spent token (410)."""

    status = 410
    code = "GONE"


class PayloadTooLarge(InwireError):
    """The request body exceeds the configured limit (413)."""

    status = 413
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(InwireError):
    """The request's content type is not one the endpoint accepts (415)."""

    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class TooManyRequests(InwireError):
    """A rate limit or throttle was hit (429); ``retry_after`` seconds go in Retry-After."""

    status = 429
    code = "RATE_LIMITED"

    def __init__(
        self, message: str = "Too many requests", *, retry_after: float = 1.0, **kw: Any
    ) -> None:
        headers = kw.pop("headers", None) or {}
        headers.setdefault("Retry-After", str(max(1, int(retry_after + 0.999))))
        super().__init__(message, headers=headers, **kw)
        self.retry_after = retry_after


class Unavailable(InwireError):
    """A dependency is down or the service cannot serve right now (503)."""

    status = 503
    code = "SERVICE_UNAVAILABLE"


class UpstreamTimeout(InwireError):
    """A peer did not answer in time (504)."""

    status = 504
    code = "UPSTREAM_TIMEOUT"


_BY_CODE: dict[str, type[InwireError]] = {}


def _index(cls: type[InwireError]) -> None:
    for sub in cls.__subclasses__():
        _BY_CODE.setdefault(sub.code, sub)
        _index(sub)


def error_from_envelope(status: int, body: Any) -> InwireError:
    """Rebuild a typed error from a peer's error envelope (used by clients)."""
    if not _BY_CODE:
        _index(InwireError)
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        e = InwireError(f"Unexpected response with status {status}")
        e.status = status  # type: ignore[misc]
        return e
    code = str(err.get("code", "INTERNAL_ERROR"))
    cls = _BY_CODE.get(code)
    if cls is None:
        cls = next((c for c in _BY_CODE.values() if c.status == status), InwireError)
    exc = cls.__new__(cls)
    InwireError.__init__(
        exc, str(err.get("message", "")), details=err.get("details") or [], code=code
    )
    exc.status = status  # type: ignore[misc]
    return exc
