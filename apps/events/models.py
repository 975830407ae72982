"""The transactional outbox table (EXTENSION: not in the seed)."""

from django.db import models
from django.db.models.functions import Now
from django.utils import timezone


class OutboxEvent(models.Model):
    """A change event waiting to be published (transactional outbox).

    A row is written in the same database transaction as the change it announces, so a
    rolled-back change leaves none, and `apps.events.relay` publishes it once that
    transaction has committed, then deletes it. While Redis is down the row stays (with
    `attempts` and `last_error`) and a later relay publishes it: delayed, never lost.
    Rows of one topic go out in `id` order.

    The table was created by `messaging.0002_event_outbox`; `events.0001_initial` adopted
    it (state only), so existing databases keep their rows.
    """

    id = models.BigAutoField(primary_key=True)
    topic = models.CharField(max_length=100)
    event = models.CharField(max_length=50)
    data = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)
    attempts = models.IntegerField(default=0, db_default=0)
    last_error = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "event_outbox"

    def __str__(self) -> str:
        return f"{self.event} on {self.topic} (#{self.id})"


class NoticeOutbox(models.Model):
    """A user notification waiting to be delivered (the notice outbox; EXTENSION: not in the seed).

    Written by `apps.events.notices.notify_on_commit` in the transaction of the change it
    tells about, so a rolled-back change notifies nobody; `apps.events.delivery` stores it in
    MongoDB `notifications` under `notification_id` (chosen when the row is written, so a
    retried delivery finds its own earlier insert instead of adding a second one), counts
    and publishes it, then deletes the row. While MongoDB or Redis is down the row stays
    (`attempts`, `last_error`); `claimed_until` is the lease of the delivery in flight, after
    which another process may take the row over (its deliverer died).
    """

    id = models.BigAutoField(primary_key=True)
    notification_id = models.CharField(max_length=24, unique=True)
    user_id = models.CharField(max_length=100)
    # The notification's fields in the protocol's names, times as ISO 8601 UTC strings.
    document = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_default=Now(), editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.IntegerField(default=0, db_default=0)
    last_error = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "notice_outbox"

    def __str__(self) -> str:
        return f"notice {self.document.get('type')} for {self.user_id} (#{self.id})"
