"""The token verifier remembers tokens it verified, and forgets them when it must."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from jwt import PyJWK

from inwire.kit.auth.tokens import LEEWAY_SECONDS, TokenVerifier
from inwire.kit.errors import Unauthorized
from inwire.kit.testing.plugin import TestKeys


class Keys:
    """A key source whose keys the test changes, counting the lookups."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.keys = {k["kid"]: PyJWK(dict(k)) for k in jwks["keys"]}
        self.lookups = 0

    async def get_key(self, kid: str) -> PyJWK | None:
        self.lookups += 1
        return self.keys.get(kid)


@pytest.fixture
def keys(tmp_path: Path) -> TestKeys:
    return TestKeys(tmp_path)


async def test_a_verified_token_is_answered_from_memory(
    keys: TestKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = Keys(keys.jwks)
    verifier = TokenVerifier(source, issuer="inwire", audience="inwire")
    token = keys.token("member", "b")
    first = await verifier.verify(token)

    def no_signature_check(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the signature was checked again")

    monkeypatch.setattr("inwire.kit.auth.tokens.jwt.decode", no_signature_check)
    assert await verifier.verify(token) is first
    assert first.roles == ("member",)


async def test_a_withdrawn_key_or_an_expired_token_is_checked_again(
    keys: TestKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = Keys(keys.jwks)
    verifier = TokenVerifier(source, issuer="inwire", audience="inwire")
    token = keys.token(ttl=60)
    await verifier.verify(token)

    withdrawn = source.keys.pop(keys.kid)
    with pytest.raises(Unauthorized, match="unknown key"):
        await verifier.verify(token)

    source.keys[keys.kid] = withdrawn
    await verifier.verify(token)
    later = time.time() + 60 + LEEWAY_SECONDS + 1
    monkeypatch.setattr("inwire.kit.auth.tokens.time.time", lambda: later)
    monkeypatch.setattr("jwt.api_jwt.datetime", _Clock(later))
    with pytest.raises(Unauthorized, match="expired"):
        await verifier.verify(token)


async def test_forged_tokens_are_never_remembered(keys: TestKeys, tmp_path: Path) -> None:
    verifier = TokenVerifier(Keys(keys.jwks), issuer="inwire", audience="inwire")
    (tmp_path / "other").mkdir()
    other = TestKeys(tmp_path / "other")
    other.kid = keys.kid  # the right key id, signed with another key
    forged = other.token("owner")
    for _ in range(2):
        with pytest.raises(Unauthorized, match="Invalid token"):
            await verifier.verify(forged)


class _Clock:
    """Stands in for ``datetime`` inside PyJWT so that it sees a later time."""

    def __init__(self, at: float) -> None:
        import datetime as real

        self._real = real.datetime
        self._at = at

    def now(self, tz: Any = None) -> Any:
        return self._real.fromtimestamp(self._at, tz)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)
