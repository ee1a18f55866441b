"""``inwire orgs``: the organizations you belong to, and which one you act in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from inwire.cli.context import (
    LimitOption,
    OrgRole,
    OutputOption,
    fail,
    settings,
    signed_in_client,
)
from inwire.cli.output import Column, message, show_list, show_one

if TYPE_CHECKING:
    from inwire.sdk import Client
    from inwire.sdk.models import Organization

app = typer.Typer(help="Organizations you belong to.", no_args_is_help=True)

COLUMNS: list[Column] = [
    ("Id", "id"),
    ("Name", "name"),
    ("Slug", "slug"),
    ("Your role", "role"),
    ("Created", "created_at"),
]


def resolve(client: Client, value: str) -> Organization:
    """An organization of yours by id, slug or name."""
    if value.startswith("org_"):
        return client.core.organizations.get(value)
    wanted = value.strip().lower()
    matches = [
        o for o in client.core.organizations.iter() if wanted in (o.slug, o.name.strip().lower())
    ]
    if len(matches) != 1:
        problem = "No" if not matches else "More than one"
        fail(f"{problem} organization of yours is called {value!r}; give its id (org_...).")
    return matches[0]


@app.command("list")
def list_organizations(
    ctx: typer.Context,
    role: Annotated[
        OrgRole | None, typer.Option(help="Only where you hold this role.", show_default=False)
    ] = None,
    limit: LimitOption = None,
    output: OutputOption = None,
) -> None:
    """List your organizations and your role in each."""
    from itertools import islice

    with signed_in_client(ctx) as client:
        rows = list(
            islice(client.core.organizations.iter(role=role.value if role else None), limit)
        )
        current = client.tokens.organization_id if client.tokens else None
    show_list(settings(ctx, output), rows, COLUMNS, title="Organizations")
    if current and settings(ctx, output).output.value == "table":
        message(f"Signed in to {current}.")


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The organization's name.")],
    slug: Annotated[
        str | None,
        typer.Option(help="Unique short name (a-z, 0-9, -); derived from the name by default."),
    ] = None,
    switch: Annotated[
        bool, typer.Option("--switch", help="Continue in the new organization.")
    ] = False,
    output: OutputOption = None,
) -> None:
    """Create an organization; you become its owner."""
    with signed_in_client(ctx) as client:
        organization = client.core.organizations.create(name, slug=slug)
        if switch:
            client.core.organizations.switch(organization.id)
    show_one(settings(ctx, output), organization, COLUMNS)
    if switch:
        message(f"Now acting in {organization.name}.")


@app.command()
def switch(
    ctx: typer.Context,
    organization: Annotated[str, typer.Argument(help="Id, slug or name of the organization.")],
    output: OutputOption = None,
) -> None:
    """Continue in another organization you belong to (password sessions only)."""
    with signed_in_client(ctx) as client:
        target = resolve(client, organization)
        client.core.organizations.switch(target.id)
        caller = client.me()
    show_one(settings(ctx, output), target, COLUMNS)
    message(f"Now acting in {target.name} as {caller.role}.")
