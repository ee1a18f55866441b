"""``import inwire`` stays cheap and hands out the SDK's clients on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inwire.sdk import AsyncClient, Client


def test_importing_inwire_does_not_import_the_sdk() -> None:
    probe = (
        "import sys, inwire; "
        "print(sorted(m for m in sys.modules if m.startswith(('inwire.sdk', 'inwire.kit', "
        "'aiohttp', 'httpx', 'fastapi'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_inwire_exports_the_clients_lazily() -> None:
    import inwire

    assert inwire.Client is Client
    assert inwire.AsyncClient is AsyncClient
    with pytest.raises(AttributeError):
        _ = inwire.Nothing  # type: ignore[attr-defined]


def test_inwire_exports_the_tracking_functions_lazily() -> None:
    import inwire
    from inwire.sdk import tracking

    for name in ("start_run", "log_metric", "log_params", "set_tag", "flush", "active_run"):
        assert getattr(inwire, name) is getattr(tracking, name)
        assert name in inwire.__all__
