"""The Core contract client against the real Core app, in process."""

from __future__ import annotations

import pytest

from inwire.contracts.core import CoreClient
from inwire.kit.errors import Unauthorized
from inwire.kit.testing.identities import ORGS, identity


async def test_core_client_logs_in_refreshes_and_reads_me(app, seeded) -> None:
    who = identity("member")
    anonymous = CoreClient(app=app)
    grant = await anonymous.login(who.email, who.password)
    assert grant.organization_id == ORGS["a"]
    assert grant.refresh_token
    rotated = await anonymous.refresh(grant.refresh_token)
    assert rotated.refresh_token != grant.refresh_token
    me = await CoreClient(app=app, credentials=rotated.access_token).me()
    assert me.email == who.email
    assert me.role == "member"
    with pytest.raises(Unauthorized) as caught:
        await anonymous.login(who.email, "wrong-password-xyz")
    assert caught.value.code == "INVALID_CREDENTIALS"
    await anonymous.close()
