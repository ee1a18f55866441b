"""The wire shapes of ``/api/v1``: envelopes, page meta, errors, and list parameters.

Success is ``{"data": ..., "meta": {...}}``; failure is ``{"error": {"code", "message",
"details"}}``. List endpoints take ``page``, ``per_page`` (default 20, at most 100), ``sort``
and ``order`` limited to declared fields, and filters limited to declared parameters.
"""

from __future__ import annotations

import inspect
import re
import unicodedata
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

import fastapi
from fastapi import Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.params import File, Form
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from starlette.responses import Response

from inwire.kit.errors import Invalid, UnsupportedMediaType

T = TypeVar("T")

MAX_PER_PAGE = 100
#: Deepest page: keeps offsets inside 64-bit integers on every database.
MAX_PAGE = 10_000_000
DEFAULT_PER_PAGE = 20


class PageMeta(BaseModel):
    """Pagination facts of a list response."""

    page: int
    per_page: int
    total: int


class Item(BaseModel, Generic[T]):
    """Envelope of a single resource: ``{"data": {...}}``."""

    data: T


class Page(BaseModel, Generic[T]):
    """Envelope of a list: ``{"data": [...], "meta": {"page", "per_page", "total"}}``."""

    data: list[T]
    meta: PageMeta


class ErrorDetail(BaseModel):
    """One problem, usually with the field it concerns."""

    model_config = ConfigDict(extra="allow")
    field: str | None = None
    message: str
    type: str | None = None


class ErrorInfo(BaseModel):
    """The body of an error."""

    code: str
    message: str
    details: list[ErrorDetail] = []


class ErrorBody(BaseModel):
    """Envelope of every error: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorInfo


class WireModel(BaseModel):
    """Base for response schemas built from ORM rows."""

    model_config = ConfigDict(from_attributes=True)


def item(data: Any) -> dict[str, Any]:
    """Wrap one resource in the envelope."""
    return {"data": data}


class Order(StrEnum):
    """Sort direction."""

    asc = "asc"
    desc = "desc"


@dataclass(frozen=True)
class ListQuery:
    """Validated pagination, sort and filters of one list request."""

    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    sort: str = "created_at"
    order: Literal["asc", "desc"] = "desc"
    filters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def offset(self) -> int:
        """Rows to skip."""
        return (self.page - 1) * self.per_page

    def page_of(self, data: Sequence[Any], total: int) -> dict[str, Any]:
        """The list envelope for this query's page."""
        return {
            "data": list(data),
            "meta": {"page": self.page, "per_page": self.per_page, "total": total},
        }


def list_params(
    sort_fields: Sequence[str] = ("created_at",),
    *,
    default_sort: str | None = None,
    default_order: Literal["asc", "desc"] = "desc",
    filters: Mapping[str, Any] | None = None,
) -> Callable[..., Awaitable[ListQuery]]:
    """A dependency that parses list parameters; a bad value is a 400 naming the parameter.

    ``filters`` maps a query parameter to its type (``str``, ``bool``, an ``Enum`` or a
    ``Literal``); only declared parameters filter, and they appear in the OpenAPI document.
    """
    sort_enum = Enum("SortField", {f: f for f in sort_fields}, type=str)  # type: ignore[misc]
    default_sort = default_sort or sort_fields[0]
    declared = dict(filters or {})

    async def dependency(**kwargs: Any) -> ListQuery:
        sort = kwargs.pop("sort")
        order = kwargs.pop("order")
        return ListQuery(
            page=kwargs.pop("page"),
            per_page=kwargs.pop("per_page"),
            sort=sort.value if isinstance(sort, Enum) else str(sort),
            order=order.value if isinstance(order, Enum) else order,
            filters={
                k: (v.value if isinstance(v, Enum) else v)
                for k, v in kwargs.items()
                if v is not None
            },
        )

    params = [
        inspect.Parameter(
            "page",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=int,
            default=Query(1, ge=1, le=MAX_PAGE, description="Page number, from 1"),
        ),
        inspect.Parameter(
            "per_page",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=int,
            default=Query(
                DEFAULT_PER_PAGE, ge=1, le=MAX_PER_PAGE, description="Items per page (max 100)"
            ),
        ),
        inspect.Parameter(
            "sort",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=sort_enum,
            default=Query(sort_enum(default_sort), description="Sort field"),
        ),
        inspect.Parameter(
            "order",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Order,
            default=Query(Order(default_order), description="Sort direction"),
        ),
    ]
    for name, typ in declared.items():
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=typ | None,
                default=Query(None, description=f"Filter by {name}"),
            )
        )
    dependency.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return dependency


