"""First start: an organization and an owner with a random password, printed once."""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
from pathlib import Path

from sqlalchemy import func, select

from inwire.kit.ids import new_id
from inwire.services.core.context import CoreContext
from inwire.services.core.organizations.models import Membership, Organization
from inwire.services.core.users.models import User

log = logging.getLogger("inwire.core.bootstrap")


async def bootstrap(core: CoreContext) -> bool:
    """Create the first organization and admin when there is no user yet; True if it did."""
    settings = core.settings
    async with core.db.session() as session:
        if (await session.scalar(select(func.count()).select_from(User))) or 0:
            return False
        password = secrets.token_urlsafe(18)
        org = Organization(
            id=new_id("org"),
            name=settings.bootstrap_organization,
            slug=settings.bootstrap_organization.lower().replace(" ", "-"),
        )
        user = User(
            id=new_id("usr"),
            email=settings.bootstrap_admin_email.lower(),
            name="Administrator",
            password_hash=await core.passwords.hash(password),
            default_organization_id=org.id,
        )
        session.add_all([org, user])
        await session.flush()
        session.add(
            Membership(id=new_id("mem"), organization_id=org.id, user_id=user.id, role="owner")
        )
    path = write_credentials(
        Path(settings.home),
        {
            "url": settings.public_url,
            "email": user.email,
            "password": password,
            "organization_id": org.id,
        },
    )
    # Printed once on purpose: this is the only time the password is shown (ARCHITECTURE §5).
    sys.stdout.write(
        f"\nInwire admin created: {user.email} / {password}\n"
        f"Saved to {path} (mode 0600). Change it with POST /api/v1/auth/password/change.\n\n"
    )
    sys.stdout.flush()
    log.info("bootstrap admin created", extra={"credentials_file": str(path)})
    return True


def write_credentials(home: Path, values: dict[str, str]) -> Path:
    """Write ``$INWIRE_HOME/credentials`` readable by the owner only."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "credentials"
    tmp = home / f".credentials.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)
    return path
