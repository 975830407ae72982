"""Adopt the `event_outbox` table from `messaging` (state only: the table and its rows stay).

`messaging.0002_event_outbox` created the table; `messaging.0003_outbox_moved_to_events`
removes the model from messaging's state without touching the database. A fresh
database gets the table from messaging 0002 first (hence the dependency); reversing
this migration only forgets the model again.
"""

import django.db.models.functions.datetime
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("messaging", "0002_event_outbox"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="OutboxEvent",
                    fields=[
                        ("id", models.BigAutoField(primary_key=True, serialize=False)),
                        ("topic", models.CharField(max_length=100)),
                        ("event", models.CharField(max_length=50)),
                        ("data", models.JSONField()),
                        (
                            "created_at",
                            models.DateTimeField(
                                db_default=django.db.models.functions.datetime.Now(),
                                default=django.utils.timezone.now,
                                editable=False,
                            ),
                        ),
                        ("attempts", models.IntegerField(db_default=0, default=0)),
                        ("last_error", models.TextField(blank=True, null=True)),
                    ],
                    options={
                        "db_table": "event_outbox",
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
