"""Drop cached topic decisions after a committed change of who may see what."""

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from apps.leasing.models import Lease, LeaseTenant, Tenant
from apps.messaging.models import ConversationParticipant
from apps.messaging.topic_access import topic_access_drop
from apps.properties.models import Property, PropertyManager


def _drop_after_commit(user_ids: set[Any]) -> None:
    ids = {str(user_id) for user_id in user_ids if user_id is not None}
    if ids:
        transaction.on_commit(lambda: topic_access_drop(user_ids=ids))


def _lease_tenant_users(lease_id: Any) -> set[Any]:
    return set(LeaseTenant.objects.filter(lease_id=lease_id).values_list("tenant__user_id", flat=True))


@receiver(post_save, sender=ConversationParticipant)
@receiver(post_delete, sender=ConversationParticipant)
@receiver(post_save, sender=PropertyManager)
@receiver(post_delete, sender=PropertyManager)
def membership_changed(sender: type, instance: Any, **kwargs: Any) -> None:
    _drop_after_commit({instance.user_id})


@receiver(pre_save, sender=Property)
def remember_owner(sender: type, instance: Property, **kwargs: Any) -> None:
    previous = Property.objects.filter(pk=instance.pk).values_list("owner_id", flat=True).first()
    instance._previous_owner_id = previous  # type: ignore[attr-defined]


@receiver(post_save, sender=Property)
def owner_changed(sender: type, instance: Property, created: bool, **kwargs: Any) -> None:
    previous = getattr(instance, "_previous_owner_id", None)
    if created or previous != instance.owner_id:
        _drop_after_commit({previous, instance.owner_id})


@receiver(pre_save, sender=Lease)
def remember_status(sender: type, instance: Lease, **kwargs: Any) -> None:
    previous = Lease.objects.filter(pk=instance.pk).values_list("lease_status", flat=True).first()
    instance._previous_status = previous  # type: ignore[attr-defined]


@receiver(post_save, sender=Lease)
def lease_status_changed(sender: type, instance: Lease, created: bool, **kwargs: Any) -> None:
    if not created and getattr(instance, "_previous_status", None) != instance.lease_status:
        _drop_after_commit(_lease_tenant_users(instance.pk))


@receiver(post_save, sender=LeaseTenant)
@receiver(post_delete, sender=LeaseTenant)
def lease_tenant_changed(sender: type, instance: LeaseTenant, **kwargs: Any) -> None:
    _drop_after_commit(set(Tenant.objects.filter(pk=instance.tenant_id).values_list("user_id", flat=True)))

