"""Organization roles and the permissions ``<resource>:<action>`` they grant.

The table (also in docs/permissions.md):

| role   | grants                                                                       |
|--------|------------------------------------------------------------------------------|
| owner  | everything                                                                   |
| admin  | everything but deleting or transferring the organization                     |
| member | read/create/update/delete/execute on work resources; read-only on governance |
|        | resources (organizations, members, users, teams' membership rules,          |
|        | integrations); no access to audit and service accounts                        |
| viewer | read on work resources and governance resources; no audit, no service accounts|

Actions are ``read``, ``create``, ``update``, ``delete``, ``execute`` and ``admin``.
Services name their own resources (``datasets``, ``runs``, …); anything not governance is
a work resource.
"""

from __future__ import annotations

ORG_ROLES: tuple[str, ...] = ("owner", "admin", "member", "viewer")
TEAM_ROLES: tuple[str, ...] = ("maintainer", "member")
ACTIONS: tuple[str, ...] = ("read", "create", "update", "delete", "execute", "admin")

#: Resources only admins change; members and viewers may read them.
GOVERNANCE: frozenset[str] = frozenset(
    {"organizations", "members", "users", "invitations", "integrations", "sso"}
)
#: Resources only admins may even read.
ADMIN_ONLY: frozenset[str] = frozenset({"audit", "service_accounts"})
#: Permissions reserved to owners.
OWNER_ONLY: frozenset[str] = frozenset({"organizations:delete", "organizations:transfer"})


def permits(role: str, permission: str) -> bool:
    """Whether an organization role grants ``permission`` (``<resource>:<action>``)."""
    resource, _, action = permission.partition(":")
    if role == "owner":
        return True
    if role == "admin":
        return permission not in OWNER_ONLY
    if role not in ("member", "viewer") or resource in ADMIN_ONLY:
        return False
    if resource in GOVERNANCE or role == "viewer":
        return action == "read"
    return action != "admin"


def role_at_least(role: str, floor: str) -> bool:
    """Whether ``role`` ranks at or above ``floor`` (owner > admin > member > viewer)."""
    if role not in ORG_ROLES or floor not in ORG_ROLES:
        return False
    return ORG_ROLES.index(role) <= ORG_ROLES.index(floor)
