"""PostgreSQL backend whose foreign keys carry the model's ON DELETE rule into the database.

Django 5.2 emulates CASCADE and SET_NULL in Python and creates every foreign key
as NO ACTION, so a row deleted with plain SQL would not cascade. The schema design
requires the database itself to enforce each rule, so this backend writes
`ON DELETE CASCADE` / `ON DELETE SET NULL` into the constraint it creates (Django
6.1's `DB_CASCADE` is the upstream form of the same idea).
"""

from typing import Any

from django.db import models
from django.db.backends.ddl_references import Statement
from django.db.backends.postgresql import base as postgresql_base
from django.db.backends.postgresql.schema import DatabaseSchemaEditor as PostgresSchemaEditor

ON_DELETE_SQL = {
    models.CASCADE: " ON DELETE CASCADE",
    models.SET_NULL: " ON DELETE SET NULL",
}


class DatabaseSchemaEditor(PostgresSchemaEditor):
    """Creates foreign keys with the database-level ON DELETE rule of their field."""

    # Inline column FKs cannot see the field's rule; creating them afterwards can.
    sql_create_column_inline_fk = None  # type: ignore[assignment]

    def _create_fk_sql(self, model: Any, field: Any, suffix: str) -> Statement:
        statement = super()._create_fk_sql(model, field, suffix)  # type: ignore[misc]  # private, not in the stubs
        rule = ON_DELETE_SQL.get(field.remote_field.on_delete, "")
        statement.parts["deferrable"] = rule + statement.parts["deferrable"]
        return statement


class DatabaseWrapper(postgresql_base.DatabaseWrapper):
    SchemaEditorClass = DatabaseSchemaEditor
