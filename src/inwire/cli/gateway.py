"""``inwire gateway``: run the API gateway alone and show its route table.

``inwire up`` already runs the gateway in front of the services; these commands are for a
gateway on its own (a container, or in front of services started elsewhere).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

app = typer.Typer(
    name="gateway",
    help="The API gateway (port 8080): serve it, show its routes, put Traefik in front.",
    no_args_is_help=True,
)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface (default: INWIRE_GATEWAY_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: INWIRE_GATEWAY_PORT or 8080).")
    ] = None,
) -> None:
    """Run the gateway in this process until Ctrl-C."""
    from inwire.allinone.serve import serve as serve_app
    from inwire.services.registry import GATEWAY

    serve_app(GATEWAY, host=host, port=port)


@app.command()
def routes(
    output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
) -> None:
    """Where each prefix goes and which paths pass without credentials."""
    from inwire.gateway.routes import upstreams_from_registry
    from inwire.gateway.settings import GatewaySettings

    settings = GatewaySettings()
    upstreams = upstreams_from_registry(settings)
    if output == "json":
        document = {
            "listen": f"{settings.host}:{settings.port}",
            "routes": [{"service": u.name, "prefix": u.prefix, "url": u.url} for u in upstreams],
            "public_paths": settings.public_paths,
        }
        typer.echo(json.dumps(document, indent=2))
        return
    if output != "table":
        raise typer.BadParameter("must be 'table' or 'json'", param_hint="--output")
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Gateway on {settings.host}:{settings.port}", title_justify="left")
    table.add_column("Prefix", no_wrap=True)
    table.add_column("Service")
    table.add_column("Upstream", no_wrap=True)
    for upstream in upstreams:
        table.add_row(upstream.prefix, upstream.name, upstream.url)
    console = Console()
    console.print(table)
    console.print("Public without credentials: every /health*, /docs, /redoc, /openapi.json, and")
    for path in settings.public_paths:
        console.print(f"  {path}", highlight=False)


@app.command("traefik-config")
def traefik_config(
    gateway_url: Annotated[
        str, typer.Option(help="Where Traefik reaches the gateway's ForwardAuth endpoint.")
    ] = "http://127.0.0.1:8080",
    out: Annotated[
        str | None, typer.Option("--out", help="Write to this file (default: standard output).")
    ] = None,
    rate_average: Annotated[int, typer.Option(help="Requests per second per address.")] = 100,
    rate_burst: Annotated[int, typer.Option(help="Burst per address.")] = 200,
) -> None:
    """Write Traefik's dynamic configuration (routes, rate limits, ForwardAuth) as YAML."""
    from pathlib import Path

    import yaml

    from inwire.gateway.routes import upstreams_from_registry
    from inwire.gateway.settings import GatewaySettings
    from inwire.gateway.traefik import dynamic_config

    document = dynamic_config(
        upstreams_from_registry(GatewaySettings()),
        gateway_url=gateway_url,
        rate_average=rate_average,
        rate_burst=rate_burst,
    )
    text = yaml.safe_dump(document, sort_keys=False)
    if out is None:
        typer.echo(text, nl=False)
    else:
        Path(out).write_text(text)
