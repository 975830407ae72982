"""The outbox model moved to `apps.events`: forget it here, keep the table (state only).

`events.0001_initial` adopts `event_outbox` in its state first, so the model is never
missing from the project's state; the database is untouched either way.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0002_event_outbox"),
        ("events", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="OutboxEvent")],
            database_operations=[],
        ),
    ]
