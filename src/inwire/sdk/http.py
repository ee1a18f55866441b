"""The SDK's calls: the kit's peer client plus credentials, refresh and polite retries.

:class:`PlatformCalls` sits in front of a contract client (``class _Core(PlatformCalls,
CoreClient)``), so every typed method of the contract gains, in one place: the session's
bearer credential, one refresh and retry after ``401 TOKEN_EXPIRED``, retries on 429 and
503 that honour ``Retry-After`` (:mod:`inwire.sdk.retry`), and errors that say which
service at which address failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from inwire import __version__
from inwire.kit.peers import ASGIApp, QueryParams, ServiceClient
from inwire.sdk.errors import (
    InwireError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    Unreachable,
    UpstreamTimeout,
)
from inwire.sdk.retry import RetryPolicy
from inwire.sdk.session import Session, is_anonymous

if TYPE_CHECKING:
    from inwire.kit.peers import _Reply

__all__ = ["PlatformCalls"]

log = logging.getLogger("inwire.sdk")


class PlatformCalls(ServiceClient):
    """Base of the SDK's service clients; put it before the contract client in the bases."""

    # The SDK retries by its own policy (429 too, Retry-After honoured); the peer base's
    # quick retries would multiply with it.
    max_retries: ClassVar[int] = 0
    user_agent: ClassVar[str] = f"inwire-sdk/{__version__}"

    def __init__(
        self,
        service: str,
        base_url: str | None = None,
        *,
        app: ASGIApp | None = None,
        timeout: float,
        session: Session,
        retry: RetryPolicy,
    ) -> None:
        super().__init__(base_url, app=app, timeout=timeout)
        self.service = service
        self.session = session
        self.retry = retry
        self.in_process = app is not None

    @property
    def address(self) -> str:
        """Where this service is reached, for messages."""
        return "in-process app" if self.in_process else self.base_url

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: QueryParams | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Send one call with credentials; refresh once on expiry; retry 429/503 politely."""
        attempt = 0
        renewed = False
        while True:
            bearer = None if is_anonymous() else await self.session.bearer()
            sent = dict(headers or {})
            if bearer is not None and not any(k.lower() == "authorization" for k in sent):
                sent["Authorization"] = f"Bearer {bearer}"
            try:
                return await super().request(method, path, json=json, params=params, headers=sent)
            except Unauthorized as exc:
                if bearer is None or renewed or exc.code != "TOKEN_EXPIRED":
                    raise
                if self.session.api_key is not None:
                    raise
                await self.session.renew(stale=bearer)
                renewed = True
                continue
            except (TooManyRequests, Unavailable) as exc:
                error = self._explain(exc, method, path)
            except UpstreamTimeout as exc:
                raise self._explain(exc, method, path) from exc
            delay = self.retry.delay(error, method, attempt)
            if delay is None:
                raise error
            attempt += 1
            log.info(
                "retrying %s %s in %.2f s after %s (retry %d of %d)",
                method,
                path,
                delay,
                error.code,
                attempt,
                self.retry.max_retries,
            )
            await asyncio.sleep(delay)

    async def _token(self) -> str | None:
        # Uploads and streamed downloads do not pass through request(): they take the
        # session's credential here (without the refresh-and-retry, as a stream cannot be
        # replayed).
        return None if is_anonymous() else await self.session.bearer()

    def _explain(self, exc: InwireError, method: str, path: str) -> InwireError:
        """Name the service and address in errors the transport raised (not the server)."""
        # kit.peers raises Unavailable `from` the HTTP library's connection error and
        # UpstreamTimeout `from` TimeoutError; an error the server answered has no cause.
        cause = exc.__cause__
        if cause is None or isinstance(exc, Unreachable):
            return exc
        where = f"{self.service} at {self.address}"
        if isinstance(exc, UpstreamTimeout):
            timeout = UpstreamTimeout(
                f"{where} did not answer {method} {path} within {self.timeout:g} s"
            )
            timeout.__cause__ = cause
            return timeout
        unreachable = Unreachable(f"Cannot reach {where}: {cause}", url=self.address)
        unreachable.__cause__ = cause
        return unreachable

    def _unwrap(self, reply: _Reply) -> tuple[Any, dict[str, Any]]:
        # Keep the server's Retry-After on every error (the base keeps it for 429 only and
        # only as delta-seconds), so that 503 waits as long as the server asks too.
        try:
            return super()._unwrap(reply)
        except InwireError as exc:
            retry_after = reply.headers.get("retry-after")
            if retry_after is not None:
                exc.headers = {**exc.headers, "Retry-After": retry_after}
            raise
