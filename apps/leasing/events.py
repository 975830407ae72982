"""Typed change events of leases, recorded in the outbox by the leasing services.

`lease:changes:{leaseId}` carries `lease.updated` for every lease a service creates,
changes or deletes, recorded inside the change's transaction after the row is written.
"""

from typing import Any

from apps.events.outbox import ChangeEvent, deleted_data, register_deleted, wire_fields
from apps.leasing.models import Lease
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


def record_lease_saved(lease: Lease) -> None:
    """`lease.updated` with the lease as saved (created or changed)."""
    LeaseUpdated((topics.lease_changes(str(lease.pk)),), lease_data(lease)).send_on_commit()


def record_lease_deleted(lease_id: Any) -> None:
    """`lease.updated` marking the lease deleted."""
    LeaseUpdated((topics.lease_changes(str(lease_id)),), deleted_data(lease_id)).send_on_commit()


register_deleted(Lease, lambda lease: record_lease_deleted(lease.pk))
