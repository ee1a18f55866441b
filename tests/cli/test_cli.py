"""The ``inwire`` command: help, version, and migrations driven by the service registry."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from inwire import __version__
from inwire.cli.main import app
from inwire.services import registry
from inwire.services.registry import ServiceSpec

runner = CliRunner()
core_missing = pytest.mark.skipif(
    importlib.util.find_spec("inwire.services.core.app") is None, reason="Core not written yet"
)


@pytest.fixture(autouse=True)
def isolated_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every test gets its own INWIRE_HOME and no database settings from the outside."""
    home = tmp_path / "home"
    monkeypatch.setenv("INWIRE_HOME", str(home))
    for name in ("DATABASE_URL", "DATABASE_SCHEMA"):
        monkeypatch.delenv(f"INWIRE_{name}", raising=False)
        for spec in registry.SERVICES:
            monkeypatch.delenv(f"{spec.env_prefix}{name}", raising=False)
    return home


async def _version(url: str, schema: str, service: str) -> str | None:
    args = {"server_settings": {"search_path": schema}} if schema else {}
    engine = create_async_engine(url, connect_args=args)
    try:
        async with engine.connect() as conn:
            row = await conn.execute(text(f"SELECT version_num FROM alembic_version_{service}"))
            value = row.scalar_one_or_none()
            return str(value) if value is not None else None
    finally:
        await engine.dispose()


def version(url: str, service: str, schema: str = "") -> str | None:
    """The Alembic revision recorded in ``service``'s own version table."""
    return asyncio.run(_version(url, schema, service))


def test_help_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "inwire.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    for command in (
        "up",
        "serve",
        "migrate",
        "login",
        "logout",
        "whoami",
        "orgs",
        "teams",
        "users",
        "api-keys",
        "--output",
        "--install-completion",
    ):
        assert command in result.stdout


def test_importing_the_cli_imports_no_web_stack_database_or_service() -> None:
    # What `inwire --help` pays for: the CLI module and Typer, nothing heavy.
    probe = (
        "import sys, inwire.cli.main; "
        "heavy = ('fastapi', 'uvicorn', 'sqlalchemy', 'alembic', 'httpx', 'aiohttp', "
        "'pydantic', 'inwire.services', 'inwire.allinone', 'inwire.kit', 'inwire.sdk', "
        "'inwire.contracts'); "
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])

    assert result.exit_code == 0
    assert result.output.strip() == f"inwire {__version__}"


@pytest.mark.parametrize("command", [["serve", "nosuch"], ["migrate", "nosuch"]])
def test_an_unknown_service_is_an_error_naming_the_known_ones(command: list[str]) -> None:
    result = runner.invoke(app, command)

    assert result.exit_code == 2
    assert "nosuch" in result.output
    assert registry.SERVICES[0].name in result.output


@core_missing
def test_migrate_all_creates_core_tables_in_inwire_home(isolated_home: Path) -> None:
    result = runner.invoke(app, ["migrate"])

    assert result.exit_code == 0, result.output
    database = isolated_home / "db" / "core.db"
    assert database.is_file()
    assert version(f"sqlite+aiosqlite:///{database}", "core") is not None
    assert "core" in result.output


@core_missing
def test_migrate_core_twice_is_a_no_op_on_the_configured_database(
    db_url: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, schema = db_url
    monkeypatch.setenv("INWIRE_CORE_DATABASE_URL", url)
    monkeypatch.setenv("INWIRE_CORE_DATABASE_SCHEMA", schema)

    first = runner.invoke(app, ["migrate", "core"])
    head = version(url, "core", schema)
    second = runner.invoke(app, ["migrate", "core"])

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert head is not None
    assert version(url, "core", schema) == head


FAKE_APP = """
from pathlib import Path

from pydantic_settings import SettingsConfigDict

from inwire.kit.settings import ServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"


class Settings(ServiceSettings):
    service = "ledger"
    model_config = SettingsConfigDict(env_prefix="INWIRE_LEDGER_")


def create_app(settings=None):
    raise AssertionError("migrate must not build the app")
"""

FAKE_ENV = """
from sqlalchemy import MetaData

from inwire.kit.db.migrations import run_env

run_env(MetaData())
"""

FAKE_REVISION = '''
"""entries"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("entries", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("entries")
'''


@pytest.fixture
def ledger_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServiceSpec:
    """A registered service ``ledger`` whose app module exposes one migration."""
    package = tmp_path / "pkgs" / "ledger_service"
    (package / "migrations" / "versions").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(textwrap.dedent(FAKE_APP))
    (package / "migrations" / "env.py").write_text(textwrap.dedent(FAKE_ENV))
    (package / "migrations" / "versions" / "0001_entries.py").write_text(FAKE_REVISION)
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    spec = ServiceSpec(
        name="ledger",
        package="ledger_service",
        port=18998,
        prefix="/ledger",
        app_factory="ledger_service.app:create_app",
        settings_class="ledger_service.app:Settings",
    )
    monkeypatch.setattr(registry, "SERVICES", (spec,))
    return spec


def test_migrate_applies_what_the_registered_app_module_exposes(
    ledger_service: ServiceSpec, isolated_home: Path
) -> None:
    result = runner.invoke(app, ["migrate", "all"])

    assert result.exit_code == 0, result.output
    database = f"sqlite+aiosqlite:///{isolated_home / 'db' / 'ledger.db'}"
    assert version(database, "ledger") == "0001"
    assert "ledger" in result.output