_JSON_TYPES = ("application/json",)
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _body_params(dependant: Dependant) -> Iterator[Any]:
    yield from dependant.body_params
    for sub in dependant.dependencies:
        yield from _body_params(sub)


class InwireRoute(APIRoute):
    """A route that answers 415 when a body arrives in a media type the endpoint cannot read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler with checks every endpoint needs before parsing.

        A NUL anywhere in the path, query or a JSON body is refused with 400: PostgreSQL
        cannot store it in text, and no identifier or name legitimately holds one.
        """
        handler = super().get_route_handler()
        body = list(_body_params(self.dependant))
        is_form = any(isinstance(p.field_info, Form | File) for p in body)
        has_body = bool(body)
        accepted = _FORM_TYPES if is_form else _JSON_TYPES

        async def checked(request: Request) -> Response:
            if "\x00" in request.scope["path"] or "%00" in request.url.query:
                raise Invalid(
                    "The request path or query contains a NUL character",
                    details=[{"field": "path", "message": "NUL not allowed"}],
                )
            if has_body:
                has_content = request.headers.get("content-length", "0") != "0" or (
                    "transfer-encoding" in request.headers
                )
                media = _media_type(request)
                if (
                    has_content
                    and media
                    and not (media in accepted or (not is_form and media.endswith("+json")))
                ):
                    raise UnsupportedMediaType(
                        f"Content type {media!r} is not supported here; send {accepted[0]}",
                        details=[{"field": "content-type", "message": f"expected {accepted[0]}"}],
                    )
                if not is_form and has_content and b"\\u0000" in await request.body():
                    raise Invalid(
                        "The request body contains a NUL character",
                        details=[{"field": "body", "message": "NUL not allowed"}],
                    )
            return await handler(request)

        return checked


class APIRouter(fastapi.APIRouter):
    """FastAPI's router with Inwire's route class; every service router is one of these."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("route_class", InwireRoute)
        super().__init__(**kwargs)


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _valid_email(value: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    local, _, domain = value.strip().rpartition("@")
    domain = domain.lower()
    try:
        # Syntax only (RFC 5322/6531), never DNS. Self-hosted installs use internal domains
        # (corp.local, *.internal) that email-validator calls special-use, so the domain is
        # checked here as plain DNS labels and the local part against a neutral domain.
        result = validate_email(f"{local}@example.com", check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError("The part after the @-sign is not a valid domain name.")
    return f"{result.local_part.lower()}@{domain}"


#: An e-mail address, normalised and lower-cased; internal domains are allowed.
Email = Annotated[str, Field(max_length=320), AfterValidator(_valid_email)]


def printable(value: str) -> str:
    """Refuse control characters: PostgreSQL rejects NUL, and none belong in names or labels."""
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


#: Single-line text for names and labels: no control characters.
PlainText = Annotated[str, AfterValidator(printable)]


class PatchModel(BaseModel):
    """Base of partial updates: fields left out stay as they are; null is not a value."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [k for k, v in data.items() if v is None and k in cls.model_fields]
            if nulls:
                raise ValueError(f"{', '.join(sorted(nulls))} may not be null")
        return data

    def changes(self) -> dict[str, Any]:
        """The fields the client sent."""
        return self.model_dump(exclude_unset=True)
