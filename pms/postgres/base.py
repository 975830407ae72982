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
    """Also replaces a connection that failed, on its next use, outside requests too.

    Django checks a connection's health only at the start and end of a request (its signals);
    socket commands and other long-lived async code reuse the ORM thread's connection between
    housekeeping rounds, so a backend PostgreSQL terminated (`pg_terminate_backend`, a restart,
    a failover) failed every command for up to a round (issue #15: 20 s, 262 tracebacks). After
    a database error, the next cursor first checks the connection (`SELECT 1`) and reconnects
    if it is gone; without an error nothing extra is paid.
    """

    SchemaEditorClass = DatabaseSchemaEditor

    def close_if_health_check_failed(self) -> None:
        if self.errors_occurred and self.connection is not None and not self.in_atomic_block:
            self.errors_occurred = False
            if not self.is_usable():
                self.close()
                return
        super().close_if_health_check_failed()
