"""Iterate over every item of a list endpoint, one page request at a time.

Lists are paginated by offset (``page``, ``per_page``): an item created or deleted while
you iterate can shift the pages, so one may be seen twice or not at all. Sort by
``created_at`` ascending (the default of most ``iter`` methods) to see the newest last.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

from pydantic import BaseModel

from inwire.contracts.core import Page

__all__ = ["MAX_PER_PAGE", "aiterate", "iterate"]

T = TypeVar("T", bound=BaseModel)

#: The largest page the platform serves; iterators ask for it to make fewest requests.
MAX_PER_PAGE = 100


def _check(per_page: int) -> None:
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}")


async def aiterate(fetch: Callable[[int], Awaitable[Page[T]]], per_page: int) -> AsyncIterator[T]:
    """Every item of the pages ``fetch(1)``, ``fetch(2)``, ... until the last one."""
    _check(per_page)
    number = 1
    while True:
        page = await fetch(number)
        for item in page.items:
            yield item
        if not page.has_next:
            return
        number += 1


def iterate(fetch: Callable[[int], Page[T]], per_page: int) -> Iterator[T]:
    """The blocking twin of :func:`aiterate`."""
    _check(per_page)
    number = 1
    while True:
        page = fetch(number)
        yield from page.items
        if not page.has_next:
            return
        number += 1
