"""RepositoryBase: every query of a service, scoped to the caller's organization.

A repository of a tenant-owned model (one with ``TenantMixin``) cannot be built without an
organization id, and every select, update and delete it makes carries
``organization_id = :org``. Platform-wide work must say so with ``RepositoryBase.unscoped``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

from sqlalchemy import ColumnElement, Select, String, delete, func, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from inwire.kit.api import ListQuery
from inwire.kit.db.base import Base, TenantMixin
from inwire.kit.errors import Conflict, NotFound

M = TypeVar("M", bound=Base)

_UNSCOPED = object()


class RepositoryBase(Generic[M]):
    """Typed data access for one model. Subclasses set ``model`` and add their queries."""

    model: ClassVar[type[Any]]
    #: Human name used in error messages ("Team not found").
    noun: ClassVar[str] = "Resource"

    def __init__(self, session: AsyncSession, org_id: str | object | None = None) -> None:
        self.session = session
        self.tenant_scoped = issubclass(self.model, TenantMixin)
        if self.tenant_scoped and org_id is None:
            raise TypeError(
                f"{type(self).__name__} serves a tenant-owned model: pass org_id "
                f"(or use {type(self).__name__}.unscoped() for platform-wide work)"
            )
        self.org_id: str | None = None if org_id is _UNSCOPED else cast("str | None", org_id)

    @classmethod
    def unscoped(cls, session: AsyncSession) -> Self:
        """A repository that sees every organization: for system jobs and Core's own rules."""
        return cls(session, _UNSCOPED)

    # -- query building -------------------------------------------------------------------

    def scope(self, stmt: Select[Any]) -> Select[Any]:
        """Add the tenant filter to a select on this repository's model."""
        if self.tenant_scoped and self.org_id is not None:
            stmt = stmt.where(self.model.organization_id == self.org_id)
        return stmt

    def select(self, *where: ColumnElement[bool]) -> Select[Any]:
        """``SELECT model WHERE <tenant> AND where…``."""
        return self.scope(select(self.model).where(*where))

    # -- common operations ----------------------------------------------------------------

    async def get(self, id_: str) -> M:
        """The row with this id in the caller's organization, or NotFound."""
        row = await self.find(self.model.id == id_)
        if row is None:
            raise NotFound(f"{self.noun} {id_!r} not found")
        return row

    async def find(self, *where: ColumnElement[bool]) -> M | None:
        """The first row matching ``where`` in scope, or None."""
        result = await self.session.execute(self.select(*where).limit(1))
        return cast("M | None", result.scalars().first())

    async def all(self, *where: ColumnElement[bool]) -> Sequence[M]:
        """Every row matching ``where`` in scope."""
        result = await self.session.execute(self.select(*where))
        return cast("Sequence[M]", result.scalars().all())

    async def add(self, obj: M) -> M:
        """Insert a row, stamping the organization; a unique clash is a Conflict."""
        if self.tenant_scoped and self.org_id is not None:
            current = getattr(obj, "organization_id", None)
            if current not in (None, self.org_id):
                raise NotFound(f"{self.noun} not found")
            obj.organization_id = self.org_id  # type: ignore[attr-defined]
        try:
            # A savepoint keeps the request's transaction usable after a clash (PostgreSQL
            # aborts the whole transaction on an error otherwise).
            async with self.session.begin_nested():
                self.session.add(obj)
        except IntegrityError as exc:
            raise Conflict(
                f"{self.noun} conflicts with an existing one",
                details=[{"message": _integrity_reason(exc)}],
            ) from exc
        return obj

    async def flush(self) -> None:
        """Flush pending changes; unique or foreign-key clashes become a Conflict."""
        try:
            await self.session.flush()
        except IntegrityError as exc:
            raise Conflict(
                f"{self.noun} conflicts with an existing one",
                details=[{"message": _integrity_reason(exc)}],
            ) from exc

    async def remove(self, obj: M) -> None:
        """Delete one loaded row."""
        await self.session.delete(obj)
        await self.flush()

    async def delete_where(self, *where: ColumnElement[bool]) -> int:
        """Bulk delete in scope; returns the number of rows deleted."""
        stmt = delete(self.model).where(*where)
        if self.tenant_scoped and self.org_id is not None:
            stmt = stmt.where(self.model.organization_id == self.org_id)
        result = await self.session.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)

    async def count(self, stmt: Select[Any]) -> int:
        """Rows a select would return."""
        total = await self.session.scalar(
            select(func.count()).select_from(stmt.order_by(None).subquery())
        )
        return int(total or 0)

    async def page(
        self,
        query: ListQuery,
        stmt: Select[Any] | None = None,
    ) -> tuple[Sequence[M], int]:
        """One page of ``stmt`` (default: all rows in scope) with declared filters and sort.

        Filters are equality on the column of the same name; the id breaks ties so pages
        are stable.
        """
        stmt = self.select() if stmt is None else stmt
        for name, value in query.filters.items():
            column = self._column(name)
            if column is not None:
                stmt = stmt.where(column == value)
        total = await self.count(stmt)
        sort_col = self._column(query.sort)
        order = []
        if sort_col is not None:
            order.append(sort_col.desc() if query.order == "desc" else sort_col.asc())
        id_col = self.model.id
        order.append(id_col.desc() if query.order == "desc" else id_col.asc())
        rows = await self.session.execute(
            stmt.order_by(*order).offset(query.offset).limit(query.per_page)
        )
        return cast("Sequence[M]", rows.scalars().all()), total

    def _column(self, name: str) -> InstrumentedAttribute[Any] | None:
        attr = getattr(self.model, name, None)
        return attr if isinstance(attr, InstrumentedAttribute) else None


