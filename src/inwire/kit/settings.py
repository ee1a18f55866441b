"""Service settings from ``INWIRE_<SERVICE>_<NAME>`` variables, falling back to ``INWIRE_<NAME>``.

Built in ``create_app`` and passed down, never read from a global. Every backend is a URL.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


def default_home() -> Path:
    """``$INWIRE_HOME``, or ``~/.inwire``."""
    return Path("~/.inwire").expanduser()


#: Where Core's key set is, relative to Core's base URL.
JWKS_PATH = "/.well-known/jwks.json"


def secret_in_home(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in ``path`` (mode 0600), made with ``make()`` on first use.

    Services of one installation share such a secret through ``$INWIRE_HOME``. Several may
    start at once, so the file appears whole or not at all: written under a temporary name
    and hard-linked into place, where the first link wins and everyone reads the winner's.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, make().encode())
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: theirs is the one
        finally:
            tmp.unlink()
    return path.read_text().strip()


class ServiceSettings(BaseSettings):
    """Settings every service has. Subclasses set ``service`` and ``env_prefix``."""

    service: ClassVar[str] = "service"
    default_port: ClassVar[int] = 8000
    model_config = SettingsConfigDict(
        extra="ignore", env_prefix="INWIRE_SERVICE_", populate_by_name=True
    )

    home: Path = Field(default_factory=default_home, validation_alias=AliasChoices("INWIRE_HOME"))
    host: str = "127.0.0.1"
    port: int = 0
    database_url: str = ""
    database_schema: str = ""
    storage_url: str = ""
    events_url: str = ""
    cache_url: str = "memory://"
    jobs_url: str = "local"
    jobs_concurrency: int = 2
    jwks_url: str = "http://127.0.0.1:18000/.well-known/jwks.json"
    #: Core's base URL for calls from this service and its jobs; empty: the URL ``jwks_url``
    #: is under (``http://127.0.0.1:18000`` otherwise).
    core_url: str = ""
    #: Shared by the platform's services to prove a call comes from one of them (header
    #: ``X-Inwire-Internal``); empty: the one in ``$INWIRE_HOME/internal-secret``.
    internal_secret: str = Field(default="", repr=False)
    issuer: str = "inwire"
    audience: str = "inwire"
    migrate_on_start: bool = True
    max_body_bytes: int = 10 * 1024 * 1024
    log_level: str = "INFO"
    log_json: bool = True
    cors_origins: list[str] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Service-specific variables win over platform-wide ``INWIRE_<NAME>`` ones."""
        shared = EnvSettingsSource(settings_cls, env_prefix="INWIRE_")
        return init_settings, env_settings, shared, dotenv_settings, file_secret_settings

    @model_validator(mode="after")
    def _fill_defaults(self) -> ServiceSettings:
        home = self.home.expanduser()
        self.home = home
        if not self.port:
            self.port = self.default_port
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{home / 'db' / self.service}.db"
        if not self.database_schema and self.database_url.startswith("postgresql"):
            self.database_schema = self.service
        if not self.storage_url:
            self.storage_url = f"file://{home / 'objects'}"
        if not self.events_url:
            self.events_url = f"sqlite:///{home / 'events.db'}"
        if not self.core_url:
            under = self.jwks_url.startswith(("http://", "https://")) and self.jwks_url.endswith(
                JWKS_PATH
            )
            self.core_url = (
                self.jwks_url.removesuffix(JWKS_PATH) if under else "http://127.0.0.1:18000"
            )
        self.core_url = self.core_url.rstrip("/")
        return self
