"""Every query of the model registry."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, func, select, update

from inwire.kit.api import ListQuery
from inwire.kit.db import RepositoryBase
from inwire.kit.db.repository import case_sensitive_like, json_object_has, like_escape
from inwire.kit.errors import NotFound
from inwire.services.modelops.models.models import ModelAlias, ModelVersion, RegisteredModel


@dataclass(frozen=True)
class NameFilter:
    """How to match model names: contains (any case), exact, LIKE and ILIKE patterns."""

    q: str | None = None
    exact: str | None = None
    like: str | None = None
    ilike: str | None = None

    def conditions(self, column: object, dialect: str) -> list[ColumnElement[bool]]:
        """The WHERE conditions on ``column`` (a name column)."""
        out: list[ColumnElement[bool]] = []
        if self.q:
            out.append(column.ilike(f"%{like_escape(self.q)}%", escape="\\"))  # type: ignore[attr-defined]
        if self.exact is not None:
            out.append(column == self.exact)  # type: ignore[arg-type]
        if self.like is not None:
            out.append(case_sensitive_like(column, self.like, dialect))
        if self.ilike is not None:
            out.append(func.lower(column).like(func.lower(self.ilike)))
        return out


@dataclass(frozen=True)
class VersionFilter:
    """Conditions on versions beyond the list's own filters."""

    names: NameFilter = field(default_factory=NameFilter)
    run_ids: Sequence[str] = ()
    stages: Sequence[str] = ()
    tags: Sequence[tuple[str, str | None]] = ()


