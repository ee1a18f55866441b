"""The gateway's settings: ``INWIRE_GATEWAY_<NAME>``, falling back to ``INWIRE_<NAME>``.

Every knob is documented in ``docs/gateway.md`` (a test keeps it so). Built by
``create_app`` and passed down, never read from a global.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from inwire.kit.ratelimit import RateLimit

#: Core's routes that need no credentials, as gateway paths. ``*`` at the end matches any
#: rest of the path. Every service's ``/health*``, ``/docs``, ``/redoc`` and
#: ``/openapi.json`` are public as well, without being listed.
CORE_PUBLIC_PATHS = (
    "/core/api/v1/auth/login",
    "/core/api/v1/auth/token/refresh",
    "/core/api/v1/auth/token",
    "/core/api/v1/auth/password/reset-request",
    "/core/api/v1/auth/password/reset",
    "/core/api/v1/invitations/accept",
    "/core/api/v1/auth/sso/*",
    "/core/.well-known/jwks.json",
)


class Limit(BaseModel):
    """A rate-limit budget: ``rate`` requests per second sustained, ``burst`` at once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: float = Field(gt=0)
    burst: int = Field(ge=1)

    def rate_limit(self) -> RateLimit:
        """The kit's GCRA budget for this limit."""
        return RateLimit(self.rate, burst=self.burst)


class GatewaySettings(BaseSettings):
    """How the gateway listens, finds the services, authenticates and protects them."""

    model_config = SettingsConfigDict(
        extra="ignore", env_prefix="INWIRE_GATEWAY_", populate_by_name=True
    )

    # -- where it listens and where the services are ----------------------------------------
    host: str = "127.0.0.1"
    port: int = 8080
    #: Host of every service whose URL is not in ``upstreams`` (each on its registered port,
    #: or ``INWIRE_<SERVICE>_PORT``).
    upstream_host: str = "127.0.0.1"
    #: Base URL per service name, e.g. ``{"core": "http://core:18000"}`` (scaled out).
    upstreams: dict[str, str] = Field(default_factory=dict)

    # -- authentication ------------------------------------------------------------------------
    #: Core's JWKS; empty means ``<core upstream>/.well-known/jwks.json``.
    jwks_url: str = ""
    issuer: str = "inwire"
    audience: str = "inwire"
    #: An API key's exchanged access token is reused for at most this long (and never past
    #: 30 s before it expires); a revoked key stops working through the gateway within it.
    api_key_cache_seconds: float = Field(default=60.0, ge=0)
    #: At most this many exchanged tokens are cached (least recently used go first).
    api_key_cache_size: int = Field(default=10_000, ge=1)
    #: At most this many verified JWTs are remembered until they expire (0: verify each time).
    token_cache_size: int = Field(default=10_000, ge=0)
    #: Gateway paths that need no credentials (``*`` at the end: any rest of the path).
    public_paths: list[str] = Field(default_factory=lambda: list(CORE_PUBLIC_PATHS))

    # -- rate limiting ---------------------------------------------------------------------------
    #: ``memory://`` (this process) or ``redis://host:port/db`` (shared by every replica).
    cache_url: str = "memory://"
    rate_limit_enabled: bool = True
    #: Redis key prefix of the gateway's budgets.
    rate_limit_prefix: str = "inwire:gateway:ratelimit:"
    #: Per authenticated principal (user, service account or API key's account).
    rate_limit: Limit = Limit(rate=50, burst=200)
    #: Per client address, for calls without credentials (public routes, failed sign-ins).
    anonymous_rate_limit: Limit = Limit(rate=10, burst=60)
    #: Named groups of gateway path prefixes, e.g. ``{"uploads": ["/synthex/api/v1/datasets"]}``.
    route_groups: dict[str, list[str]] = Field(default_factory=dict)
    #: A group listed here has its own budget per caller instead of the shared one.
    group_limits: dict[str, Limit] = Field(default_factory=dict)
    #: Replaces ``rate_limit`` for the principals of an organization, by organization id.
    organization_limits: dict[str, Limit] = Field(default_factory=dict)

    # -- requests and upstreams ----------------------------------------------------------------
    #: Largest request body passed on (413 beyond); 0 for no limit. Services keep their own.
    max_body_bytes: int = Field(default=1024**3, ge=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    #: Longest wait for the upstream's response headers and between two body chunks (504).
    upstream_timeout_seconds: float = Field(default=60.0, gt=0)
    #: Kept below the services' own keep-alive (uvicorn: 5 s) so a pooled connection is
    #: never reused just as the service closes it.
    upstream_keepalive_seconds: float = Field(default=4.0, gt=0)
    upstream_max_connections: int = Field(default=1000, ge=1)
    #: Extra attempts of an idempotent request whose connection failed before any answer.
    retries: int = Field(default=2, ge=0)
    retry_backoff_seconds: float = Field(default=0.05, ge=0)
    #: Consecutive connection failures or timeouts that open an upstream's circuit.
    breaker_failures: int = Field(default=5, ge=1)
    #: How long an open circuit answers 503 before one trial request may pass.
    breaker_open_seconds: float = Field(default=10.0, gt=0)
    #: Per-service limit of the readiness check behind ``/health/ready``.
    ready_timeout_seconds: float = Field(default=2.0, gt=0)

    # -- browsers and logs -----------------------------------------------------------------------
    cors_origins: list[str] = Field(default_factory=list)
    access_log: bool = True
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("public_paths")
    @classmethod
    def _absolute(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not path.startswith("/"):
                raise ValueError(f"public path {path!r} must start with '/'")
        return paths

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """``INWIRE_GATEWAY_<NAME>`` wins over the platform-wide ``INWIRE_<NAME>``."""
        shared = EnvSettingsSource(settings_cls, env_prefix="INWIRE_")
        return init_settings, env_settings, shared, dotenv_settings, file_secret_settings
