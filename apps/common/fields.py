"""Field factories that turn the schema design's column idioms into Django fields.

Every default the seed declares is set twice: in Python (so the ORM knows the value
at once) and in the database (`db_default`, so a plain SQL insert gets it too).
"""

import uuid
from collections.abc import Iterable
from typing import Any

from django.contrib.postgres.functions import RandomUUID
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone


def uuid_primary_key(column: str) -> models.UUIDField:
    """`<column> UUID PRIMARY KEY DEFAULT uuid_generate_v4()` (gen_random_uuid in PostgreSQL)."""
    return models.UUIDField(
        primary_key=True,
        default=uuid.uuid4,
        db_default=RandomUUID(),
        editable=False,
        db_column=column,
    )


def created_at_field(column: str = "created_at") -> models.DateTimeField:
    """`TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP`, set once on insert."""
    return models.DateTimeField(default=timezone.now, db_default=Now(), null=True, editable=False, db_column=column)


def updated_at_field() -> models.DateTimeField:
    """`updated_at`: database default on insert, kept current by the model on every save."""
    return models.DateTimeField(auto_now=True, db_default=Now(), null=True)


def timestamp_now_field(column: str) -> models.DateTimeField:
    """An editable `TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP` column (uploaded_at, assigned_at ...)."""
    return models.DateTimeField(default=timezone.now, db_default=Now(), null=True, db_column=column)


def flag_field(default: bool) -> models.BooleanField:
    """`BOOLEAN DEFAULT <default>` (nullable, as the seed declares no NOT NULL)."""
    return models.BooleanField(default=default, db_default=default, null=True)


def enum_field(
    choices: type[models.TextChoices], *, default: str | None = None, null: bool = False
) -> models.CharField:
    """A seed `ENUM(...)` column: varchar sized to the longest value, choices in Python.

    Pair it with `enum_check` in `Meta.constraints` so the database refuses other values.
    """
    extra: dict[str, Any] = {}
    if default is not None:
        extra = {"default": default, "db_default": default}
    return models.CharField(
        max_length=max(len(value) for value in choices.values),
        choices=choices.choices,
        null=null,
        blank=null,
        **extra,
    )


def enum_check(table: str, field: str, choices: type[models.TextChoices]) -> models.CheckConstraint:
    """CHECK constraint `<table>_<field>_valid` holding the column to its enum's values."""
    values: Iterable[str] = choices.values
    return models.CheckConstraint(
        condition=models.Q(**{f"{field}__in": list(values)}),
        name=f"{table}_{field}_valid",
    )
