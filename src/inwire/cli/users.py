"""``inwire users``: members of your organization, invitations and roles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from inwire.cli.context import (
    LimitOption,
    OrgRole,
    OutputOption,
    YesOption,
    confirm,
    fail,
    settings,
    signed_in_client,
)
from inwire.cli.output import Column, message, show_list, show_one

if TYPE_CHECKING:
    from inwire.sdk import Client

app = typer.Typer(help="Members of your organization.", no_args_is_help=True)

COLUMNS: list[Column] = [
    ("Id", "id"),
    ("E-mail", "email"),
    ("Name", "name"),
    ("Role", "role"),
    ("Active", "is_active"),
    ("Joined", "joined_at"),
]
INVITATION_COLUMNS: list[Column] = [
    ("Id", "id"),
    ("E-mail", "email"),
    ("Role", "role"),
    ("Status", "status"),
    ("Expires", "expires_at"),
    ("Mail sent", "mail_sent"),
    ("Token", "token"),
]

UserArgument = Annotated[str, typer.Argument(help="The member's user id or e-mail.")]


def resolve_user_id(client: Client, value: str) -> str:
    """A member's user id from an id or an e-mail address."""
    if "@" not in value:
        return value
    member = client.core.users.find(value)
    if member is None:
        fail(f"No member of this organization has the e-mail address {value}.")
    return member.id


@app.command("list")
def list_users(
    ctx: typer.Context,
    role: Annotated[
        OrgRole | None, typer.Option(help="Only members with this role.", show_default=False)
    ] = None,
    active: Annotated[
        bool | None,
        typer.Option("--active/--inactive", help="Only active or deactivated members."),
    ] = None,
    limit: LimitOption = None,
    output: OutputOption = None,
) -> None:
    """List the members of your organization."""
    from itertools import islice

    with signed_in_client(ctx) as client:
        rows = list(
            islice(
                client.core.users.iter(role=role.value if role else None, is_active=active), limit
            )
        )
    show_list(settings(ctx, output), rows, COLUMNS, title="Members")


@app.command()
def invite(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The address to invite.")],
    role: Annotated[OrgRole, typer.Option(help="Role on joining.")] = OrgRole.member,
    output: OutputOption = None,
) -> None:
    """Invite someone by e-mail; the token is mailed and shown here once."""
    with signed_in_client(ctx) as client:
        invitation = client.core.invitations.create(email, role=role.value)
    show_one(settings(ctx, output), invitation, INVITATION_COLUMNS)
    if not invitation.mail_sent:
        message("The mail could not be sent: hand the token over yourself.", style="yellow")
    message("The token is shown only now.")


@app.command("set-role")
def set_role(
    ctx: typer.Context,
    user: UserArgument,
    role: Annotated[OrgRole, typer.Argument(help="The new role.")],
    output: OutputOption = None,
) -> None:
    """Give a member another role (only owners grant or revoke owner)."""
    with signed_in_client(ctx) as client:
        member = client.core.users.set_role(resolve_user_id(client, user), role.value)
    show_one(settings(ctx, output), member, COLUMNS)


@app.command()
def remove(ctx: typer.Context, user: UserArgument, yes: YesOption = False) -> None:
    """Remove a member from your organization; ends their sessions here."""
    with signed_in_client(ctx) as client:
        user_id = resolve_user_id(client, user)
        confirm(f"Remove {user} from the organization?", yes)
        client.core.users.remove(user_id)
    message(f"Removed {user}.")
