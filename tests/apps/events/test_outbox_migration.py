"""A database migrated before the move (outbox model in messaging) keeps its table and rows."""

import pytest
from django.core.management import call_command
from django.db import connection

from apps.events.models import OutboxEvent


def applied(app: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM django_migrations WHERE app = %s ORDER BY name", [app])
        return [name for (name,) in cursor.fetchall()]


@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_an_existing_outbox_table_and_its_rows_survive_the_move() -> None:
    try:
        # Back to before the move: unapplies messaging 0003 (it depends on events 0001) too.
        call_command("migrate", "events", "zero", interactive=False, verbosity=0)
        assert "0003_outbox_moved_to_events" not in applied("messaging") and applied("events") == []
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO event_outbox (topic, event, data) VALUES (%s, %s, %s) RETURNING id",
                ["property:changes:00000000-0000-4000-8000-0000000000c1", "property.updated", '{"n": 1}'],
            )
            (row_id,) = cursor.fetchone()
    finally:
        call_command("migrate", interactive=False, verbosity=0)
    assert "0003_outbox_moved_to_events" in applied("messaging") and applied("events") == [
        "0001_initial",
        "0002_notice_outbox",
    ]
    row = OutboxEvent.objects.get(pk=row_id)
    assert (row.event, row.data, row.attempts) == ("property.updated", {"n": 1}, 0)
