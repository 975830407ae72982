"""The PostgreSQL half of the integration layer: one read-only statement, or ORM callables in one transaction.

The SQL of `query_relational_data` must come from the code base, never from a request.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection, transaction

from realtime import errors
from realtime.errors import ProtocolError

MAX_ROWS = 10_000
STATEMENT_TIMEOUT_MS = 30_000
READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction

ONE_STATEMENT = "query_relational_data runs one statement: no ';' (pass values as params)"
READ_ONLY = "query_relational_data is read-only: {error}"


def _query_read_only(sql: str, params: Sequence[Any] | Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if ";" in sql.strip().rstrip(";"):
        raise ProtocolError(errors.BAD_REQUEST, ONE_STATEMENT)
    sql = sql.strip().rstrip(";")
    try:
        # A savepoint (or a transaction) made read-only by PostgreSQL itself, and always rolled
        # back at the end, so the read-only mode never leaks into an enclosing transaction.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION READ ONLY")
            cursor.execute(f"SET LOCAL statement_timeout = {int(STATEMENT_TIMEOUT_MS)}")
            cursor.execute(sql, params)
            columns = [column.name for column in cursor.description or ()]
            rows = cursor.fetchmany(MAX_ROWS) if columns else []
            transaction.set_rollback(True)
    except DatabaseError as error:
        if getattr(error.__cause__, "sqlstate", None) == READ_ONLY_SQLSTATE:
            raise ProtocolError(errors.BAD_REQUEST, READ_ONLY.format(error=error)) from error
        raise
    return [dict(zip(columns, row, strict=True)) for row in rows]


async def query_relational_data(
    sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Rows (column -> value) of one read-only SQL statement, at most MAX_ROWS.

    PostgreSQL enforces read-only (a write raises bad_request); `%s` / `%(name)s` placeholders.
    """
    return await sync_to_async(_query_read_only)(sql, params)


def _run_atomic(operations: Sequence[Callable[[], Any]]) -> list[Any]:
    with transaction.atomic():
        return [operation() for operation in operations]


async def execute_transaction(operations: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run the (sync, ORM) callables in order in one transaction; their results, or nothing at all on error."""
    return await sync_to_async(_run_atomic)(list(operations))
