"""Every query on experiments."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import String, cast

from inwire.kit.api import ListQuery
from inwire.kit.db import RepositoryBase
from inwire.kit.db.repository import like_escape
from inwire.services.training.experiments.models import Experiment


class ExperimentRepository(RepositoryBase[Experiment]):
    """Experiments of one organization."""

    model = Experiment
    noun = "Experiment"

    async def search(
        self,
        query: ListQuery,
        *,
        q: str | None = None,
        tag: tuple[str, str | None] | None = None,
    ) -> tuple[Sequence[Experiment], int]:
        """One page; ``q`` matches names (case-insensitive), ``tag`` is (key, value or None).

        ``lifecycle`` in the query's filters may be ``all`` to list both states.
        """
        filters = dict(query.filters)
        if filters.get("lifecycle") == "all":
            del filters["lifecycle"]
        stmt = self.select()
        if q:
            stmt = stmt.where(Experiment.name.ilike(f"%{like_escape(q)}%", escape="\\"))
        if tag is not None:
            # Tags are a JSON object serialised by json.dumps on both databases: a key and
            # its value appear in the stored text exactly as json.dumps makes them (quotes
            # inside values are escaped there, so a value cannot fake a key).
            key, value = tag
            needle = json.dumps(key) + ": " + (json.dumps(value) if value is not None else "")
            pattern = f"%{like_escape(needle)}%"
            stmt = stmt.where(cast(Experiment.tags, String).like(pattern, escape="\\"))
        return await self.page(
            ListQuery(query.page, query.per_page, query.sort, query.order, filters), stmt
        )

    async def by_name(self, name: str) -> Experiment | None:
        """The experiment called ``name``, archived or not."""
        return await self.find(Experiment.name == name)
