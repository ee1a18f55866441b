"""``inwire teams``: teams of your organization and their members."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

import typer

from inwire.cli.context import (
    LimitOption,
    OutputOption,
    TeamRole,
    YesOption,
    confirm,
    fail,
    settings,
    signed_in_client,
)
from inwire.cli.output import Column, message, show_list, show_one
from inwire.cli.users import resolve_user_id

if TYPE_CHECKING:
    from inwire.sdk import Client
    from inwire.sdk.models import Team

app = typer.Typer(help="Teams of your organization and their members.", no_args_is_help=True)

COLUMNS: list[Column] = [
    ("Id", "id"),
    ("Name", "name"),
    ("Description", "description"),
    ("Created", "created_at"),
]
MEMBER_COLUMNS: list[Column] = [
    ("User", "user_id"),
    ("E-mail", "email"),
    ("Name", "name"),
    ("Team role", "role"),
    ("Since", "created_at"),
]

_TEAM_ID = re.compile(r"^team_[0-9A-HJKMNP-TV-Z]{26}$")

TeamArgument = Annotated[str, typer.Argument(help="The team's id or name.")]


def resolve(client: Client, value: str) -> Team:
    """A team by id or exact name."""
    if _TEAM_ID.match(value):
        return client.core.teams.get(value)
    team = client.core.teams.find(value)
    if team is None:
        fail(f"No team is called {value!r}.")
    return team


@app.command("list")
def list_teams(
    ctx: typer.Context,
    member: Annotated[
        str | None,
        typer.Option(help="Only teams of this user (id or e-mail).", show_default=False),
    ] = None,
    limit: LimitOption = None,
    output: OutputOption = None,
) -> None:
    """List the teams of your organization."""
    from itertools import islice

    with signed_in_client(ctx) as client:
        user_id = resolve_user_id(client, member) if member else None
        rows = list(islice(client.core.teams.iter(user_id=user_id), limit))
    show_list(settings(ctx, output), rows, COLUMNS, title="Teams", empty="No teams yet.")


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The team's name (unique in the organization).")],
    description: Annotated[str, typer.Option(help="What the team is for.")] = "",
    output: OutputOption = None,
) -> None:
    """Create a team; you become its maintainer."""
    with signed_in_client(ctx) as client:
        team = client.core.teams.create(name, description=description)
    show_one(settings(ctx, output), team, COLUMNS)


@app.command()
def delete(ctx: typer.Context, team: TeamArgument, yes: YesOption = False) -> None:
    """Delete a team and its memberships."""
    with signed_in_client(ctx) as client:
        found = resolve(client, team)
        confirm(f"Delete team {found.name} ({found.id})?", yes)
        client.core.teams.delete(found.id)
    message(f"Deleted team {found.name}.")


@app.command()
def members(
    ctx: typer.Context,
    team: TeamArgument,
    limit: LimitOption = None,
    output: OutputOption = None,
) -> None:
    """List a team's members and their team role."""
    from itertools import islice

    with signed_in_client(ctx) as client:
        found = resolve(client, team)
        rows = list(islice(client.core.teams.iter_members(found.id), limit))
    show_list(settings(ctx, output), rows, MEMBER_COLUMNS, title=f"Members of {found.name}")


@app.command("add-member")
def add_member(
    ctx: typer.Context,
    team: TeamArgument,
    user: Annotated[str, typer.Argument(help="The member's user id or e-mail.")],
    role: Annotated[TeamRole, typer.Option(help="Role in the team.")] = TeamRole.member,
    output: OutputOption = None,
) -> None:
    """Add a member of your organization to a team."""
    with signed_in_client(ctx) as client:
        found = resolve(client, team)
        added = client.core.teams.add_member(
            found.id, resolve_user_id(client, user), role=role.value
        )
    show_one(settings(ctx, output), added, MEMBER_COLUMNS)


@app.command("remove-member")
def remove_member(
    ctx: typer.Context,
    team: TeamArgument,
    user: Annotated[str, typer.Argument(help="The member's user id or e-mail.")],
) -> None:
    """Remove someone from a team."""
    with signed_in_client(ctx) as client:
        found = resolve(client, team)
        client.core.teams.remove_member(found.id, resolve_user_id(client, user))
    message(f"Removed {user} from {found.name}.")
