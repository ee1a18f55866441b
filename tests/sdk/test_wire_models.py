"""The contract's models carry every field Core's response schemas send (no silent drift)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from inwire.contracts import core as contract
from inwire.services.core.apikeys import schemas as apikeys
from inwire.services.core.auth import schemas as auth
from inwire.services.core.integrations import schemas as integrations
from inwire.services.core.organizations import schemas as organizations
from inwire.services.core.teams import schemas as teams
from inwire.services.core.users import schemas as users


def _fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields) | set(model.model_computed_fields)


@pytest.mark.parametrize(
    ("wire", "served"),
    [
        (contract.TokenGrant, auth.TokenPair),
        (contract.UserBrief, auth.UserBrief),
        (contract.Caller, auth.Me),
        (contract.OrganizationRole, auth.OrganizationRole),
        (contract.Organization, organizations.OrganizationOut),
        (contract.Invitation, organizations.InvitationOut),
        (contract.InvitationCreated, organizations.InvitationCreated),
        (contract.Member, users.MemberOut),
        (contract.Team, teams.TeamOut),
        (contract.TeamMember, teams.TeamMemberOut),
        (contract.ApiKey, apikeys.ApiKeyOut),
        (contract.ApiKeyCreated, apikeys.ApiKeyCreated),
        (contract.ServiceAccount, apikeys.ServiceAccountOut),
        (contract.Integration, integrations.IntegrationOut),
        (contract.ResolvedIntegration, integrations.ResolvedIntegrationOut),
    ],
)
def test_contract_model_matches_cores_response_schema(
    wire: type[BaseModel], served: type[BaseModel]
) -> None:
    assert _fields(wire) == _fields(served)


def test_role_literals_match_cores() -> None:
    from typing import get_args

    assert set(get_args(contract.Role)) == set(get_args(users.Role))
    assert set(get_args(contract.TeamRole)) == set(get_args(teams.TeamRole))
    assert set(get_args(contract.InvitationStatus)) == set(get_args(organizations.InvitationStatus))
