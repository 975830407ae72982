"""`field__any=values`: `field = ANY(%s::<type>[])`, the list sent as one array parameter (PostgreSQL).

`field__in=values` makes Django prepare, compile and send every value on its own: for the batched
socket decisions (`apps.messaging.topic_access.topic_allowed_many`: ~90 ids in three IN lists per
batch) that was over half of the batch's CPU (cProfile: building the lookups and compiling
them 0.30 of 0.58 s for 50 batches). Here the list is one parameter and the values go as they
are: canonical strings or values of the field's Python type. Same rows as `__in`; an empty list
matches nothing. Registered for every field by `apps.common` (`CommonConfig.ready`).
"""

from typing import Any

from django.db.models import Field, ForeignObject, Lookup


class AnyOf(Lookup):
    lookup_name = "any"
    prepare_rhs = False

    def get_prep_lookup(self) -> Any:
        return list(self.rhs)

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        db_type = self.lhs.output_field.cast_db_type(connection)
        return f"{lhs} = ANY(%s::{db_type}[])", [*lhs_params, [str(value) for value in self.rhs]]


def register() -> None:
    Field.register_lookup(AnyOf)
    ForeignObject.register_lookup(AnyOf)  # relations keep lookups of their own (`user_id__any`)
