"""Promotion to production in the registry, gated by the organization's policy.

A version enters production two ways in the registry: its stage becomes ``Production``, or
the ``production`` alias (any case) is pointed at it — MLflow's own guidance replaces the
stage with such an alias, so both doors are guarded alike. When the policy requires it, the
request becomes an approval of kind ``model.promote``; once approved, :func:`promote` runs
the same registry call with the stored payload. Leaving production (another stage,
archiving, removing the alias) is never gated.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.auth import Principal
from inwire.kit.errors import Conflict, Invalid
from inwire.services.modelops.governance import policy
from inwire.services.modelops.governance.gate import gate, register_action
from inwire.services.modelops.governance.history import PRODUCTION_ALIAS, PRODUCTION_STAGE
from inwire.services.modelops.models import service
from inwire.services.modelops.models.models import ModelVersion, RegisteredModel
from inwire.services.modelops.models.repository import AliasRepository

KIND = "model.promote"


def is_production_alias(alias: str) -> bool:
    """Whether ``alias`` names production (``production`` in any case)."""
    return alias.lower() == PRODUCTION_ALIAS


def _promotable(version: ModelVersion) -> None:
    """A version that is not READY cannot be promoted: refuse now, not after approval."""
    if version.status != "READY":
        raise Conflict(
            f"Version {version.version} is {version.status}; only READY versions go to "
            f"{PRODUCTION_STAGE}",
            code="VERSION_NOT_READY",
        )


def _payload(model: RegisteredModel, version: ModelVersion, **extra: Any) -> dict[str, Any]:
    return {
        "model_id": model.id,
        "model": model.name,
        "version": version.version,
        "version_id": version.id,
        **extra,
    }


async def gate_stage(
    session: AsyncSession,
    who: Principal,
    ref: str,
    number: int,
    stage: str,
    *,
    archive_existing_versions: bool,
) -> dict[str, Any] | None:
    """The approval a stage transition waits for, or None when it may run now: it does
    not enter Production, the version is there already, or the policy does not ask."""
    if service.canonical_stage(stage) != PRODUCTION_STAGE:
        return None
    model, version = await service.get_version(session, who, ref, number)
    if version.stage == PRODUCTION_STAGE:
        return None
    if not await policy.requires_approval_for_production(session, who.org):
        return None
    _promotable(version)
    archiving = " (archiving the versions there)" if archive_existing_versions else ""
    return await gate(
        session,
        who,
        KIND,
        _payload(
            model,
            version,
            via="stage",
            stage=PRODUCTION_STAGE,
            archive_existing_versions=archive_existing_versions,
        ),
        protected=True,
        summary=f"Move {model.name} version {number} to {PRODUCTION_STAGE}{archiving}",
    )


async def gate_alias(
    session: AsyncSession, who: Principal, ref: str, alias: str, number: int
) -> dict[str, Any] | None:
    """The approval pointing an alias waits for, or None when it may run now: not the
    production alias, it already points there, or the policy does not ask."""
    if not is_production_alias(alias):
        return None
    model, version = await service.get_version(session, who, ref, number)
    current = await AliasRepository(session, who.org).named(model.id, alias)
    if current is not None and current.version_id == version.id:
        return None
    if not await policy.requires_approval_for_production(session, who.org):
        return None
    _promotable(version)
    return await gate(
        session,
        who,
        KIND,
        _payload(model, version, via="alias", alias=alias),
        protected=True,
        summary=f"Point alias {alias!r} of {model.name} at version {number}",
    )


async def promote(session: AsyncSession, who: Principal, payload: dict[str, Any]) -> dict[str, Any]:
    """Run an approved promotion: the stored stage transition or alias move, as ``who``
    (the approver); the version's wire form."""
    model_id, number = str(payload["model_id"]), int(payload["version"])
    reason = f"promotion approved by {who.subject}"
    via = payload.get("via")
    if via == "stage":
        model, version, _ = await service.transition_stage(
            session,
            who,
            model_id,
            number,
            PRODUCTION_STAGE,
            archive_existing_versions=bool(payload.get("archive_existing_versions")),
            reason=reason,
        )
    elif via == "alias":
        model, version = await service.set_alias(
            session, who, model_id, str(payload["alias"]), number, reason=reason
        )
    else:
        raise Invalid(f"Unknown promotion {via!r}")
    view = (await service.version_views(session, who, [version], {model.id: model.name}))[0]
    return {"version": view.model_dump(mode="json")}


register_action(KIND, promote)
