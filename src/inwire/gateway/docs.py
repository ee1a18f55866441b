"""API documentation through the gateway: one page linking every service's docs.

A service's own Swagger UI and ReDoc load ``/openapi.json`` from the root of the host they
are served from, which through the gateway is not theirs. So the gateway serves each
service's ``/<prefix>/docs``, ``/<prefix>/redoc`` and ``/<prefix>/openapi.json`` itself: the
pages point at the prefixed schema, and the schema gets ``servers: [{"url": "/<prefix>"}]``
so "Try it out" calls go through the gateway too.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from inwire import __version__
from inwire.gateway.routes import Upstream


def index_page(upstreams: Sequence[Upstream]) -> bytes:
    """The gateway's ``/docs``: a table of services with links to their documentation."""
    rows = "\n".join(_row(u) for u in sorted(upstreams, key=lambda u: u.prefix))
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Inwire API</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 52rem; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .5rem; text-align: left; }}
code {{ background: #f4f4f4; padding: 0 .25rem; }}
</style>
</head>
<body>
<h1>Inwire API</h1>
<p>Every service answers through this gateway under its prefix:
<code>/&lt;prefix&gt;/api/v1/…</code>. Authenticate with
<code>Authorization: Bearer &lt;access token or API key&gt;</code> or
<code>X-API-Key: iwk_…</code>; sign in at <code>POST /core/api/v1/auth/login</code>.</p>
<table>
<thead><tr><th>Service</th><th>Prefix</th><th colspan="3">Documentation</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<p>Gateway {html.escape(__version__)} · <a href="/health/ready">readiness</a> ·
<a href="/metrics">metrics</a></p>
</body>
</html>
"""
    return page.encode()


def _row(upstream: Upstream) -> str:
    name = html.escape(upstream.name)
    prefix = html.escape(upstream.prefix, quote=True)
    return (
        f"<tr><td>{name}</td><td><code>{prefix}</code></td>"
        f'<td><a href="{prefix}/docs">Swagger UI</a></td>'
        f'<td><a href="{prefix}/redoc">ReDoc</a></td>'
        f'<td><a href="{prefix}/openapi.json">OpenAPI JSON</a></td></tr>'
    )


def swagger_page(upstream: Upstream) -> bytes:
    """Swagger UI for one service, reading its schema through the gateway."""
    from fastapi.openapi.docs import get_swagger_ui_html

    return bytes(
        get_swagger_ui_html(
            openapi_url=f"{upstream.prefix}/openapi.json",
            title=f"Inwire {upstream.name} - Swagger UI",
        ).body
    )


def redoc_page(upstream: Upstream) -> bytes:
    """ReDoc for one service, reading its schema through the gateway."""
    from fastapi.openapi.docs import get_redoc_html

    return bytes(
        get_redoc_html(
            openapi_url=f"{upstream.prefix}/openapi.json", title=f"Inwire {upstream.name} - ReDoc"
        ).body
    )


def prefixed_schema(schema: bytes, upstream: Upstream) -> bytes:
    """The service's OpenAPI document with the gateway prefix as its server (if it has none)."""
    document: Any = json.loads(schema)
    if isinstance(document, dict) and not document.get("servers"):
        document["servers"] = [{"url": upstream.prefix, "description": "Inwire gateway"}]
    return json.dumps(document, separators=(",", ":")).encode()
