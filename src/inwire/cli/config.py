"""Where the CLI keeps its sign-in: ``$INWIRE_HOME/cli.json``, readable by its owner only.

The file holds the platform's address and the session's tokens (or the API key it was
given). Refresh tokens rotate on every use, so the file is rewritten each time the SDK
reports new tokens; an old copy would be refused and would end the session (reuse
detection). Writes go to a temporary file created with mode 0600 and then replace the
old one, so a reader never sees half a file and the secret is never world-readable.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["CliConfig", "config_path", "inwire_home", "load", "save"]

FILE_NAME = "cli.json"


def inwire_home() -> Path:
    """``$INWIRE_HOME``, or ``~/.inwire``."""
    value = os.environ.get("INWIRE_HOME", "").strip()
    return Path(value).expanduser() if value else Path.home() / ".inwire"


def config_path() -> Path:
    """The CLI's credentials file."""
    return inwire_home() / FILE_NAME


@dataclass(frozen=True)
class CliConfig:
    """The saved sign-in: address, who, and the credentials to send."""

    url: str
    core_url: str | None = None
    email: str | None = None
    organization_id: str | None = None
    api_key: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: str | None = None

    @property
    def signed_in(self) -> bool:
        """Whether the file holds credentials."""
        return bool(self.api_key or self.access_token)

    @property
    def token_expires_at(self) -> datetime | None:
        """``expires_at`` as a datetime."""
        return datetime.fromisoformat(self.expires_at) if self.expires_at else None

    def signed_out(self) -> CliConfig:
        """The same address and e-mail, without any secret."""
        return CliConfig(url=self.url, core_url=self.core_url, email=self.email)

    def with_tokens(
        self,
        access_token: str,
        refresh_token: str | None,
        expires_at: datetime | None,
        organization_id: str | None,
    ) -> CliConfig:
        """The same sign-in with new tokens."""
        return replace(
            self,
            api_key=None,
            access_token=access_token,
            refresh_token=refresh_token,
            expires_at=expires_at.isoformat() if expires_at else None,
            organization_id=organization_id or self.organization_id,
        )


def load(path: Path | None = None) -> CliConfig | None:
    """The saved configuration, or ``None`` when there is none (or it is unreadable)."""
    path = path or config_path()
    try:
        raw: Any = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
        return None
    known = {f.name for f in fields(CliConfig)} - {"url"}
    values = {k: v for k, v in raw.items() if k in known and (v is None or isinstance(v, str))}
    return CliConfig(raw["url"], **values)


def save(config: CliConfig, path: Path | None = None) -> Path:
    """Write ``config`` with mode 0600 (the folder is created with 0700 if missing)."""
    path = path or config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({k: v for k, v in asdict(config).items() if v is not None}, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o600)  # an existing temp file keeps its mode through O_CREAT
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
