"""Traefik in front: a dynamic configuration generated from the gateway's route table.

When Inwire is scaled out, Traefik routes ``/<prefix>/…`` straight to each service's
replicas, strips the prefix, rate-limits per client address, and asks the gateway whether
each request may pass (ForwardAuth to :data:`~inwire.gateway.app.FORWARD_AUTH_PATH`). The
gateway answers with the same rules it applies itself: public paths pass, bearer JWTs are
verified, API keys are exchanged at Core, and the resulting ``Authorization`` header is what
Traefik forwards to the service.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inwire.gateway.routes import Upstream

#: Where Traefik's ForwardAuth middleware asks the gateway.
FORWARD_AUTH_PATH = "/_inwire/forward-auth"


def dynamic_config(
    upstreams: Sequence[Upstream],
    *,
    gateway_url: str,
    entry_point: str = "web",
    rate_average: int = 100,
    rate_burst: int = 200,
) -> dict[str, Any]:
    """Traefik's file-provider configuration (``http`` routers, middlewares, services)."""
    gateway = gateway_url.rstrip("/")
    middlewares: dict[str, Any] = {
        "inwire-auth": {
            "forwardAuth": {
                "address": f"{gateway}{FORWARD_AUTH_PATH}",
                "authResponseHeaders": ["Authorization"],
                "trustForwardHeader": True,
            }
        },
        "inwire-ratelimit": {
            "rateLimit": {"average": rate_average, "burst": rate_burst, "period": "1s"}
        },
    }
    routers: dict[str, Any] = {}
    services: dict[str, Any] = {}
    for upstream in upstreams:
        strip = f"inwire-strip-{upstream.name}"
        middlewares[strip] = {"stripPrefix": {"prefixes": [upstream.prefix]}}
        routers[f"inwire-{upstream.name}"] = {
            "entryPoints": [entry_point],
            "rule": f"PathPrefix(`{upstream.prefix}`)",
            "middlewares": ["inwire-ratelimit", "inwire-auth", strip],
            "service": f"inwire-{upstream.name}",
        }
        services[f"inwire-{upstream.name}"] = {
            "loadBalancer": {"servers": [{"url": upstream.url}], "passHostHeader": True}
        }
    return {"http": {"routers": routers, "middlewares": middlewares, "services": services}}