class ModelRepository(RepositoryBase[RegisteredModel]):
    """Registered models of one organization."""

    model = RegisteredModel
    noun = "Model"

    @property
    def dialect(self) -> str:
        """The database's dialect name (``sqlite`` or ``postgresql``)."""
        return self.session.get_bind().dialect.name

    async def by_name(self, name: str) -> RegisteredModel | None:
        """The model called ``name``."""
        return await self.find(RegisteredModel.name == name)

    async def locked(self, model_id: str) -> RegisteredModel:
        """The model, its row locked until the transaction ends (PostgreSQL's FOR UPDATE;
        SQLite's write transaction already holds the database): version numbering, alias
        moves and stage transitions of one model happen one at a time."""
        result = await self.session.execute(
            self.select(RegisteredModel.id == model_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        row = result.scalars().first()
        if row is None:
            raise NotFound(f"Model {model_id!r} not found")
        return row  # type: ignore[no-any-return]

    async def next_version(self, model_id: str) -> int:
        """Take the model's next version number (never reused)."""
        result = await self.session.execute(
            update(RegisteredModel)
            .where(
                RegisteredModel.id == model_id,
                RegisteredModel.organization_id == self.org_id,
            )
            .values(last_version=RegisteredModel.last_version + 1)
            .returning(RegisteredModel.last_version)
        )
        return int(result.scalar_one())

    async def search(
        self,
        query: ListQuery,
        *,
        names: NameFilter,
        tags: Sequence[tuple[str, str | None]] = (),
    ) -> tuple[Sequence[RegisteredModel], int]:
        """One page of models matching the name filter and every tag."""
        stmt = self.select(*names.conditions(RegisteredModel.name, self.dialect))
        for key, value in tags:
            has = json_object_has(RegisteredModel.tags, key, value, dialect=self.dialect)
            stmt = stmt.where(has)
        return await self.page(query, stmt)

    async def names_of(self, model_ids: Collection[str]) -> dict[str, str]:
        """Model id -> name."""
        if not model_ids:
            return {}
        rows = await self.session.execute(
            select(RegisteredModel.id, RegisteredModel.name).where(
                RegisteredModel.organization_id == self.org_id,
                RegisteredModel.id.in_(list(model_ids)),
            )
        )
        return dict(rows.all())


class VersionRepository(RepositoryBase[ModelVersion]):
    """Model versions of one organization."""

    model = ModelVersion
    noun = "Model version"

    @property
    def dialect(self) -> str:
        """The database's dialect name."""
        return self.session.get_bind().dialect.name

    async def by_number(self, model_id: str, version: int) -> ModelVersion | None:
        """Version ``version`` of a model."""
        return await self.find(ModelVersion.model_id == model_id, ModelVersion.version == version)

    async def in_stage(self, model_id: str, stage: str) -> Sequence[ModelVersion]:
        """The model's versions in ``stage``."""
        return await self.all(ModelVersion.model_id == model_id, ModelVersion.stage == stage)

    async def latest_per_stage(
        self, model_ids: Collection[str], stages: Collection[str] = ()
    ) -> list[ModelVersion]:
        """The highest-numbered version in each stage of each model (``stages``: only
        those), by model then stage."""
        if not model_ids:
            return []
        newest = (
            select(
                ModelVersion.model_id.label("model_id"),
                ModelVersion.stage.label("stage"),
                func.max(ModelVersion.version).label("version"),
            )
            .where(
                ModelVersion.organization_id == self.org_id,
                ModelVersion.model_id.in_(list(model_ids)),
            )
            .group_by(ModelVersion.model_id, ModelVersion.stage)
            .subquery()
        )
        stmt = self.select().join(
            newest,
            (ModelVersion.model_id == newest.c.model_id)
            & (ModelVersion.version == newest.c.version),
        )
        if stages:
            stmt = stmt.where(ModelVersion.stage.in_(list(stages)))
        rows = (await self.session.execute(stmt)).scalars().all()
        return sorted(rows, key=lambda v: (v.model_id, v.stage, v.version))

    async def search(
        self,
        query: ListQuery,
        *,
        model_id: str | None = None,
        where: VersionFilter = VersionFilter(),
    ) -> tuple[Sequence[ModelVersion], int]:
        """One page of versions (of one model, or of every model matching the name
        filter), with the list's filters, run ids, stages and tags."""
        stmt = self.select()
        if model_id is not None:
            stmt = stmt.where(ModelVersion.model_id == model_id)
        conditions = where.names.conditions(RegisteredModel.name, self.dialect)
        if conditions:
            stmt = stmt.join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id).where(
                *conditions
            )
        if where.run_ids:
            stmt = stmt.where(ModelVersion.run_id.in_(list(where.run_ids)))
        if where.stages:
            stmt = stmt.where(ModelVersion.stage.in_(list(where.stages)))
        for key, value in where.tags:
            stmt = stmt.where(json_object_has(ModelVersion.tags, key, value, dialect=self.dialect))
        return await self.page(query, stmt)

    async def set_stage(self, ids: Collection[str], stage: str) -> None:
        """Move versions to ``stage`` in one statement."""
        if ids:
            from inwire.kit.db.base import utcnow

            await self.session.execute(
                update(ModelVersion)
                .where(ModelVersion.id.in_(list(ids)), ModelVersion.organization_id == self.org_id)
                .values(stage=stage, updated_at=utcnow())
                .execution_options(synchronize_session="fetch")
            )


class AliasRepository(RepositoryBase[ModelAlias]):
    """Aliases of one organization's models."""

    model = ModelAlias
    noun = "Alias"

    async def of_models(self, model_ids: Collection[str]) -> dict[str, dict[str, int]]:
        """alias -> version number, per model id."""
        out: dict[str, dict[str, int]] = {m: {} for m in model_ids}
        if model_ids:
            rows = await self.session.execute(
                select(ModelAlias.model_id, ModelAlias.alias, ModelVersion.version)
                .join(ModelVersion, ModelVersion.id == ModelAlias.version_id)
                .where(
                    ModelAlias.organization_id == self.org_id,
                    ModelAlias.model_id.in_(list(model_ids)),
                )
                .order_by(ModelAlias.alias)
            )
            for model_id, alias, version in rows:
                out[model_id][alias] = version
        return out

    async def of_versions(self, version_ids: Collection[str]) -> dict[str, list[str]]:
        """The aliases pointing at each version, sorted."""
        out: dict[str, list[str]] = {v: [] for v in version_ids}
        if version_ids:
            rows = await self.session.execute(
                select(ModelAlias.version_id, ModelAlias.alias)
                .where(
                    ModelAlias.organization_id == self.org_id,
                    ModelAlias.version_id.in_(list(version_ids)),
                )
                .order_by(ModelAlias.alias)
            )
            for version_id, alias in rows:
                out[version_id].append(alias)
        return out

    async def named(self, model_id: str, alias: str) -> ModelAlias | None:
        """The alias ``alias`` of a model."""
        return await self.find(ModelAlias.model_id == model_id, ModelAlias.alias == alias)
