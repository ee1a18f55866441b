"""A gateway for subprocess tests: the registry's routes plus ``INWIRE_TEST_EXTRA_UPSTREAMS``
(JSON ``{"name": "url"}``, each at ``/<name>``)."""

from __future__ import annotations

import json
import os

from inwire.gateway.app import Gateway
from inwire.gateway.app import create_app as create_gateway
from inwire.gateway.routes import Upstream, upstreams_from_registry
from inwire.gateway.settings import GatewaySettings


def create_app(settings: GatewaySettings | None = None) -> Gateway:
    """The gateway with the extra upstreams."""
    settings = settings or GatewaySettings()
    extra = json.loads(os.environ.get("INWIRE_TEST_EXTRA_UPSTREAMS", "{}"))
    upstreams = [
        *upstreams_from_registry(settings),
        *(Upstream(name, f"/{name}", url) for name, url in extra.items()),
    ]
    return create_gateway(settings, upstreams=upstreams)
