"""The CLI's platform commands against Core on a real port (Typer's CliRunner)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from inwire.cli import config as cli_config
from inwire.cli.main import app

if TYPE_CHECKING:
    from click.testing import Result
    from core_server import RunningCore

runner = CliRunner()


def cli(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    """Run ``inwire *args``; wide columns so that tables do not fold ids."""
    return runner.invoke(app, list(args), input=input, env={"COLUMNS": "200", **(env or {})})


def ok(*args: str, **kw: Any) -> Result:
    """Run a command that must succeed."""
    result = cli(*args, **kw)
    assert result.exit_code == 0, result.output
    return result


def as_json(*args: str) -> Any:
    """A command's JSON output."""
    return json.loads(ok("--output", "json", *args).stdout)


@pytest.fixture
def signed_in(cli_home: Path, served_core: RunningCore) -> RunningCore:
    """The CLI signed in as Core's first admin."""
    assert served_core.url is not None
    ok(
        "login",
        "--url",
        served_core.url,
        "--email",
        served_core.admin_email,
        "--password",
        served_core.admin_password,
    )
    return served_core


def test_login_saves_the_session_readable_only_by_the_owner(
    cli_home: Path, served_core: RunningCore
) -> None:
    assert served_core.url is not None
    result = ok(
        "login",
        "--url",
        served_core.url,
        "--email",
        served_core.admin_email,
        "--password",
        served_core.admin_password,
    )

    path = cli_home / "cli.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["url"] == served_core.url
    assert saved["core_url"] == served_core.url  # the address answered as Core itself
    assert saved["refresh_token"]
    assert saved["access_token"]
    assert served_core.admin_email in result.output
    assert served_core.admin_password not in path.read_text()


def test_login_asks_for_what_it_is_not_given(cli_home: Path, served_core: RunningCore) -> None:
    answers = f"{served_core.url}\n{served_core.admin_email}\n{served_core.admin_password}\n"
    result = ok("login", input=answers)

    assert "Inwire URL" in result.output
    assert "Password" in result.output
    assert served_core.admin_password not in result.output  # typed hidden
    assert (cli_home / "cli.json").is_file()


def test_whoami_prints_a_table_or_json(signed_in: RunningCore) -> None:
    table = ok("whoami").stdout
    data = as_json("whoami")

    assert signed_in.admin_email in table
    assert "owner" in table
    assert data["email"] == signed_in.admin_email
    assert data["organization_id"] == signed_in.organization_id


def test_teams_create_and_list_in_json_and_table(signed_in: RunningCore) -> None:
    created = as_json("teams", "create", "forecasting", "--description", "demand models")
    ok("teams", "create", "vision")

    listed = as_json("teams", "list")
    table = ok("teams", "list").stdout
    per_command = json.loads(ok("teams", "list", "-o", "json").stdout)

    assert created["name"] == "forecasting"
    assert created["id"].startswith("team_")
    assert [t["name"] for t in listed] == ["forecasting", "vision"]
    assert per_command == listed
    assert "forecasting" in table
    assert "demand models" in table
    assert created["id"] in table
    assert table.lstrip().startswith("Teams")


def test_teams_members_and_delete(signed_in: RunningCore) -> None:
    ok("users", "invite", "ada@example.com")
    team = as_json("teams", "create", "ops")

    members = as_json("teams", "members", "ops")
    refused = cli("teams", "delete", "ops", input="n\n")
    ok("teams", "delete", team["id"], "--yes")

    assert [m["email"] for m in members] == [signed_in.admin_email]
    assert members[0]["role"] == "maintainer"
    assert refused.exit_code == 1
    assert as_json("teams", "list") == []


def test_api_key_create_shows_the_key_once(signed_in: RunningCore) -> None:
    result = ok("api-keys", "create", "nightly", "--role", "member")
    created = as_json("api-keys", "create", "second")
    listed = ok("api-keys", "list").stdout
    listed_json = ok("api-keys", "list", "-o", "json").stdout

    # The prefix row shows the key's first characters; the key row shows all of it.
    key = max((w for w in result.stdout.split() if w.startswith("iwk_")), key=len)
    assert len(key) > 40
    assert "shown only this once" in result.stderr
    assert created["key"].startswith("iwk_")
    assert key not in listed
    assert key not in listed_json
    assert created["key"] not in listed_json
    assert "nightly" in listed
    assert created["prefix"] in listed


def test_login_with_an_api_key_and_revoke(signed_in: RunningCore, cli_home: Path) -> None:
    created = as_json("api-keys", "create", "ci")
    ok("logout")

    ok("login", "--url", str(signed_in.url), "--api-key", created["key"])
    me = as_json("whoami")
    saved = json.loads((cli_home / "cli.json").read_text())
    revoked = as_json("api-keys", "revoke", created["id"], "--yes")
    after = cli("whoami")

    assert me["email"] == signed_in.admin_email
    assert saved["api_key"] == created["key"]
    assert "refresh_token" not in saved
    assert revoked["status"] == "revoked"
    assert after.exit_code == 1
    assert "inwire login" in after.stderr
    assert "Traceback" not in after.output


