"""What Core's handlers share for the life of the app: settings, keys, hashers, limiters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from inwire.kit.db import Database
from inwire.kit.ratelimit import RateLimiter
from inwire.services.core.audit.service import ClientInfo
from inwire.services.core.mail import Mailer
from inwire.services.core.security import Passwords, Sealer
from inwire.services.core.settings import CoreSettings

if TYPE_CHECKING:
    from inwire.services.core.auth.keyring import Keyring


@dataclass
class CoreContext:
    """Built in Core's lifespan, reached through ``CoreDep``."""

    settings: CoreSettings
    db: Database
    passwords: Passwords
    sealer: Sealer
    keyring: Keyring
    limiter: RateLimiter
    mailer: Mailer


async def get_core(request: Request) -> CoreContext:
    """The app's Core context."""
    core: CoreContext = request.app.state.core
    return core


async def client_info(request: Request) -> ClientInfo:
    """The caller's address and user agent."""
    ip = request.client.host if request.client else ""
    return ClientInfo(ip=ip, user_agent=request.headers.get("user-agent", ""))


CoreDep = Annotated[CoreContext, Depends(get_core)]
ClientDep = Annotated[ClientInfo, Depends(client_info)]
