"""Every query on recipes, their versions and the organization's salt."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence

from sqlalchemy import String, cast

from inwire.kit.api import ListQuery
from inwire.kit.db import RepositoryBase
from inwire.kit.db.repository import like_escape
from inwire.kit.errors import Conflict
from inwire.kit.ids import new_id
from inwire.services.synthex.recipes.models import OrganizationSalt, Recipe, RecipeVersion


def new_salt() -> str:
    """A fresh secret key (256 bits, hex)."""
    return secrets.token_hex(32)


class RecipeRepository(RepositoryBase[Recipe]):
    """Recipes of one organization."""

    model = Recipe
    noun = "Recipe"

    async def search(
        self, query: ListQuery, *, q: str | None = None, tag: str | None = None
    ) -> tuple[Sequence[Recipe], int]:
        """One page of recipes; ``q`` matches the name (case-insensitive), ``tag`` a tag."""
        stmt = self.select()
        if q:
            stmt = stmt.where(Recipe.name.ilike(f"%{like_escape(q)}%", escape="\\"))
        if tag:
            # Tags are a JSON list: an element appears in the stored text as json.dumps(tag).
            pattern = f"%{like_escape(json.dumps(tag))}%"
            stmt = stmt.where(cast(Recipe.tags, String).like(pattern, escape="\\"))
        return await self.page(query, stmt)


class RecipeVersionRepository(RepositoryBase[RecipeVersion]):
    """Versions of one organization's recipes."""

    model = RecipeVersion
    noun = "Recipe version"

    async def of_recipe(
        self, recipe_id: str, query: ListQuery
    ) -> tuple[Sequence[RecipeVersion], int]:
        """One page of a recipe's versions."""
        return await self.page(query, self.select(RecipeVersion.recipe_id == recipe_id))

    async def by_number(self, recipe_id: str, number: int) -> RecipeVersion | None:
        """Version ``number`` of a recipe."""
        return await self.find(RecipeVersion.recipe_id == recipe_id, RecipeVersion.number == number)


class SaltRepository(RepositoryBase[OrganizationSalt]):
    """The organization's shared salt."""

    model = OrganizationSalt
    noun = "Organization salt"

    async def current(self) -> OrganizationSalt | None:
        """The organization's salt, if it has one yet."""
        return await self.find()

    async def ensure(self) -> OrganizationSalt:
        """The organization's salt, made on first use (a concurrent maker's wins)."""
        found = await self.current()
        if found is not None:
            return found
        try:
            return await self.add(OrganizationSalt(id=new_id("salt"), salt=new_salt()))
        except Conflict:
            made = await self.current()
            if made is None:  # pragma: no cover - the clash means it exists
                raise
            return made
