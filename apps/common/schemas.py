"""Field types and helpers every app's HTTP schemas share.

Wire conventions: camelCase fields; money as exact decimal strings with two places;
dates and times ISO 8601 (times with their UTC offset); a PATCH changes only the fields
sent and refuses `null` for required ones (422 with the field and the reason).
"""

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Schema
from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints, ValidationInfo, field_validator

from apps.common.decimals import decimal_schema

if TYPE_CHECKING:
    from apps.accounts.services import Principal

R = TypeVar("R")

NOT_NULL = "may not be null"

# Money: exact decimals, at most 10 digits with 2 after the point (the seed's DECIMAL(10,2)).
Money = Annotated[Decimal, Field(gt=0, max_digits=10, decimal_places=2), decimal_schema(10, 2, positive=True)]
MoneyOrZero = Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2), decimal_schema(10, 2)]
Income = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2), decimal_schema(12, 2)]


# PostgreSQL text cannot hold NUL characters: refuse them here (422) instead of failing in the database.
NO_NUL = r"^[^\x00]*$"


def text(max_length: int, min_length: int = 0) -> Any:
    """A stripped string of bounded length, without NUL characters."""
    return Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length, pattern=NO_NUL)
    ]


def _in_range(value: datetime) -> datetime:
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:
        in_utc = None
    if in_utc is None or not 1900 <= in_utc.year <= 9999:
        raise ValueError("must be between the years 1900 and 9999 (UTC)")
    return value


# A point in time with its UTC offset (a naive time is ambiguous), in a range the database stores.
Timestamp = Annotated[AwareDatetime, AfterValidator(_in_range)]


async def call(function: Callable[..., R], **kwargs: Any) -> R:
    """Run a sync selector or service in the request's database thread."""
    return await sync_to_async(function)(**kwargs)


def principal(request: HttpRequest) -> "Principal":
    return request.auth  # type: ignore[attr-defined]


def money(value: Decimal | None) -> str | None:
    """A decimal column as its exact string with two places ("1450.00")."""
    return None if value is None else f"{value:.2f}"


class PatchIn(Schema):
    """A partial update: absent fields stay; `null` is refused for fields in NOT_NULL."""

    NOT_NULL: ClassVar[frozenset[str]] = frozenset()
    FIELDS: ClassVar[dict[str, str]] = {}

    @field_validator("*")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name in cls.NOT_NULL:
            raise ValueError(NOT_NULL)
        return value

    def changes(self) -> dict[str, Any]:
        """The fields sent, as model field names -> values (enums as their values)."""
        sent = self.model_dump(exclude_unset=True)
        return {self.FIELDS[name]: getattr(value, "value", value) for name, value in sent.items()}
