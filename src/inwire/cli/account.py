"""``inwire login``, ``logout`` and ``whoami``: the CLI's sign-in."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated

import typer

from inwire.cli import config as cli_config
from inwire.cli.context import (
    OutputOption,
    build_client,
    fail,
    locate,
    reporting_errors,
    settings,
    signed_in_client,
)
from inwire.cli.output import Column, message, show_one

if TYPE_CHECKING:
    from inwire.sdk.models import Caller

__all__ = ["login", "logout", "whoami"]

CALLER: list[Column] = [
    ("Name", "name"),
    ("E-mail", "email"),
    ("Id", "id"),
    ("Kind", "kind"),
    ("Organization", "organization_id"),
    ("Role", "role"),
    ("Token expires", "token_expires_at"),
]


def _bootstrap_email() -> str | None:
    """The first-start admin's address, when this machine ran ``inwire up``."""
    try:
        values = json.loads((cli_config.inwire_home() / "credentials").read_text())
    except (OSError, ValueError):
        return None
    email = values.get("email") if isinstance(values, dict) else None
    return email if isinstance(email, str) else None


def _show_caller(ctx: typer.Context, output: OutputOption, caller: Caller) -> None:
    options = settings(ctx, output)
    show_one(options, caller, CALLER)
    if options.output.value == "table" and len(caller.organizations) > 1:
        others = ", ".join(
            f"{o.name} ({o.id}, {o.role})"
            for o in caller.organizations
            if o.id != caller.organization_id
        )
        message(f"Other organizations: {others}. Change with `inwire orgs switch`.")


def login(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="The gateway (http://127.0.0.1:8080) or Core itself (http://127.0.0.1:18000).",
            show_default=False,
        ),
    ] = None,
    email: Annotated[str | None, typer.Option(help="Your e-mail address.")] = None,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="INWIRE_PASSWORD",
            help="Your password (asked for when left out; prefer that or INWIRE_PASSWORD).",
            show_default=False,
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="Sign in with an API key (iwk_...) instead of a password.",
            show_default=False,
        ),
    ] = None,
    organization: Annotated[
        str | None,
        typer.Option(help="Organization id to sign in to (default: your own).", show_default=False),
    ] = None,
    output: OutputOption = None,
) -> None:
    """Sign in and save the session to $INWIRE_HOME/cli.json (readable only by you)."""
    from inwire.sdk import DEFAULT_URL, Client

    saved = cli_config.load()
    given = url or settings(ctx).url
    if given is None:
        default = saved.url if saved else os.environ.get("INWIRE_URL") or DEFAULT_URL
        given = typer.prompt("Inwire URL", default=default)
    base, core_url = locate(given)
    if api_key is not None:
        if not api_key.startswith("iwk_"):
            fail("An API key starts with iwk_.")
        with Client(base, core_url=core_url, api_key=api_key) as client, reporting_errors():
            caller = client.me()
        config = cli_config.CliConfig(
            url=base,
            core_url=core_url,
            email=caller.email,
            organization_id=caller.organization_id,
            api_key=api_key,
        )
    else:
        if email is None:
            email = typer.prompt(
                "E-mail", default=_bootstrap_email() or (saved.email if saved else None)
            )
        if password is None:
            password = typer.prompt("Password", hide_input=True)
        with Client(base, core_url=core_url) as client, reporting_errors():
            client.login(email, password, organization_id=organization)
            caller = client.me()
            tokens = client.tokens
        assert tokens is not None
        config = cli_config.CliConfig(url=base, core_url=core_url, email=caller.email).with_tokens(
            tokens.access_token, tokens.refresh_token, tokens.expires_at, tokens.organization_id
        )
    path = cli_config.save(config)
    message(f"Signed in to {base} as {caller.email or caller.name}; saved to {path}.")
    _show_caller(ctx, output, caller)


def logout(ctx: typer.Context) -> None:
    """Revoke the saved session at the server and forget it on this machine."""
    saved = cli_config.load()
    if saved is None or not saved.signed_in:
        message("Not signed in.")
        return
    if saved.access_token:
        from inwire.sdk.errors import InwireError

        try:
            with build_client(ctx) as client:
                client.logout()
        except InwireError as error:
            message(
                f"Could not revoke the session at the server ({error.message}); "
                "forgetting it here anyway."
            )
    cli_config.save(saved.signed_out())
    message("Signed out.")


def whoami(ctx: typer.Context, output: OutputOption = None) -> None:
    """Who you are signed in as, where, and with which role."""
    with signed_in_client(ctx) as client:
        caller = client.me()
    _show_caller(ctx, output, caller)