def like_escape(text: str) -> str:
    """``text`` with LIKE's wildcards escaped by a backslash (pass ``escape="\\\\"``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def case_sensitive_like(column: Any, pattern: str, dialect: str) -> ColumnElement[bool]:
    """``column LIKE pattern`` with ``%`` and ``_`` wildcards and ``\\`` escaping the next
    character (PostgreSQL's default), case-sensitive everywhere.

    SQLite's LIKE ignores ASCII case, so there the pattern becomes a GLOB (``*``, ``?``,
    with ``*?[`` and escaped characters taken literally).
    """
    if dialect != "sqlite":
        return column.like(pattern)  # type: ignore[no-any-return]
    glob: list[str] = []
    escaped = False
    for ch in pattern:
        if escaped:
            glob.append(f"[{ch}]" if ch in "*?[" else ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in "%_":
            glob.append("*" if ch == "%" else "?")
        else:
            glob.append(f"[{ch}]" if ch in "*?[" else ch)
    return column.op("GLOB")("".join(glob))  # type: ignore[no-any-return]


def json_object_has(
    column: Any, key: str, value: str | None = None, *, dialect: str
) -> ColumnElement[bool]:
    """A JSON-object column (``{"key": "value"}``) holds ``key`` (with ``value`` if given).

    The object is stored as ``json.dumps`` text on both databases, so a key and its string
    value appear in it exactly as ``json.dumps`` writes them; quotes inside values are
    escaped there, so a value cannot fake a key. The match is a case-sensitive substring
    search (``instr`` on SQLite, ``strpos`` on PostgreSQL), no LIKE wildcards involved.
    """
    needle = json.dumps(key) + ": " + (json.dumps(value) if value is not None else "")
    find = func.instr if dialect == "sqlite" else func.strpos
    return find(sql_cast(column, String), needle) > 0


def _integrity_reason(exc: IntegrityError) -> str:
    text = str(exc.orig).lower()
    if "unique" in text or "duplicate" in text:
        return "a resource with the same unique value already exists"
    if "foreign key" in text:
        return "a referenced resource does not exist or is still in use"
    return "the change breaks a database constraint"