def test_users_invite_set_role_and_remove(signed_in: RunningCore) -> None:
    invited = as_json("users", "invite", "bob@example.com", "--role", "viewer")
    assert invited["token"]
    assert invited["role"] == "viewer"

    # An invitation is not a membership yet: add an account through the SDK path Core
    # offers admins (a member with a password), then manage it by e-mail.
    from inwire.sdk import Client

    with Client(
        core_url=signed_in.url, email=signed_in.admin_email, password=signed_in.admin_password
    ) as client:
        client.core.users.add("eve@example.com", name="Eve", password="eve-password-0123456")

    promoted = as_json("users", "set-role", "eve@example.com", "admin")
    members = as_json("users", "list", "--role", "admin")
    ok("users", "remove", "eve@example.com", "--yes")
    remaining = [u["email"] for u in as_json("users", "list")]

    assert promoted["role"] == "admin"
    assert [m["email"] for m in members] == ["eve@example.com"]
    assert remaining == [signed_in.admin_email]


def test_orgs_create_list_and_switch(signed_in: RunningCore, cli_home: Path) -> None:
    created = as_json("orgs", "create", "Research Lab")
    names = {o["name"] for o in as_json("orgs", "list")}

    ok("orgs", "switch", "research-lab")
    me = as_json("whoami")
    saved = json.loads((cli_home / "cli.json").read_text())

    assert names == {"Default", "Research Lab"}
    assert me["organization_id"] == created["id"]
    assert saved["organization_id"] == created["id"]
    assert as_json("teams", "list") == []


def test_a_rotated_refresh_token_is_saved_for_the_next_command(
    signed_in: RunningCore, cli_home: Path
) -> None:
    path = cli_home / "cli.json"
    saved = json.loads(path.read_text())
    saved["expires_at"] = "2000-01-01T00:00:00+00:00"  # as if 15 minutes had passed
    path.write_text(json.dumps(saved))

    ok("whoami")
    rotated = json.loads(path.read_text())
    ok("whoami")  # the old refresh token is spent: this works only if the new one was saved

    assert rotated["refresh_token"] != saved["refresh_token"]
    assert rotated["access_token"] != saved["access_token"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_logout_revokes_and_forgets_the_session(signed_in: RunningCore, cli_home: Path) -> None:
    before = json.loads((cli_home / "cli.json").read_text())

    ok("logout")
    after = json.loads((cli_home / "cli.json").read_text())
    result = cli("whoami")

    assert "access_token" not in after
    assert "refresh_token" not in after
    assert after["url"] == before["url"]
    assert result.exit_code == 1
    assert "Not signed in" in result.stderr
    from inwire.sdk import Client
    from inwire.sdk.errors import Unauthorized

    with (
        Client(core_url=signed_in.url, token=before["access_token"]) as stale,
        pytest.raises(Unauthorized),
    ):
        stale.me()


def test_a_wrong_password_is_a_clear_error(cli_home: Path, served_core: RunningCore) -> None:
    result = cli(
        "login",
        "--url",
        str(served_core.url),
        "--email",
        served_core.admin_email,
        "--password",
        "wrong-password-123",
    )

    assert result.exit_code == 1
    assert "Invalid email or password" in result.stderr
    assert "Traceback" not in result.output
    assert not (cli_home / "cli.json").exists()


def test_an_unreachable_url_is_a_clear_error(cli_home: Path) -> None:
    result = cli(
        "login", "--url", "http://127.0.0.1:9", "--email", "a@b.example", "--password", "x"
    )

    assert result.exit_code == 1
    assert "Cannot reach http://127.0.0.1:9" in result.stderr
    assert "inwire up" in result.stderr
    assert "Traceback" not in result.output


def test_an_unreachable_saved_url_is_a_clear_error(cli_home: Path) -> None:
    cli_config.save(cli_config.CliConfig(url="http://127.0.0.1:9", api_key="iwk_x"))

    result = cli("teams", "list")

    assert result.exit_code == 1
    assert "Cannot reach core at http://127.0.0.1:9/core" in result.stderr
    assert "Traceback" not in result.output


def test_commands_need_a_sign_in(cli_home: Path) -> None:
    result = cli("teams", "list")

    assert result.exit_code == 1
    assert "Not signed in" in result.stderr


def test_a_forbidden_action_names_the_missing_permission(signed_in: RunningCore) -> None:
    viewer_key = as_json("api-keys", "create", "read-only", "--role", "viewer")["key"]

    result = cli("teams", "create", "nope", env={"INWIRE_API_KEY": viewer_key})

    assert result.exit_code == 1
    assert "Not allowed" in result.stderr
    assert "teams:create" in result.stderr


def test_validation_errors_show_the_field(signed_in: RunningCore) -> None:
    result = cli("teams", "create", "  ")

    assert result.exit_code == 1
    assert "name" in result.stderr
    assert "VALIDATION_ERROR" in result.stderr


def test_a_front_door_url_reaches_core_under_its_prefix(
    cli_home: Path, served_core: RunningCore, tmp_path: Path
) -> None:
    # `inwire up --one-process` (and the gateway) serve Core under /core: the CLI finds out
    # from /health and keeps the front door's address.
    from core_server import core_settings, read_credentials, serve_in_thread

    from inwire.allinone.composition import MountedService, compose
    from inwire.services import registry
    from inwire.services.core.app import create_app

    home = tmp_path / "front-home"
    settings = core_settings(home)
    front = compose([MountedService(registry.get("core"), settings, create_app(settings))])
    with serve_in_thread(front) as (url, _):
        creds = read_credentials(home)
        ok("login", "--url", url, "--email", creds["email"], "--password", creds["password"])
        saved = json.loads((cli_home / "cli.json").read_text())
        me = as_json("whoami")

    assert saved["url"] == url
    assert "core_url" not in saved
    assert me["email"] == creds["email"]
