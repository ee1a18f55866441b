"""``inwire api-keys``: keys for scripts and automation."""

from __future__ import annotations

from typing import Annotated

import typer

from inwire.cli.context import (
    LimitOption,
    OrgRole,
    OutputOption,
    YesOption,
    confirm,
    settings,
    signed_in_client,
)
from inwire.cli.output import Column, message, show_list, show_one

app = typer.Typer(help="API keys for scripts and automation.", no_args_is_help=True)

COLUMNS: list[Column] = [
    ("Id", "id"),
    ("Name", "name"),
    ("Prefix", "prefix"),
    ("Role", "role"),
    ("Status", "status"),
    ("Expires", "expires_at"),
    ("Last used", "last_used_at"),
]
CREATED_COLUMNS: list[Column] = [*COLUMNS, ("Key", "key")]


@app.command("list")
def list_keys(
    ctx: typer.Context,
    revoked: Annotated[
        bool | None,
        typer.Option("--revoked/--active", help="Only revoked or only unrevoked keys."),
    ] = None,
    limit: LimitOption = None,
    output: OutputOption = None,
) -> None:
    """List your API keys (admins: every key of the organization); never their secrets."""
    from itertools import islice

    with signed_in_client(ctx) as client:
        rows = list(islice(client.core.api_keys.iter(revoked=revoked), limit))
    show_list(settings(ctx, output), rows, COLUMNS, title="API keys", empty="No API keys.")


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="What the key is for.")],
    role: Annotated[
        OrgRole | None,
        typer.Option(help="The key's role, at most yours (default: yours).", show_default=False),
    ] = None,
    expires_in_days: Annotated[
        int | None,
        typer.Option(min=1, max=3650, help="Expire after this many days (default: never)."),
    ] = None,
    output: OutputOption = None,
) -> None:
    """Create an API key for yourself; the key is shown once, store it now."""
    with signed_in_client(ctx) as client:
        created = client.core.api_keys.create(
            name, role=role.value if role else None, expires_in_days=expires_in_days
        )
    show_one(settings(ctx, output), created, CREATED_COLUMNS)
    message(
        "Store the key now: it is shown only this once. Use it with "
        "`Authorization: Bearer <key>` or `inwire login --api-key <key>`.",
        style="yellow",
    )


@app.command()
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    yes: YesOption = False,
    output: OutputOption = None,
) -> None:
    """Revoke an API key at once."""
    with signed_in_client(ctx) as client:
        key = client.core.api_keys.get(key_id)
        confirm(f"Revoke API key {key.name} ({key.prefix}...)?", yes)
        revoked = client.core.api_keys.revoke(key_id)
    show_one(settings(ctx, output), revoked, COLUMNS)
