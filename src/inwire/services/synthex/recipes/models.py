"""Recipes, their immutable versions, and the secret salts keyed PII steps use.

A recipe's steps never change in place: editing them adds a ``RecipeVersion`` with the next
number, so a dataset version made by "recipe r, version 3" can always be explained and
reproduced. The recipe row copies its newest steps so lists and reads need no join.

Salts are random secrets made by the service (never by users) and never returned by the
API: ``Recipe.salt`` keys a recipe's own hashes and fakes; ``OrganizationSalt`` is shared
by all recipes of an organization so their hashed values join.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from inwire.kit.db import TenantMixin, TimestampMixin
from inwire.kit.db.base import utcnow
from inwire.services.synthex.db import SynthexBase


class Recipe(SynthexBase, TenantMixin, TimestampMixin):
    """A named, versioned list of cleaning and transformation steps."""

    __tablename__ = "recipes"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Number of the newest version.
    version: Mapped[int] = mapped_column(Integer, default=1)
    #: Steps of the newest version (a copy of its ``steps``).
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    step_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Seed of fake values: the same seed (and salt) gives the same fakes.
    seed: Mapped[int] = mapped_column(BigInteger)
    #: Secret key (hex) of this recipe's hash and fake steps; never returned.
    salt: Mapped[str] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(100))


class RecipeVersion(SynthexBase, TenantMixin):
    """One immutable state of a recipe's steps."""

    __tablename__ = "recipe_versions"
    __table_args__ = (UniqueConstraint("recipe_id", "number"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    recipe_id: Mapped[str] = mapped_column(ForeignKey("recipes.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: What changed, in the author's words.
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class OrganizationSalt(SynthexBase, TenantMixin):
    """The organization's secret key for ``scope: organization`` hash and fake steps."""

    __tablename__ = "recipe_org_salts"
    __table_args__ = (UniqueConstraint("organization_id"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    salt: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
