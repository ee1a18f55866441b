"""Core's settings (``INWIRE_CORE_<NAME>``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from inwire.kit.settings import ServiceSettings


class CoreSettings(ServiceSettings):
    """Identity provider settings. Defaults follow OWASP ASVS v4 §2 and §3."""

    service = "core"
    default_port = 18000
    model_config = SettingsConfigDict(env_prefix="INWIRE_CORE_")

    #: Access token lifetime; ASVS 3.5 and our contract keep it at 15 minutes or less.
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=900)
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    #: A signing key signs for this long, then stays in the JWKS for the overlap below.
    signing_key_rotation_seconds: int = 30 * 24 * 3600
    signing_key_overlap_seconds: int = 2 * 900 + 300
    #: Argon2id cost (OWASP Password Storage Cheat Sheet: m=19 MiB, t=2, p=1).
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    #: Fernet key (urlsafe base64, 32 bytes) for secrets at rest; default: a key file in home.
    secret_key: str = ""
    #: Login throttling: attempts per account and per client address.
    login_attempts_per_account: int = 10
    login_account_window_seconds: int = 900
    login_attempts_per_ip: int = 30
    login_ip_window_seconds: int = 60
    #: First start creates an organization and an admin (embedded mode).
    bootstrap: bool = True
    bootstrap_admin_email: str = "admin@inwire.local"
    bootstrap_organization: str = "Default"
    #: Where password-reset and invitation mails go: file://dir (default) or smtp://host:port.
    mail_url: str = ""
    #: Public base URL of Core, used for SSO redirect URIs and links in mails.
    public_url: str = "http://127.0.0.1:18000"
    invitation_ttl_seconds: int = 7 * 24 * 3600
    password_reset_ttl_seconds: int = 3600
    min_password_length: int = 12
