"""Which budget a request spends: per principal (per client address when anonymous), per
route group and per organization, enforced with the kit's GCRA limiter (memory or Redis).
"""

from __future__ import annotations

from dataclasses import dataclass

from inwire.gateway.settings import GatewaySettings
from inwire.kit.ratelimit import RateLimit


@dataclass(frozen=True, slots=True)
class Budget:
    """The limiter key a request spends on and the limit that key has."""

    key: str
    limit: RateLimit
    group: str


class RateLimitPolicy:
    """Picks the budget of a request from the settings.

    A path in a group of ``route_groups`` that has a ``group_limits`` entry spends on that
    group's own budget (one per caller); any other path spends on the caller's shared budget:
    ``organization_limits[org]`` or ``rate_limit`` for a principal, ``anonymous_rate_limit``
    for a client address.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        self.default = settings.rate_limit.rate_limit()
        self.anonymous = settings.anonymous_rate_limit.rate_limit()
        self.by_org = {
            org: limit.rate_limit() for org, limit in settings.organization_limits.items()
        }
        self.by_group = {
            group: limit.rate_limit() for group, limit in settings.group_limits.items()
        }
        prefixes = [
            (prefix, group)
            for group, paths in settings.route_groups.items()
            if group in self.by_group
            for prefix in paths
        ]
        self._groups = sorted(prefixes, key=lambda item: len(item[0]), reverse=True)

    def group_of(self, path: str) -> str | None:
        """The limited route group ``path`` belongs to (longest prefix), if any."""
        for prefix, group in self._groups:
            if path.startswith(prefix):
                return group
        return None

    def budget(self, path: str, *, subject: str | None, org: str | None, client: str) -> Budget:
        """The budget of a request to ``path`` by ``subject`` (None: anonymous from ``client``)."""
        who = f"p:{subject}" if subject is not None else f"ip:{client}"
        group = self.group_of(path) if self._groups else None
        if group is not None:
            return Budget(f"g:{group}:{who}", self.by_group[group], group)
        if subject is None:
            return Budget(f"anonymous:{who}", self.anonymous, "anonymous")
        limit = self.by_org.get(org, self.default) if org is not None else self.default
        return Budget(f"default:{who}", limit, "default")
