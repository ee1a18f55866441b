"""The route table: which service answers a gateway path, and which paths are public.

The table comes from the service registry (``inwire.services.registry``, which names
services by string and imports none of them), so a service added there is routed without
touching the gateway.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from inwire.gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from inwire.services.registry import ServiceSpec

#: Paths every service answers without credentials (its health, docs and schema).
SERVICE_PUBLIC_PATHS = frozenset({"/health", "/docs", "/redoc", "/openapi.json"})
SERVICE_PUBLIC_PREFIXES = ("/health/", "/docs/")
#: What the gateway renders itself for each service (see ``inwire.gateway.docs``).
DOC_PATHS = frozenset({"/docs", "/redoc", "/openapi.json"})


@dataclass(frozen=True, slots=True)
class Upstream:
    """A service behind the gateway: its name, its gateway prefix and its base URL."""

    name: str
    prefix: str
    url: str


@dataclass(frozen=True, slots=True)
class Match:
    """A gateway path resolved: the upstream and the path the service itself sees."""

    upstream: Upstream
    local_path: str


def upstreams_from_registry(
    settings: GatewaySettings,
    services: Sequence[ServiceSpec] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Upstream]:
    """One upstream per registered service: ``settings.upstreams[name]`` if set, else
    ``http://<upstream_host>:<port>`` with the port ``inwire up`` gives the service."""
    from inwire.services.registry import SERVICES

    env = os.environ if environ is None else environ
    host = settings.upstream_host
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return [
        Upstream(
            name=spec.name,
            prefix=spec.prefix,
            url=settings.upstreams.get(spec.name) or f"http://{host}:{spec.configured_port(env)}",
        )
        for spec in (SERVICES if services is None else services)
    ]


def has_dot_segment(path: str) -> bool:
    """Whether ``path`` has a ``.`` or ``..`` segment (RFC 3986 §3.3).

    Such a path could be matched here as one route and resolved by a later hop as another,
    so the gateway refuses it rather than guess (clients normalise paths before sending).
    """
    return any(segment in (".", "..") for segment in path.split("/"))


class RouteTable:
    """Matches gateway paths to upstreams (longest prefix first) and tells public paths."""

    def __init__(self, upstreams: Sequence[Upstream], public_paths: Sequence[str]) -> None:
        for upstream in upstreams:
            if not upstream.prefix.startswith("/") or upstream.prefix.endswith("/"):
                raise ValueError(f"prefix {upstream.prefix!r} must start, and not end, with '/'")
        self.upstreams = tuple(sorted(upstreams, key=lambda u: len(u.prefix), reverse=True))
        self.by_name = {u.name: u for u in upstreams}
        self._exact = frozenset(p for p in public_paths if not p.endswith("*"))
        self._prefixes = tuple(p[:-1] for p in public_paths if p.endswith("*"))

    def match(self, path: str) -> Match | None:
        """The upstream serving ``path`` (``/core/api/v1/…``), or None."""
        for upstream in self.upstreams:
            prefix = upstream.prefix
            if path.startswith(prefix):
                rest = path[len(prefix) :]
                if not rest or rest.startswith("/"):
                    return Match(upstream, rest or "/")
        return None

    def is_public(self, path: str, local_path: str) -> bool:
        """Whether ``path`` (its service sees ``local_path``) passes without credentials."""
        return (
            local_path in SERVICE_PUBLIC_PATHS
            or local_path.startswith(SERVICE_PUBLIC_PREFIXES)
            or path in self._exact
            or (bool(self._prefixes) and path.startswith(self._prefixes))
        )
