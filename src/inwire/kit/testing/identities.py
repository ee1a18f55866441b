"""Fixed principals for two organizations and every role, shared by all service tests."""

from __future__ import annotations

from dataclasses import dataclass

from inwire.kit.auth.permissions import ORG_ROLES

ROLES: tuple[str, ...] = ORG_ROLES
#: Two organizations: ``a`` is the caller's, ``b`` is "another organization".
ORGS: dict[str, str] = {
    "a": "org_01JTEST0000000000000000AAA",
    "b": "org_01JTEST0000000000000000BBB",
}


@dataclass(frozen=True)
class Identity:
    """A test user holding one role in one organization."""

    org_key: str
    role: str

    @property
    def org_id(self) -> str:
        """The organization's id."""
        return ORGS[self.org_key]

    @property
    def user_id(self) -> str:
        """A stable user id per (organization, role)."""
        return f"usr_01JTEST{self.org_key.upper()}{self.role.upper():0<19}"[:30]

    @property
    def email(self) -> str:
        """A stable e-mail address."""
        return f"{self.role}@{self.org_key}.example.com"

    @property
    def password(self) -> str:
        """A test password (tests only)."""
        return f"test-password-{self.org_key}-{self.role}-0123456789"


def identity(role: str = "admin", org: str = "a") -> Identity:
    """The test identity for ``role`` in organization ``org`` (``"a"`` or ``"b"``)."""
    if role not in ROLES or org not in ORGS:
        raise ValueError(f"unknown test identity {role!r}@{org!r}")
    return Identity(org, role)


ALL: tuple[Identity, ...] = tuple(Identity(o, r) for o in ORGS for r in ROLES)
