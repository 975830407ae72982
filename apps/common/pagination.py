"""List pages: `limit` (1..100, default 20) and `offset`; every list endpoint answers the same shape."""

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from asgiref.sync import sync_to_async
from django.db.models import QuerySet
from ninja import Schema
from pydantic import Field

T = TypeVar("T")
MAX_LIMIT = 100


class PageParams(Schema):
    limit: int = Field(20, ge=1, le=MAX_LIMIT, description="Items per page (at most 100).")
    offset: int = Field(0, ge=0, le=1_000_000, description="Items to skip.")


class Page(Schema, Generic[T]):
    items: list[T]
    count: int
    limit: int
    offset: int
    nextOffset: int | None


def paginate(queryset: QuerySet[Any], params: PageParams, serialize: Callable[[Any], T]) -> dict[str, Any]:
    """One page of `queryset` (already ordered) as the `Page` shape."""
    count = queryset.count()
    rows = list(queryset[params.offset : params.offset + params.limit])
    following = params.offset + len(rows)
    return {
        "items": [serialize(row) for row in rows],
        "count": count,
        "limit": params.limit,
        "offset": params.offset,
        "nextOffset": following if following < count else None,
    }


apaginate = sync_to_async(paginate)
