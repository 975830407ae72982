"""Typed change events of leases, published on commit through the outbox.

`lease:changes:{leaseId}` carries `lease.updated` for every ORM save and delete of the
lease, written inside the change's transaction.
"""

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.leasing.models import Lease
from apps.events.outbox import ChangeEvent, deleted_data, wire_fields
from realtime import topics


class LeaseUpdated(ChangeEvent):
    name = "lease.updated"


def lease_data(lease: Lease) -> dict[str, Any]:
    return wire_fields(
        {
            "id": lease.pk,
            "unitId": lease.unit_id,
            "startDate": lease.start_date,
            "endDate": lease.end_date,
            "monthlyRent": lease.monthly_rent,
            "securityDeposit": lease.security_deposit,
            "leaseStatus": lease.lease_status,
            "createdAt": lease.created_at,
            "updatedAt": lease.updated_at,
            "leaseDocumentUrl": lease.lease_document_url,
            "isSigned": lease.is_signed,
            "specialTerms": lease.special_terms,
            "autoRenewal": lease.auto_renewal,
        }
    )


@receiver(post_save, sender=Lease)
def lease_saved(sender: type, instance: Lease, raw: bool, using: str, **kwargs: Any) -> None:
    if not raw:
        LeaseUpdated((topics.lease_changes(str(instance.pk)),), lease_data(instance)).send_on_commit(using=using)


@receiver(post_delete, sender=Lease)
def lease_deleted(sender: type, instance: Lease, using: str, **kwargs: Any) -> None:
    LeaseUpdated((topics.lease_changes(str(instance.pk)),), deleted_data(instance.pk)).send_on_commit(using=using)
