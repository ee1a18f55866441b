"""An organization's governance policy: whether promotion to production waits for approval.

The default is off (``require_approval_for_production = false``): an installation used by
one person (the embedded default on a laptop) must be able to promote a model, and nobody
could approve that person's own request. A team turns it on with one call
(``PUT /api/v1/governance/policy``), after which every promotion to production waits for
an approver who is not its requester.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.auth import Principal, ensure
from inwire.kit.db import utcnow
from inwire.services.modelops.governance import audit
from inwire.services.modelops.governance.gate import APPROVER_PERMISSION
from inwire.services.modelops.governance.models import GovernancePolicy
from inwire.services.modelops.governance.repository import PolicyRepository
from inwire.services.modelops.governance.schemas import PolicyIn, PolicyOut

#: Whether promotion to production needs approval when an organization never said.
DEFAULT_REQUIRE_APPROVAL_FOR_PRODUCTION = False


def _out(row: GovernancePolicy | None) -> PolicyOut:
    if row is None:
        return PolicyOut(require_approval_for_production=DEFAULT_REQUIRE_APPROVAL_FOR_PRODUCTION)
    return PolicyOut(
        require_approval_for_production=row.require_approval_for_production,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


async def get_policy(session: AsyncSession, org_id: str) -> PolicyOut:
    """The organization's policy (the defaults when it never set one)."""
    return _out(await PolicyRepository(session, org_id).current())


async def requires_approval_for_production(session: AsyncSession, org_id: str) -> bool:
    """Whether a promotion to production waits for an approver."""
    return (await get_policy(session, org_id)).require_approval_for_production


async def set_policy(session: AsyncSession, who: Principal, data: PolicyIn) -> PolicyOut:
    """Store the organization's policy; approvers only (403), audited."""
    ensure(who, APPROVER_PERMISSION)
    repo = PolicyRepository(session, who.org)
    row = await repo.current()
    before = _out(row).model_dump(mode="json", include={"require_approval_for_production"})
    created = row is None
    if row is None:
        row = GovernancePolicy(organization_id=who.org)
    row.require_approval_for_production = data.require_approval_for_production
    row.updated_by = who.subject
    row.updated_at = utcnow()
    await (repo.add(row) if created else repo.flush())
    await audit.record_by(
        session,
        who,
        "governance.policy.update",
        "governance_policy",
        who.org,
        before=before,
        after=data.model_dump(mode="json"),
    )
    return _out(row)
