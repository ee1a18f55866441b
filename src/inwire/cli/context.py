"""What the CLI's commands share: global options, the signed-in client, clear failures.

Commands reach the platform only through the SDK (:mod:`inwire.sdk`), imported when a
command runs so that ``inwire --help`` stays fast. A failed call ends the command with a
one-line message on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from inwire.cli import config as cli_config

if TYPE_CHECKING:
    from rich.console import Console

    from inwire.sdk import Client, Tokens
    from inwire.sdk.errors import InwireError

__all__ = [
    "LimitOption",
    "OrgRole",
    "Output",
    "OutputOption",
    "Settings",
    "TeamRole",
    "YesOption",
    "build_client",
    "confirm",
    "console",
    "fail",
    "locate",
    "reporting_errors",
    "settings",
    "signed_in_client",
]


class Output(StrEnum):
    """How results are printed: a Rich table for people, JSON for scripts."""

    table = "table"
    json = "json"


class OrgRole(StrEnum):
    """An organization role, lowest to highest: viewer, member, admin, owner."""

    viewer = "viewer"
    member = "member"
    admin = "admin"
    owner = "owner"


class TeamRole(StrEnum):
    """A role inside a team."""

    member = "member"
    maintainer = "maintainer"


LimitOption = Annotated[
    int | None,
    typer.Option(
        "--limit", min=1, help="Show at most this many (default: all).", show_default=False
    ),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]

OutputOption = Annotated[
    Output | None,
    typer.Option(
        "--output",
        "-o",
        help="table (default) or json; overrides the global --output.",
        case_sensitive=False,
        show_default=False,
    ),
]


@dataclass
class Settings:
    """The global options of one invocation (``inwire --output json --url ...``)."""

    output: Output = Output.table
    url: str | None = None


def settings(ctx: typer.Context, output: Output | None = None) -> Settings:
    """The invocation's global options, with a command's own ``--output`` on top."""
    root = ctx.find_root()
    found = root.obj if isinstance(root.obj, Settings) else Settings()
    if output is not None:
        return Settings(output=output, url=found.url)
    return found


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive change unless ``--yes`` was given; "no" ends the command."""
    if not yes:
        typer.confirm(question, abort=True, err=True)


def console(*, stderr: bool = False) -> Console:
    """A Rich console on stdout (results) or stderr (messages and progress)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with ``Error: message`` on stderr."""
    from rich.markup import escape

    console(stderr=True).print(f"[red]Error:[/red] {escape(message)}")
    raise typer.Exit(code)


def describe(error: InwireError) -> str:
    """One human sentence (plus field details) for an SDK error."""
    from inwire.sdk.errors import Forbidden, Unauthorized, Unreachable

    if isinstance(error, Unreachable):
        return (
            f"{error.message}. Is Inwire running there? Start it with `inwire up`, "
            "or give another address with --url."
        )
    text = error.message or error.code
    if isinstance(error, Unauthorized) and error.code != "INVALID_CREDENTIALS":
        text = f"{text}. Sign in again with `inwire login`"
    elif isinstance(error, Forbidden):
        text = f"Not allowed: {text}"
    details = [
        f"{d.get('field')}: {d.get('message')}" if d.get("field") else str(d.get("message"))
        for d in error.details
        if isinstance(d, dict) and d.get("message")
    ]
    suffix = f" ({'; '.join(details)})" if details else ""
    return f"{text}{suffix} [{error.code}]"


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn SDK errors raised inside the block into a clear message and exit status 1."""
    from inwire.sdk.errors import InwireError

    try:
        yield
    except InwireError as error:
        fail(describe(error))


def _persist(saved: cli_config.CliConfig) -> Callable[[Tokens | None], None]:
    """Save every new token pair the SDK reports (refresh tokens rotate on use)."""
    state = {"config": saved}

    def on_tokens(tokens: Tokens | None) -> None:
        current = state["config"]
        if tokens is None:
            updated = current.signed_out()
        else:
            updated = current.with_tokens(
                tokens.access_token,
                tokens.refresh_token,
                tokens.expires_at,
                tokens.organization_id,
            )
        state["config"] = updated
        cli_config.save(updated)

    return on_tokens


def locate(url: str) -> tuple[str, str | None]:
    """``(url, core_url)`` for an address a person gave: the gateway, or Core itself."""
    from inwire.sdk import service_at

    url = url.strip().rstrip("/")
    if "://" not in url:
        fail(f"{url!r} is not a URL; give one like http://127.0.0.1:8080")
    with reporting_errors():
        service = service_at(url)
    if service is None:
        return url, None
    if service == "core":
        return url, url
    fail(f"{url} is the {service} service; give the gateway's address or Core's")


def build_client(ctx: typer.Context) -> Client:
    """The SDK client of the saved sign-in (or ``$INWIRE_API_KEY``); errors are the caller's."""
    from inwire.sdk import DEFAULT_URL, Client, RetryPolicy

    options = settings(ctx)
    saved = cli_config.load()
    env_key = os.environ.get("INWIRE_API_KEY") or None
    if env_key is None and (saved is None or not saved.signed_in):
        fail("Not signed in. Run `inwire login` first (or set INWIRE_API_KEY).")
    given = options.url or os.environ.get("INWIRE_URL")
    if given:
        url, core_url = locate(given)
    else:
        url = saved.url if saved else DEFAULT_URL
        core_url = saved.core_url if saved else None
    # A person is waiting: retry as the SDK does, with shorter pauses.
    retry = RetryPolicy(backoff=0.2)
    if env_key is not None or saved is None:
        return Client(url, core_url=core_url, api_key=env_key, retry=retry)
    if saved.api_key:
        return Client(url, core_url=core_url, api_key=saved.api_key, retry=retry)
    return Client(
        url,
        core_url=core_url,
        retry=retry,
        token=saved.access_token,
        refresh_token=saved.refresh_token,
        token_expires_at=saved.token_expires_at,
        organization_id=saved.organization_id,
        on_tokens=_persist(saved),
    )


@contextmanager
def signed_in_client(ctx: typer.Context) -> Iterator[Client]:
    """:func:`build_client`, closed afterwards, with SDK errors reported as messages."""
    with build_client(ctx) as client, reporting_errors():
        yield client
