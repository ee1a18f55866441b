"""Service settings from ``INWIRE_<SERVICE>_<NAME>`` variables, falling back to ``INWIRE_<NAME>``.

Built in ``create_app`` and passed down, never read from a global. Every backend is a URL.
"""

from __future__ import annotations

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
        return self
