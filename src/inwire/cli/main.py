"""The ``inwire`` command.

Importing this module imports Typer and nothing heavy: every command imports what it
needs (uvicorn, FastAPI, SQLAlchemy, the services) when it runs, so ``inwire --help``
stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from inwire import __version__
from inwire.cli import account, api_keys, gateway, orgs, teams, users
from inwire.cli.context import Output, Settings

if TYPE_CHECKING:
    from rich.console import Console

    from inwire.services.registry import ServiceSpec

app = typer.Typer(
    name="inwire",
    help="Inwire: a self-hostable platform for the whole ML lifecycle.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _console(stderr=True).print(f"[red]Error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"inwire {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    output: Annotated[
        Output,
        typer.Option(
            "--output",
            "-o",
            envvar="INWIRE_OUTPUT",
            case_sensitive=False,
            help="How results are printed: table (for people) or json (for scripts).",
        ),
    ] = Output.table,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="INWIRE_URL",
            help="The gateway (or Core) to talk to; default: the one you signed in to.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Inwire: a self-hostable platform for the whole ML lifecycle."""
    ctx.obj = Settings(output=output, url=url)


def _registered() -> list[ServiceSpec]:
    from inwire.services import registry

    return list(registry.SERVICES)


def _service(name: str) -> ServiceSpec:
    from inwire.services import registry

    try:
        return registry.get(name)
    except KeyError as exc:
        raise _fail(str(exc.args[0])) from None


@app.command()
def up(
    one_process: Annotated[
        bool,
        typer.Option(
            "--one-process",
            help="Mount every service in this process on one port (low memory, tests).",
        ),
    ] = False,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port of the one-process app (with --one-process).")
    ] = 8080,
) -> None:
    """Start every service and keep it running until Ctrl-C."""
    import asyncio

    services = _registered()
    console = _console()
    try:
        if one_process:
            from inwire.allinone.composition import serve_one_process

            code = asyncio.run(serve_one_process(services, host=host, port=port, console=console))
        else:
            from inwire.allinone.supervisor import Supervisor

            code = asyncio.run(Supervisor(services, host=host, console=console).run())
    except KeyboardInterrupt:
        # uvicorn re-raises the SIGINT it handled once it has shut down cleanly.
        code = 0
    raise typer.Exit(code)


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="Service name, e.g. core.")],
    host: Annotated[
        str | None, typer.Option(help="Interface (default: INWIRE_<SERVICE>_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: INWIRE_<SERVICE>_PORT or its own).")
    ] = None,
) -> None:
    """Run one service in this process (what each container runs when scaled out)."""
    spec = _service(service)
    from inwire.allinone.serve import serve as serve_service

    serve_service(spec, host=host, port=port)


@app.command()
def migrate(
    service: Annotated[
        str, typer.Argument(help="Service name, or 'all' for every registered service.")
    ] = "all",
) -> None:
    """Apply pending database migrations of one service or of all of them."""
    specs = _registered() if service == "all" else [_service(service)]
    from inwire.allinone.migrate import migrate as migrate_service

    console = _console()
    for spec in specs:
        try:
            outcome = migrate_service(spec)
        except Exception as exc:
            raise _fail(f"{spec.name}: migration failed: {type(exc).__name__}: {exc}", 1) from exc
        where = outcome.database + (f" (schema {outcome.schema})" if outcome.schema else "")
        if outcome.applied:
            console.print(f"[green]{spec.name}[/green]: up to date at {where}", highlight=False)
        else:
            console.print(f"[yellow]{spec.name}[/yellow]: skipped, {outcome.reason}")


# Platform commands: they talk to a running Inwire through the SDK only.
app.command()(account.login)
app.command()(account.logout)
app.command()(account.whoami)
app.add_typer(orgs.app, name="orgs")
app.add_typer(teams.app, name="teams")
app.add_typer(users.app, name="users")
app.add_typer(api_keys.app, name="api-keys")
app.add_typer(gateway.app, name="gateway")
