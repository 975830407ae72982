"""EXTENSION (not in the seed): `integration_intents`, the integration layer's record of saves in flight.

`save_entity_with_documents` writes PostgreSQL, then MongoDB (and, for uploads, the file
storage). No transaction spans them, so before the second write it records here, in the
same PostgreSQL transaction as the row, how to undo the first. The row of a save that
finished is deleted; one a process left behind (it crashed or lost PostgreSQL between the
writes) is finished or undone by `apps.common.integration.arecover_intents`.
"""

from django.db import models

from apps.common.fields import created_at_field, enum_check, enum_field, uuid_primary_key


class IntentState(models.TextChoices):
    PENDING = "pending"  # the save is running, or its process died: recovery decides after a grace period
    UNDOING = "undoing"  # the row is put back; documents or files could not be removed yet: recovery does
    UNDONE = "undone"  # kept (then purged) so a save still running learns its work was undone


class IntegrationIntent(models.Model):
    """One save across PostgreSQL and MongoDB: which row, how to put it back, which documents and files."""

    id = uuid_primary_key("intent_id")
    entity_type = models.CharField(max_length=50)
    entity_id = models.CharField(max_length=64)
    created = models.BooleanField()  # the save created the row (undo deletes it) or updated it
    previous = models.JSONField(default=dict)  # attname -> value before the save (updates)
    written = models.JSONField(default=dict)  # attname -> value the save wrote
    document_ids = models.JSONField(default=list)  # MongoDB `documents` ids (hex) the save inserts
    files = models.JSONField(default=list)  # storage names of the files the save stores
    state = enum_field(IntentState, default=IntentState.PENDING)
    created_at = created_at_field()

    class Meta:
        db_table = "integration_intents"
        indexes = [models.Index(fields=["state", "created_at"], name="idx_integration_intents_state")]
        constraints = [enum_check("integration_intents", "state", IntentState)]

    def __str__(self) -> str:
        return f"{self.state} save of {self.entity_type} {self.entity_id}"
