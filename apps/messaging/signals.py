"""Drop cached topic decisions after a committed change of membership (who may see what).

Only the membership rows remain here (conversation participants, property managers, lease
tenants: every path, admin inlines included, writes them). A property's owner and a
lease's status are compared old/new by their services (`property_*`, `lease_*`), which
call `services.topic_access_changed` themselves.
"""

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.leasing.models import LeaseTenant, Tenant
from apps.messaging.models import ConversationParticipant
from apps.messaging.services import topic_access_changed
from apps.properties.models import PropertyManager


def _drop_after_commit(user_ids: set[Any]) -> None:
    topic_access_changed(user_ids=user_ids)


@receiver(post_save, sender=ConversationParticipant)
@receiver(post_delete, sender=ConversationParticipant)
@receiver(post_save, sender=PropertyManager)
@receiver(post_delete, sender=PropertyManager)
def membership_changed(sender: type, instance: Any, **kwargs: Any) -> None:
    _drop_after_commit({instance.user_id})


@receiver(post_save, sender=LeaseTenant)
@receiver(post_delete, sender=LeaseTenant)
def lease_tenant_changed(sender: type, instance: LeaseTenant, **kwargs: Any) -> None:
    _drop_after_commit(set(Tenant.objects.filter(pk=instance.tenant_id).values_list("user_id", flat=True)))
