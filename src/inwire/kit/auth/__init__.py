"""Who is asking: JWT verification through Core's JWKS, principals and permissions."""

from inwire.kit.auth.deps import PrincipalDep, ensure, get_principal, require
from inwire.kit.auth.permissions import ORG_ROLES, permits
from inwire.kit.auth.principal import Principal
from inwire.kit.auth.tokens import (
    JWKSKeySource,
    KeySource,
    StaticKeySource,
    TokenVerifier,
    sign_token,
)

__all__ = [
    "ORG_ROLES",
    "JWKSKeySource",
    "KeySource",
    "Principal",
    "PrincipalDep",
    "StaticKeySource",
    "TokenVerifier",
    "ensure",
    "get_principal",
    "permits",
    "require",
    "sign_token",
]
